"""The scratchpad: the core's private memory, one nr-word row per cycle to the array."""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from caterpillar.contract.geometry import bank_index, bank_of, spad_bank_bit, spad_bank_rows
from caterpillar.rtl.ports import HostWindow, MicroOps, RingSpadPort, SpadEdge, SpadEvents

__all__ = ["Spad"]


class Spad(wiring.Component):
    """``spad_words`` words as rows of ``nr``: two true dual-port banks shared by the array,
    the ring engine and the host.

    Contract (docs/architecture.md sections 1 and 2): a transfer load issued at ``t`` reads row
    ``spad_row`` at ``t`` and drives it on the buses during ``t + 2`` (``edge``); a transfer
    store issued at ``t`` writes, at the end of ``t + 2``, the lanes in ``lanes`` of row
    ``spad_row`` from the bus values (or, for a sequencer store, ``data`` in every lane). The
    host port reads or writes one word; read data comes one cycle after ``host.re``. The host
    interface lets the host in only while the core is idle, and while ``ring.active`` the ring
    engine is the only user.

    Ports. Row ``r`` lives in bank :func:`~caterpillar.contract.geometry.spad_bank`, each bank
    a memory with two ports (a block RAM's true dual port): port 0 reads and writes, port 1
    reads. A cycle has at most three users: a read (array load, ring send or host), the ring
    engine's read of the row it adds to, and a write (array store, ring engine or host). In
    each bank port 0 takes the row of the write, else of the read, else of the add read; a
    read of that row is served by port 0 (of a row being written, the old row: a block RAM's
    read-before-write), any other read by port 1. Two reads of two rows besides the written
    one in the same bank cannot be served: the ring engine never issues a send read when all
    three are in one bank (:class:`~caterpillar.rtl.ring_engine.RingEngine`), and outside
    ``RING`` only the array (one read, one write) or the host uses the SPAD. Port 1 never
    reads the row port 0 writes, so the banks carry ``no_rw_check`` for Yosys; one write port
    per bank (not one per port) keeps Yosys from merging two exclusive write ports into one
    with its own address, which would need a third port and a second copy of the bank.

    Members
    -------
    issue : In(MicroOps(cfg))
        Only the transfer micro-op is used.
    edge : Out(SpadEdge(cfg))
    host : In(HostWindow(spad word address bits, word))
    ring : In(RingSpadPort(cfg))
    events : Out(SpadEvents(cfg))
        Words the array and the ring engine read (a whole row each) and write this cycle.
    collision : Out(1)
        A cycle the banks cannot serve: two reads in one bank of two different rows, neither
        the row written there. Never high for legal users (a verification aid).
    """

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({
            "issue": In(MicroOps(cfg)), "edge": Out(SpadEdge(cfg)),
            "host": In(HostWindow(cfg.spad_addr_width, cfg.word_width)),
            "ring": In(RingSpadPort(cfg)), "events": Out(SpadEvents(cfg)),
            "collision": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, x, edge, host, ring = self.cfg, self.issue.xfer, self.edge, self.host, self.ring
        word, nr = cfg.word_width, cfg.nr
        lane_bits = (nr - 1).bit_length()
        row_layout = data.ArrayLayout(word, nr)

        # -- the three users of this cycle -------------------------------------------------
        host_row = host.addr >> lane_bits if lane_bits else host.addr
        host_lane = host.addr[:lane_bits] if lane_bits else 0
        load = x.valid & ~x.store
        read = SimpleNamespace(row=Signal(range(cfg.spad_rows), name="read_row"),
                               en=Signal(name="read_en"))
        add_read = SimpleNamespace(row=ring.op_addr, en=Signal(name="add_read_en"))
        write = SimpleNamespace(row=Signal(range(cfg.spad_rows), name="write_row"),
                                data=Signal(row_layout, name="write_data"),
                                lanes=Signal(nr, name="write_lanes"))
        m.d.comb += [
            read.row.eq(Mux(ring.active, ring.rd_addr, Mux(load, x.spad_row, host_row))),
            read.en.eq(Mux(ring.active, ring.rd_en, load | host.re)),
            add_read.en.eq(ring.active & ring.op_en),
        ]
        store = self._delayed_store(m)
        array_reads = Mux(ring.active, ring.rd_en + add_read.en, load)
        array_lanes = Mux(ring.active, ring.wr_lanes, Mux(store.en, store.lanes, 0))
        m.d.comb += [self.events.reads.eq(array_reads * nr),
                     self.events.writes.eq(sum(array_lanes[i] for i in range(nr)))]
        bus = Mux(store.col, edge.col_bus.as_value(), edge.row_bus.as_value())
        array_data = Mux(store.seq, store.data.replicate(nr), bus)
        with m.If(ring.active):
            m.d.comb += [write.row.eq(ring.wr_addr), write.data.eq(ring.wr_data),
                         write.lanes.eq(ring.wr_lanes)]
        with m.Elif(store.en):
            m.d.comb += [write.row.eq(store.row), write.data.eq(array_data),
                         write.lanes.eq(store.lanes)]
        with m.Else():
            m.d.comb += [write.row.eq(host_row), write.data.eq(host.wdata.replicate(nr)),
                         write.lanes.eq(Mux(host.we, (Const(1, nr) << host_lane)[:nr], 0))]

        # -- two banks of two ports ------------------------------------------------------------
        bit = spad_bank_bit(cfg)

        read_data, add_data, collisions = [], [], []
        for b in range(2):
            mem = Memory(shape=row_layout, depth=spad_bank_rows(cfg), init=[],
                         attrs={"no_rw_check": 1})
            m.submodules[f"bank{b}"] = mem
            rd0, rd1 = mem.read_port(), mem.read_port()
            wr0 = mem.write_port(granularity=1)
            r_in = read.en & (bank_of(read.row, bit) == b)
            a_in = add_read.en & (bank_of(add_read.row, bit) == b)
            w_in = write.lanes.any() & (bank_of(write.row, bit) == b)
            r_at, a_at, w_at = (bank_index(row, bit) for row in (read.row, add_read.row,
                                                                  write.row))
            addr0 = Mux(w_in, w_at, Mux(r_in, r_at, a_at))
            r_on_1 = Signal(name=f"bank{b}_read_on_1")
            a_on_1 = Signal(name=f"bank{b}_add_on_1")
            m.d.comb += [r_on_1.eq(r_in & (r_at != addr0)), a_on_1.eq(a_in & (a_at != addr0))]
            addr1 = Mux(r_on_1, r_at, a_at)
            m.d.comb += [rd0.addr.eq(addr0), rd0.en.eq((r_in & ~r_on_1) | (a_in & ~a_on_1)),
                         wr0.addr.eq(addr0), wr0.data.eq(write.data),
                         wr0.en.eq(Mux(w_in, write.lanes, 0)),
                         rd1.addr.eq(addr1), rd1.en.eq(r_on_1 | a_on_1)]
            collisions.append(r_on_1 & a_on_1 & (r_at != a_at))
            read_second, add_second = Signal(), Signal()
            m.d.sync += [read_second.eq(r_on_1), add_second.eq(a_on_1)]
            read_data.append(Mux(read_second, rd1.data, rd0.data))
            add_data.append(Mux(add_second, rd1.data, rd0.data))

        m.d.comb += self.collision.eq(Cat(*collisions).any())
        read_bank, add_bank = Signal(), Signal()
        m.d.sync += [read_bank.eq(bank_of(read.row, bit)),
                     add_bank.eq(bank_of(add_read.row, bit))]
        row_read = Signal(row_layout, name="row_read")
        m.d.comb += [row_read.eq(Mux(read_bank, read_data[1], read_data[0])),
                     ring.rd_data.eq(row_read),
                     ring.op_data.eq(Mux(add_bank, add_data[1], add_data[0]))]

        # -- the array's edge and the host's word --------------------------------------------
        drive, drive_col = Signal(), Signal()
        load_d1, col_d1 = Signal(), Signal()
        row_data = Signal.like(edge.data)
        m.d.sync += [load_d1.eq(load), col_d1.eq(x.col_bus),
                     drive.eq(load_d1), drive_col.eq(col_d1), row_data.eq(row_read)]
        m.d.comb += [edge.drive.eq(drive), edge.col.eq(drive_col), edge.data.eq(row_data)]
        lane_d = Signal(max(1, lane_bits))
        m.d.sync += lane_d.eq(host_lane)
        m.d.comb += host.rdata.eq(row_read.as_value().word_select(lane_d, word))
        return m

    def _delayed_store(self, m) -> SimpleNamespace:
        """The transfer store issued two cycles ago (it writes at the end of this cycle)."""
        x = self.issue.xfer
        store = {"en": x.valid & x.store, "row": x.spad_row, "lanes": x.lanes,
                 "col": x.col_bus, "seq": x.sequencer, "data": x.data}
        for stage in ("d1", "d2"):
            delayed = {k: Signal.like(v, name=f"store_{k}_{stage}") if isinstance(v, Signal)
                       else Signal(v.shape(), name=f"store_{k}_{stage}")
                       for k, v in store.items()}
            m.d.sync += [delayed[k].eq(store[k]) for k in store]
            store = delayed
        return SimpleNamespace(**store)
