"""One CATERPILLAR core: sequencer, PE array and SPAD behind a host bus."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .host import HostBus
from .isa import INSTR_WORDS, Counter
from .pe_array import PEArray
from .regmap import CORE_ID, RegisterMap
from .ring_engine import RingEngine
from .ring_link import ring_link
from .sequencer import Sequencer
from .spad import Spad

__all__ = ["Core"]


class Core(wiring.Component):
    """A complete core reached through :class:`~caterpillar.rtl.host.HostBus`.

    Contract: the host loads IMEM and the SPAD through their windows, writes scalar registers
    and ``START_PC``, writes ``CTRL.start`` and polls ``STATUS`` until ``done`` or ``error``.
    Every host request completes in one cycle (reads return data the next cycle). See
    docs/architecture.md and :class:`~caterpillar.rtl.host.RegisterMap`.

    ``RING`` instructions move data over ``link_out`` to the next core and from ``link_in``
    (docs/multicore.md); a lone core's links are idle unless a program uses them.

    Members
    -------
    bus : In(HostBus())
    link_out : Out(ring_link(cfg))
    link_in : In(ring_link(cfg))
    status : Out(3)
        ``STATUS`` (busy, done, error) for a multicore top.
    link_chain : Out(1)
        The running ``RING`` instruction uses the chain links (see
        :class:`~caterpillar.rtl.ring.Ring`).
    """

    def __init__(self, cfg):
        self.cfg = cfg
        self.register_map = RegisterMap(cfg)
        super().__init__({"bus": In(HostBus()), "link_out": Out(ring_link(cfg)),
                          "link_in": In(ring_link(cfg)), "status": Out(3),
                          "link_chain": Out(1)})

    def elaborate(self, platform):
        m = Module()
        cfg, regs, bus = self.cfg, self.register_map, self.bus
        m.submodules.seq = seq = Sequencer(cfg)
        m.submodules.array = array = PEArray(cfg)
        m.submodules.spad = spad = Spad(cfg)

        m.submodules.ring = ring = RingEngine(cfg)
        wiring.connect(m, ring.link_out, wiring.flipped(self.link_out))
        wiring.connect(m, wiring.flipped(self.link_in), ring.link_in)
        m.d.comb += [
            ring.start.eq(seq.ring_start), ring.fields.eq(seq.ring_fields),
            self.link_chain.eq(ring.chain),
            seq.ring_finished.eq(ring.finished), spad.ring_active.eq(ring.active),
            spad.ring_rd_addr.eq(ring.rd_addr), spad.ring_rd_en.eq(ring.rd_en),
            ring.rd_data.eq(spad.ring_rd_data),
            spad.ring_op_addr.eq(ring.op_addr), spad.ring_op_en.eq(ring.op_en),
            ring.op_data.eq(spad.ring_op_data),
            spad.ring_wr_addr.eq(ring.wr_addr), spad.ring_wr_data.eq(ring.wr_data),
            spad.ring_wr_lanes.eq(ring.wr_lanes),
        ]
        m.d.comb += [
            array.uop.eq(seq.uop), array.xfer.eq(seq.xfer), spad.xfer.eq(seq.xfer),
            array.spad_drive.eq(spad.drive), array.spad_col.eq(spad.drive_col),
            array.spad_data.eq(spad.data),
            spad.row_bus.eq(array.row_bus), spad.col_bus.eq(array.col_bus),
            seq.hazard.eq(array.hazard), seq.macs.eq(array.macs),
        ]

        # -- address decode ----------------------------------------------------------------
        in_spad = bus.addr >= regs.spad_base
        in_imem = ~in_spad & (bus.addr >= regs.imem_base)
        imem_offset = bus.addr - regs.imem_base
        word_bits = (INSTR_WORDS - 1).bit_length()
        m.d.comb += [
            spad.host_addr.eq(bus.addr - regs.spad_base),
            spad.host_we.eq(bus.we & in_spad), spad.host_re.eq(bus.re & in_spad),
            spad.host_wdata.eq(bus.wdata),
            seq.imem_addr.eq(imem_offset >> word_bits), seq.imem_word.eq(imem_offset[:word_bits]),
            seq.imem_wdata.eq(bus.wdata), seq.imem_we.eq(bus.we & in_imem),
        ]

        # -- CSRs ----------------------------------------------------------------------------
        start_pc = Signal(cfg.imem_addr_width)
        readable = {
            "ID": CORE_ID, "CONFIG": regs.config_word, "MEMA_WORDS": cfg.mema_words,
            "MEMB_WORDS": cfg.memb_words, "SPAD_WORDS": cfg.spad_words,
            "IMEM_WORDS": cfg.imem_words, "START_PC": start_pc,
            "STATUS": Cat(seq.busy, seq.done, seq.error),
            "ERROR_CAUSE": seq.cause.as_value(), "ERROR_PC": seq.error_pc, "PC": seq.pc,
        }
        for counter in Counter:
            readable[f"{counter.name}_LO"] = seq.counters[counter.value][:32]
            readable[f"{counter.name}_HI"] = seq.counters[counter.value][32:]
        m.d.comb += self.status.eq(readable["STATUS"])
        csr_write = bus.we & ~in_spad & ~in_imem
        sreg_base = regs["S0"]
        in_sregs = (bus.addr >= sreg_base) & (bus.addr < sreg_base + 16)
        m.d.comb += [
            seq.sreg_idx.eq(bus.addr - sreg_base), seq.sreg_we.eq(csr_write & in_sregs),
            seq.sreg_wdata.eq(bus.wdata),
            seq.start.eq(csr_write & (bus.addr == regs["CTRL"]) & bus.wdata[0]),
            seq.clear.eq(csr_write & (bus.addr == regs["CTRL"]) & bus.wdata[1]),
            seq.counter_clear.eq(csr_write & (bus.addr == regs["CTRL"]) & bus.wdata[2]),
            seq.start_pc.eq(start_pc),
        ]
        with m.If(csr_write & (bus.addr == regs["START_PC"])):
            m.d.sync += start_pc.eq(bus.wdata)

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
        m.d.sync += [csr_rdata.eq(csr_value), region.eq(Cat(in_spad, in_imem))]
        m.d.comb += bus.rdata.eq(Mux(region[0], spad.host_rdata,
                                     Mux(region[1], seq.imem_rdata, csr_rdata)))
        return m
