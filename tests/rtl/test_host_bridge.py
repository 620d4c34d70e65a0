# amaranth: UnusedElaboratable=no
"""The UART host bridge, bit-banged at 4 clocks per bit in Amaranth's simulator against a
small bus target (64 words of memory, a free-running cycle counter, counts of bus writes and
reads): every command does what ``docs/host-link.md`` says, cycle-exactly for POLL, and every
bad frame (wrong CRC, truncated, unknown command, length out of range) gets its error reply
and leaves memory untouched, as reading it back shows."""

import pytest
from amaranth.hdl import Elaboratable, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from caterpillar.contract.host_link import (
    LINK_VERSION,
    MAX_BURST,
    MAX_REQUEST_WORDS,
    REPLY_HEADER_BYTES,
    Command,
    LinkInfo,
    PollResult,
    Status,
    crc16,
    decode_reply,
    encode_info,
    encode_poll,
    encode_read,
    encode_request,
    encode_write,
)
from caterpillar.contract.registers import RING_ADDR_BITS
from caterpillar.rtl.host_bridge import LINK_CRC, HostBridge
from caterpillar.rtl.ports import HostBus

CPB = 4
TIMEOUT = 400
CLOCK_HZ = 12_000_000
#: The target's cycle counter (free-running from reset), outside its memory.
COUNTER = 0x1000
WORDS = 64
#: Watchdog for one reply, in cycles.
REPLY_WATCHDOG = 20 * CPB * 300 + 4 * TIMEOUT


class Target(wiring.Component):
    """Memory at addresses 0..63, the cycle counter at :data:`COUNTER`; read data the next
    cycle, like a core's host bus. ``writes`` and ``reads`` count bus requests."""

    bus: In(HostBus(RING_ADDR_BITS))
    writes: Out(16)
    reads: Out(32)

    def __init__(self, init):
        self.init = init
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=32, depth=WORDS, init=self.init)
        wp, rp = mem.write_port(), mem.read_port()
        counter = Signal(32)
        counter_q = Signal(32)
        from_counter = Signal()
        bus = self.bus
        m.d.sync += [counter.eq(counter + 1), counter_q.eq(counter),
                     from_counter.eq(bus.addr == COUNTER)]
        m.d.comb += [wp.addr.eq(bus.addr), wp.data.eq(bus.wdata),
                     wp.en.eq(bus.we & (bus.addr < WORDS)), rp.addr.eq(bus.addr),
                     bus.rdata.eq(Mux(from_counter, counter_q, rp.data))]
        m.d.sync += [self.writes.eq(self.writes + bus.we), self.reads.eq(self.reads + bus.re)]
        return m


class Bench(Elaboratable):
    def __init__(self, init):
        self.bridge = HostBridge(clocks_per_bit=CPB, timeout_cycles=TIMEOUT, clock_hz=CLOCK_HZ)
        self.target = Target(init)

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge, m.submodules.target = self.bridge, self.target
        wiring.connect(m, self.bridge.bus, self.target.bus)
        return m


class Link:
    """Bit-banged host side of the link inside a testbench."""

    def __init__(self, ctx, bench):
        self.ctx, self.bridge, self.target = ctx, bench.bridge, bench.target

    async def send(self, data: bytes):
        for byte in data:
            for bit in [0, *[(byte >> k) & 1 for k in range(8)], 1]:
                self.ctx.set(self.bridge.rx, bit)
                await self.ctx.tick().repeat(CPB)

    async def _byte(self, watchdog: int) -> int:
        ctx, tx = self.ctx, self.bridge.tx
        for _ in range(watchdog):
            if not ctx.get(tx):
                break
            await ctx.tick()
        else:
            raise AssertionError(f"no reply byte within {watchdog} cycles")
        await ctx.tick().repeat(CPB // 2)
        assert ctx.get(tx) == 0, "start bit"
        value = 0
        for k in range(8):
            await ctx.tick().repeat(CPB)
            value |= ctx.get(tx) << k
        await ctx.tick().repeat(CPB)
        assert ctx.get(tx) == 1, "stop bit"
        return value

    async def reply(self, watchdog: int = REPLY_WATCHDOG):
        data = bytearray([await self._byte(watchdog)])
        for _ in range(REPLY_HEADER_BYTES - 1):
            data.append(await self._byte(2 * CPB))
        length = int.from_bytes(data[3:5], "little")
        for _ in range(4 * length + 2):
            data.append(await self._byte(2 * CPB))
        view = memoryview(bytes(data))
        offset = [0]

        def read(n):
            offset[0] += n
            return bytes(view[offset[0] - n:offset[0]])

        reply = decode_reply(read)
        assert offset[0] == len(data)
        for _ in range(2 * CPB):                  # the stop bit ends, then the bridge is idle
            if self.ctx.get(self.bridge.idle):
                break
            await self.ctx.tick()
        assert self.ctx.get(self.bridge.idle)
        return reply

    async def request(self, frame: bytes):
        await self.send(frame)
        return await self.reply()

    async def memory(self):
        reply = await self.request(encode_read(0, WORDS))
        assert reply.status is Status.OK
        return list(reply.words)

    def counts(self):
        return self.ctx.get(self.target.writes), self.ctx.get(self.target.reads)


def run(script, init=None):
    """Run ``script(link)`` against a fresh bridge and target."""
    bench = Bench(list(range(100, 100 + WORDS)) if init is None else init)

    async def testbench(ctx):
        ctx.set(bench.bridge.rx, 1)
        await ctx.tick().repeat(5)
        await script(Link(ctx, bench))

    sim = Simulator(bench)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


INITIAL = list(range(100, 100 + WORDS))


def test_info_reports_the_link():
    async def script(link):
        assert link.ctx.get(link.bridge.idle)
        reply = await link.request(encode_info())
        assert (reply.command, reply.status) == (Command.INFO.value, Status.OK)
        assert LinkInfo(*reply.words) == LinkInfo(LINK_VERSION, MAX_BURST, CLOCK_HZ, CPB,
                                                  TIMEOUT)
    run(script)


def test_write_then_read_back_one_bus_request_per_word(rng):
    data = rng.integers(0, 1 << 32, 10, dtype="uint64").tolist()

    async def script(link):
        reply = await link.request(encode_write(5, data))
        assert (reply.command, reply.status, reply.words) == (Command.WRITE.value, Status.OK,
                                                              ())
        assert link.counts() == (10, 0)
        reply = await link.request(encode_read(4, 12))
        assert reply.status is Status.OK
        assert list(reply.words) == [INITIAL[4], *data, INITIAL[15]]
        assert link.counts() == (10, 12)
    run(script)


def test_a_full_burst_writes_and_reads_max_burst_words(rng):
    data = rng.integers(0, 1 << 32, MAX_BURST, dtype="uint64").tolist()

    async def script(link):
        assert (await link.request(encode_write(0, data))).status is Status.OK
        assert link.counts() == (MAX_BURST, 0)
        # The target keeps addresses 0..63 and reads address a as a % 64.
        reply = await link.request(encode_read(0, MAX_BURST))
        assert list(reply.words) == data[:WORDS] * (MAX_BURST // WORDS)
    run(script)


def test_poll_reads_every_cycle_and_counts_the_reads():
    async def script(link):
        # Never matches: exactly `budget` reads, the last value is the counter then.
        before = link.counts()[1]
        reply = await link.request(encode_poll(COUNTER, 0, 50))
        result = PollResult.from_words(reply.words)
        assert reply.status is Status.OK and result.timed_out and result.waited == 50
        assert link.counts()[1] - before == 50
        # The counter's bit 12 first appears in 4096: no cycle is skipped; one read may be
        # issued beyond the matching one.
        before = link.counts()[1]
        reply = await link.request(encode_poll(COUNTER, 1 << 12, 10_000))
        result = PollResult.from_words(reply.words)
        assert not result.timed_out and result.value == 4096
        assert link.counts()[1] - before - result.waited in (0, 1)
        # A memory word that already matches: the first read.
        reply = await link.request(encode_poll(3, 0xFFFF_FFFF, 7))
        assert PollResult.from_words(reply.words) == PollResult(INITIAL[3], 1, False)
        # A zero budget reads nothing and times out at once.
        before = link.counts()[1]
        reply = await link.request(encode_poll(3, 0xFFFF_FFFF, 0))
        assert PollResult.from_words(reply.words) == PollResult(0, 0, True)
        assert link.counts()[1] == before
    run(script)


def test_poll_budget_above_32_bits_is_taken_whole():
    async def script(link):
        reply = await link.request(encode_poll(COUNTER, 1 << 11, (1 << 40) + 5))
        result = PollResult.from_words(reply.words)
        assert not result.timed_out and result.value == 2048
    run(script)


def _refused(frame: bytes, status: Status, command: int | None = None, *, cut: int = 0):
    """Send ``frame`` (less its last ``cut`` bytes): ``status`` comes back, no bus write was
    made, memory reads back unchanged, and the next good frame works."""
    async def script(link):
        await link.send(b"\x00\x13" + (frame[:-cut] if cut else frame))
        reply = await link.reply()
        assert reply.status is status and reply.words == ()
        if command is not None:
            assert reply.command == command
        assert link.counts()[0] == 0
        assert await link.memory() == INITIAL
        assert (await link.request(encode_write(1, [7]))).status is Status.OK
        assert (await link.memory())[:3] == [INITIAL[0], 7, INITIAL[2]]
    run(script)


def test_a_wrong_crc_is_refused():
    frame = bytearray(encode_write(2, [0xDEAD_BEEF, 1, 2]))
    frame[9] ^= 0x10                                   # one payload bit
    _refused(bytes(frame), Status.BAD_CRC, Command.WRITE.value)


def test_a_truncated_frame_times_out():
    _refused(encode_write(2, [0xDEAD_BEEF, 1, 2]), Status.TIMEOUT, Command.WRITE.value, cut=3)


def test_a_frame_cut_in_its_header_times_out():
    _refused(encode_write(2, [1]), Status.TIMEOUT, cut=12)


def test_an_unknown_command_with_a_good_crc_is_refused():
    _refused(encode_request(0x00, [2, 5]), Status.UNKNOWN_COMMAND, 0x00)


@pytest.mark.parametrize("frame", [
    encode_request(Command.READ, [0, 0]),
    encode_request(Command.READ, [0, MAX_BURST + 1]),
    encode_request(Command.READ, [0]),
    encode_request(Command.WRITE, [2]),
    encode_request(Command.POLL, [0, 1, 5]),
    encode_request(Command.INFO, [0]),
], ids=["read-0", "read-too-many", "read-no-count", "write-no-data", "poll-3-words",
        "info-with-payload"])
def test_a_length_or_count_out_of_range_is_refused(frame):
    _refused(frame, Status.BAD_LENGTH, frame[1])


def test_a_length_field_above_the_buffer_is_refused_after_the_line_is_silent():
    frame = encode_request(Command.WRITE, [2] * (MAX_REQUEST_WORDS + 1))
    _refused(frame[:40], Status.BAD_LENGTH, Command.WRITE.value)


def test_the_rtl_crc_is_the_contracts(rng):
    for size in (0, 1, 9, 300):
        data = bytes(rng.integers(0, 256, size).tolist())
        assert LINK_CRC(data_width=8).compute(data) == crc16(data)


def test_the_timeout_is_checked():
    with pytest.raises(ValueError, match="timeout_cycles must be at least two byte times"):
        HostBridge(clocks_per_bit=CPB, timeout_cycles=10)
