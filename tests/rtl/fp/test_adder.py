"""FPAdder in the Amaranth simulator against the golden model."""

import numpy as np
import pytest

from caterpillar.golden.numerics import BF16, FP16, FP32
from caterpillar.rtl.fp.adder import FPAdder
from caterpillar.sim.fpverify.bank import BankOp, golden_op
from caterpillar.sim.fpverify.cases import directed_cases, random_cases
from caterpillar.sim.fpverify.stream import run_stream_unit
from tests.helpers import unit_operands


def rtl_add(cols, fmt, latency, **kw):
    return run_stream_unit(FPAdder(fmt, latency=latency),
                           unit_operands(BankOp("add", fmt, fmt, 2), cols), **kw)


@pytest.mark.parametrize("fmt", [FP16, BF16], ids=str)
@pytest.mark.parametrize("latency", [0, 3])
def test_directed_corner_classes(fmt, latency):
    op = BankOp("add", fmt, fmt, 2)
    cols = directed_cases(op)
    np.testing.assert_array_equal(rtl_add(cols, fmt, latency), golden_op(op, *cols))


@pytest.mark.parametrize("fmt", [FP32, BF16, FP16], ids=str)
def test_random_uniform_and_near_equal_magnitudes(fmt, rng):
    op = BankOp("add", fmt, fmt, 2)
    cols = random_cases(op, 600, rng)
    np.testing.assert_array_equal(rtl_add(cols, fmt, 2), golden_op(op, *cols))


def test_fp32_cancellation_and_signed_zero_cases(rng):
    op = BankOp("add", FP32, FP32, 2)
    a, b = directed_cases(op, rng)
    keep = slice(-400, None)  # the crafted ties, overflows and cancellations come last
    cols = [a[keep], b[keep]]
    np.testing.assert_array_equal(rtl_add(cols, FP32, 1), golden_op(op, *cols))


@pytest.mark.parametrize("latency", [1, 6, 8])
def test_latency_is_exact_with_idle_cycles(latency, rng):
    op = BankOp("add", FP32, FP32, 2)
    cols = random_cases(op, 50, rng)
    got, sent, seen = rtl_add(cols, FP32, latency, valid_pattern=[1, 1, 0], timing=True)
    np.testing.assert_array_equal(got, golden_op(op, *cols))
    np.testing.assert_array_equal(seen - sent, latency)
