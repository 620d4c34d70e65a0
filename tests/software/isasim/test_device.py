"""The instruction-level devices decode the host bus with the register map and its fields, as
the RTL does: commands, status bits (the same order for a core and the ring), errors."""

from caterpillar.contract.config import preset
from caterpillar.contract.isa import ErrorCause, Layout, Opcode, encode
from caterpillar.contract.registers import (
    CORE_ID,
    CTRL,
    ERROR_CAUSE,
    RING_ID,
    RING_STATUS,
    STATUS,
    RegisterMap,
    RingRegisterMap,
    core_address,
)
from caterpillar.software.driver.core import Driver
from caterpillar.software.isasim.device import IsaDevice, RingIsaDevice

CFG = preset("tiny")
REGS = RegisterMap(CFG)


def status(device, addr=REGS["STATUS"], reg=STATUS):
    return reg.unpack(device.read(addr)[0])


def test_constants_and_windows():
    device = IsaDevice(CFG)
    assert device.read(REGS["ID"]) == [CORE_ID]
    assert device.read(REGS["SPAD_WORDS"]) == [CFG.spad_words]
    device.write(REGS.spad_base + 5, [0x1_0000_0003])      # masked to the word width
    assert device.read(REGS.spad_base + 5) == [3]
    assert device.read(REGS.spad_base + CFG.spad_words) == [0]


def test_start_runs_and_sets_done():
    device = IsaDevice(CFG)
    Driver(device).load_program([encode(Opcode.HALT)])
    device.write(REGS["CTRL"], [CTRL.pack(start=1, clear_counters=1)])
    assert status(device) == {"busy": 0, "done": 1, "error": 0}
    device.write(REGS["CTRL"], [CTRL.pack(clear=1)])
    assert status(device)["done"] == 0


def test_a_core_in_error_ignores_start_until_cleared():
    device = IsaDevice(CFG)
    driver = Driver(device)
    driver.load_program([encode(Opcode.LDV, spad=1, memb=0, len=2, layout=Layout.DIAG)])
    device.write(REGS["CTRL"], [CTRL.pack(start=1)])
    assert status(device)["error"] == 1
    assert ERROR_CAUSE.unpack(device.read(REGS["ERROR_CAUSE"])[0])["cause"] == \
        ErrorCause.BAD_SHAPE.value
    driver.load_program([encode(Opcode.HALT)])
    # As in the sequencer, start together with clear is not taken by a core in error.
    device.write(REGS["CTRL"], [CTRL.pack(start=1, clear=1)])
    assert status(device) == {"busy": 0, "done": 0, "error": 0}
    device.write(REGS["CTRL"], [CTRL.pack(start=1)])
    assert status(device)["done"] == 1


def test_ring_status_has_the_core_bit_order():
    cfg = CFG.replace(cores=2)
    ring = RingRegisterMap(cfg)
    device = RingIsaDevice(cfg)
    assert device.read(ring.address("RING_ID")) == [RING_ID]
    for k in range(2):
        device.write(core_address(k, REGS.imem_base), [encode(Opcode.HALT) & 0xFFFFFFFF])
    device.write(ring.address("CTRL"), [CTRL.pack(start=1, clear_counters=1)])
    assert status(device, ring.address("STATUS"), RING_STATUS) == \
        {"busy": 0, "done": 1, "error": 0}
    assert device.read(ring.address("DONE_MASK")) == [0b11]
    assert STATUS.unpack(device.read(core_address(1, REGS["STATUS"]))[0])["done"] == 1
