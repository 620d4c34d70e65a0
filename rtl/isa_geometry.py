"""Kernel geometry: trip counts, stream lengths and memory footprints of every instruction.

Written once, for two kinds of numbers: the functions here take the operand fields either as
Python ints (the instruction-level simulator and the assembler use them to predict cycles and
check ranges) or as Amaranth values (the sequencer's decoder builds the same arithmetic in
hardware). Only ``+``, ``-``, ``*``, shifts, comparisons and :func:`vmax`/:func:`vmin`/
:func:`select` are used, which both kinds support. Divisors are powers of two.
"""

from __future__ import annotations

from dataclasses import dataclass

from .isa import Opcode, VecOp

__all__ = ["vmax", "vmin", "select", "cdiv", "log2", "Segment", "Check", "kernel_plan",
           "KernelPlan", "GemmPhase", "gemm_schedule", "ring_queue_depth"]


def _is_int(*values) -> bool:
    return all(isinstance(v, int) for v in values)


def select(cond, a, b):
    """Return ``a if cond else b`` for ints, ``Mux(cond, a, b)`` for Amaranth values."""
    if _is_int(cond, a, b) or isinstance(cond, bool):
        return a if cond else b
    from amaranth.hdl import Mux

    return Mux(cond, a, b)


def vmax(a, b):
    """Return the larger of ``a`` and ``b`` (ints or Amaranth values)."""
    return max(a, b) if _is_int(a, b) else select(a > b, a, b)


def vmin(a, b):
    """Return the smaller of ``a`` and ``b`` (ints or Amaranth values)."""
    return min(a, b) if _is_int(a, b) else select(a < b, a, b)


def log2(n: int) -> int:
    """Return ``log2(n)`` for a power of two."""
    assert n > 0 and n & (n - 1) == 0, n
    return n.bit_length() - 1


def cdiv(x, n: int):
    """Return ``ceil(x / n)`` for a power of two ``n``."""
    return (x + (n - 1)) >> log2(n)


@dataclass
class Segment:
    """A loop nest of a kernel's micro-op stream: ``top x outer x middle x inner`` cycles."""

    name: str
    top: object = 1
    outer: object = 1
    middle: object = 1
    inner: object = 1

    @property
    def cycles(self):
        """Cycles the segment lasts."""
        return self.top * self.outer * self.middle * self.inner


@dataclass
class Check:
    """One condition an instruction must meet, and the error cause if it does not."""

    ok: object
    cause: str
    what: str


@dataclass
class KernelPlan:
    """Segments of an instruction's micro-op stream, its checks and named quantities.

    ``schedule`` (ints only) replaces the segments for kernels with their own engine (GEMM).
    """

    segments: list
    checks: list
    values: dict
    schedule: object = None

    @property
    def stream_cycles(self):
        """Cycles of micro-ops (ints only)."""
        if self.schedule is not None:
            return self.schedule.cycles
        return sum(s.cycles for s in self.segments)


#: Micro-op steps of SMXCE's exp sequence per element, and of its reciprocal (one PE).
SMX_EXP_STEPS = 12
SMX_RECIP_STEPS = 8


def ring_queue_depth(cfg) -> int:
    """Entries of a ring engine's outgoing queue: one beat per cycle through the add pipeline
    (docs/multicore.md)."""
    return cfg.add_latency + 4


def _range(base, extent, size: int, cause: str, what: str) -> Check:
    # extent 0 never touches memory: it is always in range.
    return Check(select(extent == 0, 1, base + extent <= size), cause, what)


def _aligned(value, nr: int, what: str) -> Check:
    return Check((value & (nr - 1)) == 0, "BAD_SHAPE", f"{what} must be a multiple of nr")


def _positive(value, what: str) -> Check:
    return Check(value != 0, "BAD_SHAPE", f"{what} must be positive")


def kernel_plan(op: Opcode, f, cfg) -> KernelPlan:
    """Return the :class:`KernelPlan` of instruction ``op`` with operand fields ``f``.

    ``f`` gives attribute access to the fields (ints, or the decoder's Amaranth view). The
    segments are, in order, the loop nests the sequencer runs; docs/architecture.md describes
    the micro-ops of each.
    """
    nr = cfg.nr
    lacc, lchain = cfg.acc_lanes, cfg.chain_lanes
    delay = cfg.add_latency + 1
    wb = cfg.write_back_latency
    if op in (Opcode.NOP, Opcode.HALT, Opcode.SYNC, Opcode.SETS):
        return KernelPlan([], [], {})
    if op == Opcode.RING:
        send_rows, recv_rows = cdiv(f.slen, nr), cdiv(f.rlen, nr)
        checks = [
            Check(select(f.fwd, f.slen == 0, 1), "ILLEGAL_FIELD", "slen must be 0 with fwd"),
            _aligned(f.src, nr, "src"), _aligned(f.dst, nr, "dst"),
            _range(f.src, send_rows * nr, cfg.spad_words, "SPAD_RANGE", "src"),
            _range(f.dst, recv_rows * nr, cfg.spad_words, "SPAD_RANGE", "dst"),
        ]
        # The ring engine times itself (docs/multicore.md): no micro-op segments.
        return KernelPlan([], checks, {"send_rows": send_rows, "recv_rows": recv_rows})
    if op == Opcode.RDCNT:
        words = cdiv(64, cfg.word_width)
        return KernelPlan([Segment("store", inner=words)],
                          [_range(f.spad, words, cfg.spad_words, "SPAD_RANGE", "spad")],
                          {"words": words})
    if op in (Opcode.LDV, Opcode.STV, Opcode.BCAST):
        rows = cdiv(f.len, nr)
        if op == Opcode.BCAST:
            checks = [_positive(f.len, "len"),
                      _range(f.src, rows, cfg.memb_words, "MEMB_RANGE", "src"),
                      _range(f.dst, rows, cfg.memb_words, "MEMB_RANGE", "dst"),
                      Check(f.layout != 0, "ILLEGAL_FIELD", "layout must be colrep or rowrep")]
        else:
            checks = [_positive(f.len, "len"), _aligned(f.spad, nr, "spad"),
                      _range(f.spad, rows * nr, cfg.spad_words, "SPAD_RANGE", "spad"),
                      _range(f.memb, rows, cfg.memb_words, "MEMB_RANGE", "memb")]
        checks.append(Check(f.layout != 3, "ILLEGAL_FIELD", "layout must be diag, colrep or "
                                                            "rowrep"))
        return KernelPlan([Segment("rows", inner=rows)], checks, {"rows": rows})
    if op in (Opcode.LDA, Opcode.STA):
        tile_rows, tile_chunks = cdiv(f.rows, nr), cdiv(f.cols, nr)
        # trans: the SPAD holds the transpose (cols x rows), one SPAD row per tile column.
        spad_rows = select(f.trans, f.cols, f.rows)
        spad_chunks = select(f.trans, cdiv(f.rows, nr), tile_chunks)
        spad_width = select(f.trans, f.rows, f.cols)
        checks = [
            _positive(f.rows, "rows"), _positive(f.cols, "cols"),
            _aligned(f.spad, nr, "spad"), _aligned(f.lds, nr, "lds"),
            Check(f.lds >= spad_width, "BAD_SHAPE", "lds must cover a SPAD row"),
            Check(f.ldm >= tile_chunks, "BAD_SHAPE", "ldm must be >= ceil(cols / nr)"),
            _range(f.spad, (spad_rows - 1) * f.lds + spad_chunks * nr, cfg.spad_words,
                   "SPAD_RANGE", "spad"),
            _range(f.mema, (tile_rows - 1) * f.ldm + tile_chunks, cfg.mema_words,
                   "MEMA_RANGE", "mema"),
        ]
        return KernelPlan([Segment("rows", middle=spad_rows, inner=spad_chunks)], checks,
                          {"spad_rows": spad_rows, "spad_chunks": spad_chunks})
    if op in (Opcode.GEMV, Opcode.GEMVT):
        m_loc, k_loc = cdiv(f.rows, nr), cdiv(f.cols, nr)
        out_loc, red_loc = (m_loc, k_loc) if op == Opcode.GEMV else (k_loc, m_loc)
        groups = cdiv(out_loc, lacc)
        out_field, in_field = ("y", "x") if op == Opcode.GEMV else ("z", "d")
        in_loc = k_loc if op == Opcode.GEMV else m_loc
        checks = [
            _positive(f.rows, "rows"), _positive(f.cols, "cols"),
            Check(f.ldw >= k_loc, "BAD_SHAPE", "ldw must be >= ceil(cols / nr)"),
            _range(f.w, (m_loc - 1) * f.ldw + k_loc, cfg.mema_words, "MEMA_RANGE", "w"),
            _range(getattr(f, in_field), in_loc, cfg.memb_words, "MEMB_RANGE", in_field),
            _range(f.psum, out_loc, cfg.memb_words, "MEMB_RANGE", "psum"),
            _range(getattr(f, out_field), out_loc, cfg.memb_words, "MEMB_RANGE", out_field),
        ]
        segments = [Segment("partial", outer=groups, middle=red_loc, inner=lacc),
                    Segment("gap", inner=wb),
                    Segment("chain", inner=out_loc + (nr - 1) * delay)]
        return KernelPlan(segments, checks, {"m_loc": m_loc, "k_loc": k_loc,
                                             "out_loc": out_loc, "red_loc": red_loc})
    if op == Opcode.GER:
        m_loc, k_loc = cdiv(f.rows, nr), cdiv(f.cols, nr)
        # g = u v; load W; [g += wd W]; [m = g + mu m]; W += alpha g (or m); [store m].
        steps = 3 + f.use_wd + 2 * f.use_mom
        checks = [
            _positive(f.rows, "rows"), _positive(f.cols, "cols"),
            Check(f.ldw >= k_loc, "BAD_SHAPE", "ldw must be >= ceil(cols / nr)"),
            _range(f.w, (m_loc - 1) * f.ldw + k_loc, cfg.mema_words, "MEMA_RANGE", "w"),
            _range(f.mom, select(f.use_mom, (m_loc - 1) * f.ldw + k_loc, 0), cfg.mema_words,
                   "MEMA_RANGE", "mom"),
            _range(f.u, m_loc, cfg.memb_words, "MEMB_RANGE", "u"),
            _range(f.v, k_loc, cfg.memb_words, "MEMB_RANGE", "v"),
        ]
        segments = [Segment("update", top=m_loc, outer=cdiv(k_loc, lchain), middle=steps,
                            inner=lchain)]
        return KernelPlan(segments, checks, {"m_loc": m_loc, "k_loc": k_loc, "steps": steps})
    if op == Opcode.VOP:
        per_pe = cdiv(f.len, nr)
        # One-input functions stream one element per cycle. Two-input ones first move y into
        # an accumulator slot (MemB's two ports cannot serve two reads and a write-back in one
        # cycle), in a barrel over `lchain` elements; mseg then scales in a third step.
        single = (f.fn == VecOp.COPY.value) | (f.fn == VecOp.SCALE.value) \
            | (f.fn == VecOp.MAXS.value)
        steps = select(single, 1, select(f.fn == VecOp.MSEG.value, 3, 2))
        checks = [
            Check(f.fn <= VecOp.MSEG.value, "ILLEGAL_FIELD", "fn is not a VecOp"),
            _positive(f.len, "len"),
            Check(f.layout != 3, "ILLEGAL_FIELD", "layout must be diag, colrep or rowrep"),
            _range(f.z, per_pe, cfg.memb_words, "MEMB_RANGE", "z"),
            _range(f.x, per_pe, cfg.memb_words, "MEMB_RANGE", "x"),
            _range(f.y, per_pe, cfg.memb_words, "MEMB_RANGE", "y"),
        ]
        segments = [Segment("elements", outer=select(single, per_pe, cdiv(per_pe, lchain)),
                            middle=steps, inner=select(single, 1, lchain))]
        return KernelPlan(segments, checks, {"per_pe": per_pe})
    if op == Opcode.GEMM:
        return _gemm_plan(f, cfg)
    if op == Opcode.SMXCE:
        per_pe = cdiv(f.len, nr)
        groups = cdiv(per_pe, lchain)
        chain = (nr - 1) * delay + 1
        checks = [
            _positive(f.len, "len"),
            _range(f.x, per_pe, cfg.memb_words, "MEMB_RANGE", "x"),
            _range(f.t, per_pe, cfg.memb_words, "MEMB_RANGE", "t"),
            _range(f.z, per_pe, cfg.memb_words, "MEMB_RANGE", "z"),
            _range(f.scr, 3 * per_pe + 2, cfg.memb_words, "MEMB_RANGE", "scr"),
        ]
        segments = [
            Segment("localmax", outer=per_pe + 1, inner=lchain),
            Segment("maxchain", inner=chain + wb),
            Segment("maxbcast", inner=1 + wb),
            Segment("exp", outer=groups, middle=SMX_EXP_STEPS, inner=lchain),
            Segment("gap", inner=wb),
            Segment("localsum", outer=per_pe + 1, inner=lchain),
            Segment("sumchain", inner=chain + wb),
            Segment("recip", outer=SMX_RECIP_STEPS, inner=lchain),
            Segment("rbcast", inner=1 + wb),
            Segment("out", outer=groups, middle=3, inner=lchain),
        ]
        return KernelPlan(segments, checks, {"per_pe": per_pe, "chain": chain})
    raise NotImplementedError(f"no kernel plan for {op.name}")


@dataclass
class GemmPhase:
    """One row group of one panel of one A block: the unit of GEMM's schedule.

    The phase computes the ``nr * Lacc`` rows from ``row0`` of the ``nr`` columns from ``n0``
    (``K * Lacc`` cycles) in accumulator bank ``bank``, using the B panel in MemB buffer
    ``buf``. Meanwhile (after the compute, in the first panel of a block, whose A values stream
    from the SPAD) the SPAD port moves the C rows of the previous phase out, those of the next
    phase in (``accumulate`` only) and, in a panel's first phase, the next panel's B.
    """

    index: int
    block: int
    panel: int
    group: int
    row0: int
    n0: int
    bank: int
    buf: int
    astream: bool
    has_cout: bool
    has_cin: bool
    next_panel: tuple | None
    length: int


@dataclass
class GemmSchedule:
    """GEMM's prologue, phases and epilogue, and the cycles they take."""

    prologue: int
    phases: list
    epilogue: int
    first_panel: tuple

    @property
    def cycles(self) -> int:
        """Micro-op stream cycles."""
        return self.prologue + sum(p.length for p in self.phases) + self.epilogue


def gemm_schedule(f, cfg) -> GemmSchedule:
    """Return the exact GEMM schedule for int operand fields ``f`` (see :class:`GemmPhase`).

    Prologue: the first B panel (``K`` cycles), the first phase's C rows (``accumulate``),
    2 guard cycles. A phase in a block's first panel lasts ``max(K Lacc, W) + T + 2`` (compute,
    then transfers ``T``); any other phase ``max(K Lacc, W + T + 2)`` (transfers after ``W``
    idle cycles, beside the compute). ``T = nr Lacc`` per C transfer plus ``K`` for a B panel.
    Epilogue: ``W`` idle cycles and the last phase's C rows out.
    """
    nr, lanes, wb = cfg.nr, cfg.acc_lanes, cfg.write_back_latency
    group_rows = nr * lanes
    k = f.k
    compute = k * lanes
    panels = cdiv(f.n, nr)
    blocks = -(-f.m // f.mc)
    order = []
    for b in range(blocks):
        rows = min(f.mc, f.m - b * f.mc)
        for n in range(panels):
            for g in range(-(-rows // group_rows)):
                order.append((b, n, g))
    phases = []
    for index, (b, n, g) in enumerate(order):
        if g == 0 and n + 1 < panels:
            nxt = (b, n + 1)
        elif g == 0 and b + 1 < blocks:
            nxt = (b + 1, 0)
        else:
            nxt = None
        has_cout = index > 0
        has_cin = bool(f.accumulate) and index + 1 < len(order)
        transfers = group_rows * (has_cout + has_cin) + (k if nxt else 0)
        astream = n == 0
        if astream:
            length = max(compute, wb) + transfers + 2
        else:
            length = max(compute, wb + transfers + 2)
        panel_index = b * panels + n
        phases.append(GemmPhase(index, b, n, g, b * f.mc + g * group_rows, n * nr, index % 2,
                                panel_index % 2, astream, has_cout, has_cin, nxt, length))
    prologue = k + (group_rows if f.accumulate else 0) + 2
    return GemmSchedule(prologue, phases, wb + group_rows, (0, 0))


def _gemm_plan(f, cfg) -> KernelPlan:
    nr = cfg.nr
    group_rows = nr * cfg.acc_lanes
    lda_local = cdiv(f.k, nr)
    checks = [
        _positive(f.m, "m"), _positive(f.n, "n"), _positive(f.k, "k"),
        _positive(f.mc, "mc"),
        Check((f.mc & (group_rows - 1)) == 0, "BAD_SHAPE", "mc must be a multiple of nr * Lacc"),
        _aligned(f.a, nr, "a"), _aligned(f.b, nr, "b"), _aligned(f.c, nr, "c"),
        _aligned(f.lda, nr, "lda"), _aligned(f.ldb, nr, "ldb"), _aligned(f.ldc, nr, "ldc"),
        Check(f.lda >= f.m, "BAD_SHAPE", "lda must be >= m"),
        Check(f.ldb >= f.n, "BAD_SHAPE", "ldb must be >= n"),
        Check(f.ldc >= f.n, "BAD_SHAPE", "ldc must be >= n"),
        _range(0, (f.mc >> log2(nr)) * lda_local, cfg.mema_words, "MEMA_RANGE",
               "mc rows of A (mc / nr * ceil(k / nr) words per PE)"),
        _range(0, 2 * f.k, cfg.memb_words, "MEMB_RANGE", "two B panels (2 k words per PE)"),
        _range(f.a, (f.k - 1) * f.lda + cdiv(f.m, nr) * nr, cfg.spad_words, "SPAD_RANGE", "a"),
        _range(f.b, (f.k - 1) * f.ldb + cdiv(f.n, nr) * nr, cfg.spad_words, "SPAD_RANGE", "b"),
        _range(f.c, (f.m - 1) * f.ldc + cdiv(f.n, nr) * nr, cfg.spad_words, "SPAD_RANGE", "c"),
    ]
    schedule = gemm_schedule(f, cfg) if _is_int(f.m, f.n, f.k, f.mc) and f.mc and f.m \
        and f.n and f.k else None
    return KernelPlan([], checks, {"lda_local": lda_local, "group_rows": group_rows},
                      schedule)
