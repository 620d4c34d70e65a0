"""The case generators reach every corner class they promise."""

import numpy as np
import pytest

from caterpillar.golden import numerics
from caterpillar.golden.numerics import FORMATS
from caterpillar.sim.fpverify.bank import bank_ops, golden_op
from caterpillar.sim.fpverify.cases import directed_cases, random_cases, special_values

OPS = [op for name in FORMATS for op in bank_ops(FORMATS[name])]


def classes(bits, fmt):
    """Return the set of result classes present among ``bits``."""
    mag = bits.astype(np.uint64) & np.uint64(fmt.magnitude_mask)
    sign = (bits.astype(np.uint64) >> np.uint64(fmt.width - 1)) == 1
    found = set()
    found |= {"nan"} if numerics.is_nan(bits, fmt).any() else set()
    found |= {"+inf"} if ((mag == fmt.inf) & ~sign).any() else set()
    found |= {"-inf"} if ((mag == fmt.inf) & sign).any() else set()
    found |= {"+0"} if ((mag == 0) & ~sign).any() else set()
    found |= {"-0"} if ((mag == 0) & sign).any() else set()
    found |= {"subnormal"} if ((mag > 0) & (mag < (1 << fmt.man_bits))).any() else set()
    found |= {"normal"} if ((mag >= (1 << fmt.man_bits)) & (mag < fmt.inf)).any() else set()
    return found


def test_special_values_cover_every_input_class():
    for fmt in FORMATS.values():
        sv = special_values(fmt)
        assert classes(sv, fmt) == {"nan", "+inf", "-inf", "+0", "-0", "subnormal", "normal"}
        assert fmt.inf | 1 in sv.tolist()             # a signalling NaN
        assert fmt.canonical_nan in sv.tolist()       # a quiet NaN
        assert fmt.max_normal in sv.tolist() and 1 in sv.tolist()


@pytest.mark.parametrize("op", [o for o in OPS if o.op in ("add", "mul", "mac")],
                         ids=lambda o: f"{o.in_fmt}-{o.key}")
def test_directed_results_reach_every_result_class(op):
    cols = directed_cases(op)
    found = classes(golden_op(op, *cols).astype(np.uint64), op.out_fmt)
    assert found == {"nan", "+inf", "-inf", "+0", "-0", "subnormal", "normal"}


def test_directed_add_contains_exact_ties_and_massive_cancellation():
    op = next(o for o in bank_ops(FORMATS["fp32"]) if o.op == "add")
    a, b = directed_cases(op)
    result = numerics.to_float64(golden_op(op, a, b), op.out_fmt)
    one = numerics.to_float64(numerics.from_float(1.0, op.in_fmt), op.in_fmt)
    ulp = 2.0 ** -op.in_fmt.man_bits
    with np.errstate(all="ignore"):
        exact = numerics.to_float64(a, op.in_fmt) + numerics.to_float64(b, op.in_fmt)
        ties = np.isclose(np.abs(exact - result), ulp / 2 * np.abs(result), rtol=0, atol=0)
        big = np.abs(numerics.to_float64(a, op.in_fmt))
        cancelled = (np.abs(result) > 0) & (np.abs(result) <= big * 2.0 ** -20)
    assert ties.sum() >= 2 and one in result[ties]
    assert cancelled.sum() >= 50


@pytest.mark.parametrize("op", OPS, ids=lambda o: f"{o.in_fmt}-{o.key}")
def test_random_cases_shape_and_determinism(op):
    a = random_cases(op, 1000, np.random.default_rng(5))
    b = random_cases(op, 1000, np.random.default_rng(5))
    assert len(a) == op.arity and all(len(c) == 1000 for c in a)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_random_mul_cases_straddle_overflow_and_underflow(rng):
    op = next(o for o in bank_ops(FORMATS["fp16"]) if o.op == "mul")
    cols = random_cases(op, 20_000, rng)
    found = classes(golden_op(op, *[c[10_000:] for c in cols]).astype(np.uint64), op.out_fmt)
    assert {"+inf", "-inf", "subnormal", "+0", "-0", "normal"} <= found
