# amaranth: UnusedElaboratable=no
"""The 8N1 UART: the transmitter's bit timing, the receiver's centre sampling at rates a few
percent off, its rejection of glitches (a short low pulse is no start bit, a one-cycle spike in
a bit is voted out) and framing errors (a 0 stop bit, a break) reported once, not as data."""

import pytest
from amaranth.sim import Simulator

from caterpillar.rtl.uart import MIN_CLOCKS_PER_BIT, UartRx, UartTx


def waveform(data: bytes, cpb: float, *, idle: int = 10, stop: int = 1) -> list[int]:
    """Per-cycle levels of the line sending ``data`` at ``cpb`` (possibly fractional) cycles per
    bit; ``stop`` is the level of every stop bit."""
    bits = [1] * idle
    for b in data:
        bits += [0, *[(b >> k) & 1 for k in range(8)], stop]
    levels = []
    edges = [round(i * cpb) for i in range(len(bits) + 1)]
    for i, level in enumerate(bits):
        levels += [level] * (edges[i + 1] - edges[i])
    return levels + [1] * (4 * int(cpb) + 10)


def receive(levels: list[int], cpb: int):
    """Drive ``levels`` into a receiver, one per cycle; return the bytes and error pulses."""
    rx = UartRx(clocks_per_bit=cpb)
    got, errors = [], []

    async def bench(ctx):
        for cycle, level in enumerate(levels):
            ctx.set(rx.rx, level)
            await ctx.tick()
            if ctx.get(rx.data.valid):
                got.append(ctx.get(rx.data.payload))
            if ctx.get(rx.error):
                errors.append(cycle)

    sim = Simulator(rx)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return bytes(got), errors


def transmit(data: bytes, cpb: int, cycles: int):
    """Offer ``data`` to a transmitter back to back; return the line per cycle and the cycles
    each byte was taken."""
    tx = UartTx(clocks_per_bit=cpb)
    line, taken = [], []

    async def bench(ctx):
        pending = list(data)
        for cycle in range(cycles):
            ctx.set(tx.data.valid, bool(pending))
            ctx.set(tx.data.payload, pending[0] if pending else 0)
            ready = ctx.get(tx.data.ready)
            assert ready or ctx.get(tx.busy)
            await ctx.tick()
            if pending and ready:
                taken.append(cycle)
                pending.pop(0)
            line.append(ctx.get(tx.tx))
        assert not pending, "the watchdog ran out before every byte was taken"

    sim = Simulator(tx)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return line, taken


@pytest.mark.parametrize("cpb", [4, 5, 15, 16])
def test_transmitter_bits_last_exactly_clocks_per_bit(cpb, rng):
    data = bytes(rng.integers(0, 256, 6).tolist()) + b"\x00\xff"
    line, taken = transmit(data, cpb, cycles=10 * cpb * (len(data) + 1))
    assert line[0] == 1 or taken[0] == 0
    start = line.index(0)
    expected = waveform(data, cpb, idle=0)[:10 * cpb * len(data)]
    assert line[start:start + len(expected)] == expected       # back to back, no gap
    assert all(b - a == 10 * cpb for a, b in zip(taken, taken[1:]))
    assert line[start + len(expected):] == [1] * (len(line) - start - len(expected))


@pytest.mark.parametrize("cpb", [4, 15, 16])
def test_the_receiver_reads_what_the_transmitter_sends(cpb, rng):
    data = bytes(rng.integers(0, 256, 12).tolist())
    line, _ = transmit(data, cpb, cycles=10 * cpb * (len(data) + 2))
    assert receive([1] * 5 + line, cpb) == (data, [])


@pytest.mark.parametrize("error", [-0.03, 0.03])
def test_centre_sampling_tolerates_a_sender_a_few_percent_off(error, rng):
    data = bytes(rng.integers(0, 256, 16).tolist()) + b"\x55\xaa"
    assert receive(waveform(data, 15 * (1 + error)), 15) == (data, [])


def test_a_short_low_pulse_is_no_start_bit():
    levels = [1] * 20 + [0] * 6 + [1] * 40 + waveform(b"\x3c", 16)
    assert receive(levels, 16) == (b"\x3c", [])                 # no byte from the glitch


def test_a_one_cycle_spike_in_a_bit_is_voted_out():
    cpb = 16
    levels = waveform(b"\x0f\xf0", cpb)
    idle = 10
    for byte, bit in ((0, 2), (0, 6), (1, 1), (1, 7)):
        centre = idle + (10 * byte + 1 + bit) * cpb + cpb // 2
        levels[centre] ^= 1
    assert receive(levels, cpb) == (b"\x0f\xf0", [])


def test_a_bad_stop_bit_drops_the_byte_and_reports_it_once():
    cpb = 8
    bad = waveform(b"\x81", cpb, stop=0)
    brk = [0] * (30 * cpb)                                      # a break: three byte times low
    good = waveform(b"\x42", cpb)
    got, errors = receive(bad[:-(4 * cpb + 10)] + brk + good, cpb)
    assert got == b"\x42"
    assert len(errors) == 1


def test_clocks_per_bit_is_checked():
    for bad in (MIN_CLOCKS_PER_BIT - 1, 4.5, True):
        with pytest.raises(ValueError, match="clocks_per_bit must be an integer >= 4"):
            UartRx(clocks_per_bit=bad)
        with pytest.raises(ValueError, match="clocks_per_bit"):
            UartTx(clocks_per_bit=bad)
