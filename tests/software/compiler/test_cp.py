"""Continuous propagation on one core (:mod:`caterpillar.software.compiler.cp`): the schedule of
an epoch, the image of step programs, the errors, and epochs on the instruction-level simulator
bit-identical to the golden CP trainer (and, for one layer, to ``sgd``)."""

from types import SimpleNamespace

import numpy as np
import pytest

from caterpillar.contract.config import preset
from caterpillar.contract.geometry import kernel_plan
from caterpillar.contract.isa import Opcode, decode, encode, unpack
from caterpillar.golden.trainer import to_bits
from caterpillar.software.compiler.cp import (
    cp_core_program,
    cp_overlays,
    cp_pipeline_report,
    cp_schedule,
    cp_step_key,
    cp_weight_accesses,
    placement_bound,
)
from caterpillar.software.compiler.program import CompileError, CoreProgram
from caterpillar.software.compiler.training import compile_training, compiled_for_groups
from caterpillar.software.graph.model import GraphError, Optimizer, TrainingGraph
from caterpillar.software.isasim.device import IsaDevice
from caterpillar.software.training.datasets import load_dataset
from caterpillar.software.training.session import Session, default_weights

SMALL = preset("small")
SIZES = (64, 24, 16, 10)


def graph(sizes=SIZES, **opts):
    return TrainingGraph(sizes, algorithm="cp", optimizer=Optimizer(lr=0.05), **opts)


@pytest.mark.parametrize("layers,groups", [(1, 5), (3, 9), (3, 2), (4, 20)])
def test_schedule_runs_every_half_of_every_group_once(layers, groups):
    schedule = cp_schedule(layers, groups)
    assert len(schedule) == groups + 2 * layers - 1
    for layer in range(layers):
        fwd = [t for t, (_, f, _) in enumerate(schedule) if f[layer]]
        bwd = [t for t, (_, _, b) in enumerate(schedule) if b[layer]]
        assert fwd == [g + layer for g in range(groups)]
        assert bwd == [g + 2 * layers - 1 - layer for g in range(groups)]
    assert [k[0] for k in schedule] == [t % (2 * layers) for t in range(len(schedule))]
    assert cp_step_key(layers, groups, 2 * layers - 1)[1:] == (
        ((True,) * layers, (True,) * layers) if groups >= 2 * layers else
        cp_step_key(layers, groups, 2 * layers - 1)[1:])


def test_image_holds_one_program_per_kind_of_step():
    core = cp_core_program(graph(), SMALL, groups=50)
    entries = core.io["entries"]
    keys = {(p, f, b) for p, f, b, _ in entries}
    L = len(SIZES) - 1
    bits = lambda mask: sum(1 << k for k, on in enumerate(mask) if on)  # noqa: E731
    assert keys == {(p, bits(f), bits(b)) for p, f, b in cp_schedule(L, 50)}
    assert len(entries) == len(keys) <= 6 * L - 2
    assert entries[0][1] == entries[0][2] == 2 ** L - 1        # a steady-state step first
    ops = [decode(w).op for w in core.program]
    for _, _, _, pc in entries:
        assert pc == 0 or ops[pc - 1] == Opcode.HALT
    assert ops[-1] == Opcode.HALT and ops.count(Opcode.HALT) == len(entries)
    # The steady state: one fused pass per layer, without a backward for the first.
    first = ops[:ops.index(Opcode.HALT)]
    passes = [decode(w) for w in core.program[:len(first)] if w & 0xFF == Opcode.CPASS.value]
    assert [(p.rows, p.cols, p.prop, p.fwd) for p in passes] == [
        (10, 16, 1, 1), (16, 24, 1, 1), (24, 64, 0, 1)]
    assert Opcode.GEMV not in first and Opcode.GER not in first
    for pc, word in enumerate(core.program):
        op, values = unpack(word)
        for check in kernel_plan(op, SimpleNamespace(**values), SMALL).checks:
            assert check.ok, f"{pc}: {check.what}"


def test_overlays_take_the_steady_state_whole_and_the_rest_in_the_order_it_runs():
    """An image of programs A (3 words), B (5), C (4), D (4), E (3), F (6), G (2): an epoch
    fills with B, C, D, runs A and E in the steady state and drains with F, C again and G.
    The steady state is one overlay; the fill takes as many as it needs, in order; the drain
    new ones, which hold C again, so that an epoch loads each overlay once: a step looks for
    its program from the loaded overlay on."""
    lengths = [3, 5, 4, 4, 3, 6, 2]
    a, b, c, d, e, f, g = starts = [sum(lengths[:k]) for k in range(len(lengths))]
    sizes = dict(zip(starts, lengths))
    sequence = [b, c, d, a, e, a, e, f, c, g]
    overlays = cp_overlays(sequence, {a, e}, sizes, 9)
    assert overlays == [[a, e], [b, c], [d], [f], [c, g]]
    assert cp_overlays(sequence, {a, e}, sizes, 16) == [[a, e], [b, c, d], [f, c, g]]
    assert cp_overlays([b, c], set(), sizes, 9) == [[b, c]]
    words = [w for n in lengths for w in [encode(Opcode.NOP)] * (n - 1) + [encode(Opcode.HALT)]]
    image = CoreProgram(words, ["transfer"] * len(words), [0] * len(words), [],
                        {"overlays": overlays})
    assert image.imem_need == 9 and len(image.overlay_words(4)) == 6
    loaded, loads = 0, 0
    for pc in sequence * 2:
        overlay, local = image.locate(pc, loaded)
        assert image.overlay_words(overlay)[local:local + sizes[pc]] == \
            words[pc:pc + sizes[pc]]
        loads, loaded = loads + (overlay != loaded), overlay
    assert loads == 2 * len(overlays)       # each once an epoch (overlay 0 is in at first)


def test_refusals_say_what_to_change():
    with pytest.raises(CompileError, match="plain SGD: use --momentum 0"):
        cp_core_program(TrainingGraph(SIZES, algorithm="cp",
                                      optimizer=Optimizer(momentum=0.9)), SMALL)
    # Four layers on two cores: no placement of neighbours has a segment each, so layers
    # share segments two by two.
    assert compile_training(graph((64, 24, 16, 12, 10)), SMALL.replace(cores=2)).segments == \
        [(0,), (0,), (1,), (1,)]
    with pytest.raises(CompileError, match="9 layers need at least 9 cores [(]8 with the "
                                           "output layer on the cores of the layer below[)], "
                                           "not 2; use --cores 8 or more"):
        compile_training(graph((16,) * 9 + (10,)), SMALL.replace(cores=2))
    # Three layers on two cores: the output layer on the cores of the layer below.
    assert compile_training(graph(), SMALL.replace(cores=2)).segments == [(0,), (1,), (1,)]
    with pytest.raises(GraphError, match="cp trains on one sample per step"):
        graph(batch=4)
    with pytest.raises(CompileError, match="IMEM holds 256"):
        cp_core_program(graph((6, 5, 5, 5, 5, 4)), preset("tiny"), groups=30)
    with pytest.raises(CompileError, match="MemA needs 12736 words"):
        cp_core_program(graph((784, 256, 10)), SMALL)
    with pytest.raises(CompileError, match="MemB needs"):
        cp_core_program(graph((784, 256, 10)), SMALL.replace(mema_words=16384))


def test_weight_accesses_halve():
    g = graph((784, 256, 256, 10))
    weights = 784 * 256 + 256 * 256 + 256 * 10
    assert cp_weight_accesses(g, "cp") == 2 * weights
    assert cp_weight_accesses(g, "sgd") == 4 * weights - 784 * 256


def test_pipeline_report_accounts_an_epoch():
    compiled = compile_training(graph(), SMALL, groups=40)
    report = cp_pipeline_report(compiled)
    assert report["steps_per_epoch"] == 40 + 5
    by_pc = {p["pc"]: p["cycles"] for p in report["programs"]}
    assert by_pc[0] == compiled.step_cycles
    steady = sum(1 for _, f, b in cp_schedule(3, 40) if all(f) and all(b))
    assert report["epoch_cycles"] - report["fill_drain_cycles"] == steady * compiled.step_cycles
    assert 0 < report["fill_drain_share"] < 0.2
    layers = report["layers"]
    assert [(x["rows"], x["cols"]) for x in layers] == [(24, 64), (16, 24), (10, 16)]
    step = compiled.cores[0].local_phase_report(SMALL)
    assert sum(x["cycles"] for x in layers) + 3 == sum(v["cycles"] for v in step.values())
    assert sum(x["macs"] for x in layers) == sum(v["macs"] for v in step.values())


def test_placement_bound():
    # 784-500-500-10's MACs per sample on 4/3/1 cores: layer 1's 250,000 per core set the step.
    macs = [2 * 500 * 784, 3 * 500 * 500, 3 * 10 * 500]
    bound = placement_bound(macs, [4, 3, 1], [98, 125, 3])
    assert bound["placement"] == pytest.approx(sum(macs) / (8 * 250_000))
    assert bound["best"] == bound["placement"] and bound["best_cores"] == [4, 3, 1]
    even = placement_bound([100, 100], [3, 1], [10, 10])
    assert (even["placement"], even["best"], even["best_cores"]) == (0.5, 1.0, [2, 2])
    capped = placement_bound([100, 100], [1, 3], [1, 10])
    assert (capped["placement"], capped["best"]) == (0.5, 0.5)
    # The last layer on the cores of the one below: 4/4 cores for 784-500-500-10.
    shared = placement_bound(macs, [4, 4, 4], [98, 125, 3], [(0,), (1,), (1,)])
    slowest = max(macs[0], macs[1] + macs[2]) / 4
    assert shared["placement"] == pytest.approx(sum(macs) / (8 * slowest))
    assert shared["best_shared"] == shared["placement"] and shared["best_shared_cores"] == [4, 4]
    assert shared["best"] == bound["best"]
    # A layer whose weights need 4 cores' MemA starts from 4 (MACs alone: 3/2, 80 %);
    # needing more cores than there are, or none holding them, no best.
    held = placement_bound([100, 100], [3, 2], [10, 10], least=[1, 4])
    assert (held["best"], held["best_cores"]) == (0.4, [1, 4])
    assert placement_bound([100, 100], [3, 2], [10, 10])["best"] == 0.8
    assert placement_bound([100, 100], [3, 1], [10, 10], least=[3, 2])["best"] is None
    assert placement_bound([100, 100], [3, 1], [10, 10], least=[None, 1])["best"] is None
    assert placement_bound(macs, [4, 3, 1], [98, 125, 3], least=[1, 1, 1],
                           least_shared=None)["best_shared"] is None
    # One core runs the layers one after the other: no placement to bound.
    assert cp_pipeline_report(compile_training(graph(), SMALL))["placement_bound"] is None


def test_compiled_for_groups_recompiles_only_cp():
    compiled = compile_training(graph(), SMALL, groups=10)
    assert compiled_for_groups(compiled, 10) is compiled
    other = compiled_for_groups(compiled, 11)
    assert other.cores[0].io["groups"] == 11
    sgd = compile_training(TrainingGraph(SIZES), SMALL)
    assert compiled_for_groups(sgd, 11) is sgd


def test_epochs_are_golden_checked_on_the_instruction_level_simulator():
    data = load_dataset("digits")
    compiled = compile_training(graph(), SMALL)
    session = Session(compiled, data, IsaDevice(SMALL), check_golden=True, limit=25)
    first = session.train_epoch()          # raises GoldenMismatch on any differing bit
    second = session.train_epoch()
    assert session.compiled.cores[0].io["groups"] == 25
    assert first["steps"] == second["steps"] == 25 + 5
    assert session.steps == 2 * 30
    assert first["golden_checked_steps"] == 30
    pipe = first["pipeline"]
    assert pipe["steady_cycles"] + pipe["fill_drain_cycles"] == first["cycles"]
    assert pipe["fill_drain_cycles"] > 0 and first["utilization"] > 0
    # Every sample's forward, backward (not for layer 0) and update, once.
    assert sum(v["macs"] for v in first["phases"].values()) == \
        25 * (3 * (24 * 16 + 16 * 10) + 2 * 64 * 24)


def test_one_layer_cp_is_sgd_on_the_device():
    """With one layer the forward of sample t sees the update of sample t - 1, as in sgd."""
    data = load_dataset("digits")
    sizes = (64, 10)
    weights = default_weights(sizes, 3)
    params = {}
    for algorithm in ("cp", "sgd"):
        g = TrainingGraph(sizes, algorithm=algorithm, optimizer=Optimizer(lr=0.05))
        session = Session(compile_training(g, SMALL), data, IsaDevice(SMALL), weights=weights,
                          limit=12, seed=4)
        session.train_epoch()
        params[algorithm] = session.hw.read_parameters()[0]
    for (w_cp, b_cp), (w_sgd, b_sgd) in zip(params["cp"], params["sgd"]):
        np.testing.assert_array_equal(w_cp, w_sgd)
        np.testing.assert_array_equal(b_cp, b_sgd)
    assert not np.array_equal(params["cp"][0][0], to_bits(weights[0][0], SMALL.operand))
