"""The core sequencer: instruction memory, fetch, checks, kernel loop nests, micro-op issue."""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from caterpillar.contract.geometry import (
    RING_DRAINING_OPCODES,
    SPAD_REGIONS,
    TRANSFER_DRAIN_CYCLES,
    TRANSFER_OPCODES,
    kernel_plan,
)
from caterpillar.contract.isa import (
    INSTR_WORDS,
    LOOP_OFFSETS,
    OPCODE_BITS,
    REL_BITS,
    Counter,
    ErrorCause,
    Opcode,
    address_fields,
    field_offsets,
)
from caterpillar.contract.registers import COUNTER_BITS, SCALAR_REGISTERS
from caterpillar.rtl.gemm import GemmEngine
from caterpillar.rtl.instruction import FieldView, instruction_layout
from caterpillar.rtl.kernels import KERNELS, Emitter, kernels_of
from caterpillar.rtl.microop import NO_LIMIT, ASrc, BSrc, CSrc, compute_layout, transfer_layout
from caterpillar.rtl.ports import (
    ArrayStatus,
    HostWindow,
    MicroOps,
    RingCommand,
    RingEvents,
    SequencerPort,
    SpadEvents,
)

__all__ = ["Sequencer"]


def _relocation_groups() -> dict:
    """``{start bit: (width, {opcode: (field width, bit of its rel selector)})}``: the address
    fields a ``rel`` selector moves (:func:`~caterpillar.contract.isa.address_fields`),
    grouped by the bit where they start in the instruction word."""
    groups = {}
    for op in Opcode:
        where = field_offsets(op)
        for i, f in enumerate(address_fields(op)):
            width, members = groups.setdefault(where[f.name], (0, {}))
            members[op] = (f.width, where["rel"] + REL_BITS * i)
            groups[where[f.name]] = (max(width, f.width), members)
    return groups


#: Instruction-memory words per instruction, as an address shift.
_WORD_BITS = (INSTR_WORDS - 1).bit_length()


class Sequencer(wiring.Component):
    """Runs programs from IMEM: one macro-instruction at a time, the next one fetched ahead.

    Contract: a ``host.start`` pulse while idle begins at ``host.start_pc`` with its fetch and
    decode (:data:`~caterpillar.contract.geometry.RUN_START_CYCLES`). Each instruction takes
    :data:`~caterpillar.contract.geometry.INSTRUCTION_OVERHEAD` cycle (its check, in which the
    next instruction is fetched), then its kernel's micro-op stream (one cycle per point of its
    loop nests, :func:`~caterpillar.contract.geometry.kernel_plan`), then, if it issued
    micro-ops, its drain (:func:`~caterpillar.contract.geometry.drain_cycles`:
    ``cfg.write_back_latency`` cycles, three after a transfer kernel), so that the next
    instruction sees every result; the next instruction is decoded in the cycle this one
    retires; a plan may skip its first segment (``skip_first``: it has no cycles then).
    ``nop``, ``sync``, ``sets`` and ``loop`` retire in their check and leave the next
    instruction's decode to a cycle of its own. ``halt`` sets ``done``. A ``loop``'s body
    (:class:`~caterpillar.contract.isa.LoopState`) runs again from the check of its last
    instruction, which fetches the first (no cycle lost); the decode adds the loop's offsets
    to the address fields a body instruction's ``rel`` selects, before the checks. A failed
    check, an illegal opcode, running past IMEM, a ``hazard`` from the array or a refused host
    access stops the core with ``error``, ``cause`` and ``error_pc`` until ``clear``. Micro-ops
    leave through registers: ``issue`` is presented to the PEs one cycle after the stream cycle
    that produced it. A ``RING`` is posted: it hands its fields to the ring engine in its check
    cycle (the engine starts it or queues it) and retires there (a cycle of decode follows, as
    for ``nop``); the instructions after it run while the engine moves the data, except those
    :func:`~caterpillar.contract.geometry.ring_waits` holds: a ``RING`` waits in its check
    while the engine's queue is ``full``; ``rdcnt``, ``sync`` and ``halt`` while the engine
    is ``busy``; an instruction that uses the SPAD while a posted ``RING`` not yet finished
    uses one of its SPAD regions (``KernelPlan.spad_regions``, counted per region from the
    ``RING`` s' posts and ``finished``), so one that waited checks in the cycle after the
    ``finished`` of the last such ``RING``.

    Members
    -------
    host : In(SequencerPort(cfg))
        Commands, scalar registers, state and counters, for the host interface.
    imem : In(HostWindow(imem word address bits, 32))
        The host's window into IMEM (reads one cycle later).
    issue : Out(MicroOps(cfg))
    array : In(ArrayStatus(cfg))
        The array's hazard and its events, counted with the SPAD's and the ring engine's
        (``spad_events``, ``ring_events``) in the event counters (``OPS`` on).
    ring : Out(RingCommand())
    spad_events : In(SpadEvents(cfg))
    ring_events : In(RingEvents(cfg))
    """

    def __init__(self, cfg):
        self.cfg = cfg
        imem_bits = (cfg.imem_words * INSTR_WORDS - 1).bit_length()
        super().__init__({
            "host": In(SequencerPort(cfg)), "imem": In(HostWindow(imem_bits, 32)),
            "issue": Out(MicroOps(cfg)), "array": In(ArrayStatus(cfg)),
            "ring": Out(RingCommand()), "spad_events": In(SpadEvents(cfg)),
            "ring_events": In(RingEvents(cfg)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, host = self.cfg, self.host
        layout = instruction_layout()
        fetch = self._instruction_memory(m, layout)
        sregs = self._scalar_registers(m)

        # -- state --------------------------------------------------------------------------
        aw = cfg.imem_addr_width
        pc = Signal(aw + 1)
        # The running LOOP: its body's first and last pc, repetitions left, offsets, strides.
        loop_active = Signal()
        loop_start, loop_end = Signal(aw + 1), Signal(aw + 17)
        loop_left = Signal(16)
        offsets = [Signal(24, name=f"loop_offset{k + 1}") for k in range(LOOP_OFFSETS)]
        strides = [Signal(24, name=f"loop_stride{k + 1}") for k in range(LOOP_OFFSETS)]
        fetched = self._relocated(m, layout, fetch.data, loop_active, offsets)
        instr = Signal(layout)
        op = instr.op
        done, error = Signal(), Signal()
        cause = Signal(ErrorCause)
        error_pc = Signal(aw + 1)
        drain = Signal(range(cfg.write_back_latency + 1))
        seg = Signal(4)
        loops = {name: Signal(20, name=f"i_{name}") for name in ("top", "outer", "middle",
                                                                   "inner")}
        counter_snapshot = Signal(COUNTER_BITS)
        m.d.comb += [host.done.eq(done), host.error.eq(error), host.cause.eq(cause),
                     host.error_pc.eq(error_pc), host.pc.eq(pc)]

        def fail(reason):
            m.d.sync += [error.eq(1), cause.eq(reason), error_pc.eq(pc)]
            m.next = "ERROR"

        def refuse_host_access():
            # In every busy state, last: a refused host access wins over the state's m.next.
            with m.If(host.host_refused):
                fail(ErrorCause.HOST_ACCESS)

        # Per-opcode plans over the registered instruction.
        plans = {}
        for opcode in [*KERNELS, Opcode.GEMM, Opcode.RING]:
            fields = FieldView(getattr(instr.args, opcode.name.lower()))
            plans[opcode] = (fields, kernel_plan(opcode, fields, cfg, select=Mux))
        checks_ok, regions, register_checks = self._registered_checks(layout, fetched)

        m.submodules.gemm = gemm = GemmEngine(cfg)
        m.d.comb += [gemm.f.eq(instr.args.gemm), self.ring.fields.eq(instr.args.ring)]
        bounds, last, n_segments = self._loop_bounds(m, op, plans, seg, loops)
        # A plan whose first segment has no cycles starts at its second.
        skip_first = Signal()
        with m.Switch(op):
            for opcode, (_, plan) in plans.items():
                if not isinstance(plan.skip_first, int) or plan.skip_first:
                    with m.Case(opcode):
                        m.d.comb += skip_first.eq(plan.skip_first)

        # Unset operands read nothing: a = -0, b = 1, c = -0 claim no memory port.
        uop_next = Signal(compute_layout(cfg), init={
            "row_lim": NO_LIMIT, "col_lim": NO_LIMIT, "k_lim": NO_LIMIT,
            "a": ASrc.NEGZERO, "b": BSrc.ONE, "c": CSrc.NEGZERO})
        xfer_next = Signal(transfer_layout(cfg))
        uop_reg = Signal.like(uop_next)
        xfer_reg = Signal.like(xfer_next)
        m.d.sync += [uop_reg.eq(uop_next), xfer_reg.eq(xfer_next)]
        m.d.comb += [self.issue.uop.eq(uop_reg), self.issue.xfer.eq(xfer_reg)]

        legal = Cat(*[op == o.value for o in Opcode]).any()
        draining = Cat(*[op == o.value for o in RING_DRAINING_OPCODES]).any()
        op_regions = Signal(SPAD_REGIONS)
        with m.Switch(op):
            for opcode, mask in regions.items():
                with m.Case(opcode):
                    m.d.comb += op_regions.eq(mask)
        ring_regions = self._ring_regions(m, op_regions)
        transfer = Cat(*[op == o.value for o in TRANSFER_OPCODES]).any()
        drain_start = Mux(transfer, TRANSFER_DRAIN_CYCLES - 1, cfg.write_back_latency - 1)
        retire = Signal()
        # The check cycle fetches the next instruction (when IMEM has it); the fetch port then
        # holds that word until the instruction retires and decodes it.
        ahead = Signal()
        next_pc = Signal(aw + 1)            # the next instruction's, from its fetch on
        body_ends = loop_active & (pc == loop_end)
        target = Mux(body_ends & (loop_left != 0), loop_start, pc + 1)
        has_next = target < cfg.imem_words
        m.d.comb += fetch.en.eq(0)          # (a read port's en is 1 unless driven)

        def fetch_next(in_loop=True):
            with m.If(has_next):
                m.d.comb += [fetch.addr.eq(target), fetch.en.eq(1)]
            m.d.sync += [ahead.eq(has_next), next_pc.eq(target)]
            if not in_loop:     # a LOOP, never in a running loop's body (else it fails)
                return
            # The loop moves on with the fetch: the fetched instruction decodes with it.
            with m.If(body_ends):
                with m.If(loop_left != 0):
                    m.d.sync += [loop_left.eq(loop_left - 1),
                                 *[o.eq(o + d) for o, d in zip(offsets, strides, strict=True)]]
                with m.Else():
                    m.d.sync += loop_active.eq(0)

        def retire_in_check():
            # The next instruction was fetched in this cycle: its decode takes the next one.
            m.d.comb += retire.eq(1)
            m.d.sync += pc.eq(target)
            with m.If(has_next):
                m.next = "DECODE"
            with m.Else():
                m.next = "FETCH"

        def retire_to_next():
            m.d.comb += retire.eq(1)
            m.d.sync += pc.eq(next_pc)
            with m.If(ahead):
                m.d.sync += [instr.eq(fetched), *register_checks]
                m.next = "CHECK"
            with m.Else():
                m.next = "FETCH"

        with m.FSM(name="seq") as fsm:
            with m.State("IDLE"):
                with m.If(host.start):
                    m.d.sync += [pc.eq(host.start_pc), done.eq(0), loop_active.eq(0)]
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += [fetch.addr.eq(pc), fetch.en.eq(1)]
                with m.If(pc >= cfg.imem_words):
                    fail(ErrorCause.IMEM_RANGE)
                with m.Else():
                    m.next = "DECODE"
                refuse_host_access()
            with m.State("DECODE"):
                m.d.sync += [instr.eq(fetched), *register_checks]
                m.next = "CHECK"
                refuse_host_access()
            with m.State("CHECK"):
                # A posted RING's engine owns the ports of the SPAD regions it uses (ring_waits).
                ring_waits = Mux(op == Opcode.RING, self.ring.full,
                                 Mux(draining, self.ring.busy, (op_regions & ring_regions).any()))
                with m.If(~ring_waits):
                    m.d.sync += [seg.eq(skip_first), *[loop.eq(0) for loop in loops.values()]]
                    with m.If(~legal):
                        fail(ErrorCause.ILLEGAL_OPCODE)
                    with m.Elif(op == Opcode.HALT):
                        m.d.comb += retire.eq(1)
                        m.d.sync += done.eq(1)
                        m.next = "IDLE"
                    with m.Elif(op == Opcode.SETS):
                        sets = instr.args.sets
                        m.d.sync += sregs[sets.reg].eq(sets.value[:cfg.word_width])
                        fetch_next()
                        retire_in_check()
                    with m.Elif((op == Opcode.NOP) | (op == Opcode.SYNC)):
                        fetch_next()
                        retire_in_check()
                    with m.Elif(op == Opcode.LOOP):
                        f = instr.args.loop
                        with m.If(loop_active | (f.count == 0) | (f.body == 0)):
                            fail(ErrorCause.ILLEGAL_FIELD)
                        with m.Else():
                            fetch_next(in_loop=False)
                            retire_in_check()
                            m.d.sync += [loop_active.eq(1), loop_start.eq(pc + 1),
                                         loop_end.eq(pc + f.body), loop_left.eq(f.count - 1),
                                         *[o.eq(0) for o in offsets],
                                         *[d.eq(getattr(f, f"stride{k + 1}"))
                                           for k, d in enumerate(strides)]]
                    with m.Else():
                        fetch_next()
                        self._check(m, op, plans, checks_ok, fail, gemm, retire_in_check)
                        counter_sel = instr.args.rdcnt.counter
                        m.d.sync += counter_snapshot.eq(
                            Array(host.counters[i] for i in range(len(Counter)))[counter_sel])
                refuse_host_access()
            with m.State("RUN"):
                with m.If(op == Opcode.GEMM):
                    m.d.comb += [uop_next.eq(gemm.uop), xfer_next.eq(gemm.xfer)]
                    with m.If(gemm.last):
                        m.d.sync += drain.eq(cfg.write_back_latency - 1)
                        m.next = "DRAIN"
                with m.Else():
                    self._advance(m, loops, bounds, last, seg, n_segments, drain,
                                  drain_start)
                kernels = kernels_of(cfg)
                with m.Switch(op):
                    for opcode, (fields, plan) in plans.items():
                        if opcode not in kernels:
                            continue
                        with m.Case(opcode):
                            values = dict(plan.values)
                            values.update(self._scalars(opcode, fields, sregs))
                            values["counter"] = counter_snapshot
                            kernels[opcode](Emitter(m, cfg, uop_next, xfer_next, fields,
                                                    values, seg, loops, last))
                # A structural hazard aborts the program (a later m.next wins).
                with m.If(self.array.hazard):
                    fail(ErrorCause.HAZARD)
                refuse_host_access()
            with m.State("DRAIN"):
                with m.If(drain == 0):
                    retire_to_next()
                with m.Else():
                    m.d.sync += drain.eq(drain - 1)
                with m.If(self.array.hazard):
                    fail(ErrorCause.HAZARD)
                refuse_host_access()
            with m.State("ERROR"):
                with m.If(host.clear):
                    m.d.sync += [error.eq(0), cause.eq(ErrorCause.NONE)]
                    m.next = "IDLE"
        with m.If(host.clear & ~error):
            m.d.sync += done.eq(0)

        busy = ~fsm.ongoing("IDLE") & ~fsm.ongoing("ERROR")
        m.d.comb += host.busy.eq(busy)
        self._counters(m, {
            Counter.CYCLES: 1, Counter.BUSY: busy, Counter.INSTRET: retire,
            Counter.MACS: self.array.macs, Counter.STALLS: fsm.ongoing("DRAIN"),
            Counter.RING: self.ring.active, Counter.OPS: self.array.ops,
            Counter.MEMA_READS: self.array.mema_reads, Counter.MEMA_WRITES: self.array.mema_writes,
            Counter.MEMB_READS: self.array.memb_reads, Counter.MEMB_WRITES: self.array.memb_writes,
            Counter.SPAD_READS: self.spad_events.reads,
            Counter.SPAD_WRITES: self.spad_events.writes,
            Counter.LINK_WORDS: self.ring_events.link_words,
            Counter.RING_ADDS: self.ring_events.adds,
            Counter.HOST_WORDS: self.host.host_word,
        })
        return m

    def _instruction_memory(self, m, layout):
        """IMEM: 256-bit rows, written and read as 32-bit words by the host. Returns the fetch
        port."""
        cfg, window = self.cfg, self.imem
        m.submodules.imem = imem = Memory(shape=layout.size, depth=cfg.imem_words, init=[])
        fetch = imem.read_port()
        host_wr = imem.write_port(granularity=32)
        host_rd = imem.read_port()
        row, word = window.addr[_WORD_BITS:], window.addr[:_WORD_BITS]
        m.d.comb += [
            host_wr.addr.eq(row), host_wr.data.eq(window.wdata.replicate(INSTR_WORDS)),
            host_wr.en.eq(Mux(window.we, 1 << word, 0)),
            host_rd.addr.eq(row), host_rd.en.eq(1),
        ]
        rword = Signal.like(word)
        m.d.sync += rword.eq(word)
        m.d.comb += window.rdata.eq(host_rd.data.word_select(rword, 32))
        return fetch

    def _scalar_registers(self, m):
        """The scalar registers, written by the host and by ``sets``, read combinationally."""
        host = self.host
        sregs = Array(Signal(self.cfg.word_width, name=f"s{i}")
                      for i in range(SCALAR_REGISTERS))
        m.d.comb += host.sreg_rdata.eq(sregs[host.sreg_idx])
        with m.If(host.sreg_we):
            m.d.sync += sregs[host.sreg_idx].eq(host.sreg_wdata)
        return sregs

    def _loop_bounds(self, m, op, plans, seg, loops):
        """Loop bounds of the current opcode and segment, the last-iteration flags and the
        number of segments."""
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
        return bounds, last, n_segments

    def _counters(self, m, increments):
        """The performance counters: each adds its increment every cycle until cleared."""
        for counter, increment in increments.items():
            value = self.host.counters[counter.value]
            clear = self.host.clear_host_words if counter == Counter.HOST_WORDS \
                else self.host.clear_counters
            with m.If(clear):
                m.d.sync += value.eq(0)
            with m.Else():
                m.d.sync += value.eq(value + increment)

    def _scalars(self, opcode, fields, sregs):
        if opcode == Opcode.GER:
            return {"alpha": sregs[fields.alpha], "wd": sregs[fields.wd], "mu": sregs[fields.mu]}
        if opcode == Opcode.VOP:
            return {"alpha": sregs[fields.alpha]}
        return {}

    def _relocated(self, m, layout, word, active, offsets):
        """The fetched instruction ``word`` as it runs: while a loop is ``active``, each
        address field its ``rel`` selects with ``k`` plus ``offsets[k - 1]`` (modulo the
        field's width; :func:`~caterpillar.contract.isa.relocate`).

        One adder per bit position where some opcode's address field starts (14 for 41
        fields), as wide as the widest field starting there: the opcode picks the selector
        its ``rel`` holds for the field there and which of the sum's low bits replace it."""
        out = Signal(len(word))
        m.d.comb += out.eq(word)
        op = word[:OPCODE_BITS]
        choices = Array([0, *offsets])
        for start, (width, members) in _relocation_groups().items():
            sel, total = Signal(REL_BITS), Signal(width, name=f"moved_{start}")
            with m.Switch(op):
                for opcode, (_, rel) in members.items():
                    with m.Case(opcode):
                        m.d.comb += sel.eq(word[rel:rel + REL_BITS])
            m.d.comb += total.eq(word[start:start + width] + choices[sel])
            with m.If(active):
                with m.Switch(op):
                    for opcode, (field_width, _) in members.items():
                        with m.Case(opcode):
                            m.d.comb += out[start:start + field_width].eq(total[:field_width])
        return layout(out)

    def _registered_checks(self, layout, fetched):
        """Every opcode's checks evaluated on the fetched instruction in ``DECODE`` and
        registered with it: ``{opcode: [ok flip-flop per check]}`` and their updates.

        The checks' products and sums (``base + (rows - 1) * ld + ...``, one multiplier each)
        then end at flip-flops instead of running on into the ``CHECK`` decision, which starts
        the engines and moves every state machine of the core; the decision costs no cycle.
        """
        checks_ok, regions, updates = {}, {}, []
        for opcode in [*KERNELS, Opcode.GEMM, Opcode.RING]:
            fields = FieldView(getattr(fetched.args, opcode.name.lower()))
            plan = kernel_plan(opcode, fields, self.cfg, select=Mux)
            name = opcode.name.lower()
            checks_ok[opcode] = [Signal(name=f"ok_{name}_{i}") for i in range(len(plan.checks))]
            updates += [ok.eq(check.ok) for ok, check in zip(checks_ok[opcode], plan.checks,
                                                             strict=True)]
            if not isinstance(plan.spad_regions, int) or plan.spad_regions:
                regions[opcode] = Signal(SPAD_REGIONS, name=f"regions_{name}")
                updates.append(regions[opcode].eq(plan.spad_regions))
        return checks_ok, regions, updates

    def _ring_regions(self, m, op_regions):
        """The mask of the SPAD regions the posted ``RING`` s not yet ``finished`` use: a count
        per region, up on a post (``op_regions`` of the ``RING`` in its check, handed to the
        engine with its fields), down on a ``finished`` (the engine's ``active_regions``)."""
        m.d.comb += self.ring.regions.eq(op_regions)
        counts = [Signal(range(self.cfg.ring_commands + 2), name=f"ring_region{r}_posts")
                  for r in range(SPAD_REGIONS)]
        for r, count in enumerate(counts):
            up = self.ring.start & op_regions[r]
            down = self.ring.finished & self.ring.active_regions[r]
            m.d.sync += count.eq(count + up - down)
        return Cat(*[count != 0 for count in counts])

    def _check(self, m, op, plans, checks_ok, fail, gemm, retire_in_check):
        # The first failing check (in the plan's order) names the error.
        with m.Switch(op):
            for opcode, (_, plan) in plans.items():
                with m.Case(opcode):
                    failed = Signal(name=f"failed_{opcode.name.lower()}")
                    reason = Signal(ErrorCause, name=f"reason_{opcode.name.lower()}")
                    for check, ok in zip(reversed(plan.checks), reversed(checks_ok[opcode]),
                                         strict=True):
                        with m.If(~ok):
                            m.d.comb += [failed.eq(1),
                                         reason.eq(check.cause)]
                    with m.If(failed):
                        fail(reason)
                    with m.Else():
                        # Nothing starts in a cycle whose refused host access stops the core.
                        if opcode == Opcode.GEMM:
                            m.d.comb += gemm.start.eq(~self.host.host_refused)
                        if opcode == Opcode.RING:
                            m.d.comb += self.ring.start.eq(~self.host.host_refused)
                            retire_in_check()
                        else:
                            m.next = "RUN"

    def _advance(self, m, loops, bounds, last, seg, n_segments, drain, drain_start):
        order = ["inner", "middle", "outer", "top"]
        carry = 1
        for name in order:
            with m.If(carry):
                m.d.sync += loops[name].eq(Mux(last[name], 0, loops[name] + 1))
            carry = carry & last[name]
        with m.If(carry):
            with m.If(seg == n_segments - 1):
                m.d.sync += drain.eq(drain_start)
                m.next = "DRAIN"
            with m.Else():
                m.d.sync += seg.eq(seg + 1)
