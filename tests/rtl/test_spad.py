"""The SPAD: host port and the array port's transfer timing."""

from amaranth.sim import Simulator

from caterpillar.contract.config import preset
from caterpillar.rtl.microop import transfer_layout
from caterpillar.rtl.spad import Spad

CFG = preset("tiny")


def test_host_words_and_array_rows():
    spad = Spad(CFG)
    log = {}

    async def testbench(ctx):
        for addr in range(8):
            ctx.set(spad.host.addr, addr)
            ctx.set(spad.host.wdata, 100 + addr)
            ctx.set(spad.host.we, 1)
            await ctx.tick()
        ctx.set(spad.host.we, 0)
        # A load of row 1 at t: on the buses at t + 2.
        ctx.set(spad.issue.xfer, transfer_layout(CFG).const({"valid": 1, "spad_row": 1,
                                                       "col_bus": 1, "lanes": 0b11}))
        await ctx.tick()
        ctx.set(spad.issue.xfer, transfer_layout(CFG).const({}))
        await ctx.tick()
        log["load"] = (ctx.get(spad.edge.drive), ctx.get(spad.edge.col),
                       [ctx.get(spad.edge.data[k]) for k in range(CFG.nr)])
        # A store of lane 1 only, from the column buses, lands at t + 2.
        ctx.set(spad.issue.xfer, transfer_layout(CFG).const({"valid": 1, "store": 1, "spad_row": 3,
                                                       "col_bus": 1, "lanes": 0b10}))
        await ctx.tick()
        ctx.set(spad.issue.xfer, transfer_layout(CFG).const({}))
        await ctx.tick()
        for k in range(CFG.nr):
            ctx.set(spad.edge.col_bus[k], 7 + k)
        await ctx.tick()
        words = []
        for addr in (6, 7):
            ctx.set(spad.host.addr, addr)
            ctx.set(spad.host.re, 1)
            await ctx.tick()
            words.append(ctx.get(spad.host.rdata))
        log["stored"] = words

    sim = Simulator(spad)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert log["load"] == (1, 1, [102, 103])
    assert log["stored"] == [106, 8]  # lane 0 kept, lane 1 written from column bus 1
