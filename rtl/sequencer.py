"""The core sequencer: instruction memory, fetch, checks, kernel loop nests, micro-op issue."""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .gemm import GemmEngine
from .isa import (
    INSTR_WORDS,
    Counter,
    ErrorCause,
    Opcode,
    instruction_layout,
    operand_layout,
)
from .isa_geometry import kernel_plan
from .kernels import KERNELS, Emitter
from .microop import NO_LIMIT, ASrc, BSrc, CSrc, compute_layout, transfer_layout

__all__ = ["Sequencer", "FieldView", "INSTRUCTION_OVERHEAD"]

#: Cycles of fetch, decode and check before an instruction's first micro-op.
INSTRUCTION_OVERHEAD = 3

_COUNTER_BITS = 64


class FieldView:
    """Attribute access to one opcode's operand fields as plain Amaranth values."""

    def __init__(self, view):
        self._view = view

    def __getattr__(self, name):
        value = getattr(self._view, name)
        return value.as_value() if hasattr(value, "as_value") else value


class Sequencer(wiring.Component):
    """Runs programs from IMEM: one macro-instruction at a time, no overlap.

    Contract: a ``start`` pulse while idle begins at ``start_pc``. Each instruction takes
    :data:`INSTRUCTION_OVERHEAD` cycles (fetch, decode, check), then its kernel's micro-op
    stream (one cycle per point of its loop nests, :func:`kernel_plan`), then, if it issued
    micro-ops, ``cfg.write_back_latency`` cycles of drain, so that the next instruction sees
    every result. ``halt`` sets ``done``. A failed check, an illegal opcode, running past IMEM or
    a ``hazard`` from the array stops the core with ``error``, ``cause`` and ``error_pc`` until
    ``clear``. Micro-ops leave through registers: ``uop``/``xfer`` are presented to the PEs one
    cycle after the stream cycle that produced them.

    Members
    -------
    start, clear : In(1)
    start_pc : In(imem address)
    busy, done, error : Out(1)
    cause : Out(ErrorCause)
    error_pc, pc : Out(imem address + 1)
    imem_we : In(1)
    imem_addr : In(imem address)
    imem_word : In(range(INSTR_WORDS))
    imem_wdata : In(32)
    imem_rdata : Out(32)
        Host window into IMEM: ``imem_addr``/``imem_word`` select a 32-bit word; reads return
        it one cycle later.
    sreg_we : In(1)
    sreg_idx : In(4)
    sreg_wdata : In(word)
    sreg_rdata : Out(word)
        Host access to the scalar registers (reads combinational).
    hazard : In(1)
    macs : In(...)
        MACs issued by the array this cycle.
    counters : Out(ArrayLayout(64, len(Counter)))
    counter_clear : In(1)
    uop : Out(compute_layout(cfg))
    xfer : Out(transfer_layout(cfg))
    ring_start : Out(1)
    ring_fields : Out(operand_layout(Opcode.RING))
    ring_finished : In(1)
        A ``RING`` instruction starts the ring engine from its CHECK cycle and retires in the
        cycle the engine reports ``ring_finished`` (no drain).
    """

    def __init__(self, cfg):
        self.cfg = cfg
        aw = cfg.imem_addr_width
        super().__init__({
            "start": In(1), "clear": In(1), "start_pc": In(aw),
            "busy": Out(1), "done": Out(1), "error": Out(1), "cause": Out(ErrorCause),
            "error_pc": Out(aw + 1), "pc": Out(aw + 1),
            "imem_we": In(1), "imem_addr": In(aw), "imem_word": In(range(INSTR_WORDS)),
            "imem_wdata": In(32), "imem_rdata": Out(32),
            "sreg_we": In(1), "sreg_idx": In(4), "sreg_wdata": In(cfg.word_width),
            "sreg_rdata": Out(cfg.word_width),
            "hazard": In(1), "macs": In(range(cfg.nr * cfg.nr + 1)),
            "counters": Out(data.ArrayLayout(_COUNTER_BITS, len(Counter))),
            "counter_clear": In(1),
            "uop": Out(compute_layout(cfg)), "xfer": Out(transfer_layout(cfg)),
            "ring_start": Out(1), "ring_fields": Out(operand_layout(Opcode.RING)),
            "ring_finished": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        layout = instruction_layout()

        # -- instruction memory: 256-bit rows, written and read as 32-bit words by the host --
        m.submodules.imem = imem = Memory(shape=layout.size, depth=cfg.imem_words, init=[])
        fetch = imem.read_port()
        host_wr = imem.write_port(granularity=32)
        host_rd = imem.read_port()
        m.d.comb += [
            host_wr.addr.eq(self.imem_addr), host_wr.data.eq(self.imem_wdata.replicate(
                INSTR_WORDS)),
            host_wr.en.eq(Mux(self.imem_we, 1 << self.imem_word, 0)),
            host_rd.addr.eq(self.imem_addr), host_rd.en.eq(1),
        ]
        rword = Signal.like(self.imem_word)
        m.d.sync += rword.eq(self.imem_word)
        m.d.comb += self.imem_rdata.eq(host_rd.data.word_select(rword, 32))

        # -- scalar registers ---------------------------------------------------------------
        sregs = Array(Signal(cfg.word_width, name=f"s{i}") for i in range(16))
        m.d.comb += self.sreg_rdata.eq(sregs[self.sreg_idx])
        with m.If(self.sreg_we):
            m.d.sync += sregs[self.sreg_idx].eq(self.sreg_wdata)

        # -- state --------------------------------------------------------------------------
        aw = cfg.imem_addr_width
        pc = Signal(aw + 1)
        instr = Signal(layout)
        op = instr.op.as_value()
        done, error = Signal(), Signal()
        cause = Signal(ErrorCause)
        error_pc = Signal(aw + 1)
        drain = Signal(range(cfg.write_back_latency + 1))
        seg = Signal(4)
        loops = {name: Signal(20, name=f"i_{name}") for name in ("top", "outer", "middle",
                                                                   "inner")}
        counter_snapshot = Signal(_COUNTER_BITS)
        m.d.comb += [self.done.eq(done), self.error.eq(error), self.cause.eq(cause),
                     self.error_pc.eq(error_pc), self.pc.eq(pc)]

        def fail(reason):
            m.d.sync += [error.eq(1), cause.eq(reason), error_pc.eq(pc)]
            m.next = "ERROR"

        # Per-opcode plans over the registered instruction.
        plans = {}
        for opcode in [*KERNELS, Opcode.GEMM, Opcode.RING]:
            fields = FieldView(getattr(instr.args, opcode.name.lower()))
            plans[opcode] = (fields, kernel_plan(opcode, fields, cfg))

        m.submodules.gemm = gemm = GemmEngine(cfg)
        m.d.comb += [gemm.f.eq(instr.args.gemm), self.ring_fields.eq(instr.args.ring)]

        # Loop bounds of the current opcode and segment.
        bounds = {name: Signal(20, name=f"bound_{name}") for name in loops}
        n_segments = Signal(4)
        with m.Switch(op):
            for opcode, (_, plan) in plans.items():
                with m.Case(opcode):
                    m.d.comb += n_segments.eq(len(plan.segments))
                    with m.Switch(seg):
                        for index, segment in enumerate(plan.segments):
                            with m.Case(index):
                                for name in loops:
                                    m.d.comb += bounds[name].eq(getattr(segment, name))
        last = {name: loops[name] == bounds[name] - 1 for name in loops}

        # Unset operands read nothing: a = -0, b = 1, c = -0 claim no memory port.
        uop_next = Signal(compute_layout(cfg), init={
            "row_lim": NO_LIMIT, "col_lim": NO_LIMIT, "k_lim": NO_LIMIT,
            "a": ASrc.NEGZERO, "b": BSrc.ONE, "c": CSrc.NEGZERO})
        xfer_next = Signal(transfer_layout(cfg))
        uop_reg = Signal.like(uop_next)
        xfer_reg = Signal.like(xfer_next)
        m.d.sync += [uop_reg.eq(uop_next), xfer_reg.eq(xfer_next)]
        m.d.comb += [self.uop.eq(uop_reg), self.xfer.eq(xfer_reg)]

        legal = Cat(*[op == o.value for o in Opcode]).any()
        retire = Signal()

        with m.FSM(name="seq") as fsm:
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [pc.eq(self.start_pc), done.eq(0)]
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += [fetch.addr.eq(pc), fetch.en.eq(1)]
                with m.If(pc >= cfg.imem_words):
                    fail(ErrorCause.IMEM_RANGE)
                with m.Else():
                    m.next = "DECODE"
            with m.State("DECODE"):
                m.d.sync += instr.eq(fetch.data)
                m.next = "CHECK"
            with m.State("CHECK"):
                m.d.sync += [seg.eq(0), *[loop.eq(0) for loop in loops.values()]]
                with m.If(~legal):
                    fail(ErrorCause.ILLEGAL_OPCODE)
                with m.Elif(op == Opcode.HALT):
                    m.d.comb += retire.eq(1)
                    m.d.sync += done.eq(1)
                    m.next = "IDLE"
                with m.Elif(op == Opcode.SETS):
                    sets = instr.args.sets
                    m.d.comb += retire.eq(1)
                    m.d.sync += [sregs[sets.reg].eq(sets.value[:cfg.word_width]),
                                 pc.eq(pc + 1)]
                    m.next = "FETCH"
                with m.Elif((op == Opcode.NOP) | (op == Opcode.SYNC)):
                    m.d.comb += retire.eq(1)
                    m.d.sync += pc.eq(pc + 1)
                    m.next = "FETCH"
                with m.Else():
                    self._check(m, op, plans, fail, gemm)
                    counter_sel = instr.args.rdcnt.counter.as_value()
                    m.d.sync += counter_snapshot.eq(
                        Array(self.counters[i] for i in range(len(Counter)))[counter_sel])
            with m.State("RUN"):
                with m.If(op == Opcode.GEMM):
                    m.d.comb += [uop_next.eq(gemm.uop), xfer_next.eq(gemm.xfer)]
                    with m.If(gemm.last):
                        m.d.sync += drain.eq(cfg.write_back_latency - 1)
                        m.next = "DRAIN"
                with m.Else():
                    self._advance(m, loops, bounds, last, seg, n_segments, drain)
                with m.Switch(op):
                    for opcode, (fields, plan) in plans.items():
                        if opcode not in KERNELS:
                            continue
                        with m.Case(opcode):
                            values = dict(plan.values)
                            values.update(self._scalars(opcode, fields, sregs))
                            values["counter"] = counter_snapshot
                            KERNELS[opcode](Emitter(m, cfg, uop_next, xfer_next, fields,
                                                    values, seg, loops, last))
                # A structural hazard aborts the program (a later m.next wins).
                with m.If(self.hazard):
                    fail(ErrorCause.HAZARD)
            with m.State("RING"):
                with m.If(self.ring_finished):
                    m.d.comb += retire.eq(1)
                    m.d.sync += pc.eq(pc + 1)
                    m.next = "FETCH"
            with m.State("DRAIN"):
                with m.If(drain == 0):
                    m.d.comb += retire.eq(1)
                    m.d.sync += pc.eq(pc + 1)
                    m.next = "FETCH"
                with m.Else():
                    m.d.sync += drain.eq(drain - 1)
                with m.If(self.hazard):
                    fail(ErrorCause.HAZARD)
            with m.State("ERROR"):
                with m.If(self.clear):
                    m.d.sync += [error.eq(0), cause.eq(ErrorCause.NONE)]
                    m.next = "IDLE"
        with m.If(self.clear & ~error):
            m.d.sync += done.eq(0)

        busy = ~fsm.ongoing("IDLE") & ~fsm.ongoing("ERROR")
        m.d.comb += self.busy.eq(busy)
        increments = {
            Counter.CYCLES: 1, Counter.BUSY: busy, Counter.INSTRET: retire,
            Counter.MACS: self.macs, Counter.STALLS: fsm.ongoing("DRAIN"),
            Counter.RING: fsm.ongoing("RING"),
        }
        for counter, increment in increments.items():
            value = self.counters[counter.value]
            with m.If(self.counter_clear):
                m.d.sync += value.eq(0)
            with m.Else():
                m.d.sync += value.eq(value + increment)
        return m

    def _scalars(self, opcode, fields, sregs):
        if opcode == Opcode.GER:
            return {"alpha": sregs[fields.alpha], "wd": sregs[fields.wd], "mu": sregs[fields.mu]}
        if opcode == Opcode.VOP:
            return {"alpha": sregs[fields.alpha]}
        return {}

    def _check(self, m, op, plans, fail, gemm):
        # The first failing check (in the plan's order) names the error.
        with m.Switch(op):
            for opcode, (_, plan) in plans.items():
                with m.Case(opcode):
                    failed = Signal(name=f"failed_{opcode.name.lower()}")
                    reason = Signal(ErrorCause, name=f"reason_{opcode.name.lower()}")
                    for check in reversed(plan.checks):
                        with m.If(~check.ok):
                            m.d.comb += [failed.eq(1),
                                         reason.eq(getattr(ErrorCause, check.cause))]
                    with m.If(failed):
                        fail(reason)
                    with m.Else():
                        if opcode == Opcode.GEMM:
                            m.d.comb += gemm.start.eq(1)
                        if opcode == Opcode.RING:
                            m.d.comb += self.ring_start.eq(1)
                            m.next = "RING"
                        else:
                            m.next = "RUN"

    def _advance(self, m, loops, bounds, last, seg, n_segments, drain):
        order = ["inner", "middle", "outer", "top"]
        carry = 1
        for name in order:
            with m.If(carry):
                m.d.sync += loops[name].eq(Mux(last[name], 0, loops[name] + 1))
            carry = carry & last[name]
        with m.If(carry):
            with m.If(seg == n_segments - 1):
                m.d.sync += drain.eq(self.cfg.write_back_latency - 1)
                m.next = "DRAIN"
            with m.Else():
                m.d.sync += seg.eq(seg + 1)
