"""The GEMM engine alone: busy for exactly the schedule's cycles, on irregular shapes."""

from types import SimpleNamespace

import pytest
from amaranth.sim import Simulator

from caterpillar.contract.config import preset
from caterpillar.contract.geometry import gemm_schedule
from caterpillar.rtl.gemm import GemmEngine

CFG = preset("tiny")


@pytest.mark.parametrize("m,n,k,mc,acc,a_mema", [
    (8, 2, 3, 8, 0, 0), (17, 5, 4, 8, 1, 0), (16, 9, 1, 16, 1, 0), (9, 4, 20, 8, 0, 0),
    (40, 3, 2, 16, 1, 0), (8, 9, 3, 8, 1, 1), (7, 2, 20, 8, 0, 1), (16, 5, 1, 16, 0, 1),
])
def test_busy_cycles_equal_the_schedule(m, n, k, mc, acc, a_mema):
    f = SimpleNamespace(m=m, n=n, k=k, mc=mc, accumulate=acc, a_mema=a_mema)
    want = gemm_schedule(f, CFG).cycles
    engine = GemmEngine(CFG)
    measured = {}

    async def testbench(ctx):
        ctx.set(engine.f, {"m": m, "n": n, "k": k, "mc": mc, "accumulate": acc,
                           "a_mema": a_mema, "lda": m + 8, "ldb": n + 8, "ldc": n + 8})
        ctx.set(engine.start, 1)
        await ctx.tick()
        ctx.set(engine.start, 0)
        busy = last_at = 0
        for cycle in range(want + 50):
            if ctx.get(engine.busy):
                busy += 1
            if ctx.get(engine.last):
                last_at = cycle + 1
            await ctx.tick()
        measured.update(busy=busy, last=last_at)

    sim = Simulator(engine)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert measured == {"busy": want, "last": want}
