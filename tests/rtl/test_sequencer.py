# amaranth: UnusedElaboratable=no
"""The sequencer: the host's IMEM window and scalar registers."""

from amaranth.sim import Simulator

from caterpillar.contract.config import preset
from caterpillar.contract.isa import INSTR_WORDS, Opcode, encode
from caterpillar.rtl.sequencer import Sequencer

CFG = preset("tiny")


def test_imem_window_and_scalar_registers():
    seq = Sequencer(CFG)
    word = encode(Opcode.SETS, reg=2, value=0xDEADBEEF)
    got = {}

    async def testbench(ctx):
        for k in range(INSTR_WORDS):
            ctx.set(seq.imem.addr, 5 * INSTR_WORDS + k)
            ctx.set(seq.imem.wdata, (word >> (32 * k)) & 0xFFFFFFFF)
            ctx.set(seq.imem.we, 1)
            await ctx.tick()
        ctx.set(seq.imem.we, 0)
        read = 0
        for k in range(INSTR_WORDS):
            ctx.set(seq.imem.addr, 5 * INSTR_WORDS + k)
            await ctx.tick()
            read |= ctx.get(seq.imem.rdata) << (32 * k)
        got["imem"] = read
        ctx.set(seq.host.sreg_idx, 7)
        ctx.set(seq.host.sreg_wdata, 0x1234)
        ctx.set(seq.host.sreg_we, 1)
        await ctx.tick()
        ctx.set(seq.host.sreg_we, 0)
        got["sreg"] = ctx.get(seq.host.sreg_rdata)
        # Run the instruction: SETS writes scalar register 2.
        ctx.set(seq.host.start_pc, 5)
        ctx.set(seq.host.start, 1)
        await ctx.tick()
        ctx.set(seq.host.start, 0)
        await ctx.tick().repeat(4)
        ctx.set(seq.host.sreg_idx, 2)
        got["sets"] = ctx.get(seq.host.sreg_rdata)

    sim = Simulator(seq)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert got == {"imem": word, "sreg": 0x1234, "sets": 0xDEADBEEF}
