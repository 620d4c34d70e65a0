"""The Amaranth-simulator stream driver: ordering, idle cycles and its watchdog."""

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from caterpillar.sim.fpverify.stream import WatchdogTimeout, run_stream_unit


class Silent(wiring.Component):
    """Accepts operands and never produces a result."""

    operands: In(stream.Signature(8, always_ready=True))
    result: Out(stream.Signature(8, always_ready=True))

    def elaborate(self, platform):
        return Module()


class Increment(wiring.Component):
    """Combinational ``x + 1``."""

    operands: In(stream.Signature(8, always_ready=True))
    result: Out(stream.Signature(8, always_ready=True))

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [self.result.payload.eq(self.operands.payload + 1),
                     self.result.valid.eq(self.operands.valid)]
        return m


def test_watchdog_fails_a_unit_that_never_answers():
    with pytest.raises(WatchdogTimeout, match=r"^Silent: 0 of 3 results after 67 cycles$"):
        run_stream_unit(Silent(), np.arange(3))


def test_results_in_order_with_idle_cycles():
    got, sent, seen = run_stream_unit(Increment(), np.arange(10), valid_pattern=[0, 1, 1],
                                      timing=True)
    np.testing.assert_array_equal(got, np.arange(1, 11))
    np.testing.assert_array_equal(sent, seen)
    assert sent.tolist()[:4] == [1, 2, 4, 5]
