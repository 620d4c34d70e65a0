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
           "KernelPlan"]


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
    """Segments of an instruction's micro-op stream, its checks and named quantities."""

    segments: list
    checks: list
    values: dict

    @property
    def stream_cycles(self):
        """Cycles of micro-ops (ints only)."""
        return sum(s.cycles for s in self.segments)


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
        two_step = f.fn == VecOp.MSEG.value
        checks = [
            Check(f.fn <= VecOp.MSEG.value, "ILLEGAL_FIELD", "fn is not a VecOp"),
            _positive(f.len, "len"),
            Check(f.layout != 3, "ILLEGAL_FIELD", "layout must be diag, colrep or rowrep"),
            _range(f.z, per_pe, cfg.memb_words, "MEMB_RANGE", "z"),
            _range(f.x, per_pe, cfg.memb_words, "MEMB_RANGE", "x"),
            _range(f.y, per_pe, cfg.memb_words, "MEMB_RANGE", "y"),
        ]
        groups = select(two_step, cdiv(per_pe, lchain), per_pe)
        segments = [Segment("elements", outer=groups, middle=select(two_step, 2, 1),
                            inner=select(two_step, lchain, 1))]
        return KernelPlan(segments, checks, {"per_pe": per_pe})
    raise NotImplementedError(f"no kernel plan for {op.name}")
