"""FPMac in the Amaranth simulator against the golden model."""

import numpy as np
import pytest

from caterpillar.golden import numerics
from caterpillar.golden.numerics import BF16, FP16, FP32
from caterpillar.rtl.fp.mac import FPMac
from caterpillar.sim.fpverify.bank import BankOp, golden_op
from caterpillar.sim.fpverify.cases import directed_cases, random_cases
from caterpillar.sim.fpverify.stream import run_stream_unit
from tests.helpers import unit_operands


def rtl_mac(cols, fmt, acc_fmt, mul_latency, add_latency, **kw):
    unit = FPMac(fmt, acc_fmt, mul_latency=mul_latency, add_latency=add_latency)
    return run_stream_unit(unit, unit_operands(BankOp("mac", fmt, acc_fmt, 3), cols), **kw)


@pytest.mark.parametrize("fmt,acc_fmt", [(FP16, FP16), (BF16, FP32)], ids=str)
def test_directed_corner_classes_and_exact_cancellation(fmt, acc_fmt, rng):
    op = BankOp("mac", fmt, acc_fmt, 3)
    cols = [c[::3] for c in directed_cases(op, rng)]  # every class, a third of the pairs
    np.testing.assert_array_equal(rtl_mac(cols, fmt, acc_fmt, 1, 2), golden_op(op, *cols))


@pytest.mark.parametrize("fmt,acc_fmt", [(FP32, FP32), (BF16, FP32), (FP16, FP32),
                                         (FP32, FP16)], ids=str)
def test_random(fmt, acc_fmt, rng):
    op = BankOp("mac", fmt, acc_fmt, 3)
    cols = random_cases(op, 300, rng)
    np.testing.assert_array_equal(rtl_mac(cols, fmt, acc_fmt, 2, 3), golden_op(op, *cols))


def test_rounds_product_then_sum_with_fp32_operands():
    # a*b = 1 + 2**-23 + 2**-46 exactly; rounded to fp32 it loses 2**-46, so with acc = -1 the
    # MAC gives 2**-23, where a fused multiply-add would give 2**-23 + 2**-46.
    a = numerics.from_float(1 + 2.0 ** -23, FP32)
    acc = numerics.from_float(-1.0, FP32)
    got = rtl_mac([np.array([a]), np.array([a]), np.array([acc])], FP32, FP32, 1, 1)
    assert got[0] == numerics.from_float(2.0 ** -22, FP32)


@pytest.mark.parametrize("mul_latency,add_latency", [(1, 1), (3, 5)])
def test_latency_is_sum_of_stages(mul_latency, add_latency, rng):
    op = BankOp("mac", BF16, FP32, 3)
    cols = random_cases(op, 40, rng)
    got, sent, seen = rtl_mac(cols, BF16, FP32, mul_latency, add_latency,
                              valid_pattern=[1, 0], timing=True)
    np.testing.assert_array_equal(got, golden_op(op, *cols))
    np.testing.assert_array_equal(seen - sent, mul_latency + add_latency)
