"""Training over a ring of cores on the ring simulator: both algorithms, bit-identical to the
golden trainer for C cores after every step, cycles equal to the ring timing model; the
partition; compile errors."""

import json

import numpy as np
import pytest

from caterpillar.golden.trainer import GoldenTrainer, scalars, to_bits
from caterpillar.rtl.config import preset
from caterpillar.software.compiler import CompileError
from caterpillar.software.graph import Optimizer, TrainingGraph
from caterpillar.software.ring_compiler import compile_ring, partition
from caterpillar.software.ring_sim import RingIsaDevice
from caterpillar.software.ring_trainer import RingTrainer
from caterpillar.software.training import default_weights

CASES = [  # sizes, batch (mbgd), loss, momentum, weight decay
    ((9, 7, 5), 3, "softmax_ce", 0.0, 0.0),
    ((10, 9, 8, 6), 5, "mse", 0.9, 0.01),
]


def train_and_compare(cfg, sizes, algorithm, batch, loss, momentum, wd, steps, device, rng,
                      segments=None):
    """Run ``steps`` steps on ``device`` and on the golden trainer; compare every bit.

    Returns the trainer and the last step's ring counters."""
    batch = 1 if algorithm == "sgd" else batch
    graph = TrainingGraph(sizes, loss=loss, algorithm=algorithm, batch=batch,
                          optimizer=Optimizer(lr=0.2, momentum=momentum, weight_decay=wd))
    compiled = compile_ring(graph, cfg, segments)
    fmt = cfg.operand
    init = [(to_bits(w, fmt), to_bits(b, fmt))
            for w, b in default_weights(sizes, int(rng.integers(1000)))]
    hw = RingTrainer(compiled, device)
    hw.load_parameters(init)
    hw.set_lr(0.2)
    gold = GoldenTrainer(sizes, loss, cfg.nr, fmt, cfg.acc, init,
                         k_chunk=compiled.k_chunk, momentum=momentum > 0,
                         weight_decay=wd > 0, cores=[len(s) for s in compiled.segments])
    s = scalars(fmt, lr=0.2, batch=batch, momentum=momentum, weight_decay=wd,
                outputs=sizes[-1])
    for step in range(steps):
        x = to_bits(rng.random((batch, sizes[0])), fmt)
        if loss == "softmax_ce":
            t = rng.integers(0, sizes[-1], batch)
        else:
            t = to_bits(np.eye(sizes[-1])[rng.integers(0, sizes[-1], batch)], fmt)
        logits, run = hw.step(x, t)             # raises if cycles != the prediction
        want = gold.sgd_step(x[0], t[0], s)[None] if algorithm == "sgd" else \
            gold.mbgd_step(x, t, s)
        np.testing.assert_array_equal(logits, want, err_msg=f"step {step}: logits")
        assert run.cycles == hw.predicted and min(run.ring_cycles) > 0
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
@pytest.mark.parametrize("algorithm", ["sgd", "mbgd"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c[0])))
def test_ring_training_matches_golden(case, algorithm, cores, rng):
    cfg = preset("tiny").replace(cores=cores)
    train_and_compare(cfg, *case[:1], algorithm, *case[1:], steps=4,
                      device=RingIsaDevice(cfg), rng=rng)


def test_more_cores_shorten_the_mbgd_step():
    graph = TrainingGraph((32, 24, 16), algorithm="mbgd", batch=8)
    cycles = [max(RingTrainer(compile_ring(graph, cfg), RingIsaDevice(cfg)).predicted)
              for cfg in (preset("tiny").replace(cores=c, spad_words=16384)
                          for c in (1, 2, 4))]
    assert cycles[0] > cycles[1] > cycles[2], cycles


def test_partition_splits_rows_or_columns():
    cfg = preset("tiny").replace(cores=3)
    mbgd = TrainingGraph((9, 7, 5), algorithm="mbgd", batch=2)
    assert partition(mbgd, cfg, 3) == [[(0, 2), (2, 4), (4, 7)], [(0, 1), (1, 3), (3, 5)]]
    sgd = TrainingGraph((9, 7, 5), algorithm="sgd")
    assert partition(sgd, cfg, 3) == [[(0, 2), (2, 6), (6, 9)], [(0, 2), (2, 4), (4, 7)]]


def test_too_many_cores_is_a_clear_error():
    cfg = preset("tiny").replace(cores=4)
    with pytest.raises(CompileError, match="layer 1 has 3 outputs, too few to give each of 4"):
        compile_ring(TrainingGraph((6, 5, 3), algorithm="mbgd", batch=2), cfg)
    with pytest.raises(CompileError, match="layer 1 has 5 inputs, too few to give each of 4"):
        compile_ring(TrainingGraph((9, 5, 3), algorithm="sgd"), cfg)
    with pytest.raises(CompileError, match="must name distinct cores"):
        compile_ring(TrainingGraph((9, 8, 3), algorithm="sgd"), cfg, segments=(0, 4))
    mbgd = TrainingGraph((9, 8, 7, 6), algorithm="mbgd", batch=2)
    with pytest.raises(CompileError, match="share core 1"):
        compile_ring(mbgd, cfg, segments=[(0, 1), (1, 2), (3,)])
    with pytest.raises(CompileError, match="2 segments for 3 layers"):
        compile_ring(mbgd, cfg, segments=[(0, 1), (2, 3)])
    with pytest.raises(CompileError, match="need --algorithm mbgd"):
        compile_ring(TrainingGraph((9, 8, 3), algorithm="sgd"), cfg, segments=[(0,), (1,)])


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


def test_train_command_on_a_segment_of_the_ring(tmp_path, capsys):
    """--cores and --segments through the command line: golden check, report, resume."""
    from caterpillar.software.cli import main

    base = ["train", "--backend", "isa", "--quiet", "--limit", "24", "--model", "64-12-10",
            "--cores", "4", "--segments", "2,0,1", "--algorithm", "mbgd", "--batch", "4",
            "--check-golden", "--save", str(tmp_path / "ck.npz")]
    assert main(base + ["--epochs", "1"]) == 0
    assert main(base + ["--epochs", "2", "--resume", str(tmp_path / "ck.npz"), "--json",
                        str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "3 cores 2,0,1 (rows split)" in out and "golden check: 12 steps" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["cores"] == [2, 0, 1] and report["epochs"][1]["phases"]["ring"]["cycles"] > 0


def test_train_command_with_a_segment_per_layer(capsys):
    from caterpillar.software.cli import main

    assert main(["train", "--backend", "isa", "--quiet", "--limit", "16", "--epochs", "1",
                 "--model", "64-12-10", "--cores", "4", "--segments", "3,0/1-2",
                 "--algorithm", "mbgd", "--batch", "4", "--check-golden"]) == 0
    out = capsys.readouterr().out
    assert "4 cores 3,0/1,2 (rows split)" in out and "golden check: 4 steps" in out


@pytest.mark.parametrize("argv, message", [
    (["--cores", "2", "--backend", "amaranth"], "runs on isa or verilator"),
    (["--segments", "0-1"], "name distinct cores 0..0"),
    (["--cores", "2", "--segments", "0-2"], "name distinct cores 0..1"),
    (["--cores", "2", "--segments", "a"], "use core numbers"),
    (["--cores", "4", "--segments", "0-1/1-2", "--algorithm", "mbgd"], "share core 1"),
    (["--cores", "2", "--save-program", "p.npz"], "--program and --save-program are for one"),
    (["--cores", "8", "--model", "64-6-10"], "too few to give each of 8"),
])
def test_ring_options_are_checked(capsys, argv, message):
    from caterpillar.software.cli import main

    with pytest.raises(SystemExit) as info:
        main(["train", "--backend", "isa", "--quiet", "--epochs", "1", *argv])
    err = capsys.readouterr().err
    assert info.value.code == 2 and message in err and "Traceback" not in err
