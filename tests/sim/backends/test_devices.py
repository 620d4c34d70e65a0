# amaranth: UnusedElaboratable=no
"""``caterpillar train`` on the simulator backends: the Amaranth simulator and Icarus (cocotb)
check every bit against the golden trainer after every step."""

import json

import pytest

from caterpillar.app.cli import main
from caterpillar.sim.flow.toolchain import icarus_available

#: Whole cores or rings in a simulator, or Verilator builds: `make test`, not test-fast.
pytestmark = pytest.mark.integration

TINY_DIGITS = ["--config", "tiny", "--set", "memb_words=512", "--model", "64-6-10",
               "--epochs", "1", "--check-golden", "--quiet"]


@pytest.mark.parametrize("backend, steps", [
    ("amaranth", 3),
    pytest.param("icarus", 8, marks=[
        pytest.mark.cocotb, pytest.mark.skipif(not icarus_available(), reason="no iverilog")]),
])
def test_train_on_simulator_backend(backend, steps, tmp_path, capsys):
    report = tmp_path / "r.json"
    assert main(["train", "--backend", backend, "--limit", str(steps), "--json", str(report),
                 *TINY_DIGITS]) == 0
    if backend != "icarus":          # icarus prints from inside the simulator process
        assert f"golden check: {steps} steps" in capsys.readouterr().out
    assert json.loads(report.read_text())["golden_checked_steps"] == steps
    epoch = json.loads(report.read_text())["epochs"][0]
    assert epoch["golden_checked_steps"] == steps and epoch["steps"] == steps
    assert epoch["cycles"] == steps * json.loads(report.read_text())["step_cycles"]
