"""One CATERPILLAR core: host interface, sequencer, PE array, SPAD and ring engine."""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from caterpillar.contract.registers import STATUS, RegisterMap
from caterpillar.rtl.host_interface import HostInterface, register_layout
from caterpillar.rtl.pe_array import PEArray
from caterpillar.rtl.ports import HostBus, RingPort
from caterpillar.rtl.ring_engine import RingEngine
from caterpillar.rtl.sequencer import Sequencer
from caterpillar.rtl.spad import Spad

__all__ = ["Core"]


class Core(wiring.Component):
    """A complete core reached through :class:`~caterpillar.rtl.ports.HostBus`.

    Contract: the host loads IMEM and the SPAD through their windows, writes scalar registers
    and ``START_PC``, writes ``CTRL.start`` and polls ``STATUS`` until ``done`` or ``error``.
    Every host request completes in one cycle (reads return data the next cycle). Writes into
    IMEM or the SPAD, and SPAD reads, while the core is busy are refused and stop it with
    ``HOST_ACCESS``. See
    docs/architecture.md and :class:`~caterpillar.contract.registers.RegisterMap`.

    ``RING`` instructions move data over ``ring.tx`` to the next core and from ``ring.rx``
    (docs/multicore.md); a lone core's links are idle unless a program uses them.

    Members
    -------
    bus : In(HostBus())
    ring : Out(RingPort(cfg))
    status : Out(register_layout(STATUS))
        ``STATUS`` (busy, done, error), for a multicore top.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        self.register_map = RegisterMap(cfg)
        super().__init__({"bus": In(HostBus()), "ring": Out(RingPort(cfg)),
                          "status": Out(register_layout(STATUS))})

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        m.submodules.host = host = HostInterface(cfg)
        m.submodules.seq = seq = Sequencer(cfg)
        m.submodules.array = array = PEArray(cfg)
        m.submodules.spad = spad = Spad(cfg)
        m.submodules.ring = ring = RingEngine(cfg)

        wiring.connect(m, wiring.flipped(self.bus), host.bus)
        wiring.connect(m, host.seq, seq.host)
        wiring.connect(m, host.imem, seq.imem)
        wiring.connect(m, host.spad, spad.host)
        wiring.connect(m, seq.issue, array.issue, spad.issue)
        wiring.connect(m, array.status, seq.array)
        wiring.connect(m, spad.edge, array.spad)
        wiring.connect(m, seq.ring, ring.command)
        wiring.connect(m, ring.spad, spad.ring)
        wiring.connect(m, ring.port, wiring.flipped(self.ring))
        wiring.connect(m, spad.events, seq.spad_events)
        wiring.connect(m, ring.events, seq.ring_events)
        m.d.comb += [self.status.busy.eq(seq.host.busy), self.status.done.eq(seq.host.done),
                     self.status.error.eq(seq.host.error)]
        return m
