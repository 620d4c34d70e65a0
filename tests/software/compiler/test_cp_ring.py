"""Continuous propagation on the ring (:mod:`caterpillar.software.compiler.cp_ring`): the default
placement, the refusals, and random networks, segment layouts and core counts on the ring
simulator, bit-identical to the golden CP trainer after every pipeline step."""

import numpy as np
import pytest

from caterpillar.contract.config import preset
from caterpillar.contract.geometry import spad_region_bit
from caterpillar.contract.isa import Opcode, decode
from caterpillar.software.compiler.cp import cp_pass_cycles, cp_pipeline_report, cp_schedule
from caterpillar.software.compiler.cp_ring import (
    COMPACT_NOTE,
    _layouts,
    cp_bias_blocks,
    cp_grouped_placements,
    cp_placement,
)
from caterpillar.software.compiler.loops import unfold_loops
from caterpillar.software.compiler.program import CompileError
from caterpillar.software.compiler.training import compile_training
from caterpillar.software.graph.model import Optimizer, TrainingGraph
from caterpillar.software.isasim.device import IsaDevice, RingIsaDevice
from tests.sim.backends.test_verilator_training import run_cp_epochs

TINY = preset("tiny").replace(imem_words=4096, spad_words=8192)


def graph(sizes):
    return TrainingGraph(sizes, algorithm="cp", optimizer=Optimizer(lr=0.1))


def test_placement_gives_larger_layers_more_cores():
    g = graph((784, 500, 500, 500, 10))
    by_macs = cp_placement(g, preset("paper-n1"))
    assert [len(s) for s in by_macs] == [11, 10, 10, 1]
    assert [c for s in by_macs for c in s] == list(range(32))
    assert [len(s) for s in cp_placement(g, preset("paper-n1"), "weights")] == [13, 9, 9, 1]
    assert cp_placement(graph((8, 6, 4)), TINY.replace(cores=2)) == [(0,), (1,)]
    with pytest.raises(CompileError, match="3 layers need at least 3 cores [(]2 with"):
        cp_placement(graph((8, 6, 4, 3)), TINY.replace(cores=2))


def test_placement_by_cycles_minimises_the_longest_pass():
    """N1 on paper-n1: MAC shares give layer 1 ten cores, 52 columns on the widest, so 13 per
    PE column and 7 windows of 2 per row group, where eleven cores (48 columns) take 6. The
    cycles placement gives that core to layer 1 and takes it from layer 0 (no backward, 2 L
    per window), and no split of the 32 cores has a shorter longest pass."""
    g, cfg = graph((784, 500, 500, 500, 10)), preset("paper-n1")
    by_cycles = cp_placement(g, cfg, "cycles", share=True)
    assert [len(s) for s in by_cycles] == [10, 11, 11, 11]
    assert [c for s in dict.fromkeys(by_cycles) for c in s] == list(range(32))
    stages = [[0], [1], [2, 3]]

    def longest(counts):
        return max(sum(cp_pass_cycles(g, cfg, k, c) for k in stage)
                   for stage, c in zip(stages, counts))

    by_macs = cp_placement(g, cfg, "macs", share=True)
    assert longest([10, 11, 11]) < longest([len(by_macs[k]) for k in (0, 1, 2)])
    splits = [(a, b, 32 - a - b) for a in range(1, 31) for b in range(1, 32 - a)]
    assert longest([10, 11, 11]) == min(longest(split) for split in splits)
    # The passes' cycles are the kernels': cpass for cp (with prop above layer 0), gemvt
    # (above layer 0), ger and gemv per sample for mbcp.
    assert cp_pass_cycles(g, cfg, 1, 10) > cp_pass_cycles(g, cfg, 1, 11)
    square = (500, 500, 500)
    assert cp_pass_cycles(graph(square), cfg, 1, 11) > cp_pass_cycles(graph(square), cfg, 0, 11)
    b2, b4 = (TrainingGraph(square, algorithm="mbcp", batch=b, optimizer=Optimizer(lr=0.1))
              for b in (2, 4))
    for k in (0, 1):
        assert cp_pass_cycles(b4, cfg, k, 11) == 2 * cp_pass_cycles(b2, cfg, k, 11)
    assert cp_pass_cycles(b2, cfg, 1, 11) > cp_pass_cycles(b2, cfg, 0, 11)


def test_placement_can_put_the_output_layer_on_the_cores_below():
    g = graph((784, 500, 500, 10))
    cfg = preset("paper-n1").replace(cores=8)
    assert cp_placement(g, cfg) == [(0, 1, 2, 3), (4, 5, 6), (7,)]
    shared = cp_placement(g, cfg, share=True)
    assert shared == [(0, 1, 2, 3), (4, 5, 6, 7), (4, 5, 6, 7)]
    # Two layers on two cores only when they share.
    assert cp_placement(graph((8, 6, 4)), TINY.replace(cores=1), share=True) == [(0,), (0,)]
    with pytest.raises(CompileError, match="3 segments need at least 3 cores, not 2"):
        cp_placement(graph((8, 6, 4, 3, 2)), TINY.replace(cores=2), share=True)


def test_the_default_keeps_a_narrow_output_layer_off_its_own_core():
    """784-500-500-10 on 8 paper-n1 cores: the output layer with layer 1 on cores 4-7 steps
    faster than on a core of its own, and the bound of that placement says why."""
    g = TrainingGraph((784, 500, 500, 10), algorithm="cp", optimizer=Optimizer(lr=0.01))
    cfg = preset("paper-n1").replace(cores=8)
    chosen = compile_training(g, cfg)
    own = compile_training(g, cfg, cp_placement(g, cfg))
    assert chosen.segments == cp_placement(g, cfg, share=True)
    assert chosen.step_cycles < own.step_cycles
    report = cp_pipeline_report(chosen)
    bound = report["placement_bound"]
    assert bound["best"] < 0.8 < 0.95 < bound["placement"] == bound["best_shared"]
    assert bound["best_shared_cores"] == [4, 4]
    layers = report["layers"]
    assert [x["shared_with"] for x in layers] == [[], [2], [1]]
    assert chosen.placement_text() == ", 8 cores 0,1,2,3/4,5,6,7 (columns split, layers 1,2 on " \
        "cores 4,5,6,7)"
    # Each layer's MACs are its own; the cores of a segment spend them in its cycles.
    assert sum(x["macs"] for x in layers) == sum(
        v["macs"] for core in chosen.cores.values()
        for v in core.local_phase_report(cfg).values())
    assert layers[1]["cycles"] == layers[2]["cycles"]
    # An epoch shorter than 2L groups has no steady-state step: the placement is still the
    # one chosen on steady-state steps (on its filling step 5/3 won), its image for 3 groups.
    short = compile_training(g, cfg, groups=3)
    assert short.segments == chosen.segments and short.cores[0].io["groups"] == 3


@pytest.mark.parametrize("sizes, cores, winner", [((32, 24, 16, 8), 7, "weights"),
                                                   ((48, 32, 32, 8), 6, "macs")])
def test_default_placement_is_the_faster_candidate(sizes, cores, winner):
    g, cfg = graph(sizes), TINY.replace(cores=cores, memb_words=512)
    steps = {by: compile_training(g, cfg, cp_placement(g, cfg, by)).step_cycles
             for by in ("macs", "weights", "cycles")}
    chosen = compile_training(g, cfg)
    assert steps["macs"] != steps["weights"]
    assert chosen.step_cycles == min(steps.values()) == steps[winner]
    assert chosen.segments == cp_placement(g, cfg, winner)
    bound = cp_pipeline_report(chosen)["placement_bound"]
    pes = cfg.nr * cfg.nr * cfg.cores
    period = sum(x["macs"] for x in cp_pipeline_report(chosen)["layers"])
    assert period / (pes * chosen.step_cycles) < bound["placement"] <= bound["best"] <= 1


def test_a_faster_placement_over_imem_is_passed_over_and_reported():
    """The placement that steps fastest has an image of 211 instructions: with IMEM one
    short of it, it runs in overlays at the same cycles; with IMEM one short of its
    steady-state overlay, a slower placement is chosen and the faster is kept in
    ``over_imem`` with its cycles; with IMEM too small for every steady state the error
    says what to change."""
    g, cfg = graph((16, 16, 16, 4)), TINY.replace(cores=6)
    best = compile_training(g, cfg)
    overlaid = compile_training(g, cfg.replace(imem_words=best.instructions - 1))
    assert best.over_imem == overlaid.over_imem == []
    assert (overlaid.segments, overlaid.step_cycles) == (best.segments, best.step_cycles)
    assert overlaid.instructions < best.instructions
    steady = max(len(c.overlay_words(0)) for c in overlaid.cores.values()
                 if c.io["overlays"])
    tight = compile_training(g, cfg.replace(imem_words=steady - 1))
    assert tight.instructions < steady and tight.step_cycles > best.step_cycles
    assert [(c.segments, c.step_cycles) for c in tight.over_imem] == \
        [(best.segments, best.step_cycles)]
    assert tight.over_imem[0].instructions >= steady
    with pytest.raises(CompileError, match=r"need \d+ instructions, in overlays of up to \d+, "
                                           "but IMEM holds 16; use a config with more "
                                           "imem_words"):
        compile_training(g, cfg.replace(imem_words=16))


@pytest.mark.parametrize("sizes, segments, batch, looped", [
    ((6, 8, 8, 6, 4), [(0, 1), (2, 3), (0, 1), (2, 3)], 1, False),
    ((7, 8, 6, 8, 4), [(0, 1), (0, 1), (2, 3), (0, 1)], 2, False),
    ((9, 7, 6, 5), [(0, 1), (2,), (3,)], 4, True),
])
def test_an_image_longer_than_imem_runs_in_overlays(sizes, segments, batch, looped, seed):
    """On 4 tiny cores (IMEM of 256 instructions) these images of an epoch's step programs
    are 370, 952 and 518 instructions long (the third's steady state longer than IMEM on
    cores 2 and 3, whose per-sample bodies, RINGs among them, then run as LOOPs: images of
    230 and 265): they compile into overlays, the host loads each once an epoch, and two
    epochs on the ring simulator are bit-identical to the golden trainer after every step,
    every core in its predicted cycles."""
    cfg = preset("tiny").replace(cores=4)
    g = TrainingGraph(sizes, algorithm="cp" if batch == 1 else "mbcp", batch=batch,
                      optimizer=Optimizer(lr=0.2, momentum=0))
    compiled = compile_training(g, cfg, segments, groups=9)
    report = cp_pipeline_report(compiled)["overlays"]
    assert report["image"] > cfg.imem_words >= compiled.instructions >= report["instructions"]
    assert report["loads"] == report["overlays"] >= 3
    steps, _ = run_cp_epochs(cfg, RingIsaDevice(cfg), sizes, "softmax_ce",
                             np.random.default_rng(seed), seed, segments=segments, batch=batch)
    assert steps == 2 * (9 + 2 * len(segments) - 1)
    # Without overlays the same steps need an IMEM that holds the whole image, unfolded: the
    # image past IMEM runs its repeated bodies as LOOPs, two cycles each.
    whole = compile_training(g, cfg.replace(imem_words=1024), segments, groups=9)
    loops = 0
    for k, core in compiled.cores.items():
        assert unfold_loops(core.program) == whole.cores[k].program
        loops = max(loops, sum(w & 0xFF == Opcode.LOOP.value for w in core.program))
    assert whole.instructions == max(len(c.program) for c in whole.cores.values())
    assert (loops > 0) == looped
    assert 0 <= compiled.step_cycles - whole.step_cycles <= 2 * loops
    folded = cp_pipeline_report(compiled)["loops"]
    assert folded == (looped and {"core": folded["core"], "loops": loops,
                                  "image": len(compiled.cores[folded["core"]].program),
                                  "unfolded": len(whole.cores[folded["core"]].program)} or None)


@pytest.mark.parametrize("sizes, segments, batch, spad", [
    ((8, 12, 10, 3), [(0,), (1, 2, 3), (1, 2, 3)], 1, 224),
    ((8, 12, 10, 3), [(0,), (1, 2, 3), (1, 2, 3)], 2, 320),
    ((6, 8, 8, 6, 4), [(0, 1), (2, 3), (0, 1), (2, 3)], 2, 320),
])
def test_a_short_spad_keeps_only_each_cores_input_blocks(sizes, segments, batch, spad, seed):
    """With these SPADs the activations' slots do not fit whole: each core keeps only its
    input block of each hidden layer's output (the relays drop the rest), and two epochs on
    the ring simulator are bit-identical to the golden trainer, in the predicted cycles."""
    cfg = preset("tiny").replace(cores=4, imem_words=2048, spad_words=spad)
    g = TrainingGraph(sizes, algorithm="cp" if batch == 1 else "mbcp", batch=batch,
                      optimizer=Optimizer(lr=0.2, momentum=0))
    compiled = compile_training(g, cfg, segments, groups=9)
    assert compiled.spad_layout == (COMPACT_NOTE,)
    assert COMPACT_NOTE in compiled.placement_text()
    roomy = compile_training(g, cfg.replace(spad_words=4096), segments, groups=9)
    assert roomy.spad_layout == ()
    steps, _ = run_cp_epochs(cfg, RingIsaDevice(cfg), sizes, "softmax_ce",
                             np.random.default_rng(seed), seed, segments=segments, batch=batch)
    assert steps == 2 * (9 + 2 * len(segments) - 1)


def test_reading_the_parameters_mid_epoch_leaves_the_relayed_deltas():
    """The host reads every tensor back after each step (as ``--check-golden`` does) with one
    program storing them all from the staging area on. With a SPAD of 336 words the relayed
    deltas, allocated from its end, lie a few words after the staging area: the dump stays
    inside the staging area (it takes every free word), so the next step still finds the
    deltas (it overwrote them, and MBCP's weights left the golden trainer's at step 5)."""
    cfg = preset("tiny").replace(cores=4, imem_words=2048, spad_words=336)
    sizes, segments = (6, 8, 8, 6, 4), [(0, 1), (2, 3), (0, 1), (2, 3)]
    g = TrainingGraph(sizes, algorithm="mbcp", batch=2, optimizer=Optimizer(lr=0.2, momentum=0))
    compiled = compile_training(g, cfg, segments, groups=9)
    for k, core in compiled.cores.items():
        dbuf = min(_layouts(g, cfg, k, segments, compiled.blocks)[0].dbuf)
        assert core.staging + core.staging_words <= dbuf < cfg.spad_words
    steps, _ = run_cp_epochs(cfg, RingIsaDevice(cfg), sizes, "softmax_ce",
                             np.random.default_rng(1), 1, segments=segments, batch=2)
    assert steps == 32


def test_refusals_on_a_ring():
    cfg = TINY.replace(cores=4)
    with pytest.raises(CompileError, match="layer 1 has 4 inputs, too few"):
        compile_training(graph((8, 4, 7)), cfg, [(0,), (1, 2, 3)])
    with pytest.raises(CompileError, match="layer 0 has 2 outputs, too few"):
        compile_training(graph((8, 2, 6)), cfg, [(0, 1), (2,)])
    # The output layer may leave a core without outputs (its bias block is empty).
    narrow = compile_training(graph((8, 6, 2)), cfg, [(0,), (1, 2)])
    assert cp_bias_blocks(narrow.graph, cfg, narrow.segments)[1] == [(0, 0), (0, 2)]


def test_layers_that_are_not_neighbours_share_a_segment_when_nothing_else_fits(rng, seed):
    # 8-9-6-22-14 on 3 tiny cores with 53 MemA words per PE: every placement of neighbours
    # on segments lacks MemA; of the placements that let any layers share a segment, layers
    # 0 and 3 on cores 0-1 and layers 1 and 2 on core 2 steps fastest. It trains an epoch on
    # the ring simulator bit for bit against the golden CP and MBCP trainers.
    sizes = (8, 9, 6, 22, 14)
    g, cfg = graph(sizes), TINY.replace(cores=3, mema_words=53, memb_words=384)
    with pytest.raises(CompileError, match="4 layers need at least 4 cores"):
        cp_placement(g, cfg)
    for by in ("macs", "weights"):
        with pytest.raises(CompileError, match="MemA needs"):
            compile_training(g, cfg, cp_placement(g, cfg, by, share=True))
    chosen = compile_training(g, cfg)
    assert chosen.segments == [(0, 1), (2,), (2,), (0, 1)]
    # The partitions whose groups' MemA holds their weight columns: two; the faster chosen.
    candidates = cp_grouped_placements(g, cfg, 6)
    assert candidates == [[(0,), (1, 2), (0,), (1, 2)], chosen.segments]
    assert chosen.step_cycles < compile_training(g, cfg, candidates[0]).step_cycles
    for batch in (1, 2):
        steps, _ = run_cp_epochs(cfg, RingIsaDevice(cfg), sizes, "softmax_ce", rng, seed,
                                 segments=chosen.segments, groups=5, epochs=1, batch=batch)
        assert steps == 5 + 2 * len(sizes) - 3


def test_n3_trains_with_cp_on_paper_n3():
    """N3 on paper-n3 (8 cores of 16 x 16): no placement of neighbours fits MemA (layer 1's
    5 million weights need 4 of the 8 cores); layers 0, 1, 4 and 5 on cores 0-4, layer 2 on
    cores 5 and 6 and layer 3 on core 7 do (the fastest of the grouped placements since the
    loss runs after the relays the ring engine queues), and the step's bound on them is
    94 %."""
    g = graph((784, 2500, 2000, 1500, 1000, 500, 10))
    cfg = preset("paper-n3")
    chosen = compile_training(g, cfg)
    a = tuple(range(5))
    assert chosen.segments == [a, a, (5, 6), (7,), a, a]
    report = cp_pipeline_report(chosen)
    bound = report["placement_bound"]
    assert bound["placement"] > 0.94
    # With every layer on its own cores, or the output layer with the one below, the weights
    # need more MemA than the 8 cores have: no such placement to bound.
    assert bound["best"] is None and bound["best_shared"] is None
    macs = sum((2 if k == 0 else 3) * o * i for k, (o, i) in enumerate(g.layers))
    assert 0.75 < macs / (cfg.nr * cfg.nr * cfg.cores * chosen.step_cycles) < 1


def test_bias_blocks_follow_the_reduce_scatter():
    g = graph((9, 7, 5))
    blocks = cp_bias_blocks(g, TINY, [(0, 1), (2,)])
    assert blocks == [[(0, 4), (4, 7)], [(0, 5)]]


@pytest.mark.parametrize("index", range(8))
def test_random_networks_and_placements_on_the_ring_simulator(index, seed):
    """Random depth, widths, core count (1 to 8) and segments (some cores idle, relaying)."""
    run_random_case(np.random.default_rng([seed, index]), index, seed, batch=1)


@pytest.mark.parametrize("index", range(6))
def test_random_mbcp_networks_and_placements_on_the_ring_simulator(index, seed):
    """MBCP: the same random cases with groups of 2 to 4 samples."""
    rng = np.random.default_rng([seed, index, 1])
    run_random_case(rng, index, seed, batch=int(rng.integers(2, 5)))


@pytest.mark.parametrize("index", range(1, 7))
def test_random_shared_segments_on_the_ring_simulator(index, seed):
    """Consecutive layers sharing a segment (a random grouping; an output layer too narrow
    for its segment leaves cores without outputs), CP and MBCP."""
    rng = np.random.default_rng([seed, index, 2])
    run_random_case(rng, index, seed, batch=int(rng.integers(1, 4)), share="runs")


@pytest.mark.parametrize("index", range(1, 7))
def test_random_segments_shared_by_any_layers_on_the_ring_simulator(index, seed):
    """Layers that are not neighbours sharing a segment (a random grouping in which two of
    them are, as N3's layers 1 and 4 on paper-n3): their activations and deltas relayed
    between segments both ways round the ring, CP and MBCP."""
    rng = np.random.default_rng([seed, index, 3])
    run_random_case(rng, index, seed, batch=int(rng.integers(1, 4)), share="any")


def _segment_groups(rng, layers, share) -> np.ndarray:
    """Per layer, its segment's index (numbered in order of first use): its own; runs of
    consecutive layers (``share="runs"``); or any layers together, two of them not
    neighbours (``"any"``)."""
    if share == "runs":
        cuts = rng.random(layers - 1) < 0.5
        cuts[rng.integers(layers - 1)] = False          # at least one shared segment
        return np.concatenate([[0], np.cumsum(cuts)])
    if share == "any":
        group = rng.integers(0, layers - 1, size=layers)
        k = int(rng.integers(layers - 2))
        group[k + 2], group[k + 1] = group[k], (group[k] + 1) % (layers - 1)
        order = list(dict.fromkeys(group.tolist()))
        return np.array([order.index(g) for g in group.tolist()])
    return np.arange(layers)


def run_random_case(rng, index, seed, batch, share=None):
    """One random network, core count and placement (one core for ``index`` 0) trained for
    an epoch on the ring simulator against the golden pipelined trainer; ``share``: layers
    sharing segments (:func:`_segment_groups`)."""
    layers = int(rng.integers(3 if share == "any" else 2 if share else 1, 5))
    # Layer k goes to segment group[k].
    group = _segment_groups(rng, layers, share)
    runs = int(group.max()) + 1
    cores = int(rng.integers(max(2, runs), 9)) if index else 1
    # Consecutive segments in a random rotation of the ring, each wide enough for its cores.
    counts = np.ones(runs, dtype=int)
    for _ in range(int(rng.integers(0, cores - runs + 1)) if cores > 1 else 0):
        counts[rng.integers(runs)] += 1
    width = counts[group]
    sizes = [int(2 * width[0] + rng.integers(0, 6))]
    for k in range(layers):
        following = width[k + 1] if k + 1 < layers else 0
        least = 2 if share and k == layers - 1 else 2 * width[k]
        sizes.append(int(max(2, 2 * following, least) + rng.integers(0, 6)))
    cfg = TINY.replace(cores=cores, memb_words=384 if share else 256)
    segments = None
    if cores > 1:
        offset, placed, first = int(rng.integers(cores)), [], 0
        for count in counts:
            placed.append(tuple(int(offset + first + j) % cores for j in range(count)))
            first += count
        segments = [placed[g] for g in group]
    device = RingIsaDevice(cfg) if cores > 1 else IsaDevice(cfg)
    # Every third case with the squared error: its loss (a vop) also runs beside the relays.
    loss = "mse" if index % 3 == 2 else "softmax_ce"
    steps, _ = run_cp_epochs(cfg, device, tuple(sizes), loss, rng, seed,
                             segments=segments, groups=int(rng.integers(1, 7)), epochs=1,
                             batch=batch)
    print(f"{sizes} (b = {batch}, {loss}) on {cores} cores {segments}: {steps} steps == golden")
    assert steps == len(cp_schedule(layers, steps - 2 * layers + 1)), \
        f"sizes {sizes}, b = {batch}, {loss}, {cores} cores, segments {segments} (seed {seed})"


@pytest.mark.parametrize("sizes, cores", [((32, 24, 16, 8), 7), ((48, 32, 32, 8), 6)])
def test_phase_report_follows_the_core_with_the_most_local_work(sizes, cores):
    """Layers on their own cores do different work: the phases are those of the core with
    the most local work, they sum to the step, and each phase's utilization is its MACs over
    the PE cycles every working core spent in it (at most 100 %)."""
    g, cfg = graph(sizes), TINY.replace(cores=cores, memb_words=512)
    compiled = compile_training(g, cfg)
    local = {k: sum(v["cycles"] for p, v in c.local_phase_report(cfg).items() if p != "ring")
             for k, c in compiled.cores.items()}
    report = compiled.phase_utilization()
    assert sum(v["cycles"] for v in report.values()) == compiled.step_cycles
    assert compiled.step_cycles - report["ring"]["cycles"] == max(local.values())
    assert report["fused"]["core_cycles"] == sum(
        compiled.cores[k].local_phase_report(cfg)["fused"]["cycles"]
        for k in compiled.working_cores)
    assert report["ring"]["core_cycles"] == sum(compiled.step_cycles - local[k]
                                                for k in compiled.working_cores)
    pes = cfg.nr * cfg.nr
    for phase, v in report.items():
        assert 0 <= v["utilization"] <= 1, phase
        if v["core_cycles"]:
            assert v["utilization"] == pytest.approx(v["macs"] / (pes * v["core_cycles"]))
    assert report["fused"]["macs"] > 0 and report["fused"]["utilization"] > 0


@pytest.mark.parametrize("commands", [2, 16])
def test_the_loss_runs_after_the_relays_the_engine_queues(commands):
    """The output layer's cores post their first ``ring_commands`` relays (all, if fewer),
    then run the loss (MemB only), then post the rest: the engine moves the queued relays
    beside the loss instead of waiting for it. Each core of the output layer's segment (cores
    3 and 4, after layers 0, 1 and 2 on cores 0, 1 and 2) posts three or four relays a step."""
    cfg = TINY.replace(cores=5, ring_commands=commands)
    g = graph((16, 12, 12, 8, 4))
    compiled = compile_training(g, cfg, [(0,), (1,), (2,), (3, 4)])
    for core in (3, 4):
        program = compiled.cores[core]
        # The image's first program (at pc 0) is a steady-state step, up to its HALT.
        assert program.io["entries"][0][3] == 0
        ops = [decode(word).op for word in program.program]
        ops = ops[:ops.index(Opcode.HALT)]
        assert ops.count(Opcode.SMXCE) == 1
        loss = ops.index(Opcode.SMXCE) - 1      # the loss: bcast, smxce, scale
        assert ops[loss] == Opcode.BCAST and ops[loss + 2] == Opcode.VOP
        first = next(k for k in range(loss, 0, -1) if ops[k - 1] != Opcode.RING)
        relays = ops[first:loss] + ops[loss + 3:]
        assert set(relays) == {Opcode.RING} and len(relays) >= 3, ops[first:]
        assert loss - first == min(commands, len(relays)), ops[first:]


def test_the_fused_pass_stores_its_sums_and_loads_its_delta(seed):
    """A ``cpass`` with ``fwd`` on a segment of several cores stores its partial sums in the
    SPAD itself (``store``), where the reduce-scatter after it adds them: no ``stv`` of its
    ``y``. The first pass of a step (no RING before it: nothing can have overwritten the
    delta relayed in the step before) may load its delta from the SPAD itself (``load``);
    the passes after a RING keep the LDV at the step's start. Then bit-identical to the
    golden CP trainer on the ring simulator."""
    cfg = TINY.replace(cores=5)
    sizes, segments = (16, 12, 12, 8, 4), [(0, 1), (2, 3), (2, 3), (4,)]
    compiled = compile_training(graph(sizes), cfg, segments)
    stored = loaded = 0
    for k, core in compiled.cores.items():
        program = [decode(w) for w in core.program]
        for at, i in enumerate(program):
            # Core 4's 4 output sums: their STV (2 SPAD rows) costs no more than the store's
            # write-back cycles, so it stays.
            if i.op == Opcode.CPASS and i.args["fwd"]:
                assert i.args["store"] == (k != 4), (k, at)
                stored += i.args["store"]
                assert (k == 4) == any(j.op == Opcode.STV and j.args["memb"] == i.args["y"]
                                       for j in program[at:at + 8]), (k, at)
        starts = [0] + [at + 1 for at, i in enumerate(program) if i.op == Opcode.HALT]
        for start, end in zip(starts, starts[1:]):
            step = program[start:end]
            passes = [at for at, i in enumerate(step) if i.op == Opcode.CPASS]
            rings = [at for at, i in enumerate(step) if i.op == Opcode.RING]
            for at in passes:
                loaded += step[at].args["load"]
                # A delta buffer a RING of the step may have written is not loaded late.
                assert not (step[at].args["load"] and rings and rings[0] < at), (k, start + at)
    assert stored and loaded
    steps, _ = run_cp_epochs(cfg, RingIsaDevice(cfg), sizes, "softmax_ce",
                             np.random.default_rng(seed), seed, segments=segments, groups=6,
                             epochs=1)
    assert steps > 6


def test_the_relayed_deltas_live_in_the_spads_other_region():
    """Every core keeps the deltas relayed to it in SPAD region 1 and stores its forward sums
    (by the ``cpass`` or ``gemv`` that sums them, before their reduce-scatter) in region 0, so
    the array stores and loads those while the engine relays the deltas (ring_waits)."""
    cfg = TINY.replace(cores=5)
    compiled = compile_training(graph((16, 12, 12, 8, 4)), cfg, [(0,), (1,), (2,), (3, 4)])
    half = (1 << spad_region_bit(cfg)) * cfg.nr
    for k, core in compiled.cores.items():
        words = core.program[:[decode(w).op for w in core.program].index(Opcode.HALT)]
        kept = [i.args for i in map(decode, words)
                if i.op == Opcode.RING and i.args["keep"] and i.args["rlen"]]
        deltas = [f["dst"] >= half for f in kept]
        assert any(deltas), k           # some received delta is kept in region 1
        if k > 0:   # the activations from below arrive (or the sums are added) in region 0
            assert not all(deltas), k
