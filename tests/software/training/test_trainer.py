"""The trainer: one compiled step run on a device, one core or a ring of them, bit-identical to
the golden trainer for the placement after every step, cycles equal to the timing model."""

import numpy as np
import pytest

from caterpillar.contract.config import preset
from caterpillar.golden.trainer import GoldenTrainer, scalars, to_bits
from caterpillar.software.compiler.program import ceil_to
from caterpillar.software.compiler.training import compile_training
from caterpillar.software.graph.model import Optimizer, TrainingGraph
from caterpillar.software.isasim.device import IsaDevice, RingIsaDevice
from caterpillar.software.training.session import default_weights, feedback_matrices
from caterpillar.software.training.trainer import Trainer

CASES = [  # sizes, batch (mbgd), loss, momentum, weight decay
    ((9, 7, 5), 3, "softmax_ce", 0.0, 0.0),
    ((10, 9, 8, 6), 5, "mse", 0.9, 0.01),
]


def train_and_compare(cfg, sizes, algorithm, batch, loss, momentum, wd, steps, device, rng,
                      segments=None, compile=compile_training, kernels="auto"):
    """Run ``steps`` steps on ``device`` and on the golden trainer; compare every bit.

    ``algorithm``: ``sgd``, ``mbgd``, ``dfa`` (a batch) or ``dfa1`` (DFA on one sample);
    ``compile(graph, cfg, segments)`` makes the step. Returns the trainer and the last step's
    ring counters."""
    batch = 1 if algorithm in ("sgd", "dfa1") else batch
    algorithm = "dfa" if algorithm == "dfa1" else algorithm
    graph = TrainingGraph(sizes, loss=loss, algorithm=algorithm, batch=batch, kernels=kernels,
                          optimizer=Optimizer(lr=0.2, momentum=momentum, weight_decay=wd))
    compiled = compile(graph, cfg, segments)
    if kernels != "auto":
        assert compiled.graph.kernels == kernels
    fmt = cfg.operand
    seed = int(rng.integers(1000))
    init = [(to_bits(w, fmt), to_bits(b, fmt)) for w, b in default_weights(sizes, seed)]
    feedback = None
    hw = Trainer(compiled, device)
    hw.load_parameters(init)
    if algorithm == "dfa":
        feedback = [to_bits(f, fmt) for f in feedback_matrices(sizes, seed)]
        hw.load_feedback(feedback)
    hw.set_lr(0.2)
    gold = GoldenTrainer(sizes, loss, cfg.nr, fmt, cfg.acc, init, momentum=momentum > 0,
                         weight_decay=wd > 0, feedback=feedback, **compiled.golden_options())
    s = scalars(fmt, lr=0.2, batch=batch, momentum=momentum, weight_decay=wd,
                outputs=sizes[-1])
    for step in range(steps):
        x = to_bits(rng.random((batch, sizes[0])), fmt)
        if loss == "softmax_ce":
            t = rng.integers(0, sizes[-1], batch)
        else:
            t = to_bits(np.eye(sizes[-1])[rng.integers(0, sizes[-1], batch)], fmt)
        logits, run = hw.step(x, t)             # raises if cycles != the prediction
        want = gold.gemv_step(x, t, s) if compiled.graph.gemv else gold.mbgd_step(x, t, s)
        np.testing.assert_array_equal(logits, want, err_msg=f"step {step}: logits")
        assert run.cycles == hw.predicted
        assert min(run.ring_cycles) > 0 or cfg.cores == 1
        weights, moments = hw.read_parameters()
        for index, ((w, b), (gw, gb)) in enumerate(zip(weights, gold.weights)):
            np.testing.assert_array_equal(w, gw, err_msg=f"step {step}: W{index}")
            np.testing.assert_array_equal(b, gb, err_msg=f"step {step}: b{index}")
        if momentum:
            for index, ((m, mb), (gm, gmb)) in enumerate(zip(moments, gold.moments)):
                np.testing.assert_array_equal(m, gm, err_msg=f"step {step}: mW{index}")
                np.testing.assert_array_equal(mb, gmb, err_msg=f"step {step}: mb{index}")
    return hw, run


@pytest.mark.parametrize("cores", [2, 3])
@pytest.mark.parametrize("algorithm", ["sgd", "mbgd", "dfa1", "dfa"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c[0])))
def test_ring_training_matches_golden(case, algorithm, cores, rng):
    cfg = preset("tiny").replace(cores=cores)
    train_and_compare(cfg, *case[:1], algorithm, *case[1:], steps=4,
                      device=RingIsaDevice(cfg), rng=rng)


@pytest.mark.parametrize("algorithm", ["mbgd", "dfa"])
@pytest.mark.parametrize("sizes, cores", [((9, 15, 5), 2), ((8, 6, 23, 5), 3)])
def test_the_output_bias_on_a_core_with_room_in_its_row_groups(sizes, cores, algorithm, rng):
    # The last hidden layer's blocks are 7 + 8 (and 7 + 8 + 8) rows on tiny's 8-row groups:
    # the first core's block takes the output layer's bias column, the last core's is full.
    cfg = preset("tiny").replace(cores=cores)
    graph = TrainingGraph(sizes, algorithm=algorithm, batch=3)
    compiled = compile_training(graph, cfg)
    assert compiled.splits[-1] == "columns" and compiled.output_bias == 0
    assert compiled.golden_options()["output_bias"] == 0
    train_and_compare(cfg, sizes, algorithm, 3, "softmax_ce", 0.9, 0.0, steps=3,
                      device=RingIsaDevice(cfg), rng=rng)


@pytest.mark.parametrize("cores", [2, 3, 4])
@pytest.mark.parametrize("batch", [2, 3])
@pytest.mark.parametrize("algorithm", ["mbgd", "dfa"])
@pytest.mark.parametrize("sizes, loss", [((9, 7, 5), "softmax_ce"), ((10, 9, 8, 6), "mse"),
                                         ((16, 12, 8, 8, 4), "softmax_ce")],
                         ids=["9-7-5", "10-9-8-6", "16-12-8-8-4"])
def test_a_batch_on_the_gemv_kernels_matches_golden(sizes, loss, algorithm, batch, cores, rng):
    # Every sample's forward and backward (dfa: every hidden delta from the sample's output
    # delta), then one rank-1 update per sample and layer: the ring's bits are gemv_step's
    # after every step, its cycles the timing model's.
    cfg = preset("tiny").replace(cores=cores, memb_words=256)
    hw, _ = train_and_compare(cfg, sizes, algorithm, batch, loss, 0.0, 0.0, steps=3,
                              device=RingIsaDevice(cfg), rng=rng, kernels="gemv")
    assert hw.compiled.graph.batched_gemv


def test_a_batch_on_the_gemv_kernels_rounds_each_weight_after_every_sample(rng):
    # bf16 operands and an fp32 accumulator: each rank-1 update rounds W to bf16, so the step
    # is gemv_step's (one update_layer per sample), not one update of the batch.
    cfg = preset("tiny").replace(cores=2, memb_words=256, operand_format="bf16")
    hw, _ = train_and_compare(cfg, (9, 7, 5), "mbgd", 3, "softmax_ce", 0.0, 0.0, steps=3,
                              device=RingIsaDevice(cfg), rng=rng, kernels="gemv")
    assert cfg.operand != cfg.acc and hw.compiled.graph.batched_gemv


@pytest.mark.parametrize("algorithm", ["sgd", "mbgd", "dfa1", "dfa"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c[0])))
def test_one_core_is_a_ring_of_one(case, algorithm, rng):
    # The one-core device (a core's register map) runs the same Trainer.
    cfg = preset("tiny")
    hw, run = train_and_compare(cfg, *case[:1], algorithm, *case[1:], steps=3,
                                device=IsaDevice(cfg), rng=rng)
    assert list(hw.compiled.cores) == [0] and run.ring_cycles == [0]
    assert hw.compiled.segments == [(0,)] * (len(case[0]) - 1)


def test_the_device_must_have_the_compiled_cores():
    graph = TrainingGraph((9, 7, 5), algorithm="mbgd", batch=2)
    cfg = preset("tiny").replace(cores=2)
    with pytest.raises(ValueError, match=r"the device has 1 core\(s\); the step was compiled "
                                         r"for 2"):
        Trainer(compile_training(graph, cfg), IsaDevice(preset("tiny")))


def test_more_cores_shorten_the_mbgd_step():
    graph = TrainingGraph((32, 24, 16), algorithm="mbgd", batch=8)
    cycles = [max(Trainer(compile_training(graph, cfg), RingIsaDevice(cfg)).predicted)
              for cfg in (preset("tiny").replace(cores=c, spad_words=16384)
                          for c in (1, 2, 4))]
    assert cycles[0] > cycles[1] > cycles[2], cycles


@pytest.mark.parametrize("segments", [
    [(0, 1), (2, 3), (2, 3)],        # the output layers on a second sub-ring
    [(3,), (0, 1, 2), (3,)],         # hand-offs round the ring through idle cores
    [(2, 0), (1,), (2, 0)],          # a segment in its own ring order
], ids=["two-sub-rings", "wrap-around", "reordered"])
def test_layers_on_their_own_segments(segments, rng):
    cfg = preset("tiny").replace(cores=4)
    hw, _ = train_and_compare(cfg, (10, 9, 8, 6), "mbgd", 3, "mse", 0.9, 0.01, steps=3,
                              device=RingIsaDevice(cfg), rng=rng, segments=segments)
    assert hw.compiled.segments == segments




@pytest.mark.parametrize("cores", [1, 2])
@pytest.mark.parametrize("algorithm", ["sgd", "dfa1"])
def test_parameters_pass_a_small_staging_area_in_row_groups(algorithm, cores, rng):
    # A SPAD with room for a few rows of W0 only: the host moves every tensor (and reads it
    # back after every step) in groups of nr rows.
    cfg = preset("tiny").replace(cores=cores, spad_words=80)
    device = IsaDevice(cfg) if cores == 1 else RingIsaDevice(cfg)
    hw, _ = train_and_compare(cfg, (16, 14, 6), algorithm, 1, "mse", 0.0, 0.01, steps=3,
                              device=device, rng=rng)
    nr = cfg.nr
    for core in hw.compiled.cores.values():
        tiles = [(t.rows, ceil_to(t.cols, nr)) for t in core.tensors if t.kind == "mema"]
        assert max(nr * ld for _, ld in tiles) <= core.staging_words \
            < max(rows * ld for rows, ld in tiles)
