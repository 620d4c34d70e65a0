"""The scratchpad: the core's private memory, one nr-word row per cycle to the array."""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from caterpillar.contract.geometry import (
    SPAD_REGIONS,
    spad_bank,
    spad_bank_index,
    spad_bank_rows,
    spad_region,
)
from caterpillar.rtl.fp.arith import unpack
from caterpillar.rtl.ports import HostWindow, MicroOps, RingSpadPort, SpadEdge, SpadEvents

__all__ = ["Spad"]


class Spad(wiring.Component):
    """``spad_words`` words as rows of ``nr``: two regions of two true dual-port banks each,
    shared by the array, the ring engine and the host.

    Contract (docs/architecture.md sections 1 and 2): a transfer load issued at ``t`` reads row
    ``spad_row`` at ``t`` and drives it on the buses during ``t + 2`` (``edge``); a transfer
    store issued at ``t`` writes, at the end of ``t + 2``, the lanes in ``lanes`` of row
    ``spad_row`` from the bus values (or, for a sequencer store, ``data`` in every lane). The
    host port reads or writes one word; read data comes one cycle after ``host.re``. The host
    interface lets the host in only while the core is idle. While ``ring.active`` the ring
    engine uses the regions of its ``RING`` and the array only the other one
    (:func:`~caterpillar.contract.geometry.ring_waits`), so the two run in the same cycles.

    Ports. Row ``r`` lives in region :func:`~caterpillar.contract.geometry.spad_region` and,
    within it, in bank :func:`~caterpillar.contract.geometry.spad_bank` (the same low row bit),
    each bank a memory with two ports (a block RAM's true dual port): port 0 reads and writes,
    port 1 reads. A region serves in a cycle at most three users: a read (array load, ring
    send or host), the ring engine's read of the row it adds to, and a write (array store,
    ring engine or host). In each bank port 0 takes the row of the write, else of the read,
    else of the add read; a read of that row is served by port 0 (of a row being written, the
    old row: a block RAM's read-before-write), any other read by port 1. Two reads of two rows
    besides the written one in the same bank cannot be served: the ring engine never issues a
    send read when all three are in one bank
    (:class:`~caterpillar.rtl.ring_engine.RingEngine`), and the array has one read and one
    write. Port 1 never reads the row port 0 writes, so the banks carry ``no_rw_check`` for
    Yosys; one write port per bank (not one per port) keeps Yosys from merging two exclusive
    write ports into one with its own address, which would need a third port and a second copy
    of the bank.

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

        # -- the users of this cycle ----------------------------------------------------------
        # The array (a load read and a landing store) and the ring engine (a send read, an add
        # read and a write) use different regions (the sequencer's ring_waits); the host comes
        # in only while the core is idle.
        host_row = host.addr >> lane_bits if lane_bits else host.addr
        host_lane = host.addr[:lane_bits] if lane_bits else 0
        load = x.valid & ~x.store
        array_row = Mux(load, x.spad_row, host_row)
        ring_read = ring.active & ring.rd_en
        ring_add = ring.active & ring.op_en
        ring_lanes = Mux(ring.active, ring.wr_lanes, 0)
        store = self._delayed_store(m)
        store_lanes = Mux(store.en, store.lanes, 0)
        m.d.comb += [
            self.events.reads.eq((ring_read + ring_add + load) * nr),
            self.events.writes.eq(sum(ring_lanes[i] + store_lanes[i] for i in range(nr))),
        ]
        bus = Mux(store.col, edge.col_bus.as_value(), edge.row_bus.as_value())
        bus = Mux(store.relu, Cat(*[_rectified(m, cfg.operand, bus.word_select(i, word),
                                               f"relu_lane{i}") for i in range(nr)]), bus)
        array_data = Mux(store.seq, store.data.replicate(nr), bus)

        # -- two regions of two banks of two ports -------------------------------------------
        read_data, add_data, collisions = [], [], []
        for r in range(SPAD_REGIONS):
            def here(row, r=r):
                return spad_region(cfg, row) == r
            ring_read_here = ring_read & here(ring.rd_addr)
            ring_add_here = ring_add & here(ring.op_addr)
            ring_write_here = ring_lanes.any() & here(ring.wr_addr)
            read = SimpleNamespace(row=Mux(ring_read_here, ring.rd_addr, array_row),
                                   en=ring_read_here | (load & here(x.spad_row))
                                   | (host.re & here(host_row)))
            add_read = SimpleNamespace(row=ring.op_addr, en=ring_add_here)
            write = SimpleNamespace(row=Signal(range(cfg.spad_rows), name=f"region{r}_write_row"),
                                    data=Signal(row_layout, name=f"region{r}_write_data"),
                                    lanes=Signal(nr, name=f"region{r}_write_lanes"))
            with m.If(ring_write_here):
                m.d.comb += [write.row.eq(ring.wr_addr), write.data.eq(ring.wr_data),
                             write.lanes.eq(ring.wr_lanes)]
            with m.Elif(store.en & here(store.row)):
                m.d.comb += [write.row.eq(store.row), write.data.eq(array_data),
                             write.lanes.eq(store.lanes)]
            with m.Elif(here(host_row)):
                m.d.comb += [write.row.eq(host_row), write.data.eq(host.wdata.replicate(nr)),
                             write.lanes.eq(Mux(host.we, (Const(1, nr) << host_lane)[:nr], 0))]
            region = self._region(m, r, read, add_read, write)
            read_data.append(region.read_data)
            add_data.append(region.add_data)
            collisions.append(region.collision)

        m.d.comb += self.collision.eq(Cat(*collisions).any())
        ring_region, add_region, array_region = Signal(), Signal(), Signal()
        m.d.sync += [ring_region.eq(spad_region(cfg, ring.rd_addr)),
                     add_region.eq(spad_region(cfg, ring.op_addr)),
                     array_region.eq(spad_region(cfg, array_row))]
        row_read = Signal(row_layout, name="row_read")
        m.d.comb += [row_read.eq(Mux(array_region, read_data[1], read_data[0])),
                     ring.rd_data.eq(Mux(ring_region, read_data[1], read_data[0])),
                     ring.op_data.eq(Mux(add_region, add_data[1], add_data[0]))]

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

    def _region(self, m, r: int, read, add_read, write) -> SimpleNamespace:
        """Region ``r`` of the SPAD: two banks of two ports (a block RAM's true dual port) for
        this cycle's ``read``, ``add_read`` and ``write`` of rows in the region; the read data
        one cycle later, and whether two reads collided."""
        cfg = self.cfg
        row_layout = data.ArrayLayout(cfg.word_width, cfg.nr)
        read_data, add_data, collisions = [], [], []
        for b in range(2):
            mem = Memory(shape=row_layout, depth=spad_bank_rows(cfg, r), init=[],
                         attrs={"no_rw_check": 1})
            m.submodules[f"region{r}_bank{b}"] = mem
            rd0, rd1 = mem.read_port(), mem.read_port()
            wr0 = mem.write_port(granularity=1)
            r_in = read.en & (spad_bank(cfg, read.row) == b)
            a_in = add_read.en & (spad_bank(cfg, add_read.row) == b)
            w_in = write.lanes.any() & (spad_bank(cfg, write.row) == b)
            r_at, a_at, w_at = (spad_bank_index(cfg, row) for row in (read.row, add_read.row,
                                                                       write.row))
            addr0 = Mux(w_in, w_at, Mux(r_in, r_at, a_at))
            r_on_1 = Signal(name=f"region{r}_bank{b}_read_on_1")
            a_on_1 = Signal(name=f"region{r}_bank{b}_add_on_1")
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
        read_bank, add_bank = Signal(), Signal()
        m.d.sync += [read_bank.eq(spad_bank(cfg, read.row)),
                     add_bank.eq(spad_bank(cfg, add_read.row))]
        return SimpleNamespace(read_data=Mux(read_bank, read_data[1], read_data[0]),
                               add_data=Mux(add_bank, add_data[1], add_data[0]),
                               collision=Cat(*collisions).any())

    def _delayed_store(self, m) -> SimpleNamespace:
        """The transfer store issued two cycles ago (it writes at the end of this cycle)."""
        x = self.issue.xfer
        store = {"en": x.valid & x.store, "row": x.spad_row, "lanes": x.lanes,
                 "col": x.col_bus, "seq": x.sequencer, "data": x.data, "relu": x.relu}
        for stage in ("d1", "d2"):
            delayed = {k: Signal.like(v, name=f"store_{k}_{stage}") if isinstance(v, Signal)
                       else Signal(v.shape(), name=f"store_{k}_{stage}")
                       for k, v in store.items()}
            m.d.sync += [delayed[k].eq(store[k]) for k in store]
            store = delayed
        return SimpleNamespace(**store)


def _rectified(m, fmt, value, name):
    """``max(value, +0)`` of an operand-format word, as ``vop maxs`` with ``+0`` computes it
    (IEEE 754-2019 ``maximum``: ``-0`` and negatives give ``+0``, a NaN the canonical NaN)."""
    v = unpack(m, value, fmt, name)
    return Mux(v["nan"], fmt.canonical_nan, Mux(v["sign"], 0, value))
