"""The one-core driver on the instruction-level device: programs, SPAD words, scalars, runs,
and errors decoded (and cleared) through the register fields."""

import numpy as np
import pytest

from caterpillar.contract.config import preset
from caterpillar.contract.geometry import TRANSFER_DRAIN_CYCLES
from caterpillar.contract.isa import INSTR_WORDS, ErrorCause, Layout, Opcode, encode
from caterpillar.software.driver.core import CoreError, Driver
from caterpillar.software.isasim.device import IsaDevice

CFG = preset("tiny")


def test_program_and_data_round_trip(rng):
    driver = Driver(IsaDevice(CFG))
    words = [encode(Opcode.SETS, reg=3, value=5), encode(Opcode.HALT)]
    driver.load_program(words, base=4)
    assert driver.read_program(2, base=4) == words
    data = rng.integers(0, 1 << 32, 12, dtype=np.uint64)
    driver.write_spad(8, data)
    np.testing.assert_array_equal(driver.read_spad(8, 12), data)
    driver.set_scalar(6, 0x1234)
    assert driver.read("S6") == 0x1234
    assert driver.regs["IMEM_WORDS"] == 0x05 and INSTR_WORDS == 8


def test_run_returns_the_counters():
    driver = Driver(IsaDevice(CFG))
    driver.load_program([encode(Opcode.LDV, spad=0, memb=0, len=4, layout=Layout.DIAG),
                         encode(Opcode.HALT)])
    stats = driver.run()
    assert stats.instret == 2 and stats.busy == stats.cycles > 0
    assert stats.stalls == TRANSFER_DRAIN_CYCLES < CFG.write_back_latency   # a transfer kernel


def test_an_error_names_cause_and_pc_and_leaves_the_core_startable():
    driver = Driver(IsaDevice(CFG))
    driver.load_program([encode(Opcode.NOP),
                         encode(Opcode.LDV, spad=1, memb=0, len=4, layout=Layout.DIAG)])
    with pytest.raises(CoreError, match="core stopped at instruction 1: bad_shape") as info:
        driver.run()
    assert info.value.cause == ErrorCause.BAD_SHAPE and info.value.pc == 1
    assert driver.regs.unpack("STATUS", driver.read("STATUS"))["error"] == 0
    driver.load_program([encode(Opcode.HALT)])
    assert driver.run().instret == 1
