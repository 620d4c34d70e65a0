# amaranth: UnusedElaboratable=no
"""Training on the Verilated RTL (free-running): after every step the weights, biases, momenta
and logits are bit-identical to the golden trainer and to the instruction-level simulator, and
every step takes exactly the predicted cycles."""

import numpy as np
import pytest

from caterpillar.contract.config import preset
from caterpillar.golden.pipelined import PipelinedTrainer
from caterpillar.golden.trainer import GoldenTrainer, scalars, to_bits
from caterpillar.software.compiler.training import compile_training
from caterpillar.software.graph.model import Optimizer, TrainingGraph
from caterpillar.software.isasim.device import IsaDevice
from caterpillar.software.training.session import default_weights, feedback_matrices
from caterpillar.software.training.trainer import Trainer
from tests.helpers import requires_verilator

#: Whole cores or rings in a simulator, or Verilator builds: `make test`, not test-fast.
pytestmark = pytest.mark.integration

CFG = preset("tiny")
STEPS = 20
CASES = [  # sizes (not multiples of nr = 2), algorithm, batch, loss, momentum, weight decay
    ((9, 7, 5), "sgd", 1, "softmax_ce", 0.0, 0.0),
    ((6, 5, 4, 3), "sgd", 1, "mse", 0.9, 0.01),
    ((9, 7, 5), "mbgd", 3, "softmax_ce", 0.0, 0.0),
    ((6, 5, 4, 3), "mbgd", 5, "mse", 0.9, 0.01),
    ((6, 5, 4, 3), "dfa", 1, "softmax_ce", 0.9, 0.01),
    ((9, 7, 6, 5), "dfa", 3, "mse", 0.0, 0.0),
]


@pytest.fixture(scope="module")
def device():
    from caterpillar.sim.backends.verilator import VerilatorDevice

    with VerilatorDevice(CFG) as dev:
        yield dev


@requires_verilator
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{'-'.join(map(str, c[0]))}-{c[1]}")
def test_rtl_training_steps_are_bit_exact(device, case, rng, seed):
    sizes, algorithm, batch, loss, momentum, wd = case
    g = TrainingGraph(sizes, loss=loss, algorithm=algorithm, batch=batch,
                      optimizer=Optimizer(lr=0.2, momentum=momentum, weight_decay=wd))
    compiled = compile_training(g, CFG)
    fmt = CFG.operand
    init = [(to_bits(w, fmt), to_bits(b, fmt)) for w, b in default_weights(sizes, seed % 1000)]
    rtl, isa = Trainer(compiled, device), Trainer(compiled, IsaDevice(CFG))
    feedback = None
    if algorithm == "dfa":
        feedback = [to_bits(f, fmt) for f in feedback_matrices(sizes, seed % 1000)]
    gold = GoldenTrainer(sizes, loss, CFG.nr, fmt, CFG.acc, init, k_chunk=compiled.k_chunk,
                         momentum=momentum > 0, weight_decay=wd > 0, feedback=feedback)
    for hw in (rtl, isa):
        hw.load_parameters(init)
        if feedback is not None:
            hw.load_feedback(feedback)
        hw.set_lr(0.2)
    s = scalars(fmt, lr=0.2, batch=batch, momentum=momentum, weight_decay=wd,
                outputs=sizes[-1])
    for step in range(STEPS):
        x = to_bits(rng.random((batch, sizes[0])), fmt)
        if loss == "softmax_ce":
            t = rng.integers(0, sizes[-1], batch)
        else:
            t = to_bits(np.eye(sizes[-1])[rng.integers(0, sizes[-1], batch)], fmt)
        logits, stats = rtl.step(x, t)          # raises if cycles != the prediction
        isa_logits, _ = isa.step(x, t)
        want = gold.sgd_step(x[0], t[0], s)[None] if g.gemv else gold.mbgd_step(x, t, s)
        where = f"step {step} (seed {seed})"
        np.testing.assert_array_equal(logits, want, err_msg=f"{where}: logits")
        np.testing.assert_array_equal(isa_logits, want, err_msg=f"{where}: isa logits")
        assert stats.busy == compiled.step_cycles
        params, moments = rtl.read_parameters()
        isa_params, isa_moments = isa.read_parameters()
        for index in range(len(sizes) - 1):
            tensors = [("W", params[index][0], isa_params[index][0], gold.weights[index][0]),
                       ("b", params[index][1], isa_params[index][1], gold.weights[index][1])]
            if momentum:
                tensors += [("mW", moments[index][0], isa_moments[index][0],
                             gold.moments[index][0]),
                            ("mb", moments[index][1], isa_moments[index][1],
                             gold.moments[index][1])]
            for name, got, via_isa, golden in tensors:
                np.testing.assert_array_equal(got, golden, err_msg=f"{where}: {name}{index}")
                np.testing.assert_array_equal(via_isa, golden,
                                              err_msg=f"{where}: isa {name}{index}")


#: Continuous propagation's image of step programs needs more IMEM than tiny's 256 words.
CP_CFG = CFG.replace(name="tiny-cp", imem_words=2048)
CP_CASES = [((6, 5, 4, 3), "softmax_ce"), ((7, 6, 5, 4, 3), "mse")]   # 3 and 4 layers


@pytest.fixture(scope="module")
def cp_device():
    from caterpillar.sim.backends.verilator import VerilatorDevice

    with VerilatorDevice(CP_CFG) as dev:
        yield dev


@requires_verilator
@pytest.mark.parametrize("case", CP_CASES, ids=lambda c: "-".join(map(str, c[0])))
def test_rtl_cp_epochs_are_bit_exact(cp_device, case, rng, seed):
    """Two epochs of 9 samples through the pipeline (fill, steady state, drain) on one core."""
    sizes, loss = case
    steps, _ = run_cp_epochs(CP_CFG, cp_device, sizes, loss, rng, seed)
    print(f"{'-'.join(map(str, sizes))}: {steps} cp steps on the Verilated core == golden")


@requires_verilator
@pytest.mark.parametrize("case,batch", [(CP_CASES[0], 2), (CP_CASES[1], 3)],
                         ids=lambda c: "-".join(map(str, c[0])) if isinstance(c, tuple) else
                         f"b{c}")
def test_rtl_mbcp_epochs_are_bit_exact(cp_device, case, batch, rng, seed):
    """Two epochs of 9 groups of ``batch`` samples through the pipeline on one core: 28 and
    32 MBCP steps (fill, steady state, drain) bit-identical to the golden MBCP trainer."""
    sizes, loss = case
    steps, _ = run_cp_epochs(CP_CFG, cp_device, sizes, loss, rng, seed, batch=batch)
    assert steps == 2 * (9 + 2 * (len(sizes) - 1) - 1)
    print(f"{'-'.join(map(str, sizes))}: {steps} mbcp steps (b = {batch}) on the Verilated "
          "core == golden")


def run_cp_epochs(cfg, device, sizes, loss, rng, seed, *, segments=None, check_cycles=True,
                  groups=9, epochs=2, lr=0.2, batch=1):
    """Train ``epochs`` epochs of ``groups`` groups of ``batch`` random samples with ``cp``
    (``batch`` 1) or ``mbcp`` on ``device`` and on the instruction-level simulator; after
    every pipeline step the logits, weights and biases equal the golden pipelined trainer's
    (with each layer's core count) and every core takes its predicted cycles (unless
    ``check_cycles`` is off: links stalling). Returns the steps and how many of them took
    longer than predicted."""
    from caterpillar.software.isasim.device import RingIsaDevice

    g = TrainingGraph(sizes, loss=loss, algorithm="cp" if batch == 1 else "mbcp", batch=batch,
                      optimizer=Optimizer(lr=lr, momentum=0))
    compiled = compile_training(g, cfg, segments, groups=groups)
    fmt, layers = cfg.operand, len(sizes) - 1
    init = [(to_bits(w, fmt), to_bits(b, fmt)) for w, b in default_weights(sizes, seed % 1000)]
    sim = RingIsaDevice(cfg) if cfg.cores > 1 else IsaDevice(cfg)
    rtl, isa = Trainer(compiled, device), Trainer(compiled, sim)
    for hw in (rtl, isa):
        hw.load_parameters(init)
        hw.set_lr(lr)
    gold = GoldenTrainer(sizes, loss, cfg.nr, fmt, cfg.acc, init,
                         cores=[len(seg) for seg in compiled.segments])
    s = scalars(fmt, lr=lr, batch=batch, momentum=0, weight_decay=0, outputs=sizes[-1])
    steps = slower = 0
    for epoch in range(epochs):
        pipe = PipelinedTrainer(gold, cfg.acc_lanes, batch=batch)
        xs = to_bits(rng.random((groups, batch, sizes[0])), fmt)
        labels = rng.integers(0, sizes[-1], (groups, batch))
        ts = labels if loss == "softmax_ce" else to_bits(np.eye(sizes[-1])[labels], fmt)
        for t in range(groups + 2 * layers - 1):
            x = xs[t] if t < groups else None
            out = t - layers + 1
            target = ts[out] if 0 <= out < groups else None
            logits, run = rtl.pipeline_step(t, x, target, check_cycles=check_cycles)
            slower += max(run.cycles) > rtl.pipeline_entry(t)["step_cycles"]
            isa_logits, _ = isa.pipeline_step(t, x, target)
            want = pipe.step(x, None if x is None else ts[t], s)
            where = f"epoch {epoch} step {t} (seed {seed})"
            assert (logits is None) == (want is None) == (isa_logits is None), where
            if want is not None:
                np.testing.assert_array_equal(logits, want, err_msg=f"{where}: logits")
                np.testing.assert_array_equal(isa_logits, want, err_msg=f"{where}: isa")
            params, _ = rtl.read_parameters()
            for index, (w, b) in enumerate(gold.weights):
                np.testing.assert_array_equal(params[index][0], w, err_msg=f"{where}: W{index}")
                np.testing.assert_array_equal(params[index][1], b, err_msg=f"{where}: b{index}")
            steps += 1
        assert pipe.in_flight == 0
    assert steps == epochs * (groups + 2 * layers - 1)
    return steps, slower
