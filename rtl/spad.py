"""The scratchpad: the core's private memory, one nr-word row per cycle to the array."""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from caterpillar.rtl.ports import HostWindow, MicroOps, RingSpadPort, SpadEdge

__all__ = ["Spad"]


class Spad(wiring.Component):
    """``spad_words`` words as rows of ``nr``, with an array port and a host port.

    Contract (docs/architecture.md section 2): a transfer load issued at ``t`` reads row
    ``spad_row`` at ``t`` and drives it on the buses during ``t + 2`` (``edge``); a transfer
    store issued at ``t`` writes, at the end of ``t + 2``, the lanes in ``lanes`` of row
    ``spad_row`` from the bus values (or, for a sequencer store, ``data`` in every lane). The
    host port reads or writes one word; read data comes one cycle after ``host.re``. While
    ``ring.active`` the ring engine owns the array port and the host read port (the core is
    busy then, so the host interface refuses writes and the driver reads nothing).

    Members
    -------
    issue : In(MicroOps(cfg))
        Only the transfer micro-op is used.
    edge : Out(SpadEdge(cfg))
    host : In(HostWindow(spad word address bits, word))
    ring : In(RingSpadPort(cfg))
    """

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({
            "issue": In(MicroOps(cfg)), "edge": Out(SpadEdge(cfg)),
            "host": In(HostWindow(cfg.spad_addr_width, cfg.word_width)),
            "ring": In(RingSpadPort(cfg)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, x, edge, host, ring = self.cfg, self.issue.xfer, self.edge, self.host, self.ring
        word, nr = cfg.word_width, cfg.nr
        lane_bits = (nr - 1).bit_length()
        m.submodules.mem = mem = Memory(shape=data.ArrayLayout(word, nr), depth=cfg.spad_rows,
                                        init=[])
        array_rd = mem.read_port()
        array_wr = mem.write_port(granularity=1)  # one lane (word)
        host_rd = mem.read_port()
        host_wr = mem.write_port(granularity=1)

        load = x.valid & ~x.store
        m.d.comb += [array_rd.addr.eq(Mux(ring.active, ring.rd_addr, x.spad_row)),
                     array_rd.en.eq(Mux(ring.active, ring.rd_en, load)),
                     ring.rd_data.eq(array_rd.data), ring.op_data.eq(host_rd.data)]
        drive, drive_col = Signal(), Signal()
        load_d1, col_d1 = Signal(), Signal()
        row_data = Signal.like(edge.data)
        m.d.sync += [load_d1.eq(load), col_d1.eq(x.col_bus),
                     drive.eq(load_d1), drive_col.eq(col_d1), row_data.eq(array_rd.data)]
        m.d.comb += [edge.drive.eq(drive), edge.col.eq(drive_col), edge.data.eq(row_data)]

        store = {k: Signal.like(v, name=f"store_{k}") for k, v in {
            "en": x.valid & x.store, "row": x.spad_row, "lanes": x.lanes,
            "col": x.col_bus, "seq": x.sequencer, "data": x.data}.items()}
        delayed = {k: Signal.like(v, name=f"store_{k}_d2") for k, v in store.items()}
        m.d.comb += [store["en"].eq(x.valid & x.store), store["row"].eq(x.spad_row),
                     store["lanes"].eq(x.lanes), store["col"].eq(x.col_bus),
                     store["seq"].eq(x.sequencer), store["data"].eq(x.data)]
        middle = {k: Signal.like(v, name=f"store_{k}_d1") for k, v in store.items()}
        m.d.sync += [middle[k].eq(store[k]) for k in store]
        m.d.sync += [delayed[k].eq(middle[k]) for k in store]
        bus = Mux(delayed["col"], edge.col_bus.as_value(), edge.row_bus.as_value())
        array_data = Mux(delayed["seq"], delayed["data"].replicate(nr), bus)
        m.d.comb += [
            array_wr.addr.eq(Mux(ring.active, ring.wr_addr, delayed["row"])),
            array_wr.data.eq(Mux(ring.active, ring.wr_data.as_value(), array_data)),
            array_wr.en.eq(Mux(ring.active, ring.wr_lanes,
                               Mux(delayed["en"], delayed["lanes"], 0))),
        ]

        row_of = host.addr >> lane_bits if lane_bits else host.addr
        lane_of = host.addr[:lane_bits] if lane_bits else 0
        lane_d = Signal(max(1, lane_bits))
        m.d.sync += lane_d.eq(lane_of)
        m.d.comb += [
            host_rd.addr.eq(Mux(ring.active, ring.op_addr, row_of)),
            host_rd.en.eq(Mux(ring.active, ring.op_en, host.re)),
            host_wr.addr.eq(row_of), host_wr.data.eq(host.wdata.replicate(nr)),
            host_wr.en.eq(Mux(host.we, (Const(1, nr) << lane_of)[:nr], 0)),
            host.rdata.eq(host_rd.data.as_value().word_select(lane_d, word)),
        ]
        return m
