"""The UART host bridge: framed host-bus commands (``contract/host_link.py``) on two pins."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import crc, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from caterpillar.contract.host_link import (
    CRC_INITIAL,
    CRC_POLYNOMIAL,
    CRC_WIDTH,
    INFO_WORDS,
    LINK_VERSION,
    MAX_BURST,
    MAX_REQUEST_WORDS,
    POLL_REPLY_WORDS,
    REPLY_START,
    REQUEST_START,
    Command,
    LinkInfo,
    Status,
)
from caterpillar.contract.registers import RING_ADDR_BITS
from caterpillar.rtl.ports import HostBus
from caterpillar.rtl.uart import UartRx, UartTx

__all__ = ["HostBridge", "LINK_CRC"]

# Where a reply's payload words come from.
_FROM_BUFFER, _FROM_POLL, _FROM_INFO = range(3)

#: The link's CRC (:mod:`caterpillar.contract.host_link`) as Amaranth's CRC algorithm.
LINK_CRC = crc.Algorithm(crc_width=CRC_WIDTH, polynomial=CRC_POLYNOMIAL,
                         initial_crc=CRC_INITIAL, reflect_input=False, reflect_output=False,
                         xor_output=0)


class HostBridge(wiring.Component):
    """Executes the requests of the host link (``docs/host-link.md``) on a host bus.

    Contract: requests arrive on ``rx`` and replies leave on ``tx`` (8N1 at ``clocks_per_bit``,
    :class:`~caterpillar.rtl.uart.UartRx` / :class:`~caterpillar.rtl.uart.UartTx`). Bytes
    outside a frame that are not the start byte are ignored. A frame is checked whole before
    anything happens on ``bus``: a WRITE's words are buffered in a block-RAM
    :class:`~amaranth.lib.memory.Memory` of :data:`MAX_BURST` words (one write port, one read
    port), so a request with a bad CRC, a truncated frame (no byte for ``timeout_cycles``),
    an unknown command or a length out of range gets its error reply and leaves the bus
    untouched. A length above :data:`MAX_REQUEST_WORDS` is answered once the line has been
    silent for ``timeout_cycles`` (the rest of that frame is discarded). After a good frame:

    * WRITE: one bus write per cycle, consecutive addresses (``N + 1`` cycles);
    * READ: one bus read per cycle into the buffer, then the reply streams it;
    * POLL: a read of ``addr`` issued every cycle until ``budget`` reads; the reply reports
      the first read whose value has a bit of ``mask`` set (``waited`` = its number, 1 for the
      first) or, after ``budget`` reads, the last value with ``timed_out``. One read beyond the
      matching one may be issued (host-bus reads have no side effects);
    * INFO: the link's version, burst limit, ``clock_hz``, ``clocks_per_bit`` and
      ``timeout_cycles``.

    Every request gets exactly one reply; bytes that arrive while a request executes or its
    reply is sent are ignored (the host waits for the reply). ``idle`` is high when the bridge
    waits for a frame and its transmitter is quiet: nothing more leaves ``tx`` until a request
    comes. Reset: waiting for a frame, ``tx`` high, no bus request.

    Parameters
    ----------
    clocks_per_bit : int
        Clock cycles per UART bit.
    timeout_cycles : int
        Inter-byte timeout inside a frame, in cycles.
    clock_hz : int
        The clock frequency the INFO reply reports (0 if unknown, e.g. in simulation).
    addr_bits : int
        Width of ``bus.addr`` (a ring's host bus has :data:`RING_ADDR_BITS`).

    Members
    -------
    rx : In(1)
        UART receive line (from the host), idle high.
    tx : Out(1)
        UART transmit line (to the host), idle high.
    bus : Out(HostBus(addr_bits))
    idle : Out(1)
    activity : Out(1)
        A byte is being received or sent.
    fault : Out(1)
        One-cycle pulse: a framing error on ``rx``, or an error reply begins.
    """

    def __init__(self, *, clocks_per_bit: int, timeout_cycles: int, clock_hz: int = 0,
                 addr_bits: int = RING_ADDR_BITS):
        if isinstance(timeout_cycles, bool) or not isinstance(timeout_cycles, int) \
                or timeout_cycles < 20 * clocks_per_bit:
            raise ValueError(f"timeout_cycles must be at least two byte times "
                             f"({20 * clocks_per_bit} cycles), not {timeout_cycles!r}")
        self.clocks_per_bit = clocks_per_bit
        self.timeout_cycles = timeout_cycles
        self.clock_hz = clock_hz
        self.addr_bits = addr_bits
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1),
                          "bus": Out(HostBus(addr_bits)), "idle": Out(1), "activity": Out(1),
                          "fault": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = UartRx(clocks_per_bit=self.clocks_per_bit)
        m.submodules.tx = tx = UartTx(clocks_per_bit=self.clocks_per_bit)
        m.submodules.crc = check = LINK_CRC(data_width=8).create()
        m.submodules.buffer = buffer = Memory(shape=32, depth=MAX_BURST, init=[])
        write = buffer.write_port()
        read = buffer.read_port()
        bus = self.bus
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx)]

        byte, got = rx.data.payload, rx.data.valid
        command = Signal(8)
        length = Signal(16)
        addr = Signal(32)
        args = Signal(96)                 # payload words 1..3 (READ count; POLL mask, budget)
        count, mask, budget = args[:32], args[:32], args[32:96]
        word = Signal(32)                 # the payload word being assembled, LSB first
        in_word = Signal(2)               # its bytes received so far
        index = Signal(range(MAX_REQUEST_WORDS + 1))
        quiet = Signal(range(self.timeout_cycles + 1))
        status = Signal(8)

        # -- execution state -----------------------------------------------------------------
        cursor = Signal(range(MAX_BURST + 1))      # bus requests issued
        bus_addr = Signal(32)
        pending = Signal()                          # a READ/POLL read returns data this cycle
        issued = Signal(64)
        waited = Signal(64)
        value = Signal(32)
        timed_out = Signal()

        # -- reply state ---------------------------------------------------------------------
        reply_words = Signal(range(MAX_BURST + 1))
        source = Signal(2)                          # where the reply's words come from
        position = Signal(range(8))                 # byte within the header or the CRC
        settle = Signal()                           # one cycle for the buffer and the CRC
        out_byte = Signal(8)

        complete = Cat(word[8:], byte)
        m.d.comb += check.data.eq(Mux(tx.data.ready & tx.data.valid, tx.data.payload, byte))
        in_frame = Signal()
        m.d.sync += quiet.eq(Mux(got | ~in_frame, 0, quiet + 1))
        timed_out_now = quiet == self.timeout_cycles - 1

        refused = Signal()

        def reply(code, words=0, src=_FROM_BUFFER):
            if code is not Status.OK:
                m.d.comb += refused.eq(1)
            m.d.sync += [status.eq(code.value), reply_words.eq(words), source.eq(src),
                         position.eq(0), settle.eq(1)]
            m.d.comb += check.start.eq(1)
            m.next = "REPLY_HEADER"

        with m.FSM():
            with m.State("HUNT"):
                m.d.comb += self.idle.eq(~tx.busy)
                with m.If(got & (byte == REQUEST_START)):
                    m.d.comb += check.start.eq(1)
                    m.d.sync += [command.eq(0), position.eq(0)]
                    m.next = "HEADER"

            with m.State("HEADER"):
                m.d.comb += in_frame.eq(1)
                with m.If(got):
                    m.d.comb += check.valid.eq(1)
                    m.d.sync += position.eq(position + 1)
                    with m.Switch(position):
                        with m.Case(0):
                            m.d.sync += command.eq(byte)
                        with m.Case(1):
                            m.d.sync += length[:8].eq(byte)
                        with m.Case(2):
                            m.d.sync += [length[8:].eq(byte), index.eq(0), in_word.eq(0),
                                         position.eq(0)]
                            full = Cat(length[:8], byte)
                            with m.If(full > MAX_REQUEST_WORDS):
                                m.next = "DRAIN"
                            with m.Elif(full == 0):
                                m.next = "CRC"
                            with m.Else():
                                m.next = "PAYLOAD"
                with m.Elif(timed_out_now):
                    reply(Status.TIMEOUT)

            with m.State("PAYLOAD"):
                m.d.comb += in_frame.eq(1)
                with m.If(got):
                    m.d.comb += check.valid.eq(1)
                    m.d.sync += [word.eq(complete), in_word.eq(in_word + 1)]
                    with m.If(in_word == 3):
                        m.d.sync += index.eq(index + 1)
                        with m.Switch(index):
                            with m.Case(0):
                                m.d.sync += addr.eq(complete)
                            for k in (1, 2, 3):
                                with m.Case(k):
                                    m.d.sync += args[32 * (k - 1):32 * k].eq(complete)
                        m.d.comb += [write.en.eq(index != 0), write.addr.eq(index - 1),
                                     write.data.eq(complete)]
                        with m.If(index + 1 == length):
                            m.next = "CRC"
                with m.Elif(timed_out_now):
                    reply(Status.TIMEOUT)

            with m.State("CRC"):
                m.d.comb += in_frame.eq(1)
                with m.If(got):
                    m.d.comb += check.valid.eq(1)
                    m.d.sync += position.eq(position + 1)
                    with m.If(position == 1):
                        m.next = "CHECK"
                with m.Elif(timed_out_now):
                    reply(Status.TIMEOUT)

            with m.State("DRAIN"):
                m.d.comb += in_frame.eq(1)
                with m.If(~got & timed_out_now):
                    reply(Status.BAD_LENGTH)

            with m.State("CHECK"):
                m.d.sync += [cursor.eq(0), bus_addr.eq(addr), pending.eq(0), issued.eq(0),
                             waited.eq(0), value.eq(0), timed_out.eq(0)]
                with m.If(~check.match_detected):
                    reply(Status.BAD_CRC)
                with m.Elif(command == Command.WRITE.value):
                    with m.If(length >= 2):
                        m.next = "WRITE"
                    with m.Else():
                        reply(Status.BAD_LENGTH)
                with m.Elif(command == Command.READ.value):
                    with m.If((length == 2) & (count >= 1) & (count <= MAX_BURST)):
                        m.next = "READ"
                    with m.Else():
                        reply(Status.BAD_LENGTH)
                with m.Elif(command == Command.POLL.value):
                    with m.If(length == 4):
                        m.next = "POLL"
                    with m.Else():
                        reply(Status.BAD_LENGTH)
                with m.Elif(command == Command.INFO.value):
                    with m.If(length == 0):
                        reply(Status.OK, INFO_WORDS, _FROM_INFO)
                    with m.Else():
                        reply(Status.BAD_LENGTH)
                with m.Else():
                    reply(Status.UNKNOWN_COMMAND)

            with m.State("WRITE"):
                # The buffer's read port has one cycle of latency: word k is on its data
                # output the cycle after its address, when it is written to the bus.
                m.d.comb += read.addr.eq(cursor)
                m.d.sync += cursor.eq(cursor + 1)
                with m.If(cursor != 0):
                    m.d.comb += [bus.we.eq(1), bus.addr.eq(bus_addr), bus.wdata.eq(read.data)]
                    m.d.sync += bus_addr.eq(bus_addr + 1)
                with m.If(cursor + 1 == length):
                    m.d.sync += cursor.eq(0)
                    reply(Status.OK)

            with m.State("READ"):
                m.d.sync += [pending.eq(cursor != count), cursor.eq(cursor + 1)]
                with m.If(cursor != count):
                    m.d.comb += [bus.re.eq(1), bus.addr.eq(bus_addr)]
                    m.d.sync += bus_addr.eq(bus_addr + 1)
                m.d.comb += [write.en.eq(pending), write.addr.eq(cursor - 1),
                             write.data.eq(bus.rdata)]
                with m.If(cursor == count):
                    reply(Status.OK, count, _FROM_BUFFER)

            with m.State("POLL"):
                issue = issued != budget
                m.d.comb += [bus.re.eq(issue), bus.addr.eq(addr)]
                m.d.sync += [issued.eq(issued + issue), pending.eq(issue)]
                seen = waited + 1
                with m.If(budget == 0):
                    m.d.sync += timed_out.eq(1)
                    reply(Status.OK, POLL_REPLY_WORDS, _FROM_POLL)
                with m.Elif(pending):
                    m.d.sync += [value.eq(bus.rdata), waited.eq(seen)]
                    with m.If((bus.rdata & mask) != 0):
                        reply(Status.OK, POLL_REPLY_WORDS, _FROM_POLL)
                    with m.Elif(seen == budget):
                        m.d.sync += timed_out.eq(1)
                        reply(Status.OK, POLL_REPLY_WORDS, _FROM_POLL)

            with m.State("REPLY_HEADER"):
                header = [REPLY_START, command, status, reply_words[:8], reply_words[8:]]
                with m.Switch(position):
                    for k, b in enumerate(header):
                        with m.Case(k):
                            m.d.comb += out_byte.eq(b)
                m.d.comb += [tx.data.payload.eq(out_byte), tx.data.valid.eq(~settle)]
                m.d.sync += settle.eq(0)
                with m.If(tx.data.valid & tx.data.ready):
                    m.d.comb += check.valid.eq(position != 0)
                    m.d.sync += [position.eq(position + 1), settle.eq(1)]
                    with m.If(position == len(header) - 1):
                        m.d.sync += [cursor.eq(0), in_word.eq(0), position.eq(0)]
                        m.next = "REPLY_PAYLOAD"
                        with m.If(reply_words == 0):
                            m.next = "REPLY_CRC"

            with m.State("REPLY_PAYLOAD"):
                poll_words = [value, waited[:32], waited[32:], timed_out]   # as PollResult
                info_words = LinkInfo(LINK_VERSION, MAX_BURST, self.clock_hz,
                                      self.clocks_per_bit, self.timeout_cycles).words()
                current = Signal(32)
                m.d.comb += read.addr.eq(cursor)
                with m.Switch(source):
                    with m.Case(_FROM_BUFFER):
                        m.d.comb += current.eq(read.data)
                    with m.Case(_FROM_POLL):
                        with m.Switch(cursor):
                            for k, w in enumerate(poll_words):
                                with m.Case(k):
                                    m.d.comb += current.eq(w)
                    with m.Case(_FROM_INFO):
                        with m.Switch(cursor):
                            for k, w in enumerate(info_words):
                                with m.Case(k):
                                    m.d.comb += current.eq(Const(w, 32))
                m.d.comb += [tx.data.payload.eq(current.word_select(in_word, 8)),
                             tx.data.valid.eq(~settle)]
                m.d.sync += settle.eq(0)
                with m.If(tx.data.valid & tx.data.ready):
                    m.d.comb += check.valid.eq(1)
                    m.d.sync += [in_word.eq(in_word + 1), settle.eq(1)]
                    with m.If(in_word == 3):
                        m.d.sync += cursor.eq(cursor + 1)
                        with m.If(cursor + 1 == reply_words):
                            m.next = "REPLY_CRC"

            with m.State("REPLY_CRC"):
                m.d.comb += [tx.data.payload.eq(Mux(position == 0, check.crc[8:], check.crc[:8])),
                             tx.data.valid.eq(~settle)]
                m.d.sync += settle.eq(0)
                with m.If(tx.data.valid & tx.data.ready):
                    m.d.sync += [position.eq(position + 1), settle.eq(1)]
                    with m.If(position == 1):
                        m.next = "HUNT"

        m.d.comb += [self.activity.eq(rx.busy | tx.busy), self.fault.eq(rx.error | refused)]
        return m
