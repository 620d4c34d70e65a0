"""Shared arithmetic blocks: the leading-zero counter, exhaustively for small widths."""

import pytest
from amaranth.hdl import ClockDomain, Module, Signal
from amaranth.sim import Simulator

from caterpillar.rtl.fp.arith import leading_zeros


@pytest.mark.parametrize("width", [1, 2, 3, 5, 7, 8, 11])
def test_leading_zeros_exhaustive(width):
    m = Module()
    m.domains.sync = ClockDomain()
    v = Signal(width)
    count = Signal(8)
    m.d.comb += count.eq(leading_zeros(m, v, "lzc"))
    mismatches = []

    async def testbench(ctx):
        for value in range(1 << width):
            ctx.set(v, value)
            want = width - value.bit_length()
            if ctx.get(count) != want:
                mismatches.append((value, ctx.get(count), want))

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()
    assert mismatches == []
