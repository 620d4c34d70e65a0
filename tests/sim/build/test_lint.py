"""Verilator lint (``-Wall``) of the generated Verilog: the core of every preset, a ring and the
simulation board top are clean except for the warnings :data:`~caterpillar.sim.build.lint.
WAIVERS` names with a reason."""

import pytest

from caterpillar.contract.config import PRESETS, preset
from caterpillar.rtl.core import Core
from caterpillar.rtl.ring import Ring
from caterpillar.sim.backends.uart_sim import board_verilog
from caterpillar.sim.build.lint import WAIVERS, lint, waiver_flags
from caterpillar.sim.build.verilog import cached_verilog
from tests.helpers import requires_verilator

#: Verilog conversions and lint runs: `make test`, not test-fast.
pytestmark = [pytest.mark.integration, requires_verilator]


def test_every_waiver_has_a_reason():
    assert all(len(reason) > 40 for reason in WAIVERS.values())
    assert waiver_flags()[0] == "-Wall"
    assert "-Wno-lint" not in waiver_flags() and "-Wno-style" not in waiver_flags()


@pytest.mark.parametrize("name", [n for n in PRESETS if n != "paper-n3"])
def test_the_core_of_every_preset_is_lint_clean(name):
    cfg = preset(name)
    verilog = cached_verilog(f"Core|{cfg.to_json()}", lambda: Core(cfg), "core")
    assert lint(verilog, "core") == []


@pytest.mark.heavy
def test_the_paper_n3_core_is_lint_clean():
    """256 PEs: about 7 minutes of Verilog conversion and 2 of lint (make lint-verilog)."""
    cfg = preset("paper-n3")
    verilog = cached_verilog(f"Core|{cfg.to_json()}", lambda: Core(cfg), "core")
    assert lint(verilog, "core", timeout=3600) == []


def test_a_ring_is_lint_clean():
    cfg = preset("tiny").replace(cores=2)
    verilog = cached_verilog(f"Ring|{cfg.to_json()}", lambda: Ring(cfg), "ring")
    assert lint(verilog, "ring") == []


def test_the_simulation_board_top_is_lint_clean():
    """The board top without its PLL (UART bridge, LEDs, a one-core ring): what uart-sim
    Verilates."""
    assert lint(board_verilog(preset("tiny")), "board") == []


def test_lint_reports_a_real_fault(tmp_path):
    source = tmp_path / "bad.v"
    source.write_text("module bad(input clk, output reg q);\n"
                      "  always @(posedge clk) q = 1'b1;\n"     # blocking in sequential logic
                      "endmodule\n")
    warnings = lint(source, "bad")
    assert any("BLKSEQ" in w for w in warnings), warnings
