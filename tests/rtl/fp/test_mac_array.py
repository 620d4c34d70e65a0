"""MacArray: independent lanes in lock step."""

import numpy as np

from caterpillar.golden import numerics
from caterpillar.golden.numerics import BF16, FP32
from caterpillar.rtl.fp.mac_array import MacArray
from caterpillar.sim.fpverify.bank import BankOp
from caterpillar.sim.fpverify.cases import random_cases


def test_every_lane_computes_its_own_mac(rng):
    lanes, cases = 3, 40
    array = MacArray(BF16, FP32, count=lanes, mul_latency=1, add_latency=2)
    cols = [random_cases(BankOp("mac", BF16, FP32, 3), cases, rng) for _ in range(lanes)]
    from amaranth.sim import Simulator

    got = []

    async def testbench(ctx):
        for cycle in range(cases + 3):
            for lane in range(lanes):
                if cycle < cases:
                    a, b, acc = (int(c[cycle]) for c in cols[lane])
                    ctx.set(array.operands.payload[lane], {"a": a, "b": b, "acc": acc})
            ctx.set(array.operands.valid, cycle < cases)
            if ctx.get(array.result.valid):
                got.append([ctx.get(array.result.payload[lane]) for lane in range(lanes)])
            await ctx.tick()

    sim = Simulator(array)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    got = np.array(got, dtype=np.uint64)
    assert got.shape == (cases, lanes)
    for lane in range(lanes):
        want = numerics.mac(*cols[lane], BF16, FP32).astype(np.uint64)
        np.testing.assert_array_equal(got[:, lane], want)
