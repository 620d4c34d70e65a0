"""Register placement: plan properties and the delay a Pipeline builds."""

import pytest
from amaranth.hdl import ClockDomain, Module, Signal
from amaranth.sim import Simulator

from caterpillar.rtl.fp.pipeline import Pipeline, plan_registers


@pytest.mark.parametrize("weights", [(1,), (1, 4, 2, 3, 3), (2, 3, 2, 2, 3, 3), (5, 1)])
@pytest.mark.parametrize("latency", range(0, 9))
def test_plan_places_exactly_latency_registers(weights, latency):
    plan = plan_registers(weights, latency)
    assert len(plan) == len(weights) + 1 and sum(plan) == latency


def test_plan_balances_the_deepest_segment():
    # The best single cut of 1, 4, 2, 3, 3 (total 13) leaves 7 | 6.
    plan = plan_registers((1, 4, 2, 3, 3), 1)
    cut = plan.index(1)
    weights = (1, 4, 2, 3, 3)
    assert max(sum(weights[:cut]), sum(weights[cut:])) == 7
    assert plan_registers((1, 1, 1, 1), 3) == (0, 1, 1, 1, 0)


def test_plan_rejects_negative_latency():
    with pytest.raises(ValueError, match=r"^latency must be a non-negative integer, not -1$"):
        plan_registers((1, 2), -1)


@pytest.mark.parametrize("latency", [0, 1, 2, 5])
def test_pipeline_delays_values_and_valid_by_latency(latency):
    m = Module()
    x, valid = Signal(8), Signal()
    pipe = Pipeline(m, (1, 1), latency, valid, name="t")
    v = pipe.begin({"x": x})
    v = pipe.step({"y": v["x"] + 1})
    v = pipe.step({"z": v["y"] * 2})
    pipe.check_complete()
    out, out_valid = Signal(16), Signal()
    m.d.comb += [out.eq(v["z"]), out_valid.eq(pipe.valid)]
    seen = []

    async def testbench(ctx):
        for cycle in range(16):
            ctx.set(x, cycle)
            ctx.set(valid, cycle in (2, 3, 7))
            if ctx.get(out_valid):
                seen.append((cycle, ctx.get(out)))
            await ctx.tick()

    m.domains.sync = ClockDomain()
    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert seen == [(c + latency, (c + 1) * 2) for c in (2, 3, 7)]

