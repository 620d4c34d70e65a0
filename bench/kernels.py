"""``caterpillar bench kernels``: cycles and utilization of every kernel, on the RTL.

For each array size and shape, a setup program loads the operands, then a program holding only
the kernel (and HALT) runs with the counters cleared: its busy cycles, less HALT's fetch, are
the kernel's cycles, and its MAC counter the MACs. The instruction-level simulator runs the same
programs; the report gives its cycle prediction beside the RTL's and checks that both produce
the same bits (and the golden kernels' result).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from caterpillar.contract.config import preset
from caterpillar.contract.geometry import INSTRUCTION_OVERHEAD, RUN_START_CYCLES
from caterpillar.contract.isa import Opcode
from caterpillar.sim.backends.verilator import VerilatorDevice
from caterpillar.sim.cases import kernels as kc
from caterpillar.software.driver.core import Driver
from caterpillar.software.isasim.device import IsaDevice
from caterpillar.software.storage import check_output, write_json

#: A run's cycles besides its kernel: the first fetch and decode, and the HALT's check.
RUN_FIXED_CYCLES = RUN_START_CYCLES + INSTRUCTION_OVERHEAD

__all__ = ["BenchRow", "bench_config", "run_kernel_bench", "format_table", "add_arguments",
           "run"]

GEMM_SIZES = (16, 32, 64, 128, 256)
GEMV_SIZES = (64, 128, 256, 512)


def bench_config(nr: int, base: str = "small"):
    """Return the benchmark config for ``nr``: the preset with memories sized for the shapes
    (a 512 x 512 matrix spread over MemA, a cpass's vectors and ``acc_lanes`` partial sums
    per column in MemB, every operand of a case in the SPAD)."""
    cfg = preset(base)
    return cfg.replace(name=f"bench-nr{nr}", nr=nr,
                       mema_words=max(cfg.mema_words, 512 * 512 // (nr * nr)),
                       memb_words=max(cfg.memb_words, 1024, 512 // nr * (cfg.acc_lanes + 7)),
                       spad_words=1 << 20)


@dataclass
class BenchRow:
    """One measured kernel."""

    nr: int
    kernel: str
    shape: str
    cycles: int
    predicted_cycles: int
    macs: int
    utilization: float
    bit_exact: bool
    seconds: float

    def to_dict(self):
        """Return a JSON-friendly dict."""
        return asdict(self)


def _split(case):
    """Split a case's program into its setup part and its one kernel instruction."""
    kernels = {Opcode.GEMV.value, Opcode.GEMVT.value, Opcode.GER.value, Opcode.GEMM.value,
               Opcode.CPASS.value}
    index = next(i for i, w in enumerate(case.program) if w & 0xFF in kernels)
    halt = case.program[-1]
    return case.program[:index] + [halt], [case.program[index], halt], case.program[index + 1:]


def _measure(device, case, setup, kernel, teardown):
    driver = Driver(device)
    for addr, values in case.spad.items():
        driver.write_spad(addr, values)
    for index, bits in case.sregs.items():
        driver.set_scalar(index, bits)
    driver.load_program(setup)
    driver.run()
    driver.load_program(kernel)
    start = time.perf_counter()
    stats = driver.run()
    seconds = time.perf_counter() - start
    driver.load_program(teardown)
    driver.run()
    outputs = [driver.read_spad(addr, int(np.prod(shape))).reshape(shape)
               for addr, shape in case.outputs]
    return stats, seconds, outputs


def _cases(cfg, rng, kernels):
    for size in GEMV_SIZES:
        if "gemv" in kernels:
            yield "gemv", f"{size}x{size}", kc.gemv_case(cfg, size, size, rng)
        if "gemvt" in kernels:
            yield "gemvt", f"{size}x{size}", kc.gemvt_case(cfg, size, size, rng)
        if "ger" in kernels:
            yield "ger", f"{size}x{size}", kc.ger_case(cfg, size, size, rng)
        if "cpass" in kernels:
            yield "cpass", f"{size}x{size}", kc.cpass_case(cfg, size, size, rng)
    if "gemm" in kernels:
        for size in GEMM_SIZES:
            yield "gemm", f"{size}^3", kc.gemm_case(cfg, size, size, size, rng)


def run_kernel_bench(nrs=(2, 4, 8), backend="verilator", kernels=("gemv", "gemvt", "ger",
                     "cpass", "gemm"), progress=None, base="small", seed=1) -> list[BenchRow]:
    """Measure every kernel and shape for each ``nr``; return the rows."""
    rows = []
    for nr in nrs:
        cfg = bench_config(nr, base)
        if backend == "verilator":

            device = VerilatorDevice(cfg)
        elif backend == "isa":
            device = IsaDevice(cfg)
        else:
            raise ValueError(f"unknown backend {backend!r}; choose verilator or isa")
        try:
            rng = np.random.default_rng(seed)
            for kernel, shape, case in _cases(cfg, rng, kernels):
                setup, program, teardown = _split(case)
                stats, seconds, outputs = _measure(device, case, setup, program, teardown)
                isa_stats, _, isa_outputs = _measure(IsaDevice(cfg), case, setup, program,
                                                     teardown)
                exact = stats.macs == case.counted_macs and all(
                    np.array_equal(a, b) and np.array_equal(a, e)
                    for a, b, e in zip(outputs, isa_outputs, case.expected))
                cycles = stats.busy - RUN_FIXED_CYCLES
                # Utilization counts the problem's MACs (cpass's counter also counts its z
                # partial sums); the counter must read what the kernel is specified to count.
                row = BenchRow(nr, kernel, shape, cycles, isa_stats.busy - RUN_FIXED_CYCLES,
                               case.macs, case.macs / (nr * nr * cycles), exact, seconds)
                rows.append(row)
                if progress:
                    progress(row)
        finally:
            device.close()
    return rows


def format_table(rows) -> str:
    """Return the benchmark table, with GEMV forward+backward combined per shape."""
    head = (f"{'nr':>2} {'kernel':6} {'shape':>9} {'cycles':>10} {'predicted':>10} "
            f"{'MACs':>11} {'util':>7} {'exact':>5} {'cycles/s':>10}")
    lines = [head, "-" * len(head)]
    for r in rows:
        speed = r.cycles / r.seconds if r.seconds else 0
        lines.append(f"{r.nr:>2} {r.kernel:6} {r.shape:>9} {r.cycles:>10} "
                     f"{r.predicted_cycles:>10} {r.macs:>11} {r.utilization:>7.1%} "
                     f"{'yes' if r.bit_exact else 'NO':>5} {speed:>10.0f}")
    combined = {}
    for r in rows:
        if r.kernel in ("gemv", "gemvt"):
            entry = combined.setdefault((r.nr, r.shape), [0, 0])
            entry[0] += r.macs
            entry[1] += r.cycles * r.nr * r.nr
    if combined:
        lines.append("")
        lines.append("GEMV forward + backward:")
        for (nr, shape), (macs, pe_cycles) in combined.items():
            lines.append(f"  nr={nr} {shape:>9}: {macs / pe_cycles:.1%}")
    passes = {}
    for r in rows:
        if r.kernel in ("gemv", "gemvt", "ger", "cpass"):
            passes.setdefault((r.nr, r.shape), {})[r.kernel] = r.cycles
    fused = {key: k for key, k in passes.items() if len(k) == 4}
    if fused:
        lines.append("")
        lines.append("SGD's three passes (gemv + gemvt + ger) against one cpass:")
        for (nr, shape), k in fused.items():
            sgd = k["gemv"] + k["gemvt"] + k["ger"]
            lines.append(f"  nr={nr} {shape:>9}: {sgd} -> {k['cpass']} cycles "
                         f"({sgd / k['cpass']:.2f}x)")
    return "\n".join(lines)


def add_arguments(parser) -> None:
    """Add the ``bench kernels`` options."""
    parser.add_argument("--config", default="small",
                        help="preset the benchmark configs derive from (default small)")
    parser.add_argument("--backend", choices=["verilator", "isa"], default="verilator")
    parser.add_argument("--nr", type=int, nargs="+", default=[2, 4, 8], choices=[2, 4, 8, 16])
    parser.add_argument("--kernels", nargs="+",
                        default=["gemv", "gemvt", "ger", "cpass", "gemm"],
                        choices=["gemv", "gemvt", "ger", "cpass", "gemm"])
    parser.add_argument("--json", metavar="FILE", help="write the rows as JSON")


def run(args) -> int:
    """Run the kernel benchmark; exit status 1 if any result is not bit-exact."""
    out = check_output(args.json, "--json") if args.json else None

    def progress(row):
        print(f"  nr={row.nr} {row.kernel:6} {row.shape:>9}: {row.cycles} cycles, "
              f"{row.utilization:.1%}{'' if row.bit_exact else '  NOT BIT-EXACT'}", flush=True)

    rows = run_kernel_bench(tuple(args.nr), args.backend, tuple(args.kernels), progress,
                            base=args.config)
    print()
    print(format_table(rows))
    if out is not None:
        write_json(out, [r.to_dict() for r in rows])
    return 0 if all(r.bit_exact for r in rows) else 1
