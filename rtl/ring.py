"""The multicore top: ``cfg.cores`` cores on a unidirectional ring behind one host bus."""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from caterpillar.contract.config import ConfigError
from caterpillar.contract.registers import (
    HOST_ADDR_BITS,
    RING_ADDR_BITS,
    RING_ID,
    RING_SLOT,
    RING_STATUS,
    STALL,
    RingRegisterMap,
)
from caterpillar.rtl.core import Core
from caterpillar.rtl.host_interface import register_layout
from caterpillar.rtl.ports import HostBus
from caterpillar.rtl.ring_link import LinkStall

__all__ = ["Ring", "check_ring_config"]


def check_ring_config(cfg) -> None:
    """Raise :class:`ConfigError` if the ring top cannot be built for ``cfg``."""
    if cfg.cores >= RING_SLOT:
        raise ConfigError(f"the ring top supports at most {RING_SLOT - 1} cores, not "
                          f"{cfg.cores}")
    if cfg.ring_link_words != cfg.nr:
        raise ConfigError(f"the ring links carry nr = {cfg.nr} words per beat; "
                          f"link_words = {cfg.ring_link_words} is not supported")


class Ring(wiring.Component):
    """``cfg.cores`` :class:`~caterpillar.rtl.core.Core` s joined by ring links.

    Contract (docs/multicore.md): core ``k``'s ``ring.rx`` is fed by core ``SRC{k}``'s
    ``ring.tx`` (reset: core ``k - 1`` mod C, the full ring) on the segment links, and by core
    ``k - 1`` on the chain links (``RING`` with ``chain``); a beat moves only when producer
    and consumer use the same kind of link. Writing ``SRC`` registers cuts the ring into
    sub-rings or chains (segments) while the chain links still join every core to the next.
    A source should feed one core per kind of link. Each link takes one cycle per hop and
    carries ``nr`` words per beat; an optional stall injector
    (:class:`~caterpillar.rtl.ring_link.LinkStall`, ``STALL`` register) sits on every link.
    Host requests to slot ``k`` go to core ``k``, those to slot :data:`RING_SLOT` to the ring's
    registers (:class:`~caterpillar.contract.registers.RingRegisterMap`); a write to the ring's
    ``CTRL`` reaches every core's ``CTRL`` in the same cycle. Reads return data the next cycle.

    Parameters
    ----------
    cfg : CaterpillarConfig
    make_core : callable
        ``make_core(cfg)`` makes each core: :class:`~caterpillar.rtl.core.Core`, or for the
        Verilog top a stand-in with its interface that instantiates one shared core module
        (``caterpillar.sim.flow.tops.CoreInstance``).

    Members
    -------
    bus : In(HostBus(RING_ADDR_BITS))
    status : Out(register_layout(RING_STATUS))
        The ring's ``STATUS`` (some core busy, every core done, some core in error), for a
        board's LEDs.
    """

    def __init__(self, cfg, make_core=Core):
        check_ring_config(cfg)
        self.cfg = cfg
        self._make_core = make_core
        self.register_map = RingRegisterMap(cfg)
        super().__init__({"bus": In(HostBus(RING_ADDR_BITS)),
                          "status": Out(register_layout(RING_STATUS))})

    def elaborate(self, platform):
        m = Module()
        cfg, regs, bus = self.cfg, self.register_map, self.bus
        n = cfg.cores
        cores = [self._make_core(cfg) for _ in range(n)]
        for k, core in enumerate(cores):
            m.submodules[f"core_{k}"] = core

        # -- host bus --------------------------------------------------------------------------
        slot = bus.addr[HOST_ADDR_BITS:]
        local = bus.addr[:HOST_ADDR_BITS]
        to_ring = slot == RING_SLOT
        ring_write = bus.we & to_ring
        ctrl_write = ring_write & (local == regs["CTRL"])
        core_ctrl = cores[0].register_map["CTRL"]
        for k, core in enumerate(cores):
            mine = slot == k
            m.d.comb += [
                core.bus.addr.eq(Mux(ctrl_write, core_ctrl, local)),
                core.bus.wdata.eq(bus.wdata),
                core.bus.we.eq((bus.we & mine) | ctrl_write), core.bus.re.eq(bus.re & mine),
            ]

        # -- links and segments ------------------------------------------------------------------
        # Two channels share each core's one output: segment traffic for the core that names
        # it in SRC, chain traffic for the next core. A beat moves only when both ends run a
        # RING instruction on the same channel.
        # A lone core can only feed itself: its index is the constant 0 (Verilog has no
        # zero-width wire for a range(1) signal).
        src = [Signal(range(n), name=f"src_{k}", init=(k - 1) % n) for k in range(n)] \
            if n > 1 else [Const(0)]
        stall_threshold = Signal(8)
        stall_seed = Signal(16)
        stall_load = Signal()
        stalls, picks = [], []
        outs = Array(c.ring.tx for c in cores)
        chains = Array(c.ring.chain for c in cores)
        for k, core in enumerate(cores):
            m.submodules[f"stall_{k}"] = stall = LinkStall(cfg)
            stalls.append(stall)
            pick = Signal(range(n), name=f"pick_{k}") if n > 1 else Const(0)
            picks.append(pick)
            if n > 1:
                m.d.comb += pick.eq(Mux(core.ring.chain, (k - 1) % n, src[k]))
            source = outs[pick]
            match = chains[pick] == core.ring.chain
            m.d.comb += [
                stall.upstream.valid.eq(source.valid & match),
                stall.upstream.payload.eq(source.payload),
                stall.threshold.eq(stall_threshold),
                stall.seed.eq(stall_seed ^ ((0x9E37 * (k + 1)) & 0xFFFF)),
                stall.load.eq(stall_load),
            ]
            wiring.connect(m, stall.downstream, core.ring.rx)
        for j, core in enumerate(cores):
            feeds = [(picks[k] == j) & (core.ring.chain == cores[k].ring.chain)
                     & stalls[k].upstream.ready for k in range(n)]
            m.d.comb += core.ring.tx.ready.eq(Cat(*feeds).any())

        # -- ring registers --------------------------------------------------------------------
        busy, done, error = (Cat(*[getattr(c.status, name) for c in cores])
                             for name in ("busy", "done", "error"))
        status = Signal(register_layout(RING_STATUS))
        stall = Signal(register_layout(STALL))
        m.d.comb += [status.busy.eq(busy.any()), status.done.eq(done.all()),
                     status.error.eq(error.any()), stall.threshold.eq(stall_threshold),
                     stall.seed.eq(stall_seed), self.status.eq(status)]
        readable = {"RING_ID": RING_ID, "CORES": n, "STATUS": status, "DONE_MASK": done,
                    "ERROR_MASK": error, "STALL": stall}
        readable.update({f"SRC{k}": src[k] for k in range(n)})
        m.d.comb += stall_load.eq(ring_write & (local == regs["STALL"]))
        with m.If(stall_load):
            written = register_layout(STALL)(bus.wdata)
            m.d.sync += [stall_threshold.eq(written.threshold), stall_seed.eq(written.seed)]
        for k in range(n if n > 1 else 0):
            with m.If(ring_write & (local == regs[f"SRC{k}"])):
                m.d.sync += src[k].eq(bus.wdata)
        csr_value = Signal(32)
        with m.Switch(local):
            for name, value in readable.items():
                with m.Case(regs[name]):
                    m.d.comb += csr_value.eq(value)

        csr_rdata = Signal(32)
        slot_d = Signal.like(slot)
        m.d.sync += [csr_rdata.eq(csr_value), slot_d.eq(slot)]
        rdata = Array([*[c.bus.rdata for c in cores], *[0] * (RING_SLOT - n), csr_rdata])
        m.d.comb += bus.rdata.eq(rdata[slot_d])
        return m
