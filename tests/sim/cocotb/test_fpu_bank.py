"""pytest entry for the cocotb FPU-bank tests on Icarus and Verilator (``make sim``)."""

import json

import pytest

from caterpillar.golden.numerics import FORMATS
from caterpillar.sim.flow.cocotb import run_cocotb
from caterpillar.sim.flow.verilog import cached_verilog
from caterpillar.sim.fpverify.bank import FPUBank
from tests.helpers import simulators

LATENCIES = {"mul_latency": 2, "add_latency": 3, "misc_latency": 1}


@pytest.mark.cocotb
@pytest.mark.parametrize("sim", simulators())
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_fpu_bank(sim, fmt, seed):
    verilog = cached_verilog(f"FPUBank|{fmt}|{sorted(LATENCIES.items())}",
                             lambda: FPUBank(FORMATS[fmt], **LATENCIES), "fpu_bank")
    env = {"FPU_FORMAT": fmt, "FPU_LATENCIES": json.dumps(LATENCIES), "FPU_SEED": str(seed),
           "FPU_MAX_CASES": "1500"}
    results = run_cocotb(sim, verilog, "fpu_bank", "tests.sim.cocotb.fpu_bank_cocotb",
                         name=f"fpu_bank_{fmt}", extra_env=env, seed=seed)
    assert results.exists()
