"""The Amaranth-simulator device on the tiny core: SPAD words and CSRs through the host bus,
state kept between calls, polls that succeed or time out within their cycle budget."""

import pytest

from caterpillar.contract.config import preset
from caterpillar.contract.isa import Opcode, encode
from caterpillar.contract.registers import CORE_ID, CTRL, STATUS, RegisterMap
from caterpillar.sim.backends.amaranth import AmaranthDevice
from caterpillar.software.driver.core import Driver
from caterpillar.software.driver.device import DeviceTimeout

#: Whole cores or rings in a simulator, or Verilator builds: `make test`, not test-fast.
pytestmark = pytest.mark.integration

TINY = preset("tiny")
REGS = RegisterMap(TINY)
DONE = STATUS.pack(done=1)


@pytest.fixture(scope="module")
def device():
    """One simulated core for the module (building it takes most of the time)."""
    dev = AmaranthDevice(TINY)
    yield dev
    dev.close()


def test_register_map_is_the_contracts(device):
    assert device.register_map() == REGS.to_dict()


def test_spad_words_round_trip_and_persist(device):
    base = REGS.spad_base
    device.write(base + 99, [0x1, 0x3F800000, 0x12345678, 0xFFFFFFFF])
    device.write(base + TINY.spad_words - 1, [0xC0000000])           # the last word
    assert device.read(base + 100, 3) == [0x3F800000, 0x12345678, 0xFFFFFFFF]
    assert device.read(base + TINY.spad_words - 1) == [0xC0000000]
    device.write(base + 101, [7])
    assert device.read(base + 99, 4) == [0x1, 0x3F800000, 7, 0xFFFFFFFF]


def test_csrs_read_back_and_constants(device):
    device.write(REGS["S3"], [0xDEADBEEF])
    device.write(REGS["START_PC"], [17])
    assert device.read(REGS["S3"]) == [0xDEADBEEF]
    assert device.read(REGS["START_PC"]) == [17]
    device.write(REGS["S4"], [0x1_2345_6789])                          # wider than a word
    assert device.read(REGS["S4"]) == [0x23456789]
    constants = REGS.constants()
    assert constants["ID"] == CORE_ID
    for name, value in constants.items():
        assert device.read(REGS[name]) == [value], name
    device.write(REGS["START_PC"], [0])


def test_each_bus_word_takes_at_least_one_cycle(device):
    before = device.cycles
    device.write(REGS.spad_base, list(range(10)))
    after_write = device.cycles
    device.read(REGS.spad_base, 10)
    assert after_write - before >= 10 and device.cycles - after_write >= 10


def test_poll_times_out_when_the_bit_never_sets(device):
    device.write(REGS["CTRL"], [CTRL.pack(clear=1)])                   # done is 0, no start
    assert STATUS.unpack(device.read(REGS["STATUS"])[0]) == {"busy": 0, "done": 0,
                                                             "error": 0}
    before = device.cycles
    with pytest.raises(DeviceTimeout, match=r"^register 0xa did not match 0x2 within 20 "
                                            r"cycles$"):
        device.poll(REGS["STATUS"], DONE, 20)
    assert 20 <= device.cycles - before <= 25
    device.write(REGS["S5"], [0x5EED])
    assert device.read(REGS["S5"]) == [0x5EED]                        # still serving calls


def test_poll_returns_when_the_program_halts(device):
    driver = Driver(device)
    driver.load_program([encode(Opcode.NOP), encode(Opcode.HALT)])
    device.write(REGS["START_PC"], [0])
    device.write(REGS["CTRL"], [CTRL.pack(start=1)])
    value, waited = device.poll(REGS["STATUS"], DONE, 200)
    assert STATUS.unpack(value)["done"] == 1 and 0 <= waited < 200
    assert driver.run().instret == 2                                  # and through the driver
