"""The signatures that join the blocks of a core, and the host bus that reaches it.

Every port between two blocks is one of these, so a block's connections are ``wiring.connect``
calls and a miswire fails at elaboration. Each signature is written from the side named in its
docstring (the side whose members are ``Out``).
"""

from __future__ import annotations

from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from caterpillar.contract.geometry import SPAD_REGIONS
from caterpillar.contract.isa import Counter, ErrorCause, Opcode
from caterpillar.contract.registers import COUNTER_BITS, HOST_ADDR_BITS, SCALAR_REGISTERS
from caterpillar.rtl.instruction import operand_layout
from caterpillar.rtl.microop import compute_layout, transfer_layout
from caterpillar.rtl.ring_link import ring_link

__all__ = ["HostBus", "HostWindow", "SequencerPort", "MicroOps", "ArrayStatus", "PEEvents",
           "SpadEvents", "RingEvents", "SpadEdge", "RingCommand", "RingSpadPort", "RingPort"]


class HostBus(wiring.Signature):
    """A single-cycle host bus, from the host's side (the core has ``In(HostBus())``).

    A request is one cycle with ``we`` (write ``wdata`` to ``addr``) or ``re`` (read ``addr``);
    read data is on ``rdata`` in the next cycle. Every request completes: there is no wait
    state. Addresses are word addresses of ``addr_bits`` bits (a core decodes 26, the ring 32).
    """

    def __init__(self, addr_bits: int = HOST_ADDR_BITS):
        super().__init__({"addr": Out(addr_bits), "wdata": Out(32), "we": Out(1),
                          "re": Out(1), "rdata": In(32)})


class HostWindow(wiring.Signature):
    """The host's way into one memory (IMEM or the SPAD), from the host interface's side.

    ``addr`` is the word offset inside the window; a request is ``we`` or ``re`` for one cycle
    and read data is on ``rdata`` the next cycle, as on :class:`HostBus`.
    """

    def __init__(self, addr_bits: int, width: int):
        super().__init__({"addr": Out(addr_bits), "we": Out(1), "re": Out(1),
                          "wdata": Out(width), "rdata": In(width)})


class SequencerPort(wiring.Signature):
    """Commands, scalar registers and state of the sequencer, from the host interface's side.

    ``start``, ``clear``, ``clear_counters``, ``clear_host_words`` are one-cycle pulses
    (``CTRL``); ``host_refused`` is high in a cycle the host tried to write IMEM or the SPAD,
    or to read the SPAD, while ``busy`` (refused; the sequencer stops with ``HOST_ACCESS``);
    ``host_word`` is high in a cycle the host wrote or read an IMEM or SPAD word (the
    ``HOST_WORDS`` counter). Scalar-register reads are combinational.
    """

    def __init__(self, cfg):
        aw = cfg.imem_addr_width
        super().__init__({
            "start": Out(1), "clear": Out(1), "clear_counters": Out(1),
            "clear_host_words": Out(1), "start_pc": Out(aw),
            "host_refused": Out(1), "host_word": Out(1),
            "sreg_we": Out(1), "sreg_idx": Out(range(SCALAR_REGISTERS)),
            "sreg_wdata": Out(cfg.word_width), "sreg_rdata": In(cfg.word_width),
            "busy": In(1), "done": In(1), "error": In(1), "cause": In(ErrorCause),
            "error_pc": In(aw + 1), "pc": In(aw + 1),
            "counters": In(data.ArrayLayout(COUNTER_BITS, len(Counter))),
        })


class MicroOps(wiring.Signature):
    """The micro-op bus, from the sequencer's side: one compute and one transfer micro-op per
    cycle, broadcast to every PE and to the SPAD (docs/architecture.md section 2)."""

    def __init__(self, cfg):
        super().__init__({"uop": Out(compute_layout(cfg)), "xfer": Out(transfer_layout(cfg))})


class ArrayStatus(wiring.Signature):
    """What the PE array reports to the sequencer each cycle, from the array's side: a hazard
    and the events of the cycle summed over the PEs (for the counters, :class:`Counter`)."""

    def __init__(self, cfg):
        pes = cfg.nr * cfg.nr
        super().__init__({"hazard": Out(1), "macs": Out(range(pes + 1)),
                          "ops": Out(range(pes + 1)), "mema_reads": Out(range(pes + 1)),
                          "mema_writes": Out(range(pes + 1)),
                          "memb_reads": Out(range(2 * pes + 1)),
                          "memb_writes": Out(range(2 * pes + 1))})


class PEEvents(wiring.Signature):
    """One PE's memory and FPU events of a cycle, from the PE's side: a micro-op executed
    (``op``), a MemA word read and written, MemB words read and written (up to two each)."""

    def __init__(self):
        super().__init__({"op": Out(1), "mac": Out(1), "mema_read": Out(1),
                          "mema_write": Out(1), "memb_reads": Out(range(3)),
                          "memb_writes": Out(range(3))})


class SpadEvents(wiring.Signature):
    """The SPAD's events of a cycle, from its side: words read by the array and the ring
    engine (``nr`` per row: a row is one access; up to three rows, the array's and the
    engine's two in the other region) and words written (lanes, up to two rows), host
    accesses excluded."""

    def __init__(self, cfg):
        super().__init__({"reads": Out(range(3 * cfg.nr + 1)),
                          "writes": Out(range(2 * cfg.nr + 1))})


class RingEvents(wiring.Signature):
    """The ring engine's events of a cycle, from its side: words sent on the outgoing link
    (``nr`` per beat) and additions of its adders (``nr`` per beat added)."""

    def __init__(self, cfg):
        super().__init__({"link_words": Out(range(cfg.nr + 1)),
                          "adds": Out(range(cfg.nr + 1))})


class SpadEdge(wiring.Signature):
    """The SPAD's row port at the edge of the PE array, from the SPAD's side.

    ``drive`` puts ``data`` (one SPAD row, lane ``k`` on bus ``k``) on the row buses, or on the
    column buses with ``col``; ``row_bus``/``col_bus`` are the bus values a store writes.
    """

    def __init__(self, cfg):
        lanes = data.ArrayLayout(cfg.word_width, cfg.nr)
        super().__init__({"drive": Out(1), "col": Out(1), "data": Out(lanes),
                          "row_bus": In(lanes), "col_bus": In(lanes)})


class RingCommand(wiring.Signature):
    """A ``RING`` instruction handed to the ring engine, from the sequencer's side: ``start``
    for one cycle with ``fields`` and the mask of the SPAD regions it uses (``regions``; not
    while ``full``). ``active`` from the cycle after the engine starts a ``RING`` until its
    last, in which it raises ``finished``; ``active_regions``: the regions of the one it runs;
    ``busy`` while ``active`` or a ``RING`` waits in the engine's command queue; ``full``
    while that queue holds ``cfg.ring_commands`` of them (without a queue, while
    ``active``)."""

    def __init__(self):
        super().__init__({"start": Out(1), "fields": Out(operand_layout(Opcode.RING)),
                          "regions": Out(SPAD_REGIONS), "busy": In(1), "full": In(1),
                          "active": In(1), "finished": In(1),
                          "active_regions": In(SPAD_REGIONS)})


class RingSpadPort(wiring.Signature):
    """The ring engine's use of the SPAD, from the engine's side.

    While ``active`` the engine owns the ports of the SPAD regions its ``RING`` uses:
    ``rd_*`` and ``op_*`` read rows (data one cycle after ``en``), ``wr_*`` writes the lanes
    in ``wr_lanes`` at the end of the cycle.
    """

    def __init__(self, cfg):
        rows, lanes = cfg.spad_rows, data.ArrayLayout(cfg.word_width, cfg.nr)
        super().__init__({
            "active": Out(1),
            "rd_addr": Out(range(rows)), "rd_en": Out(1), "rd_data": In(lanes),
            "op_addr": Out(range(rows)), "op_en": Out(1), "op_data": In(lanes),
            "wr_addr": Out(range(rows)), "wr_data": Out(lanes), "wr_lanes": Out(cfg.nr),
        })


class RingPort(wiring.Signature):
    """A core's place on the ring, from the core's side: its outgoing link, its incoming link,
    and which kind of link (``chain``: the chain links, else the segment links) the running
    ``RING`` instruction uses (docs/multicore.md)."""

    def __init__(self, cfg):
        super().__init__({"tx": Out(ring_link(cfg)), "rx": In(ring_link(cfg)),
                          "chain": Out(1)})
