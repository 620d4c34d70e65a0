"""SGD lowered to GEMV kernels (:mod:`caterpillar.software.compiler.sgd`): the instruction mix of
one core's step, where its tensors and host buffers live, its model MACs per phase, the errors
when MemA, MemB or the SPAD is too small, and the ring programs (collectives on every core, the
input columns partitioned, training bit-identical to the golden trainer with the same cores)."""

from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest

from caterpillar.contract.config import preset
from caterpillar.contract.geometry import kernel_plan, word_cycles, word_mac_step_cycles
from caterpillar.contract.isa import Layout, Opcode, VecOp, decode, encode, unpack
from caterpillar.software.compiler import collectives, training
from caterpillar.software.compiler.collectives import link_sources, piped_permutation
from caterpillar.software.compiler.program import (
    SCALAR_REGS,
    Compiled,
    CompileError,
    bias_columns,
    cdiv,
    ceil_to,
    layer_splits,
)
from caterpillar.software.compiler.sgd import sgd_core_program, sgd_ring_core_program
from caterpillar.software.compiler.training import compile_training, partition
from caterpillar.software.graph.model import Optimizer, TrainingGraph
from caterpillar.software.isasim.device import RingIsaDevice
from tests.software.training.test_trainer import train_and_compare

TINY = preset("tiny")
SIZES = (9, 8, 6, 5)            # three layers: the first one needs no GEMVT
OPTIMIZERS = {
    "plain": Optimizer(lr=0.1),
    "momentum": Optimizer(lr=0.1, momentum=0.9),
    "decay": Optimizer(lr=0.1, weight_decay=0.01),
    "both": Optimizer(lr=0.1, momentum=0.9, weight_decay=0.01),
}


def instructions(core):
    return [decode(word) for word in core.program]


def failed_checks(core, cfg):
    """The decoder's checks every instruction of ``core`` fails on ``cfg`` (none expected)."""
    bad = []
    for pc, word in enumerate(core.program):
        op, values = unpack(word)
        for check in kernel_plan(op, SimpleNamespace(**values), cfg).checks:
            if not check.ok:
                bad.append((pc, op.name, check.what))
    return bad


@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize("loss", ["softmax_ce", "mse"])
def test_one_gemv_and_one_ger_per_layer_and_gemvt_below_the_top(loss, opt):
    graph = TrainingGraph(SIZES, loss=loss, optimizer=OPTIMIZERS[opt])
    ins = instructions(sgd_core_program(graph, TINY))
    layers = graph.layers
    by_op = lambda op: [i for i in ins if i.op == op]  # noqa: E731
    # Forward in layer order, backward and update from the top.
    assert [(i.rows, i.cols) for i in by_op(Opcode.GEMV)] == layers
    assert [(i.rows, i.cols) for i in by_op(Opcode.GER)] == layers[::-1]
    assert [(i.rows, i.cols) for i in by_op(Opcode.GEMVT)] == layers[:0:-1]
    use_mom, use_wd = graph.optimizer.momentum > 0, graph.optimizer.weight_decay > 0
    for ger in by_op(Opcode.GER):
        assert (ger.use_mom, ger.use_wd) == (int(use_mom), int(use_wd))
        assert ger.alpha == SCALAR_REGS["neg_lr"]
    vops = Counter((i.fn, i.alpha) for i in by_op(Opcode.VOP))
    classes = graph.sizes[-1]
    if loss == "softmax_ce":
        assert [i.len for i in by_op(Opcode.SMXCE)] == [classes]
        assert vops[(VecOp.MSEG, SCALAR_REGS["mse"])] == 0
    else:
        assert not by_op(Opcode.SMXCE)
        assert vops[(VecOp.MSEG, SCALAR_REGS["mse"])] == 1
    # The bias update: one AXPY by -lr per layer, plus one by wd and one by mu where enabled;
    # without both, the output gradient is scaled by the step once and each bias takes an ADD.
    n = len(layers)
    plain = not (use_mom or use_wd)
    assert vops[(VecOp.SCALE, SCALAR_REGS["step"])] == int(plain)
    assert vops[(VecOp.AXPY, SCALAR_REGS["neg_lr"])] == n * (not plain)
    assert vops[(VecOp.AXPY, SCALAR_REGS["wd"])] == n * use_wd
    assert vops[(VecOp.AXPY, SCALAR_REGS["mu"])] == n * use_mom
    axpys = 0 if plain else n * (1 + use_wd + use_mom)
    assert sum(c for (fn, _), c in vops.items() if fn == VecOp.AXPY) == axpys
    assert vops[(VecOp.ADD, 0)] == n * (1 + plain)
    assert vops[(VecOp.MAXS, SCALAR_REGS["zero"])] == n - 1
    assert vops[(VecOp.RELUD, 0)] == n - 1
    assert ins[-1].op == Opcode.HALT and sum(i.op == Opcode.HALT for i in ins) == 1
    assert not by_op(Opcode.RING)


@pytest.mark.parametrize("cfg", [TINY, preset("small")], ids=["tiny", "small"])
def test_model_macs_per_phase_are_the_layer_products(cfg):
    graph = TrainingGraph(SIZES, optimizer=OPTIMIZERS["both"])
    core = sgd_core_program(graph, cfg)
    products = [o * i for o, i in graph.layers]
    report = core.local_phase_report(cfg)
    assert report["forward"]["macs"] == sum(products)
    assert report["delta"]["macs"] == sum(products[1:])      # no GEMVT for the first layer
    assert report["update"]["macs"] == sum(products)
    assert report["loss"]["macs"] == report["transfer"]["macs"] == report["ring"]["macs"] == 0
    assert report["ring"]["cycles"] == 0
    assert all(report[p]["cycles"] > 0 for p in ("forward", "loss", "delta", "update",
                                                 "transfer"))
    # Every instruction's MACs: rows x cols for the three matrix kernels, nothing else.
    phase_of = {Opcode.GEMV: "forward", Opcode.GEMVT: "delta", Opcode.GER: "update",
                Opcode.SMXCE: "loss", Opcode.LDV: "transfer", Opcode.STV: "transfer"}
    for ins, phase, macs in zip(instructions(core), core.phases, core.macs):
        matrix = ins.op in (Opcode.GEMV, Opcode.GEMVT, Opcode.GER)
        assert macs == (ins.rows * ins.cols if matrix else 0), ins.text()
        assert phase == phase_of.get(ins.op, phase), ins.text()


def regions(core, cfg):
    """Every tensor and host buffer as ``(memory, name, first word, words)``."""
    nr = cfg.nr
    out = []
    for t in core.tensors:
        if t.kind == "mema":
            assert t.ld == cdiv(t.cols, nr), t
            out.append(("mema", t.name, t.addr, cdiv(t.rows, nr) * t.ld))
        else:
            assert t.kind == "diag" and t.rows == 1, t
            out.append(("memb", t.name, t.addr, cdiv(t.cols, nr)))
    return out


@pytest.mark.parametrize("opt", ["plain", "both"])
@pytest.mark.parametrize("cfg", [TINY, preset("small")], ids=["tiny", "small"])
def test_tensors_and_host_buffers_fit_the_memories(cfg, opt):
    graph = TrainingGraph(SIZES, optimizer=OPTIMIZERS[opt])
    core = sgd_core_program(graph, cfg)
    nr, classes = cfg.nr, graph.sizes[-1]
    names = [f"{p}{index}" for index in range(len(graph.layers))
             for p in (("W", "b", "mW", "mb") if opt == "both" else ("W", "b"))]
    assert sorted(t.name for t in core.tensors) == sorted(names)
    for t in core.tensors:
        o, i = graph.layers[int(t.name.lstrip("mWb"))]
        assert (t.rows, t.cols) == ((o, i) if "W" in t.name else (1, o)), t
    size = {"mema": cfg.mema_words, "memb": cfg.memb_words}
    placed = regions(core, cfg)
    for memory, name, base, words in placed:
        assert 0 <= base and base + words <= size[memory], name
    for a in placed:
        for b in placed:
            if a is not b and a[0] == b[0]:
                assert a[2] + a[3] <= b[2] or b[2] + b[3] <= a[2], (a, b)
    # Host buffers in the SPAD: row-aligned, disjoint, the staging area last and big enough
    # for the widest W.
    io = core.io
    spad = [(io["inputs"], ceil_to(graph.sizes[0], nr)), (io["targets"], ceil_to(classes, nr)),
            (io["logits"], ceil_to(classes, nr)),
            (core.staging, max(o * ceil_to(i, nr) for o, i in graph.layers))]
    for base, words in spad:
        assert base % nr == 0 and base + words <= cfg.spad_words
    ends = sorted(spad)
    assert all(a + n <= b for (a, n), (b, _) in zip(ends, ends[1:]))
    assert core.staging == max(base for base, _ in spad)
    # The program reads the sample and the target and writes the logits where io says.
    ins = instructions(core)
    # The first layer's gemv loads the sample itself (its LDV folded in: Emitter.gemv).
    assert (ins[0].op, ins[0].load, ins[0].spad, ins[0].cols) == \
        (Opcode.GEMV, 1, io["inputs"], graph.sizes[0])
    assert [(i.spad, i.len) for i in ins if i.op == Opcode.LDV] == [(io["targets"], classes)]
    assert [(i.spad, i.len) for i in ins if i.op == Opcode.STV] == [(io["logits"], classes)]
    # And the decoder accepts every instruction on this config (all ranges inside).
    assert failed_checks(core, cfg) == []


# Sizes for (9, 7, 5) on nr = 2, words per PE (cdiv(n, 2) of every vector):
# MemA: W0 4 x 5 + W1 3 x 4 = 32 (twice that with momentum).
# MemB: b0 4, b1 3, a-1 and a0 replicated 5 + 4 (the sample goes straight into its copy),
#       Wa 4 + 3, h 4 + 3, a0 4, d 4 + 3, four vectors of the widest layer 4 x 5, logits and
#       target 3 + 3, softmax scratch 3 x 3 + 2 = 78.
@pytest.mark.parametrize("memory, need, momentum, message", [
    ("mema_words", 32, 0.0, r"^MemA needs 32 words but the config has 31 \(largest: W0 20, "
                            r"W1 12\); use a config with more mema_words, a smaller model, or "
                            r"--algorithm mbgd$"),
    ("mema_words", 64, 0.9, r"^MemA needs 64 words but the config has 63 .*more mema_words"),
    ("memb_words", 78, 0.0, r"^MemB needs 78 words but the config has 77 .*; use a config "
                            r"with more memb_words or a smaller model$"),
])
def test_a_memory_too_small_names_it_the_words_and_the_fix(memory, need, momentum, message):
    graph = TrainingGraph((9, 7, 5), optimizer=Optimizer(momentum=momentum))
    short = need - 1
    with pytest.raises(CompileError, match=message):
        sgd_core_program(graph, TINY.replace(**{memory: short}))
    # Exactly the words it asked for are enough.
    sgd_core_program(graph, TINY.replace(**{memory: need}))


def test_the_spad_stages_parameters_in_what_it_has_left():
    # (40, 7, 5) on nr = 2: input 40, target 6, logits 6, then a staging area of at least nr
    # rows of W0 (2 x 40): 132 words. With more room the staging takes all of it (the host's
    # dump of every tensor must stay inside); the host moves tensors through it in groups of nr
    # rows (CoreTrainer), or whole where they fit.
    graph = TrainingGraph((40, 7, 5), optimizer=Optimizer(momentum=0.0))
    cfg = TINY.replace(memb_words=256)
    with pytest.raises(CompileError, match=r"^the SPAD needs 132 words but the config has "
                                           r"130 \(largest: parameter staging 80, input 40, "
                                           r"target 6\); use a config with more spad_words$"):
        sgd_core_program(graph, cfg.replace(spad_words=130))
    assert [sgd_core_program(graph, cfg.replace(spad_words=words)).staging_words
            for words in (132, 200, 400)] == [80, 148, 348]


def ring_programs(graph, cfg, first_rows=None, interleave=False, piped=False,
                  load_gathered=False, overlap=False):
    """The programs of every core, the first layer split as the compiler splits it (or by
    rows if ``first_rows``, by columns if not); bucket collectives unless ``piped``."""
    segment = tuple(range(cfg.cores))
    splits = layer_splits(graph, [segment] * len(graph.layers))
    if first_rows is not None:
        splits[0] = "rows" if first_rows else "columns"
    blocks = partition(graph, cfg, cfg.cores, splits)
    folds = bias_columns(graph, cfg, [segment] * len(graph.layers), blocks)
    return blocks, [sgd_ring_core_program(graph, cfg, segment, p, blocks,
                                          first_rows=splits[0] == "rows",
                                          interleave=interleave, bias_columns=folds,
                                          piped=piped, load_gathered=load_gathered,
                                          overlap=overlap)
                    for p in range(cfg.cores)]


def input_loads(core, batch) -> int:
    """How many instructions of ``core`` load a sample's input from the SPAD (an LDV, or a
    GEMV with ``load``): a batch's forward loads each once, its updates those not kept."""
    x_spad, ld = core.io["inputs"], core.io["ld_inputs"]
    return sum(1 for x in instructions(core)
               if (x.op == Opcode.LDV or x.op == Opcode.GEMV and x.load)
               and x_spad <= x.spad < x_spad + batch * ld)


def ring_compiled(graph, cfg, interleave, piped=False, load_gathered=False, overlap=False):
    """The whole ring's step with the update split between the gather steps or not."""
    blocks, programs = ring_programs(graph, cfg, interleave=interleave, piped=piped,
                                     load_gathered=load_gathered, overlap=overlap)
    segment = tuple(range(cfg.cores))
    return Compiled(graph, cfg, [segment] * len(graph.layers), dict(enumerate(programs)),
                    link_sources([segment], cfg.cores), blocks)


def test_the_split_update_is_kept_only_where_it_is_faster_and_fits_imem():
    # Three cores, a 128-wide layer over a 16-wide one: its update hides d1's gather steps.
    graph = TrainingGraph((8, 16, 128, 8), loss="mse", optimizer=Optimizer(momentum=0.0))
    cfg = TINY.replace(cores=3, memb_words=1024, mema_words=4096, spad_words=8192)
    plain, split = ring_compiled(graph, cfg, False), ring_compiled(graph, cfg, True)
    assert split.step_cycles < plain.step_cycles
    assert split.instructions == plain.instructions + 1
    for imem, want in ((split.instructions, split), (plain.instructions, plain)):
        got = compile_training(graph, cfg.replace(imem_words=imem))
        assert got.cores == want.cores and got.step_cycles == want.step_cycles


@pytest.mark.parametrize("algorithm, momentum", [("sgd", 0.0), ("sgd", 0.9), ("dfa1", 0.0)])
def test_an_update_split_between_the_gather_steps_is_bit_identical(algorithm, momentum, rng):
    # Three cores, two hidden layers: the output layer's update runs in two pieces, one
    # under each posted step of d1's gather (d0 is not gathered: the first layer is split by
    # rows); the momentum moves with its weights.
    cfg = TINY.replace(cores=3)
    sizes = (9, 12, 10, 6)
    hw, run = train_and_compare(cfg, sizes, algorithm, 1, "mse", momentum, 0.0, steps=3,
                                device=RingIsaDevice(cfg), rng=rng,
                                compile=lambda g, c, s: ring_compiled(g, c, True))
    plain = ring_compiled(hw.compiled.graph, cfg, False)
    for k, core in hw.compiled.cores.items():
        gers = [x for x in instructions(core) if x.op == Opcode.GER]
        assert len(gers) == len([x for x in instructions(plain.cores[k])
                                 if x.op == Opcode.GER]) + 1
        assert [x.rows for x in gers[:2]] == [2, 4]      # W2's pieces, in units of nr rows
        assert gers[1].w == gers[0].w + gers[0].ldw and gers[1].u == gers[0].u + 1
        assert gers[1].mom == (gers[0].mom + gers[0].ldw if momentum else 0)
    # The compiler keeps whichever steps fastest on the ring timing model: here the piped
    # collectives (d1's gather is one RING per core).
    best = compile_training(hw.compiled.graph, cfg)
    piped = ring_compiled(hw.compiled.graph, cfg, False, piped=True)
    assert best.step_cycles == piped.step_cycles < min(hw.compiled.step_cycles,
                                                       plain.step_cycles)
    assert hw.compiled.step_cycles != plain.step_cycles


def test_the_first_hidden_layer_of_a_ring_is_split_by_rows():
    # Every core gets the whole sample, so its rows of W0 make whole sums (no ring).
    graph = TrainingGraph((10, 9, 8, 6))
    assert layer_splits(graph, [(0, 1)] * 3) == ["rows", "columns", "columns"]
    assert layer_splits(graph, [(0,)] * 3) == ["columns"] * 3
    assert layer_splits(TrainingGraph((10, 6)), [(0, 1)]) == ["columns"]
    assert layer_splits(TrainingGraph((10, 9, 6), algorithm="cp"), [(0,), (1,)]) == \
        ["columns"] * 2


@pytest.mark.parametrize("first_rows", [False, True], ids=["columns", "rows"])
@pytest.mark.parametrize("cores", [2, 3])
def test_ring_programs_run_collectives_on_column_blocks(cores, first_rows):
    graph = TrainingGraph((10, 9, 8, 6), loss="mse", optimizer=OPTIMIZERS["both"])
    cfg = TINY.replace(cores=cores)
    blocks, programs = ring_programs(graph, cfg, first_rows)
    rings = [[i for i in instructions(core) if i.op == Opcode.RING] for core in programs]
    assert all(rings)
    # The cores pair every send with a receive, so they run as many RING instructions.
    assert len({len(r) for r in rings}) == 1
    for core_rings in rings:
        assert any(i.slen for i in core_rings) and any(i.rlen for i in core_rings)
    for index, (o, i) in enumerate(graph.layers):
        parts = blocks[index]
        by_rows = first_rows and index == 0
        # The blocks partition the inputs (the outputs of a layer split by rows) on row
        # boundaries, one per core.
        assert parts[0][0] == 0 and parts[-1][1] == (o if by_rows else i)
        assert all(a < b == c and a % cfg.nr == 0 for (a, b), (c, _) in zip(parts, parts[1:]))
        folds = bias_columns(graph, cfg, [tuple(range(cores))] * len(graph.layers), blocks)
        for p, core in enumerate(programs):
            lo, hi = parts[p]
            # A folded layer's bias is one more column of one core's block (P: [W | b]), of
            # every core's rows in a layer split by rows.
            here = folds[index] is not None and (by_rows or folds[index] == p)
            shape = (hi - lo, i + here) if by_rows else (o, hi - lo + here)
            w = next(t for t in core.tensors if t.name in (f"W{index}", f"P{index}"))
            assert (w.rows, w.cols, w.name[0]) == (*shape, "W" if folds[index] is None else "P")
            assert w.bias == (here or folds[index] is None)
            ger = [x for x in instructions(core) if x.op == Opcode.GER][::-1][index]
            gemv = [x for x in instructions(core) if x.op == Opcode.GEMV][index]
            assert (ger.rows, ger.cols) == (gemv.rows, gemv.cols) == shape
    for p, core in enumerate(programs):
        first = instructions(core)[0]
        lo, hi = (0, graph.sizes[0]) if first_rows else blocks[0][p]
        # The sample (and the 1 after it, a SPAD constant, where the core holds the first
        # layer's bias), loaded by an LDV or by the first layer's gemv itself (Emitter.gemv).
        here = folds[0] is not None and (first_rows or folds[0] == p)
        assert first.op == Opcode.LDV or (first.op, first.load) == (Opcode.GEMV, 1)
        loaded = first.len if first.op == Opcode.LDV else first.cols
        assert (first.spad, loaded) == (core.io["inputs"], hi - lo + here)
        assert core.constants == ([(core.io["inputs"] + hi - lo, 1, 1, 1, "one")] if here
                                  else [])
        assert failed_checks(core, cfg) == []
    # The cores' MACs add up to the one-core step's.
    one = sgd_core_program(graph, TINY).local_phase_report(TINY)
    reports = [core.local_phase_report(cfg) for core in programs]
    for phase in ("forward", "delta", "update"):
        assert sum(r[phase]["macs"] for r in reports) == one[phase]["macs"]


def test_a_ring_core_too_small_for_its_share_asks_for_more_cores():
    graph = TrainingGraph((9, 9, 5))
    # Two cores: core 1 holds the rows W0[4:9] (3 x 5 words, padded to a bank period of 2)
    # and W1[:, 4:9] (3 x 3): 25 > 16.
    with pytest.raises(CompileError, match=r"^MemA needs 25 words but the config has 16 .*"
                                           r"more mema_words, more cores, or --algorithm mbgd$"):
        ring_programs(graph, TINY.replace(cores=2, mema_words=16))
    _, programs = ring_programs(graph, TINY.replace(cores=3, mema_words=16))
    assert len(programs) == 3


@pytest.mark.parametrize("cores, sizes, loss, momentum, wd", [
    (2, (12, 8, 4), "mse", 0.5, 0.0),
    (3, (9, 7, 6, 5), "softmax_ce", 0.0, 0.01),
    (7, (16, 14, 14, 10), "softmax_ce", 0.0, 0.0),
], ids=["2-cores-momentum", "3-cores-decay", "7-cores-segmented-logits"])
def test_ring_training_is_bit_identical_to_golden(cores, sizes, loss, momentum, wd, rng):
    cfg = TINY.replace(cores=cores)
    hw, run = train_and_compare(cfg, sizes, "sgd", 1, loss, momentum, wd, steps=3,
                                device=RingIsaDevice(cfg), rng=rng)
    if cores == 7:      # the logits' chain runs in segments of more than one length
        assert len(set(hw.compiled.logits_chain)) > 1, hw.compiled.logits_chain
    # The device ran exactly the programs sgd_ring_core_program emits.
    graph = hw.compiled.graph
    _, programs = ring_programs(graph, cfg, piped=True)
    assert sorted(hw.compiled.cores) == list(range(cores))
    for k, core in enumerate(programs):
        assert hw.compiled.cores[k] == core
    assert hw.compiled.split == "columns" and min(run.ring_cycles) > 0


@pytest.mark.parametrize("algorithm, momentum", [("sgd", 0.9), ("dfa1", 0.0)])
def test_piped_collectives_run_each_sum_and_gather_in_one_ring_per_core(algorithm, momentum,
                                                                        rng):
    # Four cores, three hidden layers: layers 1 and 2 (12 and 8 outputs, whole rows of nr)
    # are reduce-scattered forward and all-gathered backward by one RING per core each,
    # their W rows stored in the piped layout; the step is bit-exact and faster.
    cfg = TINY.replace(cores=4)
    sizes = (10, 16, 12, 8, 6)
    hw, run = train_and_compare(cfg, sizes, algorithm, 1, "mse", momentum, 0.0, steps=3,
                                device=RingIsaDevice(cfg), rng=rng)
    graph = hw.compiled.graph
    bucket = ring_compiled(graph, cfg, False)
    assert hw.compiled.step_cycles == run.makespan < bucket.step_cycles
    assert hw.compiled.row_orders == [(), tuple(piped_permutation(12, 4, cfg.nr)),
                                      tuple(piped_permutation(8, 4, cfg.nr)), ()]
    for k, core in hw.compiled.cores.items():
        rings = [x for x in instructions(core) if x.op == Opcode.RING]
        piped = [x for x in rings if x.fwd and x.slen and x.wlen]
        # Layers 1 and 2: a reduce-scatter each (add), a gather each (no add).
        assert [x.add for x in piped] == [1, 1, 0, 0]
        assert [x.wlen for x in piped] == [12, 8, 8, 12]
        assert len(rings) < len([x for x in instructions(bucket.cores[k])
                                 if x.op == Opcode.RING])
        if algorithm == "dfa1":
            # Every hidden delta comes from the output's: all are formed before any update,
            # the lower two while the top one's gather moves.
            ops = instructions(core)
            backs = [pc for pc, x in enumerate(ops) if x.op == Opcode.GEMVT]
            gers = [pc for pc, x in enumerate(ops) if x.op == Opcode.GER]
            gather = next(pc for pc, x in enumerate(ops)
                          if x.op == Opcode.RING and x.fwd and x.slen and not x.add)
            assert len(backs) == 3 and backs[0] < gather < backs[1] < backs[2] < gers[0]


@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("piped", [True, False], ids=["piped", "bucket"])
def test_dfa_updates_that_load_their_gathered_delta_are_bit_identical(piped, momentum, rng):
    # Four cores, three hidden layers (layer 0 by rows, layers 1 and 2 gathered): every
    # gather is posted before any update that touches the SPAD, each into a buffer of its
    # own; the output layer's and layer 0's updates run under them, then layers 2 and 1 load
    # their deltas (a ger with load; with momentum an LDV, the ger reading MemB). Bit-exact
    # against golden on the ring's instruction-level simulator, and faster.
    cfg = TINY.replace(cores=4)
    sizes = (10, 16, 12, 8, 6)
    compile = lambda g, c, s: ring_compiled(g, c, False, piped=piped,  # noqa: E731
                                            load_gathered=True)
    hw, run = train_and_compare(cfg, sizes, "dfa1", 1, "mse", momentum, 0.0, steps=3,
                                device=RingIsaDevice(cfg), rng=rng, compile=compile)
    for core in hw.compiled.cores.values():
        ops = instructions(core)
        last_ring = max(pc for pc, x in enumerate(ops) if x.op == Opcode.RING)
        gers = [(pc, x) for pc, x in enumerate(ops) if x.op == Opcode.GER]
        # The output layer, layer 0's block of rows, then layers 2 and 1.
        assert [x.rows for _, x in gers] == [6, 16 // 4, 8, 12]
        # The output layer's update runs under the first gather, layer 0's under the second
        # (posted after it); layers 2 and 1 then load their deltas.
        assert [pc < last_ring for pc, _ in gers] == [True, False, False, False]
        assert [bool(x.load) for _, x in gers] == [False, False] + [momentum == 0] * 2
    plain = ring_compiled(hw.compiled.graph, cfg, False, piped=piped)
    if momentum == 0:
        assert hw.compiled.step_cycles < plain.step_cycles
    else:
        assert hw.compiled.step_cycles <= plain.step_cycles


def test_n1_dfa_keeps_the_variant_whose_updates_load_their_gathered_deltas():
    # On the paper's 32 cores the gathers cost more than layer 0's update hides under them:
    # the compiler keeps the variant with every gathered delta in its own buffer, and no LDV
    # of a gathered delta is left on any core.
    cfg = preset("paper-n1")
    graph = TrainingGraph((784, 500, 500, 500, 10), algorithm="dfa",
                          optimizer=Optimizer(lr=0.05, momentum=0.0))
    best = compile_training(graph, cfg)
    loaded = ring_compiled(graph, cfg, False, piped=True, load_gathered=True)
    assert best.step_cycles == loaded.step_cycles < ring_compiled(graph, cfg, False,
                                                                  piped=True).step_cycles
    for core in best.cores.values():
        ops = instructions(core)
        assert sum(x.op == Opcode.GER and x.load for x in ops) == 2
        assert not any(x.op == Opcode.LDV and x.layout == Layout.ROWREP for x in ops)


def test_one_core_compiles_to_the_one_core_program():
    graph = TrainingGraph(SIZES, optimizer=OPTIMIZERS["momentum"])
    assert compile_training(graph, TINY).cores == {0: sgd_core_program(graph, TINY)}


@pytest.mark.parametrize("cores", [1, 2])
def test_dfa_reads_the_feedback_instead_of_the_weights_above(cores):
    # Every hidden layer's delta is one GEMVT of its F (outputs x width) on the output delta,
    # broadcast once: the backward costs outputs x width MACs, not the layer above's size.
    graph = TrainingGraph(SIZES, algorithm="dfa", optimizer=OPTIMIZERS["plain"])
    cfg = TINY.replace(cores=cores, mema_words=512)
    compiled = compile_training(graph, cfg)
    classes, hidden = SIZES[-1], SIZES[1:-1]
    for k, core in compiled.cores.items():
        by_name = {t.name: t for t in core.tensors}
        f = [by_name[f"F{index}"] for index in range(len(hidden))]
        ins = instructions(core)
        gemvt = [i for i in ins if i.op == Opcode.GEMVT]
        assert [(i.w, i.rows) for i in gemvt] == [(t.addr, classes) for t in f[::-1]]
        assert [i.cols for i in gemvt] == [t.cols for t in f[::-1]]
        widths = [hi - lo for lo, hi in (parts[k] for parts in compiled.blocks[1:])]
        assert [t.cols for t in f] == widths and all(t.rows == classes for t in f)
        # The output delta is broadcast along the rows once, and serves the top update too.
        rowreps = [i for i in ins if i.op == Opcode.BCAST and i.len == classes
                   and i.dst == gemvt[0].d]
        assert len(rowreps) == 1
        assert [i.u for i in ins if i.op == Opcode.GER][0] == gemvt[0].d
        assert not failed_checks(core, cfg)
        report = core.local_phase_report(cfg)
        assert report["delta"]["macs"] == classes * sum(widths)


def test_sgd_and_dfa_refuse_per_layer_segments():
    for algorithm in ("sgd", "dfa"):
        graph = TrainingGraph(SIZES, algorithm=algorithm)
        with pytest.raises(CompileError, match=f"^{algorithm} spreads every layer over one "
                                               "segment; per-layer segments need "
                                               "--algorithm mbgd$"):
            compile_training(graph, TINY.replace(cores=4), [(0, 1), (2,), (3,)])


def test_the_bias_folds_into_the_block_with_room_for_one_more_column():
    cfg = TINY.replace(cores=3, mema_words=4096, memb_words=1024, spad_words=8192)
    segments = [tuple(range(3))] * 3
    graph = TrainingGraph((10, 9, 8, 6))
    blocks = partition(graph, cfg, 3, layer_splits(graph, segments))
    # Layer 1's inputs (9) split 2 / 4 / 3 on nr = 2: one more column fits blocks 0 and 2
    # within the longest block's 2 words per PE, a tie: the last of them. Layer 2's (8):
    # 2 / 2 / 4, blocks 0 and 1 (2 words, the longest's): 1. Layer 0 takes the host's
    # sample, split by rows: every core's rows fold (one more word per PE costs its GEMV and
    # update fewer cycles than the two VOP adds), marked 0.
    assert [[hi - lo for lo, hi in b] for b in blocks[1:]] == [[2, 4, 3], [2, 2, 4]]
    assert bias_columns(graph, cfg, segments, blocks) == [0, 2, 1]
    wide = TrainingGraph((10, 9, 12, 6))
    wide_blocks = partition(wide, cfg, 3, layer_splits(wide, segments))
    # 12 inputs split 4 / 4 / 4: one more column would need a third word per PE anywhere.
    assert [[hi - lo for lo, hi in b] for b in wide_blocks[1:]] == [[2, 4, 3], [4, 4, 4]]
    assert bias_columns(wide, cfg, segments, wide_blocks) == [0, 2, None]
    # No room anywhere (every block a whole number of PE words, all equal): the VOPs stay.
    even = TrainingGraph((8, 8, 4))
    assert bias_columns(even, cfg.replace(cores=2), [(0, 1)] * 2,
                        partition(even, cfg.replace(cores=2), 2, ["rows", "columns"]))[1] is None
    # Only the GEMV kernels on a ring fold it.
    for other in (TrainingGraph((10, 9, 8, 6), algorithm="mbgd", batch=4),
                  TrainingGraph((10, 9, 8, 6), algorithm="cp")):
        assert bias_columns(other, cfg, segments, blocks) == [None] * 3
    assert compile_training(graph, TINY).bias_columns == [None] * 3


def test_a_folded_bias_saves_the_vector_adds_of_the_ring_step():
    graph = TrainingGraph((10, 9, 8, 6), optimizer=Optimizer(momentum=0.0))
    cfg = TINY.replace(cores=3, mema_words=4096, memb_words=1024, spad_words=8192)
    segment = tuple(range(3))
    folded = compile_training(graph, cfg)
    assert folded.bias_columns == [0, 2, 1]
    blocks = folded.blocks
    plain = Compiled(graph, cfg, [segment] * 3,
                     {p: sgd_ring_core_program(graph, cfg, segment, p, blocks,
                                               first_rows=True) for p in segment},
                     link_sources([segment], 3), blocks)
    adds = lambda c: sum(1 for core in c.cores.values() for i in instructions(core)  # noqa
                         if i.op == Opcode.VOP and i.fn == VecOp.ADD)
    # Two VOP adds (forward, update) per folded layer on every core.
    assert adds(plain) - adds(folded) == 2 * 3 * 3 and adds(folded) == 0
    assert folded.step_cycles < plain.step_cycles


@pytest.mark.parametrize("seed", range(6))
def test_folding_the_biases_never_makes_a_ring_step_slower(seed):
    # Random networks and rings: the compiled step (biases folded where bias_columns says)
    # against the same step with every bias added by VOPs, both with the compiler's choice
    # of split update; the ring timing model times both.
    rng = np.random.default_rng(seed)
    cores = int(rng.integers(2, 6))
    sizes = tuple(int(v) for v in rng.integers(cores * 2, 40, int(rng.integers(3, 5))))
    cfg = TINY.replace(cores=cores, mema_words=8192, memb_words=2048, spad_words=16384)
    graph = TrainingGraph(sizes, optimizer=Optimizer(momentum=float(rng.choice([0.0, 0.9]))))
    folded = compile_training(graph, cfg)
    segment = tuple(range(cores))
    plain = min((Compiled(graph, cfg, [segment] * len(graph.layers),
                          {p: sgd_ring_core_program(graph, cfg, segment, p, folded.blocks,
                                                    first_rows=True, interleave=split)
                           for p in segment}, link_sources([segment], cores), folded.blocks)
                 for split in (False, True)), key=lambda c: c.step_cycles)
    print(f"seed {seed}: {sizes} on {cores} cores, bias columns {folded.bias_columns}: "
          f"{folded.step_cycles} against {plain.step_cycles} cycles")
    assert any(where is not None for where in folded.bias_columns)
    assert folded.step_cycles <= plain.step_cycles


def test_narrow_blocks_of_columns_pair_their_rows_in_an_update_with_momentum():
    # 12-8-4 on 2 tiny cores: blocks of 6 and 4 columns, 3 and 2 words per PE row (nr = 2),
    # fewer than chain_lanes / 2 = 4: with momentum W's rows are padded to 4 words so each
    # ger step takes two rows (geometry's paired); without, W keeps its ceil(cols / nr).
    cfg = TINY.replace(cores=2)
    pair = cfg.chain_lanes // 2
    for name in ("plain", "momentum"):
        graph = TrainingGraph((12, 8, 4), algorithm="sgd", optimizer=OPTIMIZERS[name])
        gers = [f for core in compile_training(graph, cfg).cores.values()
                for op, f in map(unpack, core.program) if op == Opcode.GER]
        assert len(gers) == 4
        for f in gers:
            loc = -(-f["cols"] // cfg.nr)
            paired = name == "momentum" and loc < pair
            assert f["ldw"] == (pair if paired else loc)
            assert kernel_plan(Opcode.GER, SimpleNamespace(**f), cfg).values["paired"] == paired
            if paired:      # half the steps of the same update on unpadded rows
                unpadded = encode(Opcode.GER, **{**f, "ldw": loc})
                assert 2 * word_mac_step_cycles(encode(Opcode.GER, **f), cfg) == \
                    word_mac_step_cycles(unpadded, cfg)
                assert word_cycles(encode(Opcode.GER, **f), cfg) < word_cycles(unpadded, cfg)


def test_narrow_rows_stay_unpadded_where_memas_room_ends():
    # 12-8-4 with momentum on 2 tiny cores needs 36 MemA words unpadded, 44 with layer 1's
    # rows padded to chain_lanes / 2: between the two it compiles unpaired, below it names 36.
    graph = TrainingGraph((12, 8, 4), algorithm="sgd", optimizer=OPTIMIZERS["momentum"])

    def row_words(mema_words):
        compiled = compile_training(graph, TINY.replace(cores=2, mema_words=mema_words))
        return sorted({t.ld for c in compiled.cores.values() for t in c.tensors
                       if t.kind == "mema"})

    assert row_words(64) == row_words(44) == [TINY.chain_lanes // 2, 7]
    assert row_words(42) == row_words(36) == [2, 7]
    with pytest.raises(CompileError, match=r"^MemA needs 36 words but the config has 34 "):
        row_words(34)


@pytest.mark.parametrize("overlap", [False, True], ids=["in-turn", "overlap"])
@pytest.mark.parametrize("piped", [False, True], ids=["bucket", "piped"])
@pytest.mark.parametrize("sizes, split, memb, reloads", [
    ((12, 9, 8, 6), "rows", 256, 0), ((12, 9, 8, 6), "rows", 108, 1),
    ((12, 9, 8, 6), "rows", 100, 2), ((16, 6), "columns", 256, 0)],
    ids=["first-rows-kept", "first-rows-some", "first-rows-none", "one-layer-columns"])
def test_every_order_of_a_batch_on_the_gemv_kernels_matches_golden(sizes, split, memb, reloads,
                                                                    piped, overlap, rng):
    # Each sample's forward GEMV in turn or under the ring sum of the sample before it; bucket
    # or piped collectives; the first layer split by rows or by columns; each sample's input
    # kept in MemB for its update where there is room, else loaded again: the same bits, the
    # cycles the model's.
    cfg = preset("tiny").replace(cores=3, memb_words=memb)
    hw, _ = train_and_compare(
        cfg, sizes, "mbgd", 3, "softmax_ce", 0.0, 0.0, steps=3, device=RingIsaDevice(cfg),
        rng=rng, kernels="gemv",
        compile=lambda graph, cfg, _: ring_compiled(graph, cfg, False, piped=piped,
                                                    overlap=overlap))
    assert hw.compiled.splits[0] == split
    # The forward's, and the update's where not kept.
    assert input_loads(hw.compiled.cores[2], 3) == 3 + reloads


@pytest.mark.parametrize("algorithm, batch", [("sgd", 1), ("mbgd", 4)])
def test_the_logits_chain_in_segments_is_kept_only_where_it_steps_faster(algorithm, batch,
                                                                         monkeypatch):
    # 16 cores: the ten logits' chain splits into segments (chain_segments); a batch on the
    # GEMV kernels hides most of each sample's chain behind the next sample's work.
    graph = TrainingGraph((32, 32, 32, 10), algorithm=algorithm, batch=batch,
                          kernels="gemv" if batch > 1 else "auto")
    cfg = TINY.replace(cores=16, memb_words=512)
    segmented = compile_training(graph, cfg)
    monkeypatch.setattr(collectives, "chain_segments", lambda cfg, cores, n: (cores,))
    single = compile_training(graph, cfg)
    assert single.logits_chain == (16,)
    assert segmented.step_cycles <= single.step_cycles
    assert "the logits chained" not in single.placement_text()
    if batch == 1:
        assert len(segmented.logits_chain) > 1
        lengths = ",".join(map(str, segmented.logits_chain))
        assert f"the logits chained in segments of {lengths} cores" in \
            segmented.placement_text()
        assert segmented.step_cycles < single.step_cycles - 20, (segmented.step_cycles,
                                                                 single.step_cycles)


def test_one_logits_chain_is_kept_where_a_batch_hides_its_latency(monkeypatch):
    # N3 on 8 paper-n3 cores, b = 8 on the GEMV kernels: each sample's chain runs beside the
    # next sample's work, and the segments' extra RING posts cost more than their latency saves.
    cfg = preset("paper-n3")
    graph = TrainingGraph((784, 2500, 2000, 1500, 1000, 500, 10), algorithm="mbgd", batch=8,
                          kernels="gemv", optimizer=Optimizer(lr=0.05, momentum=0.0))
    assert collectives.chain_segments(cfg, 8, 10) != (8,)
    chosen = compile_training(graph, cfg)
    build = training.sgd_ring_core_program
    monkeypatch.setattr(training, "sgd_ring_core_program",
                        lambda *args, **kw: build(*args, **{**kw, "segmented": True}))
    segmented = compile_training(graph, cfg)
    assert len(segmented.logits_chain) > 1 and chosen.logits_chain == (8,)
    assert chosen.step_cycles < segmented.step_cycles
