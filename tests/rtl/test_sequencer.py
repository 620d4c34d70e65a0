# amaranth: UnusedElaboratable=no
"""The sequencer: the host's IMEM window and scalar registers, and LOOP against the
instruction-level simulator."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from caterpillar.contract.config import preset
from caterpillar.contract.isa import INSTR_WORDS, ErrorCause, Opcode, encode
from caterpillar.rtl.sequencer import Sequencer
from caterpillar.sim.backends.amaranth import AmaranthDevice
from caterpillar.sim.cases import kernels as kc
from caterpillar.sim.cases.programs import loop_program
from caterpillar.software.driver.core import CoreError, Driver
from caterpillar.software.isasim.device import IsaDevice

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


@pytest.mark.integration
def test_a_loop_runs_its_body_with_moving_addresses_as_the_simulator_does(seed):
    cfg = preset("tiny")
    case = loop_program(cfg, np.random.default_rng(seed))
    isa_out, isa = kc.run_case(IsaDevice(cfg), case)
    rtl_out, rtl = kc.run_case(AmaranthDevice(cfg), case)
    np.testing.assert_array_equal(rtl_out[0], isa_out[0])
    assert rtl.counted() == isa.counted()
    assert rtl.macs == case.macs


@pytest.mark.integration
@pytest.mark.parametrize("program, pc", [
    # A LOOP in a running loop's body, a count of 0, a body of 0.
    ([encode(Opcode.LOOP, count=2, body=2), encode(Opcode.NOP),
      encode(Opcode.LOOP, count=2, body=1), encode(Opcode.NOP), encode(Opcode.HALT)], 2),
    ([encode(Opcode.NOP), encode(Opcode.LOOP, count=0, body=1), encode(Opcode.HALT)], 1),
    ([encode(Opcode.LOOP, count=3, body=0), encode(Opcode.HALT)], 0),
], ids=["nested", "count 0", "body 0"])
def test_an_illegal_loop_stops_the_core_where_the_simulator_does(program, pc):
    cfg = preset("tiny")
    for device in (IsaDevice(cfg), AmaranthDevice(cfg)):
        driver = Driver(device)
        driver.load_program(program)
        with pytest.raises(CoreError) as error:
            driver.run(timeout_cycles=10_000)
        assert (error.value.cause, error.value.pc) == (ErrorCause.ILLEGAL_FIELD, pc)
