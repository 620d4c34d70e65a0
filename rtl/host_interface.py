"""A core's host interface: decodes the host bus into CSRs and the IMEM and SPAD windows."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from caterpillar.contract.isa import Counter
from caterpillar.contract.registers import (
    CTRL,
    ERROR_CAUSE,
    SCALAR_REGISTERS,
    STATUS,
    Csr,
    RegisterMap,
)
from caterpillar.rtl.ports import HostBus, HostWindow, SequencerPort

__all__ = ["HostInterface", "register_layout"]


def register_layout(csr: Csr) -> data.StructLayout:
    """The :class:`~amaranth.lib.data.StructLayout` of a 32-bit register's fields (the gaps
    between them are reserved, read as 0)."""
    members, offset = {}, 0
    for f in sorted(csr.fields, key=lambda f: f.lsb):
        if f.lsb > offset:
            members[f"_reserved{offset}"] = f.lsb - offset
        members[f.name] = f.width
        offset = f.lsb + f.width
    if offset < 32:
        members[f"_reserved{offset}"] = 32 - offset
    return data.StructLayout(members)


class HostInterface(wiring.Component):
    """The core's CSRs (:class:`~caterpillar.contract.registers.RegisterMap`) and its windows
    into IMEM and the SPAD, behind one :class:`~caterpillar.rtl.ports.HostBus`.

    Contract: every request completes in its cycle; read data (a CSR, an IMEM word or a SPAD
    word) is on ``bus.rdata`` the next cycle. Writes to ``CTRL`` become one-cycle pulses on
    ``seq``. A write into IMEM or the SPAD, or a read of the SPAD, while the sequencer is busy
    is refused (memory unchanged, the read returns 0: the SPAD's ports belong to the array and
    the ring engine then) and reported on ``seq.host_refused``, which stops the core with
    ``HOST_ACCESS``.
    ``START_PC`` resets to 0.

    Members
    -------
    bus : In(HostBus())
    seq : Out(SequencerPort(cfg))
    imem : Out(HostWindow(imem word address bits, 32))
        Word ``w`` of instruction ``i`` is at ``INSTR_WORDS * i + w``.
    spad : Out(HostWindow(spad word address bits, word))
    """

    def __init__(self, cfg):
        self.cfg = cfg
        self.register_map = RegisterMap(cfg)
        imem_bits = (cfg.imem_words * self.register_map.instr_words - 1).bit_length()
        super().__init__({
            "bus": In(HostBus()), "seq": Out(SequencerPort(cfg)),
            "imem": Out(HostWindow(imem_bits, 32)),
            "spad": Out(HostWindow(cfg.spad_addr_width, cfg.word_width)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, regs, bus, seq = self.cfg, self.register_map, self.bus, self.seq

        in_spad = bus.addr >= regs.spad_base
        in_imem = ~in_spad & (bus.addr >= regs.imem_base)
        in_csrs = ~in_spad & ~in_imem
        refused = (bus.we & (in_spad | in_imem) | bus.re & in_spad) & seq.busy
        for window, inside, base, guarded_read in ((self.imem, in_imem, regs.imem_base, 0),
                                                   (self.spad, in_spad, regs.spad_base, 1)):
            m.d.comb += [window.addr.eq(bus.addr - base), window.wdata.eq(bus.wdata),
                         window.we.eq(bus.we & inside & ~seq.busy),
                         window.re.eq(bus.re & inside & ~(seq.busy & guarded_read))]

        csr_write = bus.we & in_csrs
        ctrl = Signal(register_layout(CTRL))
        m.d.comb += ctrl.eq(Mux(csr_write & (bus.addr == CTRL.addr), bus.wdata, 0))
        start_pc = Signal(cfg.imem_addr_width)
        sreg_base = regs["S0"]
        in_sregs = (bus.addr >= sreg_base) & (bus.addr < sreg_base + SCALAR_REGISTERS)
        m.d.comb += [
            seq.start.eq(ctrl.start), seq.clear.eq(ctrl.clear),
            seq.clear_counters.eq(ctrl.clear_counters),
            seq.clear_host_words.eq(ctrl.clear_host_words), seq.start_pc.eq(start_pc),
            seq.host_refused.eq(refused),
            seq.host_word.eq(self.imem.we | self.imem.re | self.spad.we | self.spad.re),
            seq.sreg_idx.eq(bus.addr - sreg_base), seq.sreg_we.eq(csr_write & in_sregs),
            seq.sreg_wdata.eq(bus.wdata),
        ]
        with m.If(csr_write & (bus.addr == regs["START_PC"])):
            m.d.sync += start_pc.eq(bus.wdata)

        status = Signal(register_layout(STATUS))
        cause = Signal(register_layout(ERROR_CAUSE))
        m.d.comb += [status.busy.eq(seq.busy), status.done.eq(seq.done),
                     status.error.eq(seq.error), cause.cause.eq(seq.cause)]
        readable = dict(regs.constants())
        readable.update({"START_PC": start_pc, "STATUS": status, "ERROR_CAUSE": cause,
                         "ERROR_PC": seq.error_pc, "PC": seq.pc})
        for counter in Counter:
            readable[f"{counter.name}_LO"] = seq.counters[counter.value][:32]
            readable[f"{counter.name}_HI"] = seq.counters[counter.value][32:]
        csr_value = Signal(32)
        with m.Switch(bus.addr):
            for name, value in readable.items():
                with m.Case(regs[name]):
                    m.d.comb += csr_value.eq(value)
        with m.If(in_sregs):
            m.d.comb += csr_value.eq(seq.sreg_rdata)

        # Read data one cycle after the request, from the region it addressed.
        csr_rdata = Signal(32)
        region = Signal(2)
        spad_read = Signal()
        m.d.sync += [csr_rdata.eq(csr_value), region.eq(Cat(in_spad, in_imem)),
                     spad_read.eq(self.spad.re)]
        m.d.comb += bus.rdata.eq(Mux(region[0], Mux(spad_read, self.spad.rdata, 0),
                                     Mux(region[1], self.imem.rdata, csr_rdata)))
        return m
