"""Minibatch GD lowered to GEMM kernels (:mod:`caterpillar.software.compiler.mbgd`): the
builder's chunked GEMMs, MemB-sized elementwise passes and transposes through MemA (each run on
the instruction-level simulator against the golden kernels), the MemB check, one core's step
(instruction mix, SPAD layout, model MACs, errors) and the ring's (collectives, one SPAD layout
on every core, training bit-identical to the golden trainer)."""

from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest

import caterpillar.software.compiler.mbgd as mbgd_compiler
from caterpillar.contract.config import preset
from caterpillar.contract.geometry import kernel_plan, spad_span_regions
from caterpillar.contract.isa import Opcode, VecOp, decode, encode, unpack
from caterpillar.golden import kernels as gk
from caterpillar.golden.trainer import gemm_chunked, to_bits
from caterpillar.software.compiler.fit import fit_table
from caterpillar.software.compiler.mbgd import (
    MbgdBuilder,
    check_mbgd_memb,
    mbgd_core_program,
    mbgd_ring_core_program,
)
from caterpillar.software.compiler.program import (
    SCALAR_REGS,
    CompileError,
    Emitter,
    cdiv,
    ceil_to,
)
from caterpillar.software.compiler.training import compile_training
from caterpillar.software.graph.model import Optimizer, TrainingGraph
from caterpillar.software.isasim.core import IsaSim
from caterpillar.software.isasim.device import RingIsaDevice
from tests.software.training.test_trainer import train_and_compare

TINY = preset("tiny")
ROOMY = TINY.replace(spad_words=8192)
SIZES = (9, 8, 6, 5)
OPTIMIZERS = {
    "plain": Optimizer(lr=0.1),
    "both": Optimizer(lr=0.1, momentum=0.9, weight_decay=0.01),
}


def emitted(cfg, build):
    """The instructions ``build(builder)`` emits, decoded, with their phases and MACs."""
    e = Emitter()
    builder = MbgdBuilder(cfg, e)
    build(builder)
    return builder, [decode(w) for w in e.words], e.phases, e.macs, e.words


def failed_checks(words, cfg):
    """The decoder's checks the instruction words fail on ``cfg`` (none expected)."""
    bad = []
    for pc, word in enumerate(words):
        op, values = unpack(word)
        for check in kernel_plan(op, SimpleNamespace(**values), cfg).checks:
            if not check.ok:
                bad.append((pc, op.name, check.what))
    return bad


def run(cfg, words, spad, sregs=None):
    """Run ``words`` (then HALT) on a fresh simulator whose SPAD starts as ``spad``."""
    sim = IsaSim(cfg)
    sim.spad[:len(spad)] = spad
    for reg, bits in (sregs or {}).items():
        sim.sregs[reg] = bits
    sim.load_program(list(words) + [encode(Opcode.HALT)])
    assert sim.run().ok
    return sim.spad


def random_bits(rng, shape, fmt):
    return to_bits(rng.uniform(-1.0, 1.0, shape), fmt)


def emitted_gemm(cfg, method, phase, shape, accumulate, **options):
    """``MbgdBuilder.<method>`` on packed operands (A^T for ``gemm``, A for ``gemm_rows``, then
    B, then C): their addresses and :func:`emitted`'s results."""
    m, n, k = shape
    addrs = (0, m * k, m * k + k * n)
    lda = m if method == "gemm" else k
    return addrs, emitted(cfg, lambda b: getattr(b, method)(
        phase, c=addrs[2], a=addrs[0], b=addrs[1], m=m, n=n, k=k, lda=lda, ldb=n, ldc=n,
        accumulate=accumulate, **options))


def assert_gemm_on_simulator(cfg, words, rng, shape, addrs, kc, accumulate, *, a_transposed,
                             relu=False):
    """Run ``words`` on random A (``A^T`` at ``a`` if ``a_transposed``, else A, both packed),
    B and C; C must be :func:`gemm_chunked`'s (``relu``: rectified), bit for bit."""
    (m, n, k), (a_at, b_at, c_at), fmt = shape, addrs, cfg.operand
    a, b, c0 = (random_bits(rng, dims, fmt) for dims in ((m, k), (k, n), (m, n)))
    spad = np.zeros(cfg.spad_words, dtype=np.uint64)
    spad[a_at:a_at + m * k] = (a.T if a_transposed else a).ravel()
    spad[b_at:b_at + k * n] = b.ravel()
    spad[c_at:c_at + m * n] = c0.ravel()
    out = run(cfg, words, spad)[c_at:c_at + m * n].reshape(m, n)
    want = gemm_chunked(a, b, fmt, cfg.acc, kc, c=c0 if accumulate else None)
    if relu:
        want = gk.vop("maxs", want, want, 0, fmt, cfg.acc)
        assert (want == 0).any()
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("accumulate", [False, True])
def test_gemm_splits_k_into_chunks_accumulating_after_the_first(accumulate, relu, rng):
    cfg = ROOMY
    m, n, k = 20, 6, 150            # packed: lda = m, ldb = ldc = n
    (a_at, b_at, c_at), (builder, ins, phases, macs, words) = emitted_gemm(
        cfg, "gemm", "forward", (m, n, k), accumulate, relu=relu)
    # Only the last chunk rectifies: the others' sums are partial.
    assert [i.relu for i in ins] == [0, 0, int(relu)]
    kc = builder.k_chunk
    assert kc == cfg.memb_words // 2                  # two B panels of k words fit MemB
    assert [i.k for i in ins] == [kc, kc, k - 2 * kc]
    assert [i.a for i in ins] == [a_at + k0 * m for k0 in (0, kc, 2 * kc)]
    assert [i.b for i in ins] == [b_at + k0 * n for k0 in (0, kc, 2 * kc)]
    assert {i.c for i in ins} == {c_at}
    assert [i.accumulate for i in ins] == [int(accumulate), 1, 1]
    assert macs == [m * n * i.k for i in ins] and set(phases) == {"forward"}
    group = cfg.nr * cfg.acc_lanes
    for i in ins:
        assert i.mc % group == 0 and 0 < i.mc <= ceil_to(m, group)
        assert i.mc // cfg.nr * cdiv(i.k, cfg.nr) <= cfg.mema_words
    assert failed_checks(words, cfg) == []
    # On the simulator: the golden GEMM in chunks of k_chunk terms, bit for bit.
    assert_gemm_on_simulator(cfg, words, rng, (m, n, k), (a_at, b_at, c_at), kc, accumulate,
                             a_transposed=True, relu=relu)


@pytest.mark.parametrize("mema_words", [160, 1000])
@pytest.mark.parametrize("accumulate", [False, True])
def test_gemm_rows_loads_each_block_of_a_into_mema_and_sums_like_gemm(mema_words, accumulate,
                                                                      rng):
    # A row-major (m x k): every chunk of k_chunk terms is one GEMM that loads each block of
    # rows into MemA itself (a_rows), no lda; the sums are gemm_chunked's, bit for bit.
    cfg = ROOMY.replace(mema_words=mema_words)
    m, n, k = 37, 6, 150
    (a_at, b_at, c_at), (builder, gemms, phases, macs, words) = emitted_gemm(
        cfg, "gemm_rows", "update", (m, n, k), accumulate)
    kc = builder.k_chunk
    assert {i.op for i in gemms} == {Opcode.GEMM}
    assert all(g.a_rows == 1 and g.a_mema == 0 and g.mema == 0 and g.m == m for g in gemms)
    assert [g.a for g in gemms] == [a_at + k0 for k0 in range(0, k, kc)]
    assert sum(g.k for g in gemms) == k and sum(macs) == m * n * k
    # Blocks of rows: fewer than m in a small MemA, all of them in a roomy one.
    assert all(g.mc < m for g in gemms) if mema_words == 160 else \
        all(g.mc == ceil_to(m, cfg.nr * cfg.acc_lanes) for g in gemms)
    assert [g.accumulate for g in gemms] == [int(accumulate or g.b > b_at) for g in gemms]
    assert set(phases) == {"update"} and failed_checks(words, cfg) == []
    assert_gemm_on_simulator(cfg, words, rng, (m, n, k), (a_at, b_at, c_at), kc, accumulate,
                             a_transposed=False)


@pytest.mark.parametrize("mema_words", [128, 300, 1000])
@pytest.mark.parametrize("m, k", [(3, 1), (20, 7), (100, 64), (37, 150)])
def test_gemm_row_blocks_are_row_groups_that_fit_mema(mema_words, m, k):
    cfg = TINY.replace(mema_words=mema_words)
    group = cfg.nr * cfg.acc_lanes
    _, ins, _, _, _ = emitted(cfg, lambda b: b.gemm(
        "delta", c=0, a=0, b=0, m=m, n=4, k=k, lda=ceil_to(m, 2), ldb=4, ldc=4))
    assert sum(i.k for i in ins) == k
    for i in ins:
        assert i.mc > 0 and i.mc % group == 0, i.text()
        assert i.mc // cfg.nr * cdiv(i.k, cfg.nr) <= mema_words, i.text()
        # As many rows as fit, but no more than m needs.
        assert i.mc == ceil_to(m, group) or \
            (i.mc + group) // cfg.nr * cdiv(i.k, cfg.nr) > mema_words, i.text()


def test_a_gemm_row_group_larger_than_mema_is_a_compile_error():
    # k_chunk = 64 terms: a row group of nr * Lacc = 8 rows takes 8 / 2 * 32 = 128 words per PE.
    cfg = TINY.replace(mema_words=16)
    with pytest.raises(CompileError, match=r"^a GEMM with 64 inner terms needs at least 128 "
                                           r"MemA words per PE for one row group; the config "
                                           r"has 16$"):
        emitted(cfg, lambda b: b.gemm("forward", c=0, a=0, b=0, m=4, n=4, k=100, lda=4, ldb=4,
                                      ldc=4))


@pytest.mark.parametrize("fn, two_inputs, in_place", [
    (VecOp.AXPY, True, False), (VecOp.SCALE, False, True), (VecOp.RELUD, True, False)])
def test_elementwise_streams_memb_sized_chunks(fn, two_inputs, in_place, rng):
    cfg, fmt = TINY, TINY.operand
    count, x_at, y_at = 301, 400, 800
    z_at = x_at if in_place else 1200
    y = y_at if two_inputs else None
    alpha = 3
    _, ins, phases, _, words = emitted(cfg, lambda b: b.elementwise(
        "update", fn, z_at, x_at, y, count=count, alpha=alpha))
    per_chunk = 4 if two_inputs else 3                   # LDV x, [LDV y], VOP, STV z
    assert len(ins) % per_chunk == 0
    chunks = [ins[s:s + per_chunk] for s in range(0, len(ins), per_chunk)]
    assert len(chunks) == cdiv(count, cfg.memb_words // (2 + two_inputs) * cfg.nr)
    offset = 0
    for chunk in chunks:
        *loads, vop, store = chunk
        length = vop.len
        assert [i.op for i in loads] == [Opcode.LDV] * (1 + two_inputs)
        assert (vop.op, vop.fn, vop.alpha, store.op) == (Opcode.VOP, fn, alpha, Opcode.STV)
        assert [i.spad for i in loads] == [x_at + offset, y_at + offset][:len(loads)]
        assert store.spad == z_at + offset
        assert {i.len for i in chunk} == {length}
        # Inputs and output in disjoint MemB buffers, all inside MemB.
        buffers = sorted({(i.memb, cdiv(length, cfg.nr)) for i in loads + [store]})
        assert len(buffers) == 1 + two_inputs + 1
        assert all(a + n <= b for (a, n), (b, _) in zip(buffers, buffers[1:]))
        assert buffers[-1][0] + buffers[-1][1] <= cfg.memb_words
        assert (vop.x, vop.z) == (loads[0].memb, store.memb)
        offset += length
    assert offset == count
    assert set(phases[i] for i in range(len(ins)) if ins[i].op == Opcode.VOP) == {"update"}
    assert failed_checks(words, cfg) == []
    # On the simulator: the golden VOP over the whole vector.
    x_bits = random_bits(rng, count, fmt)
    y_bits = random_bits(rng, count, fmt)
    a_bits = int(to_bits(-0.375, fmt))
    spad = np.zeros(cfg.spad_words, dtype=np.uint64)
    spad[x_at:x_at + count] = x_bits
    spad[y_at:y_at + count] = y_bits
    out = run(cfg, words, spad, {alpha: a_bits})[z_at:z_at + count]
    want = gk.vop(fn.name.lower(), x_bits, y_bits if two_inputs else x_bits, a_bits, fmt,
                  cfg.acc)
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("mema_words, chunks", [(16, 3), (256, 1)])
def test_transpose_is_lda_trans_then_sta_pairs_through_mema(mema_words, chunks, rng):
    cfg = TINY.replace(mema_words=mema_words)
    rows, cols, lds, src, dst, ldd = 6, 25, 26, 0, 1000, 6
    _, ins, phases, _, words = emitted(cfg, lambda b: b.transpose(src, rows, cols, lds, dst,
                                                                  ldd))
    assert len(ins) == 2 * chunks and set(phases) == {"transfer"}
    done = 0
    for lda, sta in zip(ins[::2], ins[1::2]):
        assert (lda.op, lda.trans, sta.op, sta.trans) == (Opcode.LDA, 1, Opcode.STA, 0)
        assert (lda.rows, lda.cols, lda.ldm) == (sta.rows, sta.cols, sta.ldm)
        assert (lda.cols, lda.lds, sta.lds) == (rows, lds, ldd)
        assert (lda.spad, sta.spad) == (src + done, dst + done * ldd)
        assert cdiv(lda.rows, cfg.nr) * lda.ldm <= mema_words      # the chunk fits MemA
        done += lda.rows
    assert done == cols
    assert failed_checks(words, cfg) == []
    matrix = rng.integers(1, 1 << 30, (rows, lds), dtype=np.uint64)
    spad = np.zeros(cfg.spad_words, dtype=np.uint64)
    spad[src:src + rows * lds] = matrix.ravel()
    out = run(cfg, words, spad)[dst:dst + cols * ldd].reshape(cols, ldd)
    np.testing.assert_array_equal(out[:, :rows], matrix[:, :cols].T)


def test_check_mbgd_memb_names_what_memb_lacks():
    check_mbgd_memb(TINY, 10)                   # 6 x 5 + 2 = 32 words of 128: fine
    with pytest.raises(CompileError, match=r"^MemB has 47 words per PE; the mbgd kernels need "
                                           r"at least 48$"):
        check_mbgd_memb(TINY.replace(nr=16, memb_words=47), 10)
    # 100 classes on nr = 2: 50 words per PE; the gradient, target and logits vectors and
    # SMXCE's 3 x 50 + 2 words of scratch need 6 x 50 + 2.
    with pytest.raises(CompileError, match=r"^the softmax needs 302 MemB words per PE; the "
                                           r"config has 128$"):
        check_mbgd_memb(TINY, 100)
    with pytest.raises(CompileError, match="the softmax needs 302"):
        mbgd_core_program(TrainingGraph((4, 100), algorithm="mbgd", batch=2), TINY)
    # 44 classes need 6 x 22 + 2 = 134 words: refused at compile time, where a core would
    # have stopped with memb_range (the check once counted 5 x 22 + 2 = 112).
    with pytest.raises(CompileError, match="the softmax needs 134 MemB words"):
        mbgd_core_program(TrainingGraph((4, 44), algorithm="mbgd", batch=1), TINY)


def test_a_transpose_that_cannot_pass_through_mema_is_a_compile_error():
    cfg = TINY.replace(memb_words=16, spad_words=1 << 20, imem_words=65536)
    with pytest.raises(CompileError, match=r"a transpose of a 1000-row matrix passes 500 "
                                           r"words per PE through MemA; the config has 256"):
        mbgd_core_program(TrainingGraph((4, 4, 1000, 4), algorithm="mbgd", batch=2,
                                        loss="mse"), cfg)


def graph_of(loss="softmax_ce", opt="plain", sizes=SIZES, batch=3):
    return TrainingGraph(sizes, loss=loss, algorithm="mbgd", batch=batch,
                         optimizer=OPTIMIZERS[opt])


@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize("loss", ["softmax_ce", "mse"])
def test_one_core_step_instruction_mix(loss, opt):
    graph = graph_of(loss, opt)
    core = mbgd_core_program(graph, TINY)
    ins = [decode(w) for w in core.program]
    n, batch, classes = len(graph.layers), graph.batch, graph.sizes[-1]
    plain = opt == "plain"
    gemms = Counter(p for i, p in zip(ins, core.phases) if i.op == Opcode.GEMM)
    assert gemms == {"forward": n, "delta": n - 1, "update": n}   # every k <= k_chunk here
    for i, phase in zip(ins, core.phases):
        if i.op == Opcode.GEMM:
            assert i.accumulate == int(phase == "update" and plain), (phase, i.text())
    vops = Counter((i.fn, i.alpha) for i in ins if i.op == Opcode.VOP)
    if loss == "softmax_ce":
        # nr samples at once, each in its PE row (tiny: nr = 2).
        nr = TINY.nr
        assert [(i.len, i.rows) for i in ins if i.op == Opcode.SMXCE] == [
            (classes, min(nr, batch - g)) for g in range(0, batch, nr)]
        rows = [(i.op, i.row) for i in ins if i.op in (Opcode.LDV, Opcode.STV) and i.row]
        assert rows == [(op, r % nr + 1) for g in range(0, batch, nr)
                        for op, count in ((Opcode.LDV, 2), (Opcode.STV, 1))
                        for r in range(g, min(batch, g + nr)) for _ in range(count)]
        assert vops[(VecOp.MSEG, SCALAR_REGS["mse"])] == 0
    else:
        assert not any(i.op == Opcode.SMXCE for i in ins)
        assert vops[(VecOp.MSEG, SCALAR_REGS["mse"])] >= 1
    # The output gradient is scaled once: by -lr / B without optimiser state, else by 1 / B.
    scale = SCALAR_REGS["step"] if plain else SCALAR_REGS["inv_batch"]
    assert [key for key in vops if key[0] == VecOp.SCALE] == [(VecOp.SCALE, scale)]
    axpy = {alpha: c for (fn, alpha), c in vops.items() if fn == VecOp.AXPY}
    if plain:
        assert axpy == {}
    else:       # wd, mu and -lr passes over every layer's [W | b], chunk for chunk
        assert set(axpy) == {SCALAR_REGS[r] for r in ("wd", "mu", "neg_lr")}
        assert len(set(axpy.values())) == 1 and min(axpy.values()) >= n
    # The hidden layers' GEMMs store relu(h) themselves: no ReLU pass over the SPAD.
    forward = [i for i, p in zip(ins, core.phases) if i.op == Opcode.GEMM and p == "forward"]
    assert [i.relu for i in forward] == [1] * (n - 1) + [0]
    assert all(i.relu == 0 for i in ins if i.op == Opcode.GEMM and i not in forward)
    assert vops[(VecOp.MAXS, SCALAR_REGS["zero"])] == 0
    assert vops[(VecOp.RELUD, 0)] >= n - 1
    # Transposes (the deltas, batch-major) pass through MemA: lda with trans, then sta; the
    # GEMMs with A row-major (the backward's W^T, the update's input) load it themselves.
    for a, b in zip(ins, ins[1:]):
        if a.op == Opcode.LDA:
            assert a.trans and (b.op, b.trans) == (Opcode.STA, 0), (a.text(), b.text())
    assert any(i.op == Opcode.STA for i in ins)
    assert not any(i.op == Opcode.GEMM and i.a_mema for i in ins)
    loaded = Counter(p for i, p in zip(ins, core.phases) if i.op == Opcode.GEMM and i.a_rows)
    assert loaded == {"delta": n - 1, "update": n - 1}      # layer 0's input is batch-major
    assert not any(i.op in (Opcode.RING, Opcode.GEMV, Opcode.GER) for i in ins)
    assert ins[-1].op == Opcode.HALT and core.k_chunk == TINY.memb_words // 2


@pytest.mark.parametrize("momentum, wd", [(0.9, 0.01), (0.9, 0.0), (0.0, 0.01)])
@pytest.mark.parametrize("cores", [1, 2])
def test_the_optimiser_moves_each_vector_once_per_step(momentum, wd, cores):
    # One pass through MemB per chunk: [W | b] and its momentum are loaded once and stored
    # once, the gradient (scratch, written by the update's GEMM) loaded once, never stored.
    graph = TrainingGraph(SIZES, algorithm="mbgd", batch=3,
                          optimizer=Optimizer(lr=0.1, momentum=momentum, weight_decay=wd))
    for core in compile_training(graph, ROOMY.replace(cores=cores)).cores.values():
        ins = [decode(w) for w in core.program]
        gradient = next(i.c for i, p in zip(ins, core.phases)
                        if i.op == Opcode.GEMM and p == "update")
        for t in core.tensors:
            if t.name[0] not in "PM":
                continue
            words = t.cols * t.ld
            for op in (Opcode.LDV, Opcode.STV):
                moved = sum(i.len for i in ins if i.op == op and t.addr <= i.spad < t.addr + words)
                assert moved == words, (t.name, op)
        scratch = range(gradient, gradient + max(t.cols * t.ld for t in core.tensors
                                                 if t.name[0] == "P"))
        assert not any(i.op == Opcode.STV and i.spad in scratch for i in ins)
        assert any(i.op == Opcode.LDV and i.spad == gradient for i in ins)


def test_one_core_model_macs_per_phase():
    graph = graph_of(opt="both")
    report = mbgd_core_program(graph, TINY).local_phase_report(TINY)
    batch = graph.batch
    assert report["forward"]["macs"] == batch * sum(o * (i + 1) for o, i in graph.layers)
    assert report["delta"]["macs"] == batch * sum(o * i for o, i in graph.layers[1:])
    assert report["update"]["macs"] == batch * sum(o * (i + 1) for o, i in graph.layers)
    assert report["loss"]["macs"] == report["transfer"]["macs"] == 0
    assert report["ring"] == {"cycles": 0, "macs": 0}


def spad_regions(core, graph, cfg):
    """Parameter tensors and host buffers as ``(name, first word, words)`` in the SPAD."""
    io, batch = core.io, graph.batch
    out = []
    for t in core.tensors:
        assert t.kind == "spad" and t.ld % cfg.nr == 0 and t.addr % cfg.nr == 0, t
        stored_rows = t.cols if t.transposed else t.rows
        assert t.ld >= (t.rows if t.transposed else t.cols), t
        out.append((t.name, t.addr, stored_rows * t.ld))
    i0 = graph.sizes[0]
    out += [("inputs_t", io["inputs_t"], (i0 + 1) * io["ld_batch"]),
            ("inputs", io["inputs"], batch * io["ld_inputs"]),
            ("targets", io["targets"], batch * io["ld_classes"]),
            ("logits", io["logits"], batch * io["ld_classes"])]
    return out


@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize("cfg", [TINY, preset("small")], ids=["tiny", "small"])
def test_one_core_tensors_and_io_fit_the_spad(cfg, opt):
    graph = graph_of(opt=opt, batch=5)
    core = mbgd_core_program(graph, cfg)
    nr, batch = cfg.nr, graph.batch
    names = {f"P{k}" for k in range(len(graph.layers))}
    if opt == "both":
        names |= {f"M{k}" for k in range(len(graph.layers))}
    assert {t.name for t in core.tensors} == names
    for t in core.tensors:
        o, i = graph.layers[int(t.name[1:])]
        assert (t.rows, t.cols) == (o, i + 1) and t.transposed, t
    io = core.io
    assert (io["ld_batch"], io["ld_inputs"], io["ld_classes"]) == \
        (ceil_to(batch, nr), ceil_to(graph.sizes[0] + 1, nr), ceil_to(graph.sizes[-1], nr))
    placed = spad_regions(core, graph, cfg)
    for name, base, words in placed:
        assert base % nr == 0 and base + words <= cfg.spad_words, name
    ordered = sorted(placed, key=lambda r: r[1])
    for (a, base, words), (b, nxt, _) in zip(ordered, ordered[1:]):
        assert base + words <= nxt, (a, b)
    # A row of ones under every [a; 1]: the first one is the row below the inputs.
    ldb = io["ld_batch"]
    assert len(core.constants) == len(graph.layers)
    assert core.constants[0] == (io["inputs_t"] + graph.sizes[0] * ldb, 1, batch, ldb, "one")
    for addr, rows, cols, ld, value in core.constants:
        assert (rows, cols, ld, value) == (1, batch, ldb, "one")
        assert addr + ld <= cfg.spad_words
    assert failed_checks(core.program, cfg) == []


def test_a_spad_too_small_names_the_words_and_the_fix():
    # (9, 7, 5), batch 8 on nr = 2 (ld 8 for the batch, 8 and 6 for [W | b]^T rows):
    # layer 0: [W0|b0]^T 80, [x; 1] 80, [x | 1] 80, d0 64 + 56 (its GEMM stores relu(h0)
    # into [a0; 1]: no h0);
    # layer 1: [W1|b1]^T 48, [a0; 1] 64, logits 48, d1 48 + 40;
    # W^T d (7 hidden) 56, targets 48: 712 words. (No transposed copy of a panel and no
    # batch-major input above the first layer: the GEMMs load those operands into MemA.)
    graph = TrainingGraph((9, 7, 5), algorithm="mbgd", batch=8)
    with pytest.raises(CompileError, match=r"^the SPAD needs 712 words but the config has 256 "
                                           r"\(largest: .*\); use a config with more "
                                           r"spad_words or a smaller batch or model$"):
        mbgd_core_program(graph, TINY.replace(spad_words=256))
    mbgd_core_program(graph, TINY.replace(spad_words=768))


@pytest.mark.parametrize("cores", [2, 3])
def test_ring_cores_share_one_spad_layout_and_run_collectives(cores):
    graph = graph_of("mse", "both", sizes=(10, 9, 7, 5), batch=4)
    cfg = TINY.replace(cores=cores)
    compiled = compile_training(graph, cfg)
    assert sorted(compiled.cores) == list(range(cores))
    one = mbgd_core_program(graph, TINY).local_phase_report(TINY)
    layout = None
    for k, core in compiled.cores.items():
        assert core == mbgd_ring_core_program(graph, cfg, k, compiled.segments, compiled.blocks,
                                              compiled.splits)
        rings = [decode(w) for w in core.program if decode(w).op == Opcode.RING]
        assert rings and any(r.slen for r in rings) and any(r.rlen for r in rings)
        assert failed_checks(core.program, cfg) == []
        mine = (core.io, core.constants, {t.name: (t.addr, t.ld) for t in core.tensors})
        assert layout is None or mine == layout, f"core {k}"
        layout = mine
    # Each core holds its block of output rows; the blocks partition every layer's outputs.
    # The output layer (5 outputs of 7 inputs) is split by columns: each core's block matches
    # its rows of the layer below, the last also holds the bias column.
    assert compiled.splits == ["rows", "rows", "columns"]
    for index, (o, i) in enumerate(graph.layers):
        columns = compiled.splits[index] == "columns"
        parts = compiled.blocks[index]
        assert parts[0][0] == 0 and parts[-1][1] == (i if columns else o)
        assert all(a < b == c for (a, b), (c, _) in zip(parts, parts[1:]))
        for k, core in compiled.cores.items():
            p = next(t for t in core.tensors if t.name == f"P{index}")
            lo, hi = parts[compiled.segments[index].index(k)]
            want = (o, hi - lo + (k == cores - 1)) if columns else (hi - lo, i + 1)
            assert (p.rows, p.cols, p.bias) == (*want, not columns or k == cores - 1)
    reports = [core.local_phase_report(cfg) for core in compiled.cores.values()]
    for phase in ("forward", "delta", "update"):
        assert sum(r[phase]["macs"] for r in reports) == one[phase]["macs"], phase


@pytest.mark.parametrize("cores, sizes, batch, loss, momentum, wd", [
    (2, (8, 6, 4), 4, "softmax_ce", 0.0, 0.01),
    (3, (10, 7, 5), 2, "mse", 0.9, 0.0),
], ids=["2-cores-decay", "3-cores-momentum"])
def test_ring_training_is_bit_identical_to_golden(cores, sizes, batch, loss, momentum, wd,
                                                  rng):
    cfg = TINY.replace(cores=cores)
    hw, run_ = train_and_compare(cfg, sizes, "mbgd", batch, loss, momentum, wd, steps=2,
                                 device=RingIsaDevice(cfg), rng=rng)
    assert hw.compiled.split == "rows" and min(run_.ring_cycles) > 0


@pytest.mark.parametrize("commands", [2, 16])
def test_the_update_runs_beside_the_ring_sums_of_the_layer_below(commands, rng):
    """A hidden layer's update follows the posts of the ring sums of the E it passes down,
    in SPAD regions none of those RINGs use (so ring_waits lets it run beside them); with
    more posts than the engine's queue takes, its first load sits after the ones it takes.
    Bit for bit against golden, cycles against the model, on 4 tiny cores (a SPAD whose
    lower region holds everything but E and the batch-major input)."""
    cfg = TINY.replace(cores=4, ring_commands=commands, spad_words=8192)
    sizes = (10, 9, 8, 7, 6)
    hw, run_ = train_and_compare(cfg, sizes, "mbgd", 3, "mse", 0.0, 0.0, steps=2,
                                 device=RingIsaDevice(cfg), rng=rng)
    assert run_.cycles == hw.predicted
    core = hw.compiled.cores[0]
    ops = [unpack(w) for w in core.program]
    plans = [kernel_plan(op, SimpleNamespace(**f), cfg) for op, f in ops]
    beside = 0
    for k, phase in enumerate(core.phases):
        if phase != "update" or ops[k][0] != Opcode.GEMM:
            continue
        # Right after the delta GEMM that formed E: the posts of E's sums and its own load.
        delta = max(j for j in range(k) if core.phases[j] == "delta"
                    and ops[j][0] == Opcode.GEMM)
        between = [ops[j][0] for j in range(delta + 1, k)]
        rings = [j for j in range(delta + 1, k) if ops[j][0] == Opcode.RING]
        if not rings or not set(between) <= {Opcode.RING}:
            continue
        beside += 1
        ring_regions = 0
        for j in rings:
            ring_regions |= plans[j].spad_regions
        assert not plans[k].spad_regions & ring_regions, k
        if ops[k][1]["a_mema"]:
            # Its input was loaded in the forward (test_the_forward_loads_tiles_...).
            assert ops[k][1]["mema"] > 0, k
        else:
            # It loads its input itself (a_rows), in its first panel of C's columns alone.
            assert ops[k][1]["a_rows"] and ops[k][1]["n"] <= cfg.nr, k
        # It follows the posts the engine's queue takes; the rest follow it.
        after = next(j for j in range(k + 1, len(ops)) if ops[j][0] != Opcode.RING) - k - 1
        assert len(rings) == min(commands, len(rings) + after), (k, rings, after)
    assert beside == len(sizes) - 3     # the hidden layers above layer 0


@pytest.mark.parametrize("cores, commands", [(4, 16), (8, 2)])
def test_the_forward_loads_tiles_while_it_waits_for_a_gather(cores, commands, rng):
    """While the array waits for the all-gather of a layer's input it loads, into MemA
    above every other A block, the W^T of the layers that pass E down and the inputs gathered
    before (in the other SPAD region): each such GEMM of the backward then reads its tile
    there (a_mema at its base) with no load of its own. The loads sit between the gather's
    posts once the engine's queue is full (8 cores, a 2-entry queue) and use no region of its
    RINGs. Bit for bit against golden, cycles against the model."""
    cfg = TINY.replace(cores=cores, ring_commands=commands, spad_words=8192)
    sizes = (10, 9, 8, 7, 6)
    hw, run_ = train_and_compare(cfg, sizes, "mbgd", 3, "mse", 0.0, 0.0, steps=2,
                                 device=RingIsaDevice(cfg), rng=rng)
    assert run_.cycles == hw.predicted
    compiled = hw.compiled
    for number, core in compiled.cores.items():
        has = [hi > lo for lo, hi in (parts[seg.index(number)] for parts, seg in
                                      zip(compiled.blocks, compiled.segments))]
        ops = [unpack(w) for w in core.program]
        plans = [kernel_plan(op, SimpleNamespace(**f), cfg) for op, f in ops]
        backward = core.phases.index("delta")
        forward_gemms = [j for j in range(backward) if ops[j][0] == Opcode.GEMM]
        early, interleaved = {}, 0
        for g0, g1 in zip(forward_gemms, forward_gemms[1:]):
            rings = [j for j in range(g0, g1) if ops[j][0] == Opcode.RING]
            loads = [j for j in range(g0, g1) if ops[j][0] == Opcode.LDA]
            regions = 0
            for j in rings:
                regions |= plans[j].spad_regions
            for j in loads:
                assert rings and j > rings[0] and not plans[j].spad_regions & regions, j
                early.setdefault(ops[j][1]["mema"], []).append(ops[j][1])
            interleaved += sum(rings[min(commands, len(rings)) - 1] < j < rings[-1]
                               for j in loads)
        tiles = [(k, f) for k, (op, f) in enumerate(ops)
                 if k > backward and op == Opcode.GEMM and f["a_mema"] and f["mema"]]
        # The W^T of layers 2 and 1 and layer 1's input (layer 2's is gathered last), where
        # the core has rows of the layer.
        assert len(tiles) == has[2] + 2 * has[1], [f for _, f in tiles]
        for k, f in tiles:
            assert ops[k - 1][0] != Opcode.LDA or ops[k - 1][1]["mema"] != f["mema"], k
            ldm = -(-f["k"] // cfg.nr)
            pieces = [p for p in sum(early.values(), []) if
                      f["mema"] <= p["mema"] < f["mema"] + -(-f["m"] // cfg.nr) * ldm]
            assert sum(p["rows"] for p in pieces) == f["m"] and \
                all(p["cols"] == f["k"] and p["ldm"] == ldm for p in pieces), (k, pieces)
        if cores == 8:
            assert interleaved > 0


@pytest.mark.parametrize("algorithm, sizes", [("mbgd", (6, 8, 8, 8, 4)),
                                               ("dfa", (6, 12, 12, 12, 4))])
def test_a_forward_reads_its_panel_from_a_tile_loaded_in_a_gather_wait(algorithm, sizes, rng,
                                                                       monkeypatch):
    """With time left in a gather's wait (a batch of 16 on 4 tiny cores) the array also loads
    the next forwards' [W | b] (lda with trans from the panel) into MemA tiles, and those
    GEMMs read them there (a_mema at the tile) instead of streaming the panel: bit for bit
    against golden, cycles against the model, and fewer cycles than without those tiles."""
    cfg = TINY.replace(cores=4)
    hw, run_ = train_and_compare(cfg, sizes, algorithm, 16, "mse", 0.0, 0.0, steps=2,
                                 device=RingIsaDevice(cfg), rng=rng)
    assert run_.cycles == hw.predicted
    for core in hw.compiled.cores.values():
        ops = [unpack(w) for w in core.program]
        plans = [kernel_plan(op, SimpleNamespace(**f), cfg) for op, f in ops]
        forward = [k for k, ph in enumerate(core.phases) if ph == "forward"]
        tiles = [k for k in forward if ops[k][0] == Opcode.GEMM and ops[k][1]["a_mema"]]
        assert tiles, "no forward GEMM on a tile"
        for k in tiles:
            f = ops[k][1]
            ldm = -(-f["k"] // cfg.nr)
            loads = [j for j in range(k) if ops[j][0] == Opcode.LDA and ops[j][1]["trans"]
                     and f["mema"] <= ops[j][1]["mema"] < f["mema"] + -(-f["m"] // cfg.nr) * ldm]
            assert sum(ops[j][1]["rows"] for j in loads) == f["m"], (k, loads)
            for j in loads:
                # After a gather's first post, in no region of the RINGs posted before it.
                rings = [r for r in range(j) if ops[r][0] == Opcode.RING]
                assert rings and ops[j][1]["cols"] == f["k"]
                posted = rings[-1]
                while posted > 0 and ops[posted - 1][0] in (Opcode.RING, Opcode.LDA):
                    posted -= 1
                regions = 0
                for r in range(posted, j):
                    if ops[r][0] == Opcode.RING:
                        regions |= plans[r].spad_regions
                assert not plans[j].spad_regions & regions, j
    # Without those tiles (the forward streaming every panel) the step takes longer.
    tiles_of = mbgd_compiler._preload_tiles
    monkeypatch.setattr(mbgd_compiler, "_preload_tiles", lambda *a, **k: [
        t for t in tiles_of(*a, **k) if t[0] != "f"])
    streamed = compile_training(hw.compiled.graph, cfg)
    assert streamed.step_cycles > hw.compiled.step_cycles


def test_an_update_on_a_tile_posts_the_rest_of_e_after_its_first_panel(rng):
    """Layer 1's update reads its input from a tile, so it has no load to put after the posts
    of E's sums that the engine's (one-entry) queue takes: its first panel of C's columns goes
    there instead, the rest of the update after the other posts (each B panel streamed once:
    the same sums, the same SPAD and MemB words). Bit for bit against golden, cycles against
    the model, on 4 tiny cores with 1,024 MemA words."""
    cfg = TINY.replace(cores=4, ring_commands=1, spad_words=8192, mema_words=1024)
    hw, run_ = train_and_compare(cfg, (10, 32, 32, 32, 6), "mbgd", 16, "mse", 0.0, 0.0,
                                 steps=2, device=RingIsaDevice(cfg), rng=rng)
    assert run_.cycles == hw.predicted
    for number, core in hw.compiled.cores.items():
        ops = [unpack(w) for w in core.program]
        at = [k for k, (op, f) in enumerate(ops) if core.phases[k] == "update"
              and op == Opcode.GEMM and f["a_mema"] and f["mema"]]
        first, rest = (ops[k][1] for k in at)
        assert first["n"] == cfg.nr and rest["n"] == 8 - cfg.nr, at    # 8 rows per core
        assert (rest["c"] - first["c"], rest["b"] - first["b"]) == (cfg.nr, cfg.nr)
        # After the first post of E's sums (the queue's one entry), before the others.
        rings = [k for k in range(at[0] - 1, at[1]) if ops[k][0] == Opcode.RING]
        assert ops[at[0] - 1][0] == Opcode.RING and len(rings) > 1, (at, rings)


def test_an_input_without_room_for_a_tile_stays_below_the_sums_of_e():
    """With tiny's 256 MemA words layer 1's input (25 x 8) has no room for a tile: it stays in
    the SPAD's lower region, where its update's load runs beside the ring's sums of E at the
    top, and no tile is loaded (the W^T tiles would need a gather in the upper region)."""
    cfg = TINY.replace(cores=4, spad_words=8192)
    compiled = compile_training(TrainingGraph((64, 24, 24, 24, 10), algorithm="mbgd",
                                              batch=8), cfg)
    for core in compiled.cores.values():
        ops = [unpack(w) for w in core.program]
        gemms = [f for (op, f), phase in zip(ops, core.phases)
                 if op == Opcode.GEMM and phase == "forward"]
        x1 = gemms[1]["b"]                                  # layer 1's forward reads [a0; 1]
        assert spad_span_regions(cfg, x1, 25 * 8) == 0b01, x1
        assert not any(op == Opcode.GEMM and f["a_mema"] and f["mema"] for op, f in ops)


def _roomy_and_tight(algorithm, sizes, batch, rng):
    """The step compiled with room to spare and trained (3 steps, bit for bit against golden,
    cycles against the model) on 4 tiny cores."""
    cfg = TINY.replace(cores=4)
    roomy = compile_training(TrainingGraph(sizes, algorithm=algorithm, batch=batch, loss="mse"),
                             cfg.replace(spad_words=8192))
    hw, run_ = train_and_compare(cfg, sizes, algorithm, batch, "mse", 0.9, 0.0, steps=3,
                                 device=RingIsaDevice(cfg), rng=rng)
    assert run_.cycles == hw.predicted
    return cfg, roomy, hw.compiled


def _count(compiled, op):
    return sum(decode(w).op == op for w in compiled.cores[0].program)


@pytest.mark.parametrize("algorithm", ["mbgd", "dfa"])
def test_layer_0_loads_its_input_when_the_batch_major_copy_does_not_fit(algorithm, rng):
    # 20-15-26-14-5, batch 20 on 4 tiny cores (momentum 0.9): the step with the host's
    # batch-major copy of [x | 1] needs 4,288 (dfa 4,368) of the SPAD's 4,096 words, without
    # it 3,848 (3,928).
    # Layer 0's update then loads [x; 1] into MemA; every gathered input is still kept for
    # the whole step, so no input is gathered again.
    cfg, roomy, tight = _roomy_and_tight(algorithm, (20, 15, 26, 14, 5), 20, rng)
    assert roomy.cores[0].io["inputs"] is not None and tight.cores[0].io["inputs"] is None
    # The reports say so (compile's and train's first line, compile --json's spad_layout).
    assert (roomy.cores[0].spad_layout, tight.cores[0].spad_layout) == (
        (), ("layer 0's update loading [x; 1] into MemA",))
    assert tight.placement_text().endswith(
        "(rows split, the output layer by columns, layer 0's update loading [x; 1] into MemA)")
    assert _count(tight, Opcode.RING) == _count(roomy, Opcode.RING)
    # Loads of [x; 1] (features x batch, sizes[0] + 1 rows) in the step: the update's GEMM
    # with a_rows.
    for compiled, count in ((roomy, 0), (tight, 1)):
        core = compiled.cores[0]
        x0, words = core.io["inputs_t"], (20 + 1) * core.io["ld_batch"]
        loads = [f for op, f in map(unpack, core.program)
                 if op == Opcode.GEMM and f["a_rows"] and x0 <= f["a"] < x0 + words]
        assert len(loads) == count and all(f["m"] == 20 + 1 for f in loads), loads


@pytest.mark.parametrize("algorithm, layout, again", [
    ("mbgd", " and gathered again for their updates", 2),
    ("dfa", ", [a0; 1] kept in MemA for its update and the others gathered again", 1)],
    ids=["mbgd", "dfa-tile"])
def test_inputs_that_do_not_fit_take_turns_and_are_gathered_again(algorithm, layout, again,
                                                                  rng):
    # 20-18-28-14-5, batch 20 on 4 tiny cores (momentum 0.9): every layer's gathered input
    # kept for the whole step needs more than the SPAD's 4,096 words even without the
    # batch-major [x | 1] (4,180; dfa 4,270); the inputs above layer 0 then take turns in two
    # buffers (which also hold E; 3,520 and 3,610 words) and each is gathered again for its
    # update, unless MemA keeps it from the forward (a tile loaded while the other turn is
    # gathered): tiny's 256 MemA words hold [a0; 1] (21 x 20) beside DFA's GEMMs, not beside
    # MBGD's W^T tiles.
    sizes, batch = (20, 18, 28, 14, 5), 20
    cfg, roomy, tight = _roomy_and_tight(algorithm, sizes, batch, rng)
    assert roomy.cores[0].io["inputs"] is not None and tight.cores[0].io["inputs"] is None
    assert roomy.cores[0].spad_layout == () and tight.cores[0].spad_layout[-1] == (
        "the inputs above layer 0 taking turns in two SPAD buffers" + layout)
    rings = [_count(c, Opcode.RING) for c in (roomy, tight)]
    assert rings[1] - rings[0] == again * (cfg.cores - 1)       # those gathered again
    # A kept input is read by its update at its tile (a_mema, above MemA's base), which the
    # forward loaded (before the loss); an input gathered again is loaded at MemA's base
    # right before its update.
    core = tight.cores[0]
    ops = [unpack(w) for w in core.program]
    tiles = [f["mema"] for (op, f), phase in zip(ops, core.phases)
             if op == Opcode.GEMM and phase == "update" and f["a_mema"] and f["mema"]]
    assert len(tiles) == (2 - again), tiles
    loss = core.phases.index("loss")
    for tile in tiles:
        assert any(op == Opcode.LDA and f["mema"] == tile for op, f in ops[:loss]), tile


def test_the_compact_layout_writes_d_over_h_and_the_output_layer_has_no_d():
    """N1's network at b = 50 on paper-n3 (8 cores of 16 x 16; the batch padded to 64) fits
    the SPAD only in the compact layout, where each hidden layer's ``d`` takes the place of its
    ``h`` (h0..h2: a core's 63 of 500 rows x 64 words) and the output layer, whose deltas are
    the output gradient, has no ``d`` buffer (63 x 64 before): 264,224 - 4 x 4,032 = 248,096
    of the 262,144 words (bit for bit in the turns tests above and on the RTL)."""
    graph = TrainingGraph((784, 500, 500, 500, 10), algorithm="mbgd", batch=50,
                          optimizer=Optimizer(lr=0.1, momentum=0.0, weight_decay=0.0))
    table = fit_table(graph, preset("paper-n3"))
    spad = next(m for m in table["memories"] if m["memory"] == "SPAD")
    assert table["fits"] and spad["needed"] == 264_224 - 4 * 63 * 64, table


def test_one_core_compiles_to_the_one_core_program():
    graph = graph_of("mse", "both")
    assert compile_training(graph, TINY).cores == {0: mbgd_core_program(graph, TINY)}


@pytest.mark.parametrize("cores", [1, 2])
def test_dfa_batches_read_the_feedback_rows_instead_of_the_weights_above(cores):
    # Each hidden layer's E is one GEMM of its F panel with the output delta, never a panel
    # of W. One core: F_l whole; on a ring the output layer is split by columns and each core
    # holds the columns of F_l that match its rows of layer l, so its rows of E_l are whole.
    sizes, batch = (9, 8, 6, 5), 3
    graph = TrainingGraph(sizes, algorithm="dfa", batch=batch)
    cfg = TINY.replace(cores=cores)
    compiled = compile_training(graph, cfg)
    assert compiled.splits[-1] == ("columns" if cores > 1 else "rows")
    hidden = sizes[1:-1]
    classes = sizes[-1]
    for k, core in compiled.cores.items():
        by_name = {t.name: t for t in core.tensors}
        f = [by_name[f"F{index}"] for index in range(len(hidden))]
        own = [hi - lo for lo, hi in (compiled.blocks[index][k] for index in range(len(hidden)))]
        assert [(t.rows, t.cols, t.kind) for t in f] == [(classes, r, "spad") for r in own]
        ins = [decode(w) for w in core.program]
        deltas = [i for i, p in zip(ins, core.phases) if i.op == Opcode.GEMM and p == "delta"]
        assert [(i.a, i.m, i.n, i.k) for i in deltas] == [
            (t.addr, r, batch, classes) for t, r in zip(f[::-1], own[::-1])]
        weights = {t.addr for t in core.tensors if t.name.startswith("P")}
        assert not any(i.a in weights for i in deltas)
        assert core.local_phase_report(cfg)["delta"]["macs"] == classes * sum(own) * batch
        rings = [i for i, p in zip(ins, core.phases) if i.op == Opcode.RING]
        # The ring carries the hidden inputs above the first (all-gathers), the logits
        # (reduce-scatter) and the output gradient (all-gather): no sum of any E.
        assert len(rings) == (len(hidden) - 1 + 2) * (cores - 1)


@pytest.mark.parametrize("algorithm, sizes, batch, loss, momentum", [
    ("mbgd", (9, 2, 3), 2, "softmax_ce", 0.0),      # 3 output rows, 2 samples on 4 cores
    ("mbgd", (8, 3, 6, 5), 3, "mse", 0.9),          # a hidden layer of 3 on 4 cores
    ("mbgd", (8, 3, 2), 3, "mse", 0.9),             # the output's 3 + 1 columns on 4 cores
    ("dfa", (9, 2, 3), 3, "softmax_ce", 0.0),       # 3 rows of F on 4 cores
    ("dfa", (9, 3, 2), 3, "softmax_ce", 0.0),       # F's 3 columns, the output's 3 + 1
], ids=["output", "hidden", "columns", "dfa", "dfa-columns"])
def test_more_cores_than_rows_leaves_cores_idle_bit_exact(algorithm, sizes, batch, loss,
                                                          momentum, rng):
    # A core without rows of a layer skips its GEMMs, transposes and update, and adds +0
    # into the ring's sum of E; golden sums the same +0 (a -0 partial would differ). Without
    # columns of the output layer, it holds no block of it and adds +0 into the logits.
    cfg = TINY.replace(cores=4)
    graph = TrainingGraph(sizes, algorithm=algorithm, batch=batch)
    compiled = compile_training(graph, cfg)
    idle = [(index, k) for index, parts in enumerate(compiled.blocks)
            for k, (lo, hi) in enumerate(parts) if hi == lo]
    assert idle
    def update_gemms(k):
        core = compiled.cores[k]
        return sum(decode(w).op == Opcode.GEMM and ph == "update"
                   for w, ph in zip(core.program, core.phases))

    for index, k in idle:
        p = [t for t in compiled.cores[k].tensors if t.name == f"P{index}"]
        if compiled.splits[index] == "columns":
            assert p == [] and k < cfg.cores - 1         # the last core holds the bias
        else:
            assert p[0].rows == 0
        assert update_gemms(k) == len(sizes) - 1 - sum(i == k for _, i in idle)
    hw, run_ = train_and_compare(cfg, sizes, algorithm, batch, loss, momentum, 0.0, steps=3,
                                 device=RingIsaDevice(cfg), rng=rng)
    assert run_.cycles == hw.predicted


@pytest.mark.parametrize("sizes, algorithm, where", [
    ((12, 12, 16, 31, 5), "mbgd", 0),
    ((12, 12, 16, 31, 5), "dfa", 0),
    ((20, 18, 24, 31, 5), "mbgd", 3),       # the compact layout
    ((20, 18, 24, 31, 5), "dfa", 3),
], ids=["mbgd", "dfa", "mbgd-compact", "dfa-compact"])
def test_the_output_bias_goes_to_a_core_whose_row_groups_have_room(sizes, algorithm, where,
                                                                   rng):
    # The last hidden layer's 31 rows on 4 tiny cores (8-row groups) are blocks of 7, 8, 8
    # and 8: the output layer's bias column, one more row of the first core's update GEMM,
    # costs it no row group, on the last core a second one. In the compact layout the
    # output layer's input is a turn buffer another input was gathered into: the bias stays
    # with the last core, whose ones row is the buffer's own. Trained bit for bit (3 steps).
    cfg, roomy, tight = _roomy_and_tight(algorithm, sizes, 20, rng)
    compact = any("taking turns" in note for note in tight.cores[0].spad_layout)
    assert compact == (where == 3) and tight.output_bias == where and roomy.output_bias == 0
    last = len(sizes) - 2
    group = cfg.nr * cfg.acc_lanes
    for k, core in tight.cores.items():
        lo, hi = tight.blocks[last][k]
        holds = k == where
        (panel,) = [t for t in core.tensors if t.name == f"P{last}"]
        assert (panel.bias, panel.cols) == (holds, hi - lo + holds)
        # The backward starts with the output layer's update: [a; 1]'s rows lo..hi (and the
        # ones row with the bias) against the output gradient.
        update = next(f for (op, f), p in zip(map(unpack, core.program), core.phases)
                      if op == Opcode.GEMM and p == "update")
        assert update["m"] == hi - lo + holds
        if holds and not compact:
            assert cdiv(hi - lo + 1, group) == cdiv(hi - lo, group)
            # The row after the block holds ones (a constant): the input's own is row 31.
            assert (update["a"] + (hi - lo) * update["lda"], 1, 20, update["lda"], "one") in \
                core.constants
        else:
            assert not any(c[0] == update["a"] + (hi - lo) * update["lda"] and c[4] == "one"
                           for c in core.constants) or hi == sizes[-2]


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_the_relu_derivative_reads_activations_loaded_while_the_loss_waits(momentum, rng):
    # 9-7-6-5, batch 3 on 2 tiny cores: each hidden layer's ReLU derivative reads the core's
    # rows of relu(h) from MemB, loaded between the loss's RING posts (the array waits for
    # the ring there), not in the backward; the optimiser's chains (momentum) would take all
    # of MemB, so a step with momentum loads them in the backward. Trained bit for bit.
    sizes = (9, 7, 6, 5)
    cfg = TINY.replace(cores=2)
    hw, _ = train_and_compare(cfg, sizes, "mbgd", 3, "softmax_ce", momentum, 0.0, steps=3,
                              device=RingIsaDevice(cfg), rng=rng)
    for k, core in hw.compiled.cores.items():
        ops = [unpack(w) for w in core.program]
        backward = next(i for i, p in enumerate(core.phases) if p in ("delta", "update"))
        reluds = [(i, f) for i, (op, f) in enumerate(ops)
                  if op == Opcode.VOP and f["fn"] == VecOp.RELUD.value]
        assert len(reluds) == len(sizes) - 2, k
        for i, f in reluds:
            loads = [j for j, (op, g) in enumerate(ops[:i])
                     if op == Opcode.LDV and g["memb"] == f["x"]]
            # The activation's load: the last one into x before the ReLU derivative.
            at = loads[-1]
            if momentum:
                assert at > backward, (k, at)
            else:
                assert at < backward and Opcode.RING in {ops[j][0] for j in range(at)}, (k, at)
                assert ops[at - 1][0] == Opcode.RING or ops[at - 1][0] == Opcode.LDV
                assert f["x"] + 1 <= cfg.memb_words and f["x"] > f["y"] and f["x"] > f["z"]
