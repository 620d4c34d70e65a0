# amaranth: UnusedElaboratable=no
"""Random legal programs: the RTL (Amaranth simulator) against the instruction-level simulator.

Each program mixes every instruction with random operands and random data (with corner values)
and ends by storing every PE memory to the SPAD, so the comparison covers the whole state, the
cycle count and the counters. Verilator runs many more in tests/sim/test_verilator_core.py.
"""

import numpy as np
import pytest

from caterpillar.contract.config import preset
from caterpillar.sim.backends.amaranth import AmaranthDevice
from caterpillar.sim.cases import kernels as kc
from caterpillar.sim.cases.programs import random_program
from caterpillar.software.isasim.device import IsaDevice

#: Whole cores or rings in a simulator, or Verilator builds: `make test`, not test-fast.
pytestmark = pytest.mark.integration


@pytest.mark.parametrize("index", range(4))
def test_random_program_matches_bit_for_bit(index, seed):
    cfg = preset("tiny")
    case = random_program(cfg, np.random.default_rng(seed + index), 10)
    isa_out, isa = kc.run_case(IsaDevice(cfg), case)
    rtl_out, rtl = kc.run_case(AmaranthDevice(cfg), case)
    np.testing.assert_array_equal(rtl_out[0], isa_out[0])
    assert rtl.counted() == isa.counted()
