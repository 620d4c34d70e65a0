"""The ring driver: a ring device, or a one-core device as a ring of one, started and watched
through the same CTRL and STATUS fields."""

import numpy as np
import pytest

from caterpillar.contract.config import preset
from caterpillar.contract.isa import EVENT_COUNTERS, Counter, ErrorCause, Layout, Opcode, encode
from caterpillar.contract.registers import STALL
from caterpillar.software.driver.ring import CoreWindow, RingCoreError, RingDriver
from caterpillar.software.isasim.device import IsaDevice, RingIsaDevice

RING = preset("tiny").replace(cores=3)


def test_a_lone_core_is_a_ring_of_one():
    driver = RingDriver(IsaDevice(preset("tiny")))
    assert len(driver.cores) == 1 and driver.control is driver.cores[0].regs
    driver.set_sources([0])
    with pytest.raises(ValueError, match="a lone core can only feed itself"):
        driver.set_sources([1])
    driver.cores[0].load_program([encode(Opcode.NOP), encode(Opcode.HALT)])
    run = driver.run()
    assert run.instret == [2] and run.ring_cycles == [0] and run.busy == run.cycles[0]


class CountingReads(RingIsaDevice):
    """The ring device, recording every read request (address, words)."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.reads = []

    def read(self, addr, count=1):
        self.reads.append((addr, count))
        return super().read(addr, count)


def test_a_run_reads_each_cores_counters_in_one_request():
    # Over a UART every request is a frame: a step's counters were 14 requests per core.
    device = CountingReads(RING)
    driver = RingDriver(device)
    for k, core in enumerate(driver.cores):
        core.load_program([encode(Opcode.NOP)] * k + [encode(Opcode.HALT)])
    device.reads.clear()
    run = driver.run()
    lows = [driver.cores[0].regs[f"{c.name}_LO"] for c in (Counter.BUSY, Counter.INSTRET,
                                                             Counter.RING, *EVENT_COUNTERS)]
    assert [count for _, count in device.reads] == [max(lows) - min(lows) + 2] * RING.cores
    for k, core in enumerate(driver.cores):     # the values of one counter at a time
        assert (core.counter(Counter.INSTRET), core.counter(Counter.RING)) == \
            (run.instret[k], run.ring_cycles[k])
        assert {e.name.lower(): core.counter(e) for e in EVENT_COUNTERS} == run.events[k]


def test_a_ring_runs_every_core_and_reports_each_error():
    device = RingIsaDevice(RING)
    driver = RingDriver(device)
    assert len(driver.cores) == 3
    for k, core in enumerate(driver.cores):
        core.load_program([encode(Opcode.NOP)] * k + [encode(Opcode.HALT)])
    run = driver.run()
    assert run.instret == [1, 2, 3] and run.makespan == max(run.cycles)
    bad = encode(Opcode.LDV, spad=1, memb=0, len=4, layout=Layout.DIAG)
    driver.cores[1].load_program([bad])
    driver.cores[2].load_program([encode(Opcode.NOP), bad])
    with pytest.raises(RingCoreError, match="core 1: .*instruction 0: bad_shape; core 2: "
                                            ".*instruction 1: bad_shape") as info:
        driver.run()
    assert sorted(info.value.errors) == [1, 2]
    assert info.value.errors[2].cause == ErrorCause.BAD_SHAPE


def test_core_windows_and_registers():
    device = RingIsaDevice(RING)
    window = CoreWindow(device, 2)
    window.write(window.register_map()["spad_base"] + 4, [7, 8])
    assert device.sim.cores[2].spad[4:6].tolist() == [7, 8]
    driver = RingDriver(device)
    driver.set_sources([2, 0, 1])
    assert [device.read(driver.regs[f"SRC{k}"])[0] for k in range(3)] == [2, 0, 1]
    driver.set_stalls(96, seed=5)
    assert STALL.unpack(device.read(driver.regs["STALL"])[0]) == {"threshold": 96, "seed": 5}
    np.testing.assert_array_equal(driver.cores[2].read_spad(4, 2), [7, 8])
