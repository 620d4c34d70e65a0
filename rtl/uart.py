"""An 8N1 UART: a receiver with centre sampling and glitch rejection, and a transmitter."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UartRx", "UartTx", "MIN_CLOCKS_PER_BIT"]

#: The receiver votes over three samples around a bit's centre, so a bit is at least 4 clocks.
MIN_CLOCKS_PER_BIT = 4


def _check(clocks_per_bit) -> int:
    if isinstance(clocks_per_bit, bool) or not isinstance(clocks_per_bit, int) \
            or clocks_per_bit < MIN_CLOCKS_PER_BIT:
        raise ValueError(f"clocks_per_bit must be an integer >= {MIN_CLOCKS_PER_BIT}, not "
                         f"{clocks_per_bit!r}")
    return clocks_per_bit


class UartRx(wiring.Component):
    """8N1 receiver: one start bit (0), eight data bits LSB first, one stop bit (1).

    Contract: ``rx`` passes a two-flip-flop synchroniser (it may be asynchronous). A falling
    edge starts a byte; each bit, the start bit included, is the majority of three samples
    around its centre (about ``clocks_per_bit / 2`` cycles after the edge, then every
    ``clocks_per_bit``). A start bit that is 1 at its centre was a glitch: it is ignored and the
    receiver waits for the next edge. A good stop bit delivers the byte on ``data`` for one
    cycle (no backpressure: the consumer always takes it); a stop bit of 0 (framing error, or a
    break) drops the byte, pulses ``error`` and waits for the line to go back to 1 before the
    next byte. The receiver returns to waiting at the stop bit's centre, so a sender's rate may
    be a few percent off. ``busy`` is high from the start edge until then. Latency: a byte is
    delivered about 9.5 bit times plus 4 cycles after its start edge. Reset: idle.

    Parameters
    ----------
    clocks_per_bit : int
        Clock cycles per bit (at least :data:`MIN_CLOCKS_PER_BIT`).

    Members
    -------
    rx : In(1)
        The line, idle high.
    data : Out(stream.Signature(8, always_ready=True))
    error : Out(1)
        One-cycle pulse: a byte's stop bit was 0.
    busy : Out(1)
    """

    def __init__(self, *, clocks_per_bit: int):
        self.clocks_per_bit = _check(clocks_per_bit)
        super().__init__({"rx": In(1, init=1),
                          "data": Out(stream.Signature(8, always_ready=True)),
                          "error": Out(1), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        cpb = self.clocks_per_bit
        line = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, line, init=1)
        # The last three samples; the vote at a sample point is centred on the middle one.
        window = Signal(3, init=0b111)
        m.d.sync += window.eq(Cat(line, window[:2]))
        vote = (window[0] & window[1]) | (window[1] & window[2]) | (window[0] & window[2])

        timer = Signal(range(cpb))
        bits = Signal(range(9))
        shift = Signal(8)
        at_sample = timer == 0
        m.d.sync += timer.eq(timer - 1)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    # The vote's middle sample is two cycles old when the timer reaches 0.
                    m.d.sync += timer.eq((cpb + 1) // 2)
                    m.next = "START"
            with m.State("START"):
                m.d.comb += self.busy.eq(1)
                with m.If(at_sample):
                    m.d.sync += [timer.eq(cpb - 1), bits.eq(0)]
                    with m.If(vote):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "DATA"
            with m.State("DATA"):
                m.d.comb += self.busy.eq(1)
                with m.If(at_sample):
                    m.d.sync += [timer.eq(cpb - 1), shift.eq(Cat(shift[1:], vote)),
                                 bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.comb += self.busy.eq(1)
                with m.If(at_sample):
                    with m.If(vote):
                        m.d.comb += self.data.valid.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += self.error.eq(1)
                        m.next = "BREAK"
            with m.State("BREAK"):
                m.d.comb += self.busy.eq(1)
                with m.If(line & window[0]):
                    m.next = "IDLE"
        m.d.comb += self.data.payload.eq(shift)
        return m


class UartTx(wiring.Component):
    """8N1 transmitter.

    Contract: a byte is taken from ``data`` when ``valid`` and ``ready`` are high; ``ready`` is
    high when nothing is being sent (``busy`` low) and in the last cycle of a stop bit, so
    bytes offered back to back leave with no gap, one per 10 bit times.
    ``tx`` is a register output (no glitches): the start bit begins the cycle after the byte
    is taken and each bit lasts ``clocks_per_bit`` cycles. Reset: idle, ``tx`` high.

    Parameters
    ----------
    clocks_per_bit : int

    Members
    -------
    data : In(stream.Signature(8))
    tx : Out(1)
        The line, idle high.
    busy : Out(1)
    """

    def __init__(self, *, clocks_per_bit: int):
        self.clocks_per_bit = _check(clocks_per_bit)
        super().__init__({"data": In(stream.Signature(8)), "tx": Out(1, init=1),
                          "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        cpb = self.clocks_per_bit
        frame = Signal(10, init=0x3FF)      # start, 8 data bits LSB first, stop; LSB on the line
        timer = Signal(range(cpb))
        left = Signal(range(11))
        m.d.comb += [self.tx.eq(frame[0]), self.busy.eq(left != 0),
                     self.data.ready.eq((left == 0) | ((left == 1) & (timer == 0)))]
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += [frame.eq(Cat(0, self.data.payload, 1)), timer.eq(cpb - 1),
                         left.eq(10)]
        with m.Elif(left != 0):
            with m.If(timer == 0):
                m.d.sync += [frame.eq(Cat(frame[1:], 1)), timer.eq(cpb - 1), left.eq(left - 1)]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m
