# amaranth: UnusedElaboratable=no
"""pytest entry for the cocotb core tests on Icarus and Verilator (``make sim``)."""

import pytest

from caterpillar.contract.config import preset
from caterpillar.sim.flow.cocotb import run_cocotb
from caterpillar.sim.flow.tops import core_top
from tests.helpers import simulators

CFG = preset("tiny")


@pytest.mark.cocotb
@pytest.mark.slow
@pytest.mark.parametrize("sim", simulators())
def test_core(sim, seed):
    verilog = core_top(CFG).verilog()
    results = run_cocotb(sim, verilog, "core", "tests.sim.cocotb.core_cocotb", name="core_tiny",
                         extra_env={"CORE_CFG": CFG.to_json(), "CORE_SEED": str(seed % 997)},
                         seed=seed)
    assert results.exists()
