# amaranth: UnusedElaboratable=no
"""Free-running Verilator runs of the core: many random programs and kernel shapes, compared
bit for bit and cycle for cycle with the instruction-level simulator."""

import numpy as np
import pytest

from caterpillar.contract.config import preset
from caterpillar.contract.isa import Layout, VecOp
from caterpillar.contract.registers import CORE_ID, RegisterMap
from caterpillar.sim.cases import kernels as kc
from caterpillar.sim.cases.programs import random_program
from caterpillar.software.driver.device import DeviceTimeout
from caterpillar.software.isasim.device import IsaDevice
from tests.helpers import requires_verilator

#: Whole cores or rings in a simulator, or Verilator builds: `make test`, not test-fast.
pytestmark = pytest.mark.integration

CFG = preset("tiny")
RANDOM_PROGRAMS = 500


@pytest.fixture(scope="module")
def device():
    from caterpillar.sim.backends.verilator import VerilatorDevice

    with VerilatorDevice(CFG) as dev:
        yield dev


def compare(device, case):
    rtl_out, rtl = kc.run_case(device, case)
    isa_out, isa = kc.run_case(IsaDevice(CFG), case)
    for got, ref in zip(rtl_out, isa_out):
        np.testing.assert_array_equal(got, ref, err_msg=case.name)
    for got, want in zip(isa_out, case.expected):
        np.testing.assert_array_equal(got, want, err_msg=case.name)
    assert rtl.counted() == isa.counted(), case.name


@requires_verilator
@pytest.mark.slow
def test_random_programs(device, seed):
    rng = np.random.default_rng(seed)
    for index in range(RANDOM_PROGRAMS):
        compare(device, random_program(CFG, rng, int(rng.integers(5, 25))))
    print(f"{RANDOM_PROGRAMS} random programs: RTL == instruction-level simulator")


@requires_verilator
@pytest.mark.slow
def test_kernels_on_random_shapes(device, rng):
    count = 0
    for _ in range(8):
        rows, cols = (int(v) for v in rng.integers(1, 24, 2))
        compare(device, kc.gemv_case(CFG, rows, cols, rng, specials=0.02))
        compare(device, kc.gemvt_case(CFG, rows, cols, rng, specials=0.02))
        compare(device, kc.ger_case(CFG, min(rows, 16), min(cols, 16), rng,
                                    use_wd=bool(rng.integers(2)), use_mom=bool(rng.integers(2))))
        m, n, k = (int(v) for v in rng.integers(1, 30, 3))
        compare(device, kc.gemm_case(CFG, m, n, k, rng, accumulate=bool(rng.integers(2)),
                                     specials=0.02))
        compare(device, kc.gemm_case(CFG, m, n, k, rng, accumulate=bool(rng.integers(2)),
                                     a_mema=True))
        compare(device, kc.gemm_case(CFG, m, n, k, rng, accumulate=bool(rng.integers(2)),
                                     a_rows=True, specials=0.02))
        fwd = bool(rng.integers(2))
        compare(device, kc.cpass_case(CFG, rows, cols, rng, prop=bool(rng.integers(2)),
                                      fwd=fwd, store=fwd and bool(rng.integers(2)),
                                      load=bool(rng.integers(2)), specials=0.02))
        compare(device, kc.smxce_case(CFG, int(rng.integers(1, 20)), rng))
        fn, layout = VecOp(int(rng.integers(len(VecOp)))), Layout(int(rng.integers(4)))
        length = int(rng.integers(1, 60)) * (CFG.nr if layout == Layout.FULL else 1)
        compare(device, kc.vop_case(CFG, fn, layout, length, rng, specials=0.05))
        count += 7
    print(f"{count} kernel cases on random shapes: RTL == simulator == golden")


@requires_verilator
def test_poll_makes_at_most_budget_reads(device):
    """The same count as the host link's POLL and the Amaranth device: a match on the first
    read waits 1 cycle; a bit the ID register never has never comes within the budget (the
    device is shared with tests that leave the core done, so not STATUS)."""
    regs = RegisterMap(CFG)
    assert device.poll(regs["ID"], 0xFFFF_FFFF, 5) == (CORE_ID, 1)
    never = ~CORE_ID & 0xFFFF_FFFF
    with pytest.raises(DeviceTimeout, match="within 20 cycles"):
        device.poll(regs["ID"], never, 20)
    before = device.cycles()
    with pytest.raises(DeviceTimeout):
        device.poll(regs["ID"], never, 20)
    assert device.cycles() - before == 20
