"""cocotb tests of the whole core through its host bus (configured by ``CORE_CFG``, JSON).

The driver (the same code every backend uses) loads programs and data, runs them and reads
the results; each run is compared bit for bit, and cycle for cycle, with the instruction-level
simulator. Kernels, random programs and an error path.
"""

import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.task import bridge
from cocotb.triggers import ClockCycles, FallingEdge

from caterpillar.contract.config import CaterpillarConfig
from caterpillar.contract.isa import ErrorCause, Layout, Opcode, VecOp, encode
from caterpillar.contract.registers import RegisterMap
from caterpillar.sim.backends.cocotb import CocotbDevice
from caterpillar.sim.cases import kernels as kc
from caterpillar.sim.cases.programs import random_program
from caterpillar.software.driver.core import CoreError, Driver
from caterpillar.software.isasim.device import IsaDevice

CFG = CaterpillarConfig.from_json(os.environ["CORE_CFG"])
SEED = int(os.environ.get("CORE_SEED", "1"))
RANDOM_PROGRAMS = int(os.environ.get("CORE_RANDOM_PROGRAMS", "2"))


async def start(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.bus__we.value = 0
    dut.bus__re.value = 0
    dut.bus__addr.value = 0
    dut.bus__wdata.value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    return CocotbDevice(dut, RegisterMap(CFG).to_dict())


def compare(device, case):
    rtl_out, rtl = kc.run_case(device, case)
    isa_out, isa = kc.run_case(IsaDevice(CFG), case)
    for got, ref in zip(rtl_out, isa_out):
        bad = np.nonzero(np.asarray(got).ravel() != np.asarray(ref).ravel())[0]
        assert len(bad) == 0, f"{case.name}: {len(bad)} words differ (seed {SEED})"
    for got, want in zip(isa_out, case.expected):
        assert np.array_equal(got, want), f"{case.name}: simulator differs from golden"
    assert rtl.counted() == isa.counted(), case.name


@cocotb.test()
async def kernels_match_the_instruction_level_simulator(dut):
    device = await start(dut)
    rng = np.random.default_rng(SEED)
    cases = [
        kc.gemv_case(CFG, 5, 7, rng, specials=0.05),
        kc.gemvt_case(CFG, 7, 5, rng),
        kc.ger_case(CFG, 3, 5, rng, use_wd=True, use_mom=True),
        kc.gemm_case(CFG, 9, 5, 6, rng, accumulate=True),
        kc.smxce_case(CFG, 5, rng),
        kc.vop_case(CFG, VecOp.MSEG, Layout.COLREP, 7, rng),
        kc.transfer_case(CFG, 3, 5, rng, trans=True),
    ]

    def body():
        for case in cases:
            compare(device, case)
            dut._log.info("%s: RTL == simulator == golden", case.name)

    await bridge(body)()


@cocotb.test()
async def random_programs_match(dut):
    device = await start(dut)

    def body():
        for index in range(RANDOM_PROGRAMS):
            case = random_program(CFG, np.random.default_rng(SEED * 1000 + index), 8)
            compare(device, case)
            dut._log.info("random program %d matches", index)

    await bridge(body)()


@cocotb.test()
async def errors_halt_with_cause_and_pc(dut):
    device = await start(dut)

    def body():
        driver = Driver(device)
        driver.load_program([encode(Opcode.NOP), 0x7F, encode(Opcode.HALT)])
        try:
            driver.run(timeout_cycles=1000)
        except CoreError as error:
            assert (error.cause, error.pc) == (ErrorCause.ILLEGAL_OPCODE, 1)
        else:
            raise AssertionError("an illegal opcode did not stop the core")
        driver.load_program([encode(Opcode.HALT)])
        assert driver.run(timeout_cycles=1000).instret == 1

    await bridge(body)()
