"""The floating-point self-check: every unit of every format against three references.

For each operation of each format's bank: the directed corner cases plus ``random`` targeted
random cases run on a backend (Verilator by default, streamed without Python in the loop) and
are compared bit for bit with the golden model and NumPy, and a sample with Berkeley SoftFloat.
NaNs are canonical in the hardware and canonicalised in the references, so NaN compares as a
class.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from caterpillar.golden.numerics import FORMATS
from caterpillar.sim.fpverify.bank import bank_ops, golden_op
from caterpillar.sim.fpverify.cases import directed_cases, random_cases
from caterpillar.sim.fpverify.oracles import numpy_oracle, softfloat_oracle
from caterpillar.sim.fpverify.runner import run_cases

__all__ = ["CheckResult", "check_op", "selfcheck", "format_report"]


@dataclass
class CheckResult:
    """Outcome of one (format, operation): case counts, mismatch counts, throughput."""

    format: str
    op: str
    cases: int
    golden_mismatches: int
    numpy_mismatches: int
    softfloat_cases: int
    softfloat_mismatches: int
    results_per_second: float
    seed: int
    examples: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when no reference disagrees."""
        return not (self.golden_mismatches or self.numpy_mismatches or self.softfloat_mismatches)

    def to_dict(self) -> dict:
        """Return a JSON-friendly dict."""
        return asdict(self)


def _first_mismatches(cols, got, want, limit=5):
    idx = np.nonzero(got != want)[0][:limit]
    return [{"operands": [hex(int(c[i]) & 0xFFFFFFFF) for c in cols], "got": hex(int(got[i])),
             "want": hex(int(want[i]))} for i in idx]


def check_op(index, op, *, random: int, softfloat: int, seed: int,
             backend: str = "verilator", **latencies) -> CheckResult:
    """Check one bank operation; see the module docstring."""

    rng = np.random.default_rng(seed)
    directed = directed_cases(op, rng)
    rand = random_cases(op, random, rng)
    cols = [np.concatenate([d.astype(np.int64), r.astype(np.int64)])
            for d, r in zip(directed, rand)]
    run = run_cases(index, op, cols, backend, **latencies)
    got = run.results.astype(np.uint64)
    golden = np.asarray(golden_op(op, *cols), dtype=np.uint64)
    numpy_ref = numpy_oracle(op, cols).astype(np.uint64)
    sample = rng.choice(len(got), size=min(softfloat, len(got)), replace=False)
    sf_ref = softfloat_oracle(op, [c[sample] for c in cols]).astype(np.uint64)
    examples = (_first_mismatches(cols, got, golden) or _first_mismatches(cols, got, numpy_ref)
                or _first_mismatches([c[sample] for c in cols], got[sample], sf_ref))
    return CheckResult(
        format=op.in_fmt.name, op=op.key, cases=len(got),
        golden_mismatches=int((got != golden).sum()),
        numpy_mismatches=int((got != numpy_ref).sum()),
        softfloat_cases=len(sample), softfloat_mismatches=int((got[sample] != sf_ref).sum()),
        results_per_second=run.results_per_second, seed=seed, examples=examples)


def selfcheck(*, formats=None, random: int = 200_000, softfloat: int = 20_000, seed: int = 1,
              backend: str = "verilator", progress=None, **latencies) -> list[CheckResult]:
    """Check every operation of every format in ``formats`` (default: all)."""
    results = []
    for name in formats or list(FORMATS):
        for index, op in enumerate(bank_ops(FORMATS[name])):
            op_seed = seed * 1000 + len(results)
            results.append(check_op(index, op, random=random, softfloat=softfloat,
                                    seed=op_seed, backend=backend, **latencies))
            if progress:
                progress(results[-1])
    return results


def format_report(results: list[CheckResult]) -> str:
    """Return the self-check summary table."""
    head = (f"{'format':6} {'op':14} {'cases':>9} {'golden':>7} {'numpy':>7} "
            f"{'softfloat':>15} {'results/s':>11}")
    lines = [head, "-" * len(head)]
    for r in results:
        sf = f"{r.softfloat_mismatches}/{r.softfloat_cases}"
        lines.append(f"{r.format:6} {r.op:14} {r.cases:9d} {r.golden_mismatches:7d} "
                     f"{r.numpy_mismatches:7d} {sf:>15} {r.results_per_second:11.3e}")
    total = sum(r.cases for r in results)
    bad = sum(not r.passed for r in results)
    seconds = sum(r.cases / r.results_per_second for r in results if r.results_per_second)
    lines.append("-" * len(head))
    lines.append(f"{total} cases in {len(results)} (format, op) pairs; "
                 f"{'all match' if not bad else f'{bad} pairs MISMATCH'}; "
                 f"simulated throughput {total / seconds:.3e} results/s" if seconds else
                 f"{total} cases; {'all match' if not bad else f'{bad} pairs MISMATCH'}")
    return "\n".join(lines)
