"""FPMultiplier in the Amaranth simulator against the golden model."""

import numpy as np
import pytest

from caterpillar.golden.numerics import BF16, FP16, FP32
from caterpillar.rtl.fp.multiplier import FPMultiplier
from caterpillar.sim.fpverify.bank import BankOp, golden_op
from caterpillar.sim.fpverify.cases import directed_cases, random_cases
from caterpillar.sim.fpverify.stream import run_stream_unit
from tests.helpers import unit_operands


def rtl_mul(cols, fmt, out_fmt, latency, **kw):
    unit = FPMultiplier(fmt, out_fmt, latency=latency)
    return run_stream_unit(unit, unit_operands(BankOp("mul", fmt, out_fmt, 2), cols), **kw)


@pytest.mark.parametrize("fmt", [FP16, BF16], ids=str)
@pytest.mark.parametrize("latency", [0, 2])
def test_directed_corner_classes(fmt, latency):
    op = BankOp("mul", fmt, fmt, 2)
    cols = directed_cases(op)
    np.testing.assert_array_equal(rtl_mul(cols, fmt, fmt, latency), golden_op(op, *cols))


@pytest.mark.parametrize("fmt,out_fmt", [(FP32, FP32), (BF16, FP32), (FP16, FP32),
                                         (FP32, FP16)], ids=str)
def test_random_including_widening_and_narrowing_products(fmt, out_fmt, rng):
    op = BankOp("mul", fmt, out_fmt, 2)
    cols = random_cases(op, 400, rng)
    np.testing.assert_array_equal(rtl_mul(cols, fmt, out_fmt, 3), golden_op(op, *cols))


@pytest.mark.parametrize("latency", [0, 1, 4, 8])
def test_latency_is_exact_with_idle_cycles(latency, rng):
    op = BankOp("mul", FP32, FP32, 2)
    cols = random_cases(op, 60, rng)
    got, sent, seen = rtl_mul(cols, FP32, FP32, latency, valid_pattern=[1, 0, 1, 1, 0, 0],
                              timing=True)
    np.testing.assert_array_equal(got, golden_op(op, *cols))
    np.testing.assert_array_equal(seen - sent, latency)
