"""The scratchpad: the core's private memory, one nr-word row per cycle to the array."""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .microop import transfer_layout

__all__ = ["Spad"]


class Spad(wiring.Component):
    """``spad_words`` words as rows of ``nr``, with an array port and a host port.

    Contract (docs/architecture.md section 2): a transfer load issued at ``t`` reads row
    ``spad_row`` at ``t`` and drives it on the buses during ``t + 2`` (``drive``, ``drive_col``,
    ``data``); a transfer store issued at ``t`` writes, at the end of ``t + 2``, the lanes in
    ``lanes`` of row ``spad_row`` from the bus values (or, for a sequencer store, ``data`` in
    every lane). The host port reads or writes one word; read data comes one cycle after
    ``host_re``. The host must not write while the array port is active.

    Members
    -------
    xfer : In(transfer_layout(cfg))
    row_bus, col_bus : In(ArrayLayout(word, nr))
    drive, drive_col : Out(1)
    data : Out(ArrayLayout(word, nr))
    host_addr : In(spad word address)
    host_we, host_re : In(1)
    host_wdata : In(word)
    host_rdata : Out(word)
    ring_active : In(1)
        While high, the ring engine owns the array port and the host read port: ``ring_rd_*``
        and ``ring_op_*`` read rows (data one cycle after ``en``), ``ring_wr_*`` writes the
        lanes in ``ring_wr_lanes`` at the end of the cycle. The host must not access the SPAD
        then (the core runs a ``RING`` instruction).
    """

    def __init__(self, cfg):
        self.cfg = cfg
        lanes = data.ArrayLayout(cfg.word_width, cfg.nr)
        super().__init__({
            "xfer": In(transfer_layout(cfg)),
            "row_bus": In(lanes), "col_bus": In(lanes),
            "drive": Out(1), "drive_col": Out(1), "data": Out(lanes),
            "host_addr": In(cfg.spad_addr_width), "host_we": In(1), "host_re": In(1),
            "host_wdata": In(cfg.word_width), "host_rdata": Out(cfg.word_width),
            "ring_active": In(1),
            "ring_rd_addr": In(range(cfg.spad_rows)), "ring_rd_en": In(1),
            "ring_rd_data": Out(lanes),
            "ring_op_addr": In(range(cfg.spad_rows)), "ring_op_en": In(1),
            "ring_op_data": Out(lanes),
            "ring_wr_addr": In(range(cfg.spad_rows)), "ring_wr_data": In(lanes),
            "ring_wr_lanes": In(cfg.nr),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, x = self.cfg, self.xfer
        word, nr = cfg.word_width, cfg.nr
        lane_bits = (nr - 1).bit_length()
        m.submodules.mem = mem = Memory(shape=data.ArrayLayout(word, nr), depth=cfg.spad_rows,
                                        init=[])
        array_rd = mem.read_port()
        array_wr = mem.write_port(granularity=1)  # one lane (word)
        host_rd = mem.read_port()
        host_wr = mem.write_port(granularity=1)

        load = x.valid & ~x.store
        ring = self.ring_active
        m.d.comb += [array_rd.addr.eq(Mux(ring, self.ring_rd_addr, x.spad_row)),
                     array_rd.en.eq(Mux(ring, self.ring_rd_en, load)),
                     self.ring_rd_data.eq(array_rd.data), self.ring_op_data.eq(host_rd.data)]
        drive, drive_col = Signal(), Signal()
        load_d1, col_d1 = Signal(), Signal()
        row_data = Signal.like(self.data)
        m.d.sync += [load_d1.eq(load), col_d1.eq(x.col_bus),
                     drive.eq(load_d1), drive_col.eq(col_d1), row_data.eq(array_rd.data)]
        m.d.comb += [self.drive.eq(drive), self.drive_col.eq(drive_col),
                     self.data.eq(row_data)]

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
        bus = Mux(delayed["col"], self.col_bus.as_value(), self.row_bus.as_value())
        array_data = Mux(delayed["seq"], delayed["data"].replicate(nr), bus)
        m.d.comb += [
            array_wr.addr.eq(Mux(ring, self.ring_wr_addr, delayed["row"])),
            array_wr.data.eq(Mux(ring, self.ring_wr_data.as_value(), array_data)),
            array_wr.en.eq(Mux(ring, self.ring_wr_lanes,
                               Mux(delayed["en"], delayed["lanes"], 0))),
        ]

        row_of = self.host_addr >> lane_bits if lane_bits else self.host_addr
        lane_of = self.host_addr[:lane_bits] if lane_bits else 0
        lane_d = Signal(max(1, lane_bits))
        m.d.sync += lane_d.eq(lane_of)
        m.d.comb += [
            host_rd.addr.eq(Mux(ring, self.ring_op_addr, row_of)),
            host_rd.en.eq(Mux(ring, self.ring_op_en, self.host_re)),
            host_wr.addr.eq(row_of), host_wr.data.eq(self.host_wdata.replicate(nr)),
            host_wr.en.eq(Mux(self.host_we, (Const(1, nr) << lane_of)[:nr], 0)),
            self.host_rdata.eq(host_rd.data.as_value().word_select(lane_d, word)),
        ]
        return m
