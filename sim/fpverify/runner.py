"""Run floating-point cases on a backend: the golden model, the Amaranth simulator or Verilator.

All backends take the same operand arrays and return the same bit patterns; the Verilator one
streams every case through the Verilated :class:`~caterpillar.sim.fpverify.bank.FPUBank`
from a file, with no Python in the simulation loop.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from amaranth.hdl import Module
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from caterpillar.golden.numerics import FloatFormat
from caterpillar.sim.flow.verilator import build_executable
from caterpillar.sim.flow.verilog import cached_verilog
from caterpillar.sim.fpverify.bank import FPUBank, bank_ops, golden_op
from caterpillar.sim.fpverify.stream import run_stream_unit

__all__ = ["BACKENDS", "FPURun", "find_op", "run_cases", "verilator_bank"]

BACKENDS = ("golden", "amaranth", "verilator")

# The latencies the benches and the self-check use: those of the default ("small") config.
DEFAULT_LATENCIES = {"mul_latency": 2, "add_latency": 3, "misc_latency": 1}


@dataclass
class FPURun:
    """Results of one batch and, for simulated backends, how long the simulation took."""

    results: np.ndarray
    cycles: int = 0
    seconds: float = 0.0

    @property
    def results_per_second(self) -> float:
        """Simulation throughput (0 when not measured)."""
        return len(self.results) / self.seconds if self.seconds else 0.0


def find_op(op: str, fmt: FloatFormat, *, acc: FloatFormat | None = None,
            to: FloatFormat | None = None):
    """Return ``(index, BankOp)`` for an operation of the bank of ``fmt``.

    Raises ``ValueError`` naming the valid choices when the combination does not exist.
    """
    ops = bank_ops(fmt)
    if op == "mac":
        key = f"mac.{acc.name if acc else 'fp32'}"
    elif op == "convert":
        if to is None:
            raise ValueError("convert needs a destination format (--to)")
        if to == fmt:
            raise ValueError(f"convert needs a destination format different from {fmt}")
        key = f"convert.{to.name}"
    else:
        key = op
    for index, candidate in enumerate(ops):
        if candidate.key == key:
            return index, candidate
    raise ValueError(f"no operation {key!r} for {fmt}; available: "
                     f"{', '.join(o.key for o in ops)}")


def verilator_bank(fmt: FloatFormat, **latencies) -> Path:
    """Return the stream executable for the bank of ``fmt`` (built once per design)."""
    lat = {**DEFAULT_LATENCIES, **latencies}
    key = f"FPUBank|{fmt}|{sorted(lat.items())}"
    label = f"the {fmt.name} FP-unit bank"
    verilog = cached_verilog(key, lambda: FPUBank(fmt, **lat), "fpu_bank", label=label)
    harness = resources.files("caterpillar.sim") / "cpp" / "fpu_stream.cpp"
    with resources.as_file(harness) as harness_path:
        return build_executable(verilog, "fpu_bank", Path(harness_path), "fpu_stream",
                                label=label)


def _columns(operands, arity):
    cols = [np.asarray(operands[i], dtype=np.int64) for i in range(arity)]
    n = len(cols[0])
    while len(cols) < 3:
        cols.append(np.zeros(n, dtype=np.int64))
    return cols


def run_cases(op_index: int, op, operands, backend: str, **latencies) -> FPURun:
    """Compute ``op`` on every case.

    Parameters
    ----------
    op_index, op
        As returned by :func:`find_op`.
    operands : sequence of arrays
        ``op.arity`` arrays of bit patterns (``scale``'s second column is a signed integer).
    backend : str
        One of :data:`BACKENDS`.
    **latencies
        ``mul_latency``, ``add_latency``, ``misc_latency`` of the simulated bank.
    """
    cols = _columns(operands, op.arity)
    n = len(cols[0])
    if backend == "golden":
        return FPURun(np.asarray(golden_op(op, *cols[:op.arity]), dtype=np.uint64))
    if backend == "amaranth":

        lat = {**DEFAULT_LATENCIES, **latencies}
        bank = FPUBank(op.in_fmt, **lat)
        return _run_amaranth_bank(bank, op_index, cols, run_stream_unit)
    if backend == "verilator":
        binary = verilator_bank(op.in_fmt, **latencies)
        with tempfile.TemporaryDirectory(prefix="fpu-") as tmp:
            src, dst = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
            packed = np.stack([c.astype(np.uint64) & 0xFFFFFFFF for c in cols], axis=1)
            packed.astype("<u4").tofile(src)
            proc = subprocess.run([str(binary), str(op_index), str(src), str(dst), "1000"],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"Verilator stream failed ({proc.returncode}): "
                                   f"{proc.stderr.strip()}")
            fields = proc.stdout.split()
            results = np.fromfile(dst, dtype="<u4").astype(np.uint64)
        if len(results) != n:
            raise RuntimeError(f"Verilator stream returned {len(results)} of {n} results")
        return FPURun(results, cycles=int(fields[1]), seconds=float(fields[3]))
    raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def _run_amaranth_bank(bank, op_index, cols, run_stream_unit) -> FPURun:


    class _BankAdapter(wiring.Component):
        # Presents the bank as a stream unit so the shared stream driver can feed it.
        def __init__(self):
            layout = data.StructLayout({"a": 32, "b": 32, "c": 32})
            super().__init__({
                "operands": In(stream.Signature(layout, always_ready=True)),
                "result": Out(stream.Signature(32, always_ready=True)),
            })

        def elaborate(self, platform):

            m = Module()
            m.submodules.bank = bank
            m.d.comb += [bank.op.eq(op_index), bank.in_valid.eq(self.operands.valid),
                         bank.a.eq(self.operands.payload.a), bank.b.eq(self.operands.payload.b),
                         bank.c.eq(self.operands.payload.c),
                         self.result.valid.eq(bank.out_valid),
                         self.result.payload.eq(bank.result)]
            return m

    start = time.perf_counter()
    masked = {k: c.astype(np.uint64) & 0xFFFFFFFF for k, c in zip("abc", cols)}
    results = run_stream_unit(_BankAdapter(), masked)
    return FPURun(results, cycles=len(results), seconds=time.perf_counter() - start)
