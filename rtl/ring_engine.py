"""The ring engine: runs ``RING`` instructions one at a time, SPAD to link and link to SPAD."""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, fifo, wiring
from amaranth.lib.wiring import In, Out

from caterpillar.contract.geometry import cdiv, ring_queue_depth, spad_bank_bit
from caterpillar.rtl.fp.adder import FPAdder
from caterpillar.rtl.ports import RingCommand, RingEvents, RingPort, RingSpadPort

__all__ = ["RingEngine"]


class RingEngine(wiring.Component):
    """Sends a SPAD vector to the next core while receiving one from the previous core.

    Contract (docs/multicore.md). ``command.start`` (one cycle, not while ``command.full``)
    hands over ``command.fields``. The engine starts a ``RING`` (latches its fields) in a cycle
    where it is idle or ``finished``: the head of its command queue
    (``cfg.ring_commands`` entries, first in first out) if one waits, else one handed over in
    that cycle; any other ``RING`` handed over joins the queue. It is active from the next
    cycle until the cycle ``command.finished`` is high, and then idle or on the next ``RING``.

    * Send: row ``src / nr + i`` is read in the cycle its read is issued and pushed into the
      outgoing queue (:func:`~caterpillar.contract.geometry.ring_queue_depth` entries) the
      next cycle; a read is issued while ``level + read_in_flight < depth``, except in a cycle
      where, with ``add`` and ``keep``, a beat is accepted and a sum written and both rows sit
      in the send row's SPAD bank (:func:`~caterpillar.contract.geometry.spad_bank`): the bank
      has two ports. The queue's head
      drives ``link_out`` (``valid`` is ``level > 0``), so a word pushed in cycle ``t`` can
      leave in ``t + 1``: one cycle per hop.
    * Receive: ``link_in.ready`` is high while beats remain and, with ``fwd``, while
      ``level + pending < depth`` (``pending``: beats inside the add pipeline) and every sent
      row has been read (the forwarded rows follow the sent ones). A beat accepted
      in cycle ``t`` is, without ``add``, written (``keep``) and queued (``fwd``, all but the
      last ``hold / nr`` beats) in ``t``; with ``add``, the local row is read in ``t``, added
      lane by lane (``local + received``, ``cfg.add_latency`` stages) from ``t + 1``, and the
      sum written and queued in ``t + 1 + add_latency``. The last beat writes only the lanes
      below ``rlen``. With ``wlen``, the row after ``(wbase + wlen) / nr - 1`` is
      ``wbase / nr``: one instruction runs a whole bucket collective round a ring.
    * ``finished``: both directions are done, the queue is empty and nothing is in flight.

    Throughput is one beat (``nr`` words) per cycle in each direction (an add's read and write
    fall in different banks while beats arrive every cycle, so a send read rarely waits).
    ``ready`` and ``valid`` depend only on registers. No reset is needed beyond the global one.

    Members
    -------
    command : In(RingCommand())
        ``start`` (one cycle, not while ``full``) hands over ``fields`` and ``regions`` (the
        SPAD regions the ``RING`` uses, kept with it in the queue and shown as
        ``active_regions`` while it runs); ``active`` while the engine runs a ``RING``,
        ``finished`` in its last active cycle; ``busy`` while active or a ``RING`` waits in the
        queue, ``full`` while the queue is (without one: while active).
    spad : Out(RingSpadPort(cfg))
        ``active``, and two SPAD read ports (data one cycle after ``en``: sent rows, and the
        local addends) and the write port.
    port : Out(RingPort(cfg))
        ``tx`` to the next core, ``rx`` from the previous one, and ``chain``: the
        instruction's chain flag (a register), which link ``rx`` should come from and which
        consumer ``tx`` is meant for.
    events : Out(RingEvents(cfg))
        Words sent on ``tx`` this cycle (a beat) and additions started.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({"command": In(RingCommand()), "spad": Out(RingSpadPort(cfg)),
                          "port": Out(RingPort(cfg)), "events": Out(RingEvents(cfg))})

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        nr, depth, lat = cfg.nr, ring_queue_depth(cfg), cfg.add_latency
        shift = (nr - 1).bit_length()
        lanes = data.ArrayLayout(cfg.word_width, nr)

        active = Signal()
        keep, add, fwd, chain = Signal(), Signal(), Signal(), Signal()
        send_row, recv_row = Signal(range(cfg.spad_rows)), Signal(range(cfg.spad_rows))
        send_left = Signal(24 - shift + 1)
        recv_left = Signal(24 - shift + 1)
        hold_rows = Signal(24 - shift + 1)
        last_lanes = Signal(nr)
        wrap = Signal()
        wrap_base, wrap_end = Signal(range(cfg.spad_rows)), Signal(range(cfg.spad_rows + 1))

        # -- outgoing queue -------------------------------------------------------------
        entries = Array(Signal(lanes, name=f"queue_{i}") for i in range(depth))
        head, tail = Signal(range(depth)), Signal(range(depth))
        level = Signal(range(depth + 1))
        push, pop = Signal(), Signal()
        push_data = Signal(lanes)
        read_in_flight = Signal()
        m.d.comb += [self.port.tx.valid.eq(level != 0), self.port.tx.payload.eq(entries[head]),
                     pop.eq(self.port.tx.valid & self.port.tx.ready)]
        with m.If(push):
            m.d.sync += [entries[tail].eq(push_data),
                         tail.eq(Mux(tail == depth - 1, 0, tail + 1))]
        with m.If(pop):
            m.d.sync += head.eq(Mux(head == depth - 1, 0, head + 1))
        m.d.sync += level.eq(level + push - pop)

        # -- receive ---------------------------------------------------------------------
        # Beats inside the add pipeline: accepted (waiting for the local row), then `lat`
        # adder stages; `tags` carries each one's row and lanes alongside the adder.
        tag_layout = data.StructLayout({"valid": 1, "row": range(cfg.spad_rows), "lanes": nr,
                                        "fwd": 1})
        tags = [Signal(tag_layout, name=f"tag_{i}") for i in range(lat + 1)]
        received = Signal(lanes)
        pending = Signal(range(lat + 2))
        m.d.comb += pending.eq(sum(t.valid for t in tags))
        # With fwd, the received rows queue behind the sent ones: none is taken before the
        # last sent row is in the queue.
        room = Mux(fwd, (level + pending < depth) & (send_left == 0) & ~read_in_flight, 1)
        m.d.comb += self.port.rx.ready.eq(active & (recv_left != 0) & room)
        accept = self.port.rx.valid & self.port.rx.ready

        # -- send: read rows into the queue ----------------------------------------------
        # A send read waits while an add reads and writes rows of the bank it would read: a
        # SPAD bank has two ports (Spad; the bank bit keeps this rare).
        bit = spad_bank_bit(cfg)
        done_tag = tags[lat]
        bank_full = (add & keep & accept & done_tag.valid & (send_row[bit] == recv_row[bit])
                     & (recv_row[bit] == done_tag.row[bit]))
        issue = active & (send_left != 0) & (level + read_in_flight < depth) & ~bank_full
        m.d.comb += [self.spad.rd_en.eq(issue), self.spad.rd_addr.eq(send_row)]
        m.d.sync += read_in_flight.eq(issue)
        with m.If(issue):
            m.d.sync += [send_row.eq(send_row + 1), send_left.eq(send_left - 1)]
        beat_lanes = Mux(recv_left == 1, last_lanes, (1 << nr) - 1)
        m.d.comb += [self.spad.op_addr.eq(recv_row),
                     self.spad.op_en.eq(accept & add)]
        # The last hold rows are not sent on; a row past the wrapped vector's end goes to its
        # first row.
        forward = fwd & (recv_left > hold_rows)
        with m.If(accept):
            m.d.sync += [recv_row.eq(Mux(wrap & (recv_row + 1 == wrap_end), wrap_base,
                                         recv_row + 1)),
                         recv_left.eq(recv_left - 1)]
        m.d.sync += [tags[0].valid.eq(accept & add), tags[0].row.eq(recv_row),
                     tags[0].lanes.eq(beat_lanes), tags[0].fwd.eq(forward),
                     received.eq(self.port.rx.payload)]
        for i in range(1, lat + 1):
            m.d.sync += tags[i].eq(tags[i - 1])

        for lane in range(nr):
            adder = FPAdder(cfg.operand, latency=lat)
            m.submodules[f"add_{lane}"] = adder
            m.d.comb += [adder.operands.valid.eq(tags[0].valid),
                         adder.operands.payload.a.eq(self.spad.op_data[lane]),
                         adder.operands.payload.b.eq(received[lane])]
            with m.If(add):
                m.d.comb += self.spad.wr_data[lane].eq(adder.result.payload)
            with m.Else():
                m.d.comb += self.spad.wr_data[lane].eq(self.port.rx.payload[lane])
        write = Mux(add, done_tag.valid, accept)
        m.d.comb += [
            self.spad.wr_addr.eq(Mux(add, done_tag.row, recv_row)),
            self.spad.wr_lanes.eq(Mux(write & keep, Mux(add, done_tag.lanes, beat_lanes), 0)),
            push.eq(read_in_flight | (write & Mux(add, done_tag.fwd, forward))),
            push_data.eq(Mux(read_in_flight, self.spad.rd_data, self.spad.wr_data)),
        ]

        # -- start and finish ----------------------------------------------------------------
        m.d.comb += [self.events.link_words.eq(Mux(pop, nr, 0)),
                     self.events.adds.eq(Mux(tags[0].valid, nr, 0))]
        finished = (active & (send_left == 0) & (level == 0) & ~read_in_flight
                    & (recv_left == 0) & (pending == 0))
        m.d.comb += [self.spad.active.eq(active), self.command.active.eq(active),
                     self.command.finished.eq(finished),
                     self.port.chain.eq(chain)]
        with m.If(finished):
            m.d.sync += active.eq(0)
        # A RING starts when the engine is idle or finishing: nothing is in flight then.
        free = ~active | finished
        launch = Signal()
        f = Signal(self.command.fields.shape())
        regions = Signal.like(self.command.regions)
        handed = Cat(self.command.fields.as_value(), self.command.regions)
        if cfg.ring_commands:
            # The regions travel with the fields: the sequencer counts a RING's regions free
            # when it finishes (active_regions).
            m.submodules.commands = commands = fifo.SyncFIFO(width=len(handed),
                                                             depth=cfg.ring_commands)
            queued = commands.r_rdy
            bypass = free & ~queued & self.command.start
            m.d.comb += [commands.w_data.eq(handed),
                         commands.w_en.eq(self.command.start & ~bypass),
                         commands.r_en.eq(free & queued),
                         launch.eq((free & queued) | bypass),
                         Cat(f, regions).eq(Mux(queued, commands.r_data, handed)),
                         self.command.busy.eq(active | queued),
                         self.command.full.eq(~commands.w_rdy)]
        else:
            m.d.comb += [launch.eq(self.command.start), Cat(f, regions).eq(handed),
                         self.command.busy.eq(active), self.command.full.eq(active)]
        active_regions = Signal.like(regions)
        m.d.comb += self.command.active_regions.eq(active_regions)
        rlen = f.rlen
        with m.If(launch):
            m.d.sync += [
                active_regions.eq(regions),
                active.eq(1), keep.eq(f.keep), add.eq(f.add), fwd.eq(f.fwd), chain.eq(f.chain),
                send_row.eq(f.src >> shift), recv_row.eq(f.dst >> shift),
                send_left.eq(cdiv(f.slen, nr)), recv_left.eq(cdiv(rlen, nr)),
                hold_rows.eq(f.hold >> shift), wrap.eq(f.wlen != 0),
                wrap_base.eq(f.wbase >> shift), wrap_end.eq((f.wbase + f.wlen) >> shift),
                last_lanes.eq(Mux(rlen[:shift] == 0, (1 << nr) - 1,
                                  (Const(1, nr + 1) << rlen[:shift]) - 1) if shift else 1),
            ]
        return m
