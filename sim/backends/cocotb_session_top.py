"""cocotb test module of :func:`caterpillar.sim.backends.cocotb_session.run_in_cocotb` (not a
test suite: it runs the one training session described by ``$CATERPILLAR_SESSION``)."""

import json
import os
import traceback

import cocotb
from cocotb.clock import Clock
from cocotb.task import bridge
from cocotb.triggers import ClockCycles, FallingEdge

from caterpillar.contract.config import CaterpillarConfig
from caterpillar.contract.registers import RegisterMap
from caterpillar.sim.backends.cocotb import CocotbDevice
from caterpillar.sim.backends.cocotb_session import SESSION_ENV
from caterpillar.software.training.run import run_session


@cocotb.test()
async def session(dut):
    spec = json.loads(os.environ[SESSION_ENV])
    cfg = CaterpillarConfig.from_json(spec["config"])
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    for name in ("bus__we", "bus__re", "bus__addr", "bus__wdata"):
        getattr(dut, name).value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    device = CocotbDevice(dut, RegisterMap(cfg).to_dict())

    def body():
        try:
            result = {"value": run_session(device, spec["options"])}
        except ValueError as e:
            result = {"error": str(e), "error_kind": "value"}
        except Exception as e:  # noqa: BLE001  (reported to the caller with its traceback)
            result = {"error": f"{type(e).__name__}: {e}\n{traceback.format_exc()}",
                      "error_kind": "other"}
        with open(spec["result"], "w") as f:
            json.dump(result, f)
        return result

    result = await bridge(body)()
    assert "error" not in result, result["error"]
