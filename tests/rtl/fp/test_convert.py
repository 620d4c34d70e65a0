"""FPConvert in the Amaranth simulator against the golden model."""

import numpy as np
import pytest

from caterpillar.golden.numerics import BF16, FP16, FP32
from caterpillar.rtl.fp.convert import FPConvert
from caterpillar.sim.fpverify.bank import BankOp, golden_op
from caterpillar.sim.fpverify.cases import directed_cases, random_cases, special_values
from caterpillar.sim.fpverify.stream import run_stream_unit

PAIRS = [(FP32, BF16), (FP32, FP16), (BF16, FP32), (FP16, FP32), (BF16, FP16), (FP16, BF16)]


@pytest.mark.parametrize("src,dst", PAIRS, ids=str)
def test_special_values_and_random(src, dst, rng):
    op = BankOp("convert", src, dst, 1)
    cols = [np.concatenate([special_values(src), random_cases(op, 400, rng)[0]])]
    got = run_stream_unit(FPConvert(src, dst, latency=1), cols[0])
    np.testing.assert_array_equal(got, golden_op(op, *cols))


@pytest.mark.parametrize("dst", [BF16, FP16], ids=str)
def test_fp32_narrowing_rounding_boundaries(dst, rng):
    op = BankOp("convert", FP32, dst, 1)
    cols = directed_cases(op, rng)
    got = run_stream_unit(FPConvert(FP32, dst, latency=0), cols[0][::2])
    np.testing.assert_array_equal(got, golden_op(op, cols[0][::2]))


def test_latency_is_exact():
    x = special_values(FP16)
    got, sent, seen = run_stream_unit(FPConvert(FP16, FP32, latency=3), x, timing=True,
                                      valid_pattern=[1, 0, 0])
    np.testing.assert_array_equal(got, golden_op(BankOp("convert", FP16, FP32, 1), x))
    np.testing.assert_array_equal(seen - sent, 3)
