# amaranth: UnusedElaboratable=no
"""The ring top, its engines and links in Amaranth's simulator: collectives on two cores equal
the golden collectives and the ring simulator's cycles; link stalls delay but do not change
the data; the ring registers."""

import numpy as np
import pytest

from caterpillar.contract.config import ConfigError, preset
from caterpillar.contract.registers import RING_ID
from caterpillar.sim.backends.amaranth import AmaranthDevice
from caterpillar.sim.cases.collectives import CollectiveCase, expected_outputs, run_collective
from caterpillar.software.driver.ring import RingDriver
from caterpillar.software.isasim.device import RingIsaDevice

#: Whole cores or rings in a simulator, or Verilator builds: `make test`, not test-fast.
pytestmark = pytest.mark.integration

CFG = preset("tiny").replace(cores=2)


@pytest.fixture(scope="module")
def device():
    dev = AmaranthDevice(CFG, ring=True)
    yield dev
    dev.close()


def test_ring_registers(device):
    driver = RingDriver(device)
    assert device.read(driver.regs["RING_ID"])[0] == RING_ID
    assert device.read(driver.regs["CORES"])[0] == 2
    assert [device.read(driver.regs[f"SRC{k}"])[0] for k in range(2)] == [1, 0]


@pytest.mark.parametrize("kind, n", [("all_reduce", 7), ("chain_reduce", 5),
                                     ("broadcast", 6), ("barrier", 1)])
def test_collective_on_two_cores(device, kind, n):
    case = CollectiveCase(kind, (1, 0), n, seed=3)
    inputs, outputs, run = run_collective(device, case)
    _, sim_outputs, sim = run_collective(RingIsaDevice(CFG), case)
    for (lo, hi, want), got, model in zip(expected_outputs(case, inputs, CFG), outputs,
                                          sim_outputs):
        np.testing.assert_array_equal(got[lo:hi], want)
        np.testing.assert_array_equal(got, model)
    assert run.cycles == sim.cycles and run.ring_cycles == sim.ring_cycles
    assert run.events == sim.events and any(e["link_words"] for e in run.events)


def test_stalled_links_only_delay(device):
    case = CollectiveCase("all_gather", (0, 1), 9, seed=4)
    _, _, calm = run_collective(device, case)
    inputs, outputs, stalled = run_collective(device, case, stall=160)
    for (lo, hi, want), got in zip(expected_outputs(case, inputs, CFG), outputs):
        np.testing.assert_array_equal(got[lo:hi], want)
    assert stalled.makespan > calm.makespan
    assert stalled.events == calm.events  # stalls move no more words


def test_unsupported_rings_are_config_errors():
    from caterpillar.rtl.ring import check_ring_config

    with pytest.raises(ConfigError, match="link_words"):
        check_ring_config(CFG.replace(link_words=1))
    with pytest.raises(ConfigError, match="at most 62 cores"):
        check_ring_config(CFG.replace(cores=63))
