"""The GEMM engine alone: busy for exactly the schedule's cycles, on irregular shapes."""

from types import SimpleNamespace

import pytest
from amaranth.sim import Simulator

from caterpillar.contract.config import preset
from caterpillar.contract.geometry import gemm_a_rows_lead, gemm_schedule
from caterpillar.rtl.gemm import GemmEngine

TINY_CASES = [
    (8, 2, 3, 8, 0, 0, 0), (17, 5, 4, 8, 1, 0, 0), (16, 9, 1, 16, 1, 0, 0), (9, 4, 20, 8, 0, 0, 0),
    (40, 3, 2, 16, 1, 0, 0), (8, 9, 3, 8, 1, 1, 0), (7, 2, 20, 8, 0, 1, 0), (16, 5, 1, 16, 0, 1, 0),
    # a_rows: the load ahead of the compute, shorter (k = 1) and longer than the lead.
    (17, 5, 4, 8, 1, 0, 1), (16, 9, 1, 16, 1, 0, 1), (9, 4, 20, 8, 0, 0, 1),
]


@pytest.mark.parametrize("m,n,k,mc,acc,a_mema,a_rows,name", [
    *[(*case, "tiny") for case in TINY_CASES],
    # On paper-n1 (MemA's bank bit 1: a lead of 34) the lead, not the transfers after the
    # load, sets the length of the first panel's later row groups.
    (48, 2, 16, 48, 0, 0, 1, "paper-n1"), (40, 6, 8, 16, 0, 0, 1, "paper-n1"),
])
def test_busy_cycles_equal_the_schedule(m, n, k, mc, acc, a_mema, a_rows, name):
    f = SimpleNamespace(m=m, n=n, k=k, mc=mc, accumulate=acc, a_mema=a_mema, a_rows=a_rows)
    cfg = preset(name)
    schedule = gemm_schedule(f, cfg)
    want = schedule.cycles
    if name != "tiny":
        assert any(p.length == gemm_a_rows_lead(cfg) + k * cfg.acc_lanes
                   for p in schedule.phases if p.astream)
    engine = GemmEngine(cfg)
    measured = {}

    async def testbench(ctx):
        ctx.set(engine.f, {"m": m, "n": n, "k": k, "mc": mc, "accumulate": acc,
                           "a_mema": a_mema, "a_rows": a_rows, "lda": max(m, k) + 8,
                           "ldb": n + 8, "ldc": n + 8})
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
