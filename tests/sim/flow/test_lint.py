"""Verilator lint (``-Wall``) of the generated Verilog: the core of every preset, a ring and the
MAC tops and the simulation board top (every top ``caterpillar verilog`` writes) are clean except
for the warnings :data:`~caterpillar.sim.flow.lint.WAIVERS` names with a reason."""

import pytest

from caterpillar.contract.config import PRESETS, preset
from caterpillar.sim.flow.lint import WAIVERS, lint, waiver_flags
from caterpillar.sim.flow.tops import board_top, core_top, mac_array_top, mac_top, ring_top
from tests.helpers import requires_verilator

#: Verilog conversions and lint runs: `make test`, not test-fast.
pytestmark = [pytest.mark.integration, requires_verilator]


def test_every_waiver_has_a_reason():
    assert all(len(reason) > 40 for reason in WAIVERS.values())
    assert waiver_flags()[0] == "-Wall"
    # Every switched-off warning is a named waiver: no category is switched off wholesale.
    assert all(flag.removeprefix("-Wno-") in WAIVERS for flag in waiver_flags()[1:])


@pytest.mark.parametrize("name", [n for n in PRESETS if n != "paper-n3"])
def test_the_core_of_every_preset_is_lint_clean(name):
    assert lint(core_top(preset(name)).verilog(), "core") == []


def test_a_core_without_cpass_is_lint_clean():
    """``cpass=false`` leaves the kernel and the PEs' side fill out: nothing left dangling."""
    cfg = preset("tiny").replace(name="tiny-no-cpass", cpass=False)
    assert lint(core_top(cfg).verilog(), "core") == []


@pytest.mark.heavy
def test_the_paper_n3_core_is_lint_clean():
    """256 PEs: about 7 minutes of Verilog conversion and 2 of lint (make lint-verilog)."""
    assert lint(core_top(preset("paper-n3")).verilog(), "core", timeout=3600) == []


def test_a_ring_is_lint_clean():
    assert lint(ring_top(preset("tiny").replace(cores=2)).verilog(), "ring") == []


@pytest.mark.parametrize("name", ["tiny", "paper-n1"])          # fp32 and fp16 formats
@pytest.mark.parametrize("make_top", [mac_top, mac_array_top])
def test_the_mac_tops_are_lint_clean(make_top, name):
    top = make_top(preset(name))
    assert lint(top.verilog(), top.name) == []


def test_the_simulation_board_top_is_lint_clean():
    """The board top without its PLL (UART bridge, LEDs, a one-core ring): what uart-sim
    Verilates."""
    assert lint(board_top(preset("tiny")).verilog(), "board") == []


def test_lint_reports_a_real_fault(tmp_path):
    source = tmp_path / "bad.v"
    source.write_text("module bad(input clk, output reg q);\n"
                      "  always @(posedge clk) q = 1'b1;\n"     # blocking in sequential logic
                      "endmodule\n")
    warnings = lint(source, "bad")
    assert any("BLKSEQ" in w for w in warnings), warnings
