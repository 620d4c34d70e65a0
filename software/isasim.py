"""Instruction-level simulator of one core: NumPy state, golden kernels, exact cycle counts.

The state mirrors the hardware: the SPAD, MemA and MemB of every PE (bit patterns), the scalar
registers, IMEM and the counters. Each instruction is checked with the same rules the decoder
applies (:func:`~caterpillar.rtl.isa_geometry.kernel_plan`), its effect is computed by
:mod:`caterpillar.golden.kernels`, and its duration is the sequencer's: ``INSTRUCTION_OVERHEAD``
cycles, plus the micro-op stream and ``write_back_latency`` cycles of drain for instructions
that issue micro-ops.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from caterpillar.golden import kernels as gk
from caterpillar.rtl.isa import INSTR_WORDS, OPERANDS, Counter, ErrorCause, Layout, Opcode
from caterpillar.rtl.isa_geometry import kernel_plan
from caterpillar.rtl.regmap import CORE_ID, RegisterMap

from .device import Device

__all__ = ["IsaSim", "IsaDevice", "RunResult", "Step", "AliasingError", "INSTRUCTION_OVERHEAD",
           "instruction_cycles"]

#: Fetch, decode and check cycles per instruction (the sequencer's).
INSTRUCTION_OVERHEAD = 3


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


class _Fields:
    def __init__(self, values: dict):
        self.__dict__.update(values)


def _busy_cycles(plan, cfg) -> int:
    """Cycles after fetch and decode of an instruction that issues micro-ops."""
    return plan.stream_cycles + cfg.write_back_latency


def instruction_cycles(word: int, cfg) -> int:
    """Cycles the core spends on one legal instruction (the sequencer's rule)."""
    code, values = decode_raw(word)
    op = Opcode(code)
    if op in (Opcode.NOP, Opcode.HALT, Opcode.SYNC, Opcode.SETS):
        return INSTRUCTION_OVERHEAD
    return INSTRUCTION_OVERHEAD + _busy_cycles(kernel_plan(op, _Fields(values), cfg), cfg)


def decode_raw(word: int):
    """Return ``(opcode value, {field: int})`` of an instruction word, without validation."""
    code = word & 0xFF
    try:
        op = Opcode(code)
    except ValueError:
        return code, {}
    values, offset = {}, 8
    for f in OPERANDS[op]:
        values[f.name] = (word >> offset) & ((1 << f.width) - 1)
        offset += f.width
    return code, values


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
        self.sregs = [0] * 16
        self.imem = [0] * cfg.imem_words
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
        :class:`~caterpillar.software.ring_sim.RingSim`.
        """
        self.reset_counters()
        pc = start_pc
        for _ in range(max_instructions):
            step = self.execute(pc)
            if step.kind == "ring":
                raise RuntimeError(f"ring instruction at pc {pc}: a lone IsaSim has no ring; "
                                   "use caterpillar.software.ring_sim.RingSim")
            if step.kind != "next":
                return step.result
            pc = step.pc
        raise RuntimeError(f"no HALT within {max_instructions} instructions")

    def reset_counters(self):
        """Zero the counters and the per-opcode cycle tally (a start with counter clear)."""
        self.counters = {c: 0 for c in Counter}
        self.per_op = {}

    def execute(self, pc: int) -> Step:
        """Execute the instruction at ``pc`` and account its cycles.

        Returns a :class:`Step`: ``next`` (``pc`` of the next instruction, ``cycles`` spent),
        ``done`` (``result`` holds the :class:`RunResult` of HALT or an error), or ``ring``
        (a legal ``RING`` instruction, ``fields`` its operands; nothing executed or counted
        beyond its fetch, decode and check).
        """
        per_op = self.per_op
        if pc >= self.cfg.imem_words:
            self.counters[Counter.BUSY] += 1
            return Step("done", result=self._result(ErrorCause.IMEM_RANGE, pc, per_op))
        code, values = decode_raw(self.imem[pc])
        snapshot = {c: v + (2 if c in (Counter.CYCLES, Counter.BUSY) else 0)
                    for c, v in self.counters.items()}
        self._spend(INSTRUCTION_OVERHEAD)
        if code not in Opcode._value2member_map_:
            return Step("done", result=self._result(ErrorCause.ILLEGAL_OPCODE, pc, per_op))
        op = Opcode(code)
        f = _Fields(values)
        if op == Opcode.HALT:
            self.counters[Counter.INSTRET] += 1
            return Step("done", result=self._result(ErrorCause.NONE, 0, per_op))
        if op in (Opcode.NOP, Opcode.SYNC, Opcode.SETS):
            if op == Opcode.SETS:
                self.sregs[f.reg] = f.value & ((1 << self.cfg.word_width) - 1)
            self.counters[Counter.INSTRET] += 1
            return Step("next", pc=pc + 1, cycles=INSTRUCTION_OVERHEAD)
        plan = kernel_plan(op, f, self.cfg)
        for check in plan.checks:
            if not check.ok:
                return Step("done", result=self._result(ErrorCause[check.cause], pc, per_op))
        if op == Opcode.RING:
            return Step("ring", pc=pc, fields=f)
        macs = getattr(self, f"_op_{op.name.lower()}")(f, plan, snapshot)
        cycles = _busy_cycles(plan, self.cfg)
        self._spend(cycles)
        self.counters[Counter.STALLS] += self.cfg.write_back_latency
        self.counters[Counter.MACS] += macs
        self.counters[Counter.INSTRET] += 1
        per_op[op.name] = per_op.get(op.name, 0) + cycles + INSTRUCTION_OVERHEAD
        return Step("next", pc=pc + 1, cycles=cycles + INSTRUCTION_OVERHEAD)

    def retire_ring(self, cycles: int):
        """Account a ``RING`` instruction that spent ``cycles`` after its check."""
        self._spend(cycles)
        self.counters[Counter.RING] += cycles
        self.counters[Counter.INSTRET] += 1
        self.per_op["RING"] = self.per_op.get("RING", 0) + cycles + INSTRUCTION_OVERHEAD

    def _spend(self, cycles: int):
        self.counters[Counter.CYCLES] += cycles
        self.counters[Counter.BUSY] += cycles

    def _result(self, cause, pc, per_op) -> RunResult:
        c = self.counters
        return RunResult(c[Counter.BUSY], c[Counter.INSTRET], c[Counter.MACS],
                         c[Counter.STALLS], cause, pc if cause != ErrorCause.NONE else 0,
                         per_op)

    # -- helpers ----------------------------------------------------------------------------

    @property
    def _formats(self):
        return self.cfg.operand, self.cfg.acc

    # -- instructions -----------------------------------------------------------------------

    def _op_rdcnt(self, f, plan, snapshot):
        value = snapshot[Counter(f.counter)] if f.counter < len(Counter) else 0
        width = self.cfg.word_width
        for w in range(plan.values["words"]):
            self.spad[f.spad + w] = (value >> (w * width)) & ((1 << width) - 1)
        return 0

    def _layout_coords(self, layout: int, count: int):
        """``(element, row, col)`` index arrays of every PE copy of a vector in ``layout``."""
        nr = self.cfg.nr
        e = np.arange(count)
        k = e % nr
        if layout == Layout.DIAG.value:
            return e, k, k
        other = np.repeat(np.arange(nr)[None, :], count, axis=0).ravel()
        e, k = np.repeat(e, nr), np.repeat(k, nr)
        return (e, other, k) if layout == Layout.COLREP.value else (e, k, other)

    def _op_ldv(self, f, plan, snapshot):
        e, r, c = self._layout_coords(f.layout, f.len)
        self.memb[r, c, f.memb + e // self.cfg.nr] = self.spad[f.spad + e]
        return 0

    def _op_stv(self, f, plan, snapshot):
        nr = self.cfg.nr
        e = np.arange(f.len)
        k = e % nr
        zero = np.zeros_like(k)
        r, c = {Layout.DIAG: (k, k), Layout.COLREP: (zero, k)}.get(Layout(f.layout), (k, zero))
        self.spad[f.spad + e] = self.memb[r, c, f.memb + e // nr]
        return 0

    def _tile_indices(self, f):
        nr = self.cfg.nr
        i, j = np.meshgrid(np.arange(f.rows), np.arange(f.cols), indexing="ij")
        spad = f.spad + (j * f.lds + i if f.trans else i * f.lds + j)
        local = f.mema + (i // nr) * f.ldm + j // nr
        return i % nr, j % nr, local, spad

    def _op_lda(self, f, plan, snapshot):
        r, c, local, spad = self._tile_indices(f)
        self.mema[r, c, local] = self.spad[spad]
        return 0

    def _op_sta(self, f, plan, snapshot):
        r, c, local, spad = self._tile_indices(f)
        self.spad[spad] = self.mema[r, c, local]
        return 0

    def _op_bcast(self, f, plan, snapshot):
        nr = self.cfg.nr
        fmt, acc = self._formats
        if f.dst != f.src and abs(int(f.dst) - int(f.src)) < plan.values["rows"]:
            raise AliasingError("bcast: dst must equal src or not overlap it")
        e = np.arange(f.len)
        k, q = e % nr, e // nr
        value = gk.narrow(gk.widen(self.memb[k, k, f.src + q], fmt, acc), fmt, acc)
        layout = Layout.COLREP.value if f.layout == Layout.COLREP.value else Layout.ROWREP.value
        ee, r, c = self._layout_coords(layout, f.len)
        self.memb[r, c, f.dst + ee // nr] = value[ee]
        return 0

    def _check_disjoint(self, name, a, a_len, b, b_len):
        if a < b + b_len and b < a + a_len:
            raise AliasingError(f"{name} overlaps its input; results would depend on timing")

    def _op_gemv(self, f, plan, snapshot):
        return self._gemv(f, plan, transposed=False)

    def _op_gemvt(self, f, plan, snapshot):
        return self._gemv(f, plan, transposed=True)

    def _gemv(self, f, plan, transposed: bool):
        nr = self.cfg.nr
        fmt, acc = self._formats
        rows, cols = f.rows, f.cols
        i, j = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        w = self.mema[i % nr, j % nr, f.w + (i // nr) * f.ldw + j // nr]
        vec, out = (f.d, f.z) if transposed else (f.x, f.y)
        self._check_disjoint("psum", f.psum, plan.values["out_loc"], vec,
                             plan.values["red_loc"])
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
                copy = self.memb[e % nr, own, vec + e // nr]
            else:
                copy = self.memb[own, e % nr, vec + e // nr]
            stored[sel] = gk.narrow(gk.gemv_partials(matrix[sel], copy, nr, fmt, acc), fmt, acc)
        o = np.arange(outputs)
        for other in range(nr):
            r, c = (np.full(outputs, other), o % nr) if transposed else \
                (o % nr, np.full(outputs, other))
            self.memb[r, c, f.psum + o // nr] = stored[:, other]
        result = gk.narrow(gk.chain_sum(stored, nr, fmt, acc), fmt, acc)
        self.memb[o % nr, o % nr, out + o // nr] = result
        return rows * cols

    def _op_ger(self, f, plan, snapshot):
        nr = self.cfg.nr
        fmt, acc = self._formats
        if f.use_mom:
            span = (plan.values["m_loc"] - 1) * f.ldw + plan.values["k_loc"]
            self._check_disjoint("mom", f.mom, span, f.w, span)
        for r in range(nr):
            for c in range(nr):
                ii = np.arange(len(range(r, f.rows, nr)))
                jj = np.arange(len(range(c, f.cols, nr)))
                if not len(ii) or not len(jj):
                    continue
                addr = f.w + ii[:, None] * f.ldw + jj[None, :]
                mom_addr = f.mom + ii[:, None] * f.ldw + jj[None, :]
                w = self.mema[r, c, addr]
                u = self.memb[r, c, f.u + ii]
                v = self.memb[r, c, f.v + jj]
                new_w, new_mom = gk.ger(
                    w, u, v, self.sregs[f.alpha], fmt, acc,
                    wd=self.sregs[f.wd] if f.use_wd else None,
                    mom=self.mema[r, c, mom_addr] if f.use_mom else None,
                    mu=self.sregs[f.mu])
                self.mema[r, c, addr] = new_w
                if f.use_mom:
                    self.mema[r, c, mom_addr] = new_mom
        return f.rows * f.cols * (2 + f.use_wd + f.use_mom)

    def _op_vop(self, f, plan, snapshot):
        nr = self.cfg.nr
        fmt, acc = self._formats
        fn = gk.VOP_FUNCTIONS[f.fn]
        count = 0
        for r in range(nr):
            for c in range(nr):
                if f.layout == Layout.DIAG.value and r != c:
                    continue
                coord = c if f.layout == Layout.COLREP.value else r
                q = np.arange(len(range(coord, f.len, nr)))
                if not len(q):
                    continue
                z = gk.vop(fn, self.memb[r, c, f.x + q], self.memb[r, c, f.y + q],
                           self.sregs[f.alpha], fmt, acc)
                self.memb[r, c, f.z + q] = z
                count += len(q)
        macs_each = {"add": 1, "sub": 1, "mul": 1, "axpy": 1, "scale": 1, "mseg": 2}
        return count * macs_each.get(fn, 0)

    def _op_gemm(self, f, plan, snapshot):
        nr, k = self.cfg.nr, f.k
        fmt, acc = self._formats
        rows_of = lambda base, ld, count, width: base + np.arange(count)[:, None] * ld + \
            np.arange(width)[None, :]  # noqa: E731
        a_idx = rows_of(f.a, f.lda, k, f.m)          # A^T: k x m
        b_idx = rows_of(f.b, f.ldb, k, f.n)
        c_idx = rows_of(f.c, f.ldc, f.m, f.n)
        if np.intersect1d(c_idx, np.union1d(a_idx, b_idx)).size:
            raise AliasingError("gemm: C overlaps A or B")
        a = self.spad[a_idx].T
        b = self.spad[b_idx]
        c_in = self.spad[c_idx] if f.accumulate else None
        self.spad[c_idx] = gk.gemm(a, b, c_in, fmt, acc)
        # Staging left in the PEs: every A block (the last one wins) and every B panel loaded.
        lda_local = plan.values["lda_local"]
        p = np.arange(k)
        for block in range(-(-f.m // f.mc)):
            i = np.arange(block * f.mc, min(f.m, (block + 1) * f.mc))
            local = ((i - block * f.mc) // nr)[:, None] * lda_local + (p // nr)[None, :]
            self.mema[(i % nr)[:, None], (p % nr)[None, :], local] = a[i]
        schedule = plan.schedule
        panels = -(-f.n // nr)
        loads = [schedule.first_panel] + [ph.next_panel for ph in schedule.phases
                                          if ph.next_panel is not None]
        for block, panel in loads:
            buf = (block * panels + panel) % 2
            j = np.arange(panel * nr, min(f.n, panel * nr + nr))
            for r in range(nr):
                self.memb[r, (j % nr)[None, :], buf * k + p[:, None]] = b[:, j]
        return f.m * f.n * k

    def _op_smxce(self, f, plan, snapshot):
        nr = self.cfg.nr
        fmt, acc = self._formats
        per_pe = plan.values["per_pe"]
        x_local = [self.memb[0, c, f.x + np.arange(per_pe)] for c in range(nr)]
        t_local = [self.memb[0, c, f.t + np.arange(per_pe)] for c in range(nr)]
        z, scratch = gk.smxce(x_local, t_local, f.len, nr, fmt, acc)
        for c in range(nr):
            for offset, value in enumerate(scratch[c]):
                if value is not None:
                    self.memb[0, c, f.scr + offset] = value
        e = np.arange(f.len)
        self.memb[e % nr, e % nr, f.z + e // nr] = z
        # MACs per element: 10 in exp, 1 in the local sum, 2 in the output; 7 in the reciprocal.
        return 13 * f.len + 7

    def imem_word(self, addr: int) -> int:
        """Return the host view of IMEM word ``addr`` (instruction ``addr // 8``)."""
        instr, word = divmod(addr, INSTR_WORDS)
        return (self.imem[instr] >> (32 * word)) & 0xFFFFFFFF


class IsaDevice(Device):
    """:class:`Device` backed by the instruction-level simulator.

    Host-bus semantics follow the core's register map; a start runs the whole program at once,
    so the next status read sees it finished, and the counters hold the cycles the core would
    have taken.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        self.sim = IsaSim(cfg)
        self._map = RegisterMap(cfg)
        self._start_pc = 0
        self._result = None
        self._status = 0

    def register_map(self) -> dict:
        return self._map.to_dict()

    @property
    def start_pc(self) -> int:
        """The ``START_PC`` register."""
        return self._start_pc

    @property
    def status(self) -> int:
        """The ``STATUS`` register."""
        return self._status

    def finish(self, result: RunResult) -> None:
        """Take ``result`` as the outcome of a run started elsewhere (a ring's start)."""
        self._result = result
        self._status = 0b010 if result.ok else 0b100

    def write(self, addr: int, words) -> None:
        m = self._map
        if addr >= m.spad_base:                       # bulk SPAD data
            values = np.asarray([int(w) for w in words], dtype=np.uint64)
            start = addr - m.spad_base
            if start + len(values) <= self.cfg.spad_words:
                mask = np.uint64((1 << self.cfg.word_width) - 1)
                self.sim.spad[start:start + len(values)] = values & mask
                return
        for offset, value in enumerate(words):
            self._write_word(addr + offset, int(value))

    def read(self, addr: int, count: int = 1) -> list[int]:
        start = addr - self._map.spad_base
        if start >= 0 and start + count <= self.cfg.spad_words:
            return self.sim.spad[start:start + count].tolist()
        return [self._read_word(addr + offset) for offset in range(count)]

    def poll(self, addr: int, mask: int, timeout_cycles: int) -> tuple[int, int]:
        value = self._read_word(addr)
        if not value & mask:
            from .device import DeviceTimeout

            raise DeviceTimeout(f"register {addr:#x} never matched {mask:#x}")
        busy = self._result.busy_cycles if self._result else 0
        if busy > timeout_cycles:
            from .device import DeviceTimeout

            raise DeviceTimeout(f"program needs {busy} cycles, more than {timeout_cycles}")
        return value, busy

    def _write_word(self, addr: int, value: int):
        m, sim = self._map, self.sim
        word_mask = (1 << self.cfg.word_width) - 1
        if addr >= m.spad_base:
            sim.spad[addr - m.spad_base] = value & word_mask
        elif addr >= m.imem_base:
            instr, word = divmod(addr - m.imem_base, INSTR_WORDS)
            mask = 0xFFFFFFFF << (32 * word)
            sim.imem[instr] = (sim.imem[instr] & ~mask) | (value << (32 * word))
        elif addr == m["START_PC"]:
            self._start_pc = value
        elif m["S0"] <= addr < m["S0"] + 16:
            sim.sregs[addr - m["S0"]] = value & word_mask
        elif addr == m["CTRL"]:
            if value & 0b010:
                self._status &= ~0b110
            if value & 0b001 and not self._status & 0b100:
                self.finish(sim.run(self._start_pc))

    def _read_word(self, addr: int) -> int:
        m, sim, cfg = self._map, self.sim, self.cfg
        if addr >= m.spad_base:
            return int(sim.spad[addr - m.spad_base])
        if addr >= m.imem_base:
            return sim.imem_word(addr - m.imem_base)
        if m["S0"] <= addr < m["S0"] + 16:
            return sim.sregs[addr - m["S0"]]
        counters = {f"{c.name}_{half}": (v >> (32 * (half == "HI"))) & 0xFFFFFFFF
                    for c, v in sim.counters.items() for half in ("LO", "HI")}
        values = {
            "ID": CORE_ID, "CONFIG": m.config_word, "MEMA_WORDS": cfg.mema_words,
            "MEMB_WORDS": cfg.memb_words,
            "SPAD_WORDS": cfg.spad_words, "IMEM_WORDS": cfg.imem_words,
            "START_PC": self._start_pc, "STATUS": self._status,
            "ERROR_CAUSE": self._result.error.value if self._result else 0,
            "ERROR_PC": self._result.error_pc if self._result else 0,
            "PC": self._result.error_pc if self._result else 0, **counters,
        }
        for name, value in values.items():
            if addr == m[name]:
                return value
        return 0
