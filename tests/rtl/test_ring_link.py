"""A ring link's stall injector: transparent when off, blocking valid and ready together in
the LFSR's chosen cycles when on, the same cycles for the same seed."""

from amaranth.sim import Simulator

from caterpillar.contract.config import preset
from caterpillar.rtl.ring_link import LinkStall, ring_link

CFG = preset("tiny")


def blocked_cycles(threshold: int, seed: int, cycles: int = 200):
    stall = LinkStall(CFG)
    seen = []

    async def bench(ctx):
        ctx.set(stall.seed, seed)
        ctx.set(stall.load, 1)
        await ctx.tick()
        ctx.set(stall.load, 0)
        ctx.set(stall.threshold, threshold)
        ctx.set(stall.upstream.valid, 1)
        ctx.set(stall.downstream.ready, 1)
        ctx.set(stall.upstream.payload[0], 0x1234)
        for _ in range(cycles):
            valid, ready = ctx.get(stall.downstream.valid), ctx.get(stall.upstream.ready)
            assert valid == ready                      # both pass or neither
            assert ctx.get(stall.downstream.payload[0]) == 0x1234
            seen.append(not valid)
            await ctx.tick()

    sim = Simulator(stall)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return seen


def test_off_is_transparent():
    assert not any(blocked_cycles(0, 7))


def test_stalls_follow_the_threshold_and_the_seed():
    half = blocked_cycles(128, 7)
    assert 60 < sum(half) < 140                      # about half of 200 cycles
    assert half == blocked_cycles(128, 7)            # the same seed, the same cycles
    assert half != blocked_cycles(128, 8)
    assert sum(blocked_cycles(255, 7)) > sum(half) > sum(blocked_cycles(16, 7))


def test_a_link_carries_nr_words_per_beat():
    assert ring_link(CFG).members["payload"].shape.length == CFG.nr
