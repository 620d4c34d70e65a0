"""Verilator builds: failures surface the compiler log."""

import pytest

from caterpillar.sim.flow.verilator import VerilatorBuildError, build_executable
from tests.helpers import requires_verilator

#: Whole cores or rings in a simulator, or Verilator builds: `make test`, not test-fast.
pytestmark = pytest.mark.integration


@requires_verilator
def test_broken_design_reports_the_log(tmp_path, monkeypatch):
    monkeypatch.setenv("CATERPILLAR_BUILD_DIR", str(tmp_path))
    bad = tmp_path / "bad.v"
    bad.write_text("module bad(input clk); this is not verilog; endmodule\n")
    harness = tmp_path / "main.cpp"
    harness.write_text("int main() { return 0; }\n")
    with pytest.raises(VerilatorBuildError, match=r"Verilator build of bad failed:\n"):
        build_executable(bad, "bad", harness, "bad_exe")
