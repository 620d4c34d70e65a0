"""Instruction-level simulator of one core: NumPy state, golden kernels, exact cycle counts.

The state mirrors the hardware: the SPAD, MemA and MemB of every PE (bit patterns), the scalar
registers, IMEM and the counters. Each instruction is read with the ISA's own
:func:`~caterpillar.contract.isa.unpack`, checked with the rules the decoder applies
(:func:`~caterpillar.contract.geometry.kernel_plan`), executed by its entry in :data:`EXECUTE`
(which calls :mod:`caterpillar.golden.kernels`), and timed by the sequencer's rule
(:func:`~caterpillar.contract.geometry.instruction_cycles`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from caterpillar.contract.events import instruction_events
from caterpillar.contract.geometry import (
    INSTRUCTION_OVERHEAD,
    RING_POST_CYCLES,
    RUN_START_CYCLES,
    SEQUENCER_OPCODES,
    drain_cycles,
    execution_cycles,
    instruction_cycles,
    kernel_plan,
)
from caterpillar.contract.isa import (
    INSTR_WORDS,
    Counter,
    ErrorCause,
    Layout,
    LoopState,
    Opcode,
    VecOp,
    unpack,
)
from caterpillar.contract.registers import SCALAR_REGISTERS
from caterpillar.golden import kernels as gk

__all__ = ["IsaSim", "RunResult", "Step", "AliasingError", "EXECUTE"]


class AliasingError(ValueError):
    """An instruction's operands overlap in a way whose result depends on timing."""


@dataclass
class RunResult:
    """Outcome of running a program until HALT or an error."""

    busy_cycles: int
    instret: int
    macs: int
    stalls: int
    error: ErrorCause = ErrorCause.NONE
    error_pc: int = 0
    per_opcode_cycles: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the program halted without an error."""
        return self.error == ErrorCause.NONE


@dataclass
class Step:
    """What :meth:`IsaSim.execute` did with one instruction."""

    kind: str
    pc: int = 0
    cycles: int = 0
    result: RunResult | None = None
    fields: object = None


class IsaSim:
    """One core's architectural state and an interpreter for its programs.

    Parameters
    ----------
    cfg : CaterpillarConfig
    """

    def __init__(self, cfg):
        self.cfg = cfg
        nr = cfg.nr
        self.spad = np.zeros(cfg.spad_words, dtype=np.uint64)
        self.mema = np.zeros((nr, nr, cfg.mema_words), dtype=np.uint64)
        self.memb = np.zeros((nr, nr, cfg.memb_words), dtype=np.uint64)
        self.sregs = [0] * SCALAR_REGISTERS
        self.imem = [0] * cfg.imem_words
        self.loop = LoopState()
        self.reset_counters()

    # -- programs ---------------------------------------------------------------------------

    def load_program(self, words, base: int = 0):
        """Write instruction words into IMEM from ``base``."""
        for i, w in enumerate(words):
            self.imem[base + i] = int(w)

    def run(self, start_pc: int = 0, max_instructions: int = 1_000_000) -> RunResult:
        """Run from ``start_pc`` until HALT or an error; return the counts the core reports.

        The counters start from zero, as when the host clears them with the start. A ``RING``
        instruction needs neighbours: run multicore programs on
        :class:`~caterpillar.software.isasim.ring.RingSim`.
        """
        self.reset_counters()
        self.start_run(start_pc)
        pc = start_pc
        for _ in range(max_instructions):
            step = self.execute(pc)
            if step.kind == "ring":
                raise RuntimeError(f"ring instruction at pc {pc}: a lone IsaSim has no ring; "
                                   "use caterpillar.software.isasim.ring.RingSim")
            if step.kind != "next":
                return step.result
            pc = step.pc
        raise RuntimeError(f"no HALT within {max_instructions} instructions")

    def start_run(self, pc: int):
        """Account the run's first fetch and decode (none if ``pc`` is past IMEM: that fetch
        fails, :meth:`execute` counts it); no loop runs."""
        self.loop.reset()
        if pc < self.cfg.imem_words:
            self._spend(RUN_START_CYCLES)

    def reset_counters(self):
        """Zero the counters but ``HOST_WORDS`` and the per-opcode cycle tally (a start with
        counter clear)."""
        host = getattr(self, "counters", {}).get(Counter.HOST_WORDS, 0)
        self.counters = {c: 0 for c in Counter}
        self.counters[Counter.HOST_WORDS] = host
        self.per_op = {}

    def execute(self, pc: int) -> Step:
        """Execute the instruction at ``pc`` and account its cycles.

        Returns a :class:`Step`: ``next`` (``pc`` of the next instruction, ``cycles`` spent),
        ``done`` (``result`` holds the :class:`RunResult` of HALT or an error), or ``ring``
        (a legal ``RING`` instruction, ``fields`` its operands, ``pc`` the next instruction's;
        nothing executed or counted beyond its fetch, decode and check). In a ``LOOP``'s body
        the operands are the repetition's (:class:`~caterpillar.contract.isa.LoopState`).
        """
        per_op = self.per_op
        if pc >= self.cfg.imem_words:
            self.counters[Counter.BUSY] += 1
            return Step("done", result=self._result(ErrorCause.IMEM_RANGE, pc, per_op))
        op, values = unpack(self.imem[pc])
        # RDCNT reads the counters in its check cycle, the first this instruction accounts.
        snapshot = dict(self.counters)
        self._spend(INSTRUCTION_OVERHEAD)
        if op is None:
            return Step("done", result=self._result(ErrorCause.ILLEGAL_OPCODE, pc, per_op))
        values = self.loop.operands(op, values)
        f = SimpleNamespace(**values)
        if op == Opcode.HALT:
            self.counters[Counter.INSTRET] += 1
            return Step("done", result=self._result(ErrorCause.NONE, 0, per_op))
        if op in SEQUENCER_OPCODES:
            if op == Opcode.SETS:
                self.sregs[f.reg] = f.value & ((1 << self.cfg.word_width) - 1)
            if op == Opcode.LOOP and not self.loop.legal(values):
                return Step("done", result=self._result(ErrorCause.ILLEGAL_FIELD, pc, per_op))
            self.counters[Counter.INSTRET] += 1
            cycles = instruction_cycles(op, f, self.cfg)
            self._spend(cycles - INSTRUCTION_OVERHEAD)      # the next instruction's decode
            following = self.loop.next_pc(pc)
            if op == Opcode.LOOP:
                self.loop.begin(pc, values)
            return Step("next", pc=following, cycles=cycles)
        plan = kernel_plan(op, f, self.cfg)
        for check in plan.checks:
            if not check.ok:
                return Step("done", result=self._result(check.cause, pc, per_op))
        if op == Opcode.RING:
            return Step("ring", pc=self.loop.next_pc(pc), fields=f)
        EXECUTE[op](self, f, plan, snapshot)
        cycles = execution_cycles(op, plan, self.cfg)
        self._spend(cycles)
        self.count_events(instruction_events(op, f, plan, self.cfg))
        self.counters[Counter.STALLS] += drain_cycles(op, self.cfg)
        self.counters[Counter.INSTRET] += 1
        per_op[op.name] = per_op.get(op.name, 0) + cycles + INSTRUCTION_OVERHEAD
        return Step("next", pc=self.loop.next_pc(pc), cycles=cycles + INSTRUCTION_OVERHEAD)

    def instruction_at(self, pc: int):
        """The opcode and operand fields of the instruction at ``pc``, the next to run (in a
        loop's body: its repetition's; ``(None, None)`` past IMEM or for an illegal one)."""
        return decoded(self.imem[pc] if pc < self.cfg.imem_words else None, self.loop)

    def post_ring(self):
        """Account a posted ``RING`` (its check was spent in :meth:`execute`): the next
        instruction's decode; the instruction retires."""
        self._spend(RING_POST_CYCLES - INSTRUCTION_OVERHEAD)
        self.counters[Counter.INSTRET] += 1
        self.per_op["RING"] = self.per_op.get("RING", 0) + RING_POST_CYCLES

    def wait_ring(self, cycles: int):
        """Account ``cycles`` an instruction of
        :data:`~caterpillar.contract.geometry.RING_ORDERED_OPCODES` waited in its check for the
        ring engine (tallied under ``RING``)."""
        self._spend(cycles)
        self.per_op["RING"] = self.per_op.get("RING", 0) + cycles

    def ring_finished(self, active_cycles: int):
        """Account a ring engine that was active for ``active_cycles``."""
        self.counters[Counter.RING] += active_cycles

    def count_events(self, events: dict):
        """Add ``{counter: events}`` to the event counters."""
        for counter, value in events.items():
            self.counters[counter] += value

    def _spend(self, cycles: int):
        self.counters[Counter.CYCLES] += cycles
        self.counters[Counter.BUSY] += cycles

    def _result(self, cause, pc, per_op) -> RunResult:
        c = self.counters
        return RunResult(c[Counter.BUSY], c[Counter.INSTRET], c[Counter.MACS],
                         c[Counter.STALLS], cause, pc if cause != ErrorCause.NONE else 0,
                         per_op)

    def imem_word(self, addr: int) -> int:
        """Return the host view of IMEM word ``addr`` (instruction ``addr // 8``)."""
        instr, word = divmod(addr, INSTR_WORDS)
        return (self.imem[instr] >> (32 * word)) & 0xFFFFFFFF


def decoded(word, loop: LoopState):
    """``(opcode, fields)`` of instruction word ``word`` as it runs next, under ``loop``;
    ``(None, None)`` for no word or an illegal opcode."""
    op, values = unpack(word) if word is not None else (None, None)
    if op is None:
        return None, None
    return op, SimpleNamespace(**loop.operands(op, values))


# -- instructions ---------------------------------------------------------------------------


def _rdcnt(sim, f, plan, snapshot):
    value = snapshot[Counter(f.counter)] if f.counter < len(Counter) else 0
    width = sim.cfg.word_width
    for w in range(plan.values["words"]):
        sim.spad[f.spad + w] = (value >> (w * width)) & ((1 << width) - 1)


def _layout_coords(sim, layout: int, count: int):
    """``(element, row, col, word)`` index arrays of every PE copy of a vector in ``layout``
    (``word``: its MemB word in that PE, from the vector's base)."""
    nr = sim.cfg.nr
    e = np.arange(count)
    k = e % nr
    if layout == Layout.DIAG.value:
        return e, k, k, e // nr
    if layout == Layout.FULL.value:
        return e, (e // nr) % nr, k, e // (nr * nr)
    other = np.repeat(np.arange(nr)[None, :], count, axis=0).ravel()
    e, k = np.repeat(e, nr), np.repeat(k, nr)
    return (e, other, k, e // nr) if layout == Layout.COLREP.value else (e, k, other, e // nr)


def _row_copy(sim, f):
    """``(element, row, col, word)`` of the copy of a COLREP vector in PE row ``f.row - 1``
    (``row`` 0: row 0), or of a ROWREP one in column 0."""
    nr = sim.cfg.nr
    e = np.arange(f.len)
    k, line = e % nr, np.full(f.len, max(f.row - 1, 0), dtype=e.dtype)
    return (e, line, k, e // nr) if f.layout == Layout.COLREP.value else (e, k, line, e // nr)


def _ldv(sim, f, plan, snapshot):
    e, r, c, word = (_row_copy(sim, f) if f.row else
                     _layout_coords(sim, f.layout, f.len))
    sim.memb[r, c, f.memb + word] = sim.spad[f.spad + e]


def _stv(sim, f, plan, snapshot):
    if f.layout in (Layout.DIAG.value, Layout.FULL.value):     # one copy of each element
        e, r, c, word = _layout_coords(sim, f.layout, f.len)
    else:           # the copy in row f.row - 1 (or 0: COLREP) or column 0 (ROWREP)
        e, r, c, word = _row_copy(sim, f)
    sim.spad[f.spad + e] = sim.memb[r, c, f.memb + word]


def _tile_indices(sim, f):
    nr = sim.cfg.nr
    i, j = np.meshgrid(np.arange(f.rows), np.arange(f.cols), indexing="ij")
    spad = f.spad + (j * f.lds + i if f.trans else i * f.lds + j)
    local = f.mema + (i // nr) * f.ldm + j // nr
    return i % nr, j % nr, local, spad


def _lda(sim, f, plan, snapshot):
    r, c, local, spad = _tile_indices(sim, f)
    sim.mema[r, c, local] = sim.spad[spad]


def _sta(sim, f, plan, snapshot):
    r, c, local, spad = _tile_indices(sim, f)
    sim.spad[spad] = sim.mema[r, c, local]


def _bcast(sim, f, plan, snapshot):
    nr = sim.cfg.nr
    fmt, acc = sim.cfg.operand, sim.cfg.acc
    if f.dst != f.src and abs(int(f.dst) - int(f.src)) < plan.values["rows"]:
        raise AliasingError("bcast: dst must equal src or not overlap it")
    e = np.arange(f.len)
    k, q = e % nr, e // nr
    value = gk.narrow(gk.widen(sim.memb[k, k, f.src + q], fmt, acc), fmt, acc)
    layout = Layout.COLREP.value if f.layout == Layout.COLREP.value else Layout.ROWREP.value
    ee, r, c, word = _layout_coords(sim, layout, f.len)
    sim.memb[r, c, f.dst + word] = value[ee]


def _check_disjoint(name, a, a_len, b, b_len):
    if a < b + b_len and b < a + a_len:
        raise AliasingError(f"{name} overlaps its input; results would depend on timing")


def _gemv(sim, f, plan, transposed: bool):
    nr = sim.cfg.nr
    if f.load:
        vector = SimpleNamespace(spad=f.spad, memb=f.d if transposed else f.x,
                                 len=f.rows if transposed else f.cols,
                                 layout=(Layout.ROWREP if transposed else Layout.COLREP).value,
                                 row=0)
        _ldv(sim, vector, None, None)
    fmt, acc = sim.cfg.operand, sim.cfg.acc
    rows, cols = f.rows, f.cols
    i, j = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    w = sim.mema[i % nr, j % nr, f.w + (i // nr) * f.ldw + j // nr]
    vec, out = (f.d, f.z) if transposed else (f.x, f.y)
    _check_disjoint("psum", f.psum, plan.values["out_loc"], vec, plan.values["red_loc"])
    matrix = w.T if transposed else w
    outputs, inputs = matrix.shape
    stored = np.zeros((outputs, nr), dtype=np.uint64)
    e = np.arange(inputs)
    # Outputs of class `own` are computed by the PEs of that row (column for gemvt), each
    # with its own copy of the replicated input vector.
    for own in range(nr):
        sel = np.arange(outputs) % nr == own
        if not sel.any():
            continue
        if transposed:
            copy = sim.memb[e % nr, own, vec + e // nr]
        else:
            copy = sim.memb[own, e % nr, vec + e // nr]
        stored[sel] = gk.narrow(gk.gemv_partials(matrix[sel], copy, nr, fmt, acc), fmt, acc)
    o = np.arange(outputs)
    for other in range(nr):
        r, c = (np.full(outputs, other), o % nr) if transposed else \
            (o % nr, np.full(outputs, other))
        sim.memb[r, c, f.psum + o // nr] = stored[:, other]
    result = gk.narrow(gk.chain_sum(stored, nr, fmt, acc), fmt, acc)
    if not transposed and f.store:
        sim.spad[f.dst + o] = result
    else:
        sim.memb[o % nr, o % nr, out + o // nr] = result


def _ger(sim, f, plan, snapshot):
    nr = sim.cfg.nr
    fmt, acc = sim.cfg.operand, sim.cfg.acc
    if f.use_mom:
        span = (plan.values["m_loc"] - 1) * f.ldw + plan.values["k_loc"]
        _check_disjoint("mom", f.mom, span, f.w, span)
    for r in range(nr):
        for c in range(nr):
            ii = np.arange(len(range(r, f.rows, nr)))
            jj = np.arange(len(range(c, f.cols, nr)))
            if not len(ii) or not len(jj):
                continue
            addr = f.w + ii[:, None] * f.ldw + jj[None, :]
            mom_addr = f.mom + ii[:, None] * f.ldw + jj[None, :]
            w = sim.mema[r, c, addr]
            if f.load:
                # Through an accumulator slot: widened, then narrowed for the multiplier.
                u = gk.narrow(gk.widen(sim.spad[f.spad + r + nr * ii], fmt, acc), fmt, acc)
            else:
                u = sim.memb[r, c, f.u + ii]
            v = sim.memb[r, c, f.v + jj]
            if not (f.use_wd or f.use_mom):
                new_w, new_mom = gk.ger_accumulate(w, u, v, fmt, acc), None
            else:
                new_w, new_mom = gk.ger(
                    w, u, v, sim.sregs[f.alpha], fmt, acc,
                    wd=sim.sregs[f.wd] if f.use_wd else None,
                    mom=sim.mema[r, c, mom_addr] if f.use_mom else None,
                    mu=sim.sregs[f.mu])
            sim.mema[r, c, addr] = new_w
            if f.use_mom:
                sim.mema[r, c, mom_addr] = new_mom


def _cpass(sim, f, plan, snapshot):
    cfg = sim.cfg
    nr, lanes, fmt, acc = cfg.nr, cfg.acc_lanes, cfg.operand, cfg.acc
    m_loc, k_loc = plan.values["m_loc"], plan.values["k_loc"]
    # d in every PE of its row as LDV with ROWREP would load it: from MemB, or with load
    # straight from the SPAD into the slots (the same words; MemB untouched).
    if f.load:
        d_words = sim.spad[f.spad + np.arange(f.rows)]

        def delta(rows, cols):
            return d_words[rows]
    else:
        def delta(rows, cols):
            return sim.memb[rows % nr, cols, f.d + rows // nr]
    reads = [("d", f.d, 0 if f.load else plan.values["groups"] * lanes), ("a", f.a, k_loc)]
    if f.fwd:
        reads.append(("x", f.x, k_loc))
    for name, base, length in reads:
        if f.prop:
            _check_disjoint(f"q (over {name})", f.q, k_loc * lanes, base, length)
        if f.fwd:
            _check_disjoint(f"fpsum (over {name})", f.fpsum, m_loc, base, length)
    i, j = np.meshgrid(np.arange(f.rows), np.arange(f.cols), indexing="ij")
    tile = (i % nr, j % nr, f.w + (i // nr) * f.ldw + j // nr)
    if f.prop:
        # The backward with W before the update; each PE column with its own copy of d.
        w = sim.mema[tile]
        e = np.arange(f.rows)
        stored = np.zeros((f.cols, nr), dtype=np.uint64)
        for own in range(nr):
            sel = np.arange(f.cols) % nr == own
            if not sel.any():
                continue
            copy = delta(e, own)
            stored[sel], q = gk.cpass_backward_partials(w[:, sel], copy, nr, lanes, fmt, acc)
            jj = np.arange(f.cols)[sel] // nr
            for rho in range(lanes):
                sim.memb[np.arange(nr)[:, None], own, f.q + jj[None, :] * lanes + rho] = q[rho]
        o = np.arange(f.cols)
        for r in range(nr):
            sim.memb[r, o % nr, f.bpsum + o // nr] = stored[:, r]
        sim.memb[o % nr, o % nr, f.z + o // nr] = gk.narrow(gk.chain_sum(stored, nr, fmt, acc),
                                                            fmt, acc)
    for r in range(nr):      # the update, each PE with its own d and a
        for c in range(nr):
            ii = np.arange(len(range(r, f.rows, nr)))
            jj = np.arange(len(range(c, f.cols, nr)))
            if len(ii) and len(jj):
                addr = f.w + ii[:, None] * f.ldw + jj[None, :]
                sim.mema[r, c, addr] = gk.ger_accumulate(
                    sim.mema[r, c, addr], delta(r + nr * ii, c), sim.memb[r, c, f.a + jj],
                    fmt, acc)
    if f.fwd:
        forward = SimpleNamespace(y=f.y, x=f.x, w=f.w, psum=f.fpsum, rows=f.rows, cols=f.cols,
                                  ldw=f.ldw, load=0, store=f.store, dst=f.dst)
        values = {"out_loc": m_loc, "red_loc": k_loc}
        _gemv(sim, forward, SimpleNamespace(values=values), transposed=False)


def _vop(sim, f, plan, snapshot):
    nr = sim.cfg.nr
    fmt, acc = sim.cfg.operand, sim.cfg.acc
    fn = VecOp(f.fn).name.lower()
    for r in range(nr):
        for c in range(nr):
            if f.layout == Layout.DIAG.value and r != c:
                continue
            if f.layout == Layout.FULL.value:      # PE (r, c) holds (q nr + r) nr + c
                q = np.arange(len(range(r * nr + c, f.len, nr * nr)))
            else:
                coord = c if f.layout == Layout.COLREP.value else r
                q = np.arange(len(range(coord, f.len, nr)))
            if not len(q):
                continue
            z = gk.vop(fn, sim.memb[r, c, f.x + q], sim.memb[r, c, f.y + q],
                       sim.sregs[f.alpha], fmt, acc)
            sim.memb[r, c, f.z + q] = z


def _gemm(sim, f, plan, snapshot):
    nr, k = sim.cfg.nr, f.k
    fmt, acc = sim.cfg.operand, sim.cfg.acc
    rows_of = lambda base, ld, count, width: base + np.arange(count)[:, None] * ld + \
        np.arange(width)[None, :]  # noqa: E731
    lda_local = plan.values["lda_local"]
    p = np.arange(k)
    a_idx = np.zeros(0, dtype=np.int64) if f.a_mema else \
        rows_of(f.a, f.lda, f.m, k) if f.a_rows else rows_of(f.a, f.lda, k, f.m)  # A or A^T
    b_idx = rows_of(f.b, f.ldb, k, f.n)
    c_idx = rows_of(f.c, f.ldc, f.m, f.n)
    if np.intersect1d(c_idx, np.union1d(a_idx, b_idx)).size:
        raise AliasingError("gemm: C overlaps A or B")
    if f.a_mema:                                # one block, in MemA already
        i = np.arange(f.m)
        a = sim.mema[(i % nr)[:, None], (p % nr)[None, :],
                     f.mema + (i // nr)[:, None] * lda_local + (p // nr)[None, :]]
    else:
        a = sim.spad[a_idx] if f.a_rows else sim.spad[a_idx].T
    b = sim.spad[b_idx]
    c_in = sim.spad[c_idx] if f.accumulate else None
    c = gk.gemm(a, b, c_in, fmt, acc)
    sim.spad[c_idx] = gk.vop("maxs", c, c, 0, fmt, acc) if f.relu else c
    # Staging left in the PEs: every A block streamed (the last one wins) and every B panel.
    for block in range(0 if f.a_mema else -(-f.m // f.mc)):
        i = np.arange(block * f.mc, min(f.m, (block + 1) * f.mc))
        local = f.mema + ((i - block * f.mc) // nr)[:, None] * lda_local + (p // nr)[None, :]
        sim.mema[(i % nr)[:, None], (p % nr)[None, :], local] = a[i]
    schedule = plan.schedule
    panels = -(-f.n // nr)
    loads = [schedule.first_panel] + [ph.next_panel for ph in schedule.phases
                                      if ph.next_panel is not None]
    for block, panel in loads:
        buf = (block * panels + panel) % 2
        j = np.arange(panel * nr, min(f.n, panel * nr + nr))
        for r in range(nr):
            sim.memb[r, (j % nr)[None, :], buf * k + p[:, None]] = b[:, j]


def _smxce(sim, f, plan, snapshot):
    nr = sim.cfg.nr
    fmt, acc = sim.cfg.operand, sim.cfg.acc
    per_pe = plan.values["per_pe"]
    e = np.arange(f.len)
    for row in range(max(f.rows, 1)):          # rows 0: one sample, in row 0
        x_local = [sim.memb[row, c, f.x + np.arange(per_pe)] for c in range(nr)]
        t_local = [sim.memb[row, c, f.t + np.arange(per_pe)] for c in range(nr)]
        z, scratch = gk.smxce(x_local, t_local, f.len, nr, fmt, acc, row)
        for c in range(nr):
            for offset, value in enumerate(scratch[c]):
                if value is not None:
                    sim.memb[row, c, f.scr + offset] = value
        if f.rows:      # z in the sample's row, where x is
            sim.memb[row, e % nr, f.z + e // nr] = z
        else:           # on the diagonal
            sim.memb[e % nr, e % nr, f.z + e // nr] = z


#: What each opcode that issues micro-ops does to the state: ``execute(sim, fields, plan,
#: counters at its check)``; its events (MACs too) are :func:`instruction_events`'.
EXECUTE = {
    Opcode.RDCNT: _rdcnt,
    Opcode.LDA: _lda,
    Opcode.STA: _sta,
    Opcode.LDV: _ldv,
    Opcode.STV: _stv,
    Opcode.BCAST: _bcast,
    Opcode.GEMV: lambda sim, f, plan, snapshot: _gemv(sim, f, plan, transposed=False),
    Opcode.GEMVT: lambda sim, f, plan, snapshot: _gemv(sim, f, plan, transposed=True),
    Opcode.GER: _ger,
    Opcode.GEMM: _gemm,
    Opcode.CPASS: _cpass,
    Opcode.VOP: _vop,
    Opcode.SMXCE: _smxce,
}
