"""pytest entry for the cocotb core tests on Icarus and Verilator (``make sim``)."""

# amaranth: UnusedElaboratable=no

import pytest

from caterpillar.rtl.config import preset
from caterpillar.rtl.core import Core
from caterpillar.sim.cocotb_runner import run_cocotb
from caterpillar.sim.verilog import cached_verilog
from tests.helpers import simulators

CFG = preset("tiny")


@pytest.mark.cocotb
@pytest.mark.slow
@pytest.mark.parametrize("sim", simulators())
def test_core(sim, seed):
    verilog = cached_verilog(f"Core|{CFG.to_json()}", lambda: Core(CFG), "core")
    results = run_cocotb(sim, verilog, "core", "tests.cocotb.core_cocotb", name="core_tiny",
                         extra_env={"CORE_CFG": CFG.to_json(), "CORE_SEED": str(seed % 997)},
                         seed=seed)
    assert results.exists()
