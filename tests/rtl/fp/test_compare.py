"""FPCompare (maximum, minimum, less, equal, unordered) against the golden model."""

import itertools

import numpy as np
import pytest

from caterpillar.golden import numerics
from caterpillar.golden.numerics import BF16, FP16, FP32
from caterpillar.rtl.fp.compare import FPCompare
from caterpillar.sim.fpverify.bank import BankOp
from caterpillar.sim.fpverify.cases import random_cases, special_values
from caterpillar.sim.fpverify.stream import run_stream_unit

REFERENCE = {
    "max": numerics.maximum, "min": numerics.minimum, "less": numerics.less,
    "equal": numerics.equal,
    "unordered": lambda a, b, f: numerics.is_nan(a, f) | numerics.is_nan(b, f),
}


@pytest.mark.parametrize("fmt", [FP32, BF16, FP16], ids=str)
@pytest.mark.parametrize("field", list(REFERENCE))
def test_every_result_field(fmt, field, rng):
    pairs = np.array(list(itertools.product(special_values(fmt).tolist(), repeat=2)))
    ra, rb = random_cases(BankOp("max", fmt, fmt, 2), 200, rng)
    a = np.concatenate([pairs[:, 0], ra]).astype(np.uint64)
    b = np.concatenate([pairs[:, 1], rb]).astype(np.uint64)
    got = run_stream_unit(FPCompare(fmt, latency=1), {"a": a, "b": b}, field=field)
    np.testing.assert_array_equal(got, REFERENCE[field](a, b, fmt).astype(np.uint64))


def test_relu_is_max_with_positive_zero():
    x = special_values(FP16)
    got = run_stream_unit(FPCompare(FP16, latency=0), {"a": x, "b": np.zeros_like(x)},
                          field="max")
    value = numerics.to_float64(x, FP16)
    want = np.where(np.isnan(value), FP16.canonical_nan, np.where(value > 0, x, 0))
    np.testing.assert_array_equal(got, want.astype(np.uint64))
