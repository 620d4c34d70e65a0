# amaranth: UnusedElaboratable=no
"""Training on the Verilated 4-core ring (free-running): after every step the logits, weights,
biases and momenta are bit-identical to the golden trainer for 4 cores, and every core's cycle
count equals the ring timing model's prediction."""

import pytest

from caterpillar.contract.config import preset
from caterpillar.contract.geometry import spad_region
from caterpillar.contract.isa import Opcode, unpack
from caterpillar.software.compiler.training import compile_training
from caterpillar.software.driver.ring import RingDriver
from caterpillar.software.graph.model import TrainingGraph
from tests.helpers import requires_verilator
from tests.software.compiler.test_sgd import input_loads, instructions, ring_compiled
from tests.software.training.test_trainer import CASES, train_and_compare

#: Whole cores or rings in a simulator, or Verilator builds: `make test`, not test-fast.
pytestmark = pytest.mark.integration

CFG = preset("tiny").replace(cores=4)
STEPS = 24


@pytest.fixture(scope="module")
def device():
    from caterpillar.sim.backends.verilator import VerilatorDevice

    with VerilatorDevice(CFG, ring=True) as dev:
        yield dev


@requires_verilator
@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["sgd", "mbgd", "dfa1", "dfa"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c[0])))
def test_four_core_training_steps_are_bit_exact(device, case, algorithm, rng):
    hw, run = train_and_compare(CFG, *case[:1], algorithm, *case[1:], steps=STEPS,
                                device=device, rng=rng)
    assert run.cycles == hw.predicted and all(c > 0 for c in run.ring_cycles)
    if algorithm in ("sgd", "dfa1") and len(case[0]) > 3:
        # The hidden layer below the top is reduce-scattered and gathered piped (one RING
        # per core each, W's rows in the piped layout): the RTL runs those programs too.
        piped = [x for x in instructions(hw.compiled.cores[0])
                 if x.op == Opcode.RING and x.fwd and x.slen and x.wlen]
        assert len(piped) == 2 and any(hw.compiled.row_orders)
    if algorithm == "sgd":
        # The first layer's gemv loads the sample, with a layer split by columns below the
        # top a gemvt loads the gathered delta (waiting for the ring engine as an ldv does),
        # and a layer split by columns stores its partial sums from its gemv: the RTL runs
        # all three.
        ins = [x for core in hw.compiled.cores.values() for x in instructions(core)]
        loads = {x.op for x in ins if x.op in (Opcode.GEMV, Opcode.GEMVT) and x.load}
        assert loads == ({Opcode.GEMV, Opcode.GEMVT} if len(case[0]) > 3 else {Opcode.GEMV})
        assert any(x.op == Opcode.GEMV and x.store for x in ins)
    print(f"{STEPS} {algorithm} steps of {case[0]} on 4 cores: RTL == golden, cycles == model")


@requires_verilator
@pytest.mark.slow
@pytest.mark.parametrize("sizes, load_gathered", [((10, 9, 8, 6), False),
                                                  ((10, 16, 12, 8, 6), True)])
def test_dfa_updates_load_the_gathered_delta_on_the_rtl(device, sizes, load_gathered, rng):
    """DFA on one sample without momentum: the update of a layer whose delta the ring
    gathered loads it from the SPAD into accumulator slots (a ``ger`` with ``load``, the
    ``ldv`` before it folded), on every core; with ``load_gathered`` every gathered delta in
    a buffer of its own, all gathers posted before the updates that load them. Bit-exact,
    cycles as the model's."""
    hw, run = train_and_compare(
        CFG, sizes, "dfa1", 1, "softmax_ce", 0.0, 0.0, steps=STEPS, device=device, rng=rng,
        compile=lambda graph, cfg, _: ring_compiled(graph, cfg, False, piped=True,
                                                    load_gathered=load_gathered))
    assert run.cycles == hw.predicted
    for core in hw.compiled.cores.values():
        loads = [x for x in instructions(core) if x.op == Opcode.GER and x.load]
        assert len(loads) == (2 if load_gathered else 1)


@requires_verilator
@pytest.mark.slow
@pytest.mark.parametrize("algorithm, momentum", [("mbgd", 0.0), ("dfa", 0.9)])
def test_tiles_loaded_during_the_gathers_on_the_rtl(device, algorithm, momentum, rng):
    """MBGD and DFA with a batch load the W^T of the partial E (MBGD) and the gathered inputs
    into MemA tiles while the forward's gathers move, and the backward's GEMMs read them at
    their mema base; DFA's waits have time left for layer 2's forward panel too (an lda with
    trans), whose GEMM reads it there: bit-exact, cycles as the model's."""
    hw, run = train_and_compare(CFG, (10, 16, 12, 8, 6), algorithm, 4, "mse", momentum, 0.0,
                                steps=8, device=device, rng=rng)
    assert run.cycles == hw.predicted
    tiles = [x for core in hw.compiled.cores.values() for x in instructions(core)
             if x.op == Opcode.GEMM and x.a_mema and x.mema]
    assert len(tiles) == {"mbgd": 12, "dfa": 8}[algorithm]
    forward = [x for core in hw.compiled.cores.values()
               for x, phase in zip(instructions(core), core.phases)
               if phase == "forward" and x.op == Opcode.GEMM and x.a_mema]
    assert len(forward) == {"mbgd": 0, "dfa": 4}[algorithm]


@requires_verilator
@pytest.mark.slow
@pytest.mark.parametrize("algorithm, momentum", [("sgd", 0.9), ("dfa1", 0.0)])
def test_an_update_split_between_the_gather_steps_on_the_rtl(device, algorithm, momentum, rng):
    # The output layer's update in three pieces, one under each posted step of d1's gather.
    hw, run = train_and_compare(CFG, (9, 12, 10, 6), algorithm, 1, "mse", momentum, 0.0,
                                steps=6, device=device, rng=rng,
                                compile=lambda graph, cfg, _: ring_compiled(graph, cfg, True))
    assert run.cycles == hw.predicted
    gers = [w for w in hw.compiled.cores[0].program if w & 0xFF == Opcode.GER.value]
    assert len(gers) == 3 + 2


@requires_verilator
@pytest.mark.slow
@pytest.mark.parametrize("algorithm, sizes, loss, batch, piped, overlap, reloaded", [
    ("mbgd", (40, 9, 8, 6), "mse", 3, True, True, True),
    ("mbgd", (10, 9, 8, 6), "softmax_ce", 3, False, False, False),
    ("mbgd", (9, 7, 5), "softmax_ce", 2, True, False, False),
    ("dfa", (60, 9, 8, 6), "softmax_ce", 3, True, True, True)],
    ids=["piped-overlap-reloads", "bucket", "two-layers", "dfa-reloads"])
def test_a_batch_on_the_gemv_kernels_on_the_rtl(device, algorithm, sizes, loss, batch, piped,
                                                overlap, reloaded, rng):
    """mbgd (dfa) on sgd's kernels: every sample's forward (the GEMVs in turn, or each under
    the ring sum of the sample before it) and backward, then one rank-1 update per sample and
    layer, the first layer's input kept in MemB for it or, where MemB has no room, loaded
    again: bit-exact, cycles as the model's."""
    hw, run = train_and_compare(
        CFG, sizes, algorithm, batch, loss, 0.0, 0.0, steps=12, device=device, rng=rng,
        kernels="gemv", compile=lambda graph, cfg, _: ring_compiled(graph, cfg, False,
                                                                    piped=piped,
                                                                    overlap=overlap))
    assert run.cycles == hw.predicted and hw.compiled.graph.batched_gemv
    core = hw.compiled.cores[0]
    gers = [x for x in instructions(core) if x.op == Opcode.GER]
    assert len(gers) == batch * (len(sizes) - 1)
    assert (input_loads(core, batch) > batch) == reloaded
    if overlap:
        # Each sample's GEMV stores its partial sums in the other SPAD region from the one the
        # ring sums the sample before it in.
        regions = {spad_region(CFG, x.dst // CFG.nr) for x in instructions(core)
                   if x.op == Opcode.GEMV and x.store}
        assert regions == {0, 1}


@requires_verilator
@pytest.mark.slow
def test_layers_on_their_own_segments_on_the_rtl(device, rng):
    hw, run = train_and_compare(CFG, (10, 9, 8, 6), "mbgd", 3, "mse", 0.9, 0.01, steps=12,
                                device=device, rng=rng, segments=[(3,), (0, 1, 2), (3,)])
    # Core 3 alone holds layers 0 and 2, so it both relays and waits on the others.
    assert run.cycles == hw.predicted and run.ring_cycles[3] > 0


@requires_verilator
@pytest.mark.slow
@pytest.mark.parametrize("algorithm, sizes, batch, split", [
    ("mbgd", (9, 2, 3), 2, "rows"),     # core 0 holds no output row, cores 2 and 3 no sample
    # Core 0 holds no row of the hidden layer, so no column of the output layer: it adds +0
    # into the logits.
    ("mbgd", (9, 3, 2), 3, "columns"),
    ("dfa", (9, 2, 3), 3, "rows"),      # core 0 holds no rows of the output or of F
    ("dfa", (9, 3, 2), 3, "columns"),   # core 0 holds no columns of the output or of F
], ids=["mbgd", "mbgd-columns", "dfa", "dfa-columns"])
def test_layers_narrower_than_the_ring_on_the_rtl(device, algorithm, sizes, batch, split, rng):
    hw, run = train_and_compare(CFG, sizes, algorithm, batch, "softmax_ce", 0.9, 0.0,
                                steps=12, device=device, rng=rng)
    assert hw.compiled.splits[-1] == split
    assert any(hi == lo for lo, hi in hw.compiled.blocks[-1])
    assert run.cycles == hw.predicted


@requires_verilator
@pytest.mark.slow
@pytest.mark.parametrize("algorithm, sizes, gathered_again", [
    ("mbgd", (20, 15, 26, 14, 5), 0), ("mbgd", (20, 18, 28, 14, 5), 2),
    ("dfa", (20, 18, 28, 14, 5), 1)], ids=["layer-0-loads", "turns", "turns-dfa-tile"])
def test_inputs_that_do_not_fit_the_spad_on_the_rtl(device, algorithm, sizes, gathered_again,
                                                    rng):
    # Tiny's SPAD has no room for the batch-major [x | 1]: layer 0's update loads [x; 1] into
    # MemA; with wider layers the gathered inputs do not all fit either: they take turns in
    # two buffers and are gathered again for their updates (mbgd.py's layouts), but for an
    # input that MemA keeps from the forward (DFA has no W^T tiles, so [a0; 1] fits there).
    hw, run = train_and_compare(CFG, sizes, algorithm, 20, "mse", 0.9, 0.0,
                                steps=8, device=device, rng=rng)
    tight = hw.compiled
    roomy = compile_training(tight.graph, CFG.replace(spad_words=8192))
    rings = [sum(i.op == Opcode.RING for i in instructions(c.cores[0])) for c in (roomy, tight)]
    assert tight.cores[0].io["inputs"] is None and roomy.cores[0].io["inputs"] is not None
    assert rings[1] - rings[0] == gathered_again * (CFG.cores - 1)
    assert run.cycles == hw.predicted


@requires_verilator
@pytest.mark.parametrize("sizes,segments,batch", [
    ((6, 8, 8, 6, 4), [(0, 1), (2, 3), (0, 1), (2, 3)], 1),
    ((9, 7, 6, 5), [(0, 1), (2,), (3,)], 4),
])
def test_step_programs_in_imem_overlays_on_the_rtl(device, sizes, segments, batch, rng, seed):
    """tiny's IMEM (256 instructions) holds neither image of an epoch's step programs (370
    and 518 instructions on the fullest core; MBCP b = 4's steady state does not fit on
    cores 2 and 3, whose per-sample bodies then run as LOOPs, RINGs among them): the host
    loads their overlays between pipeline steps (fill, steady state, drain), and after every
    step of two epochs the RTL's logits, weights and biases equal the golden CP (MBCP)
    trainer's, every core in its predicted cycles."""
    from tests.sim.backends.test_verilator_training import run_cp_epochs

    if batch > 1:
        g = TrainingGraph(sizes, algorithm="mbcp", batch=batch)
        programs = [c.program for c in compile_training(g, CFG, segments).cores.values()]
        moved_rings = [w for p in programs for i, loop in enumerate(p)
                       if loop & 0xFF == Opcode.LOOP.value
                       for w in p[i + 1:i + 1 + unpack(loop)[1]["body"]]
                       if w & 0xFF == Opcode.RING.value and unpack(w)[1]["rel"]]
        assert moved_rings

    steps, slower = run_cp_epochs(CFG, device, sizes, "softmax_ce", rng, seed,
                                  segments=segments, batch=batch)
    assert steps == 2 * (9 + 2 * len(segments) - 1) and slower == 0
    print(f"{'-'.join(map(str, sizes))} on {segments}: {steps} steps (b = {batch}) in IMEM "
          "overlays, RTL == golden")


#: cp's images of step programs need more IMEM than tiny's 256 words (overlays would do, at
#: a load of each per epoch; these tests keep the whole image in IMEM).
CP_CFG = CFG.replace(name="tiny-cp", imem_words=2048)


@pytest.fixture(scope="module")
def cp_device():
    from caterpillar.sim.backends.verilator import VerilatorDevice

    with VerilatorDevice(CP_CFG, ring=True) as dev:
        yield dev


@requires_verilator
@pytest.mark.parametrize("sizes,segments,stalls", [
    ((9, 7, 6, 5), [(0, 1), (2,), (3,)], False),      # 3 segments, one of two cores
    ((6, 5, 4, 4, 3), [(0,), (1,), (2,), (3,)], True),  # 4 segments, links stalling
    # Three cores gather their blocks of h_0 (then of d_0) along the chain into the next
    # segment in one pass (collectives.gather_relay).
    ((12, 9, 5), [(0, 1, 2), (3,)], False),
    ((6, 12, 5), [(0,), (1, 2, 3)], False),
    # The output layer on the cores of the layer below (3 outputs: one core holds none).
    ((8, 12, 10, 3), [(0,), (1, 2, 3), (1, 2, 3)], False),
    # Two pairs of layers, each pair on one segment, links stalling.
    ((6, 8, 8, 6, 4), [(0, 1), (0, 1), (2, 3), (2, 3)], True),
    # Layers that are not neighbours on one segment (N3's placement on paper-n3): relays
    # from (0, 1) to (2, 3) and back, both ways round the ring; once with the links stalling.
    ((6, 8, 8, 6, 4), [(0, 1), (2, 3), (0, 1), (2, 3)], False),
    ((7, 8, 6, 8, 4), [(0, 1), (0, 1), (2, 3), (0, 1)], True),
])
def test_cp_on_segments_is_bit_exact(cp_device, sizes, segments, stalls, rng, seed):
    """Two epochs of 9 samples through a pipeline of layers on their own segments (or
    layers sharing one): after
    every pipeline step the logits, weights and biases equal the golden CP trainer's with
    each layer's core count, and every core's cycles equal the ring model's."""
    from tests.sim.backends.test_verilator_training import run_cp_epochs

    driver = RingDriver(cp_device)
    driver.set_stalls(96 if stalls else 0, seed=seed)
    try:
        steps, slower = run_cp_epochs(CP_CFG, cp_device, sizes, "softmax_ce", rng, seed,
                                      segments=segments, check_cycles=not stalls)
    finally:
        driver.set_stalls(0, seed=seed)
    assert (slower > 0) == stalls           # the stalls did slow the links down
    print(f"{'-'.join(map(str, sizes))} on {segments}: {steps} cp steps, RTL == golden")


@requires_verilator
@pytest.mark.parametrize("sizes,segments,batch,stalls", [
    ((9, 7, 6, 5), [(0, 1), (2,), (3,)], 2, False),       # 3 segments, one of two cores
    ((6, 12, 5), [(0,), (1, 2, 3)], 3, True),             # gathered along the chain, stalling
    ((8, 12, 10, 3), [(0,), (1, 2, 3), (1, 2, 3)], 2, False),  # the output layer shares
    ((6, 8, 8, 6, 4), [(0, 1), (2, 3), (0, 1), (2, 3)], 2, False),  # layers 0, 2 and 1, 3
])
def test_mbcp_on_segments_is_bit_exact(cp_device, sizes, segments, batch, stalls, rng, seed):
    """Two epochs of 9 groups of ``batch`` samples (28 and 24 pipeline steps) on layers on
    their own segments: after every step the logits, weights and biases equal the golden
    MBCP trainer's, and every core's cycles equal the ring model's (but under stalls)."""
    from tests.sim.backends.test_verilator_training import run_cp_epochs

    driver = RingDriver(cp_device)
    driver.set_stalls(96 if stalls else 0, seed=seed)
    try:
        steps, slower = run_cp_epochs(CP_CFG, cp_device, sizes, "softmax_ce", rng, seed,
                                      segments=segments, check_cycles=not stalls, batch=batch)
    finally:
        driver.set_stalls(0, seed=seed)
    assert steps == 2 * (9 + 2 * len(segments) - 1)
    assert (slower > 0) == stalls
    print(f"{'-'.join(map(str, sizes))} on {segments}: {steps} mbcp steps (b = {batch}), "
          "RTL == golden")
