"""FPScale (multiply by 2**n) in the Amaranth simulator against the golden model."""

import numpy as np
import pytest

from caterpillar.golden.numerics import BF16, FP16, FP32, scale_exponent_range
from caterpillar.rtl.fp.scale import FPScale, scale_shift_shape
from caterpillar.sim.fpverify.bank import BankOp, golden_op
from caterpillar.sim.fpverify.cases import random_cases, special_values
from caterpillar.sim.fpverify.stream import run_stream_unit


def test_shift_operand_covers_the_saturation_range():
    for fmt in (FP32, BF16, FP16):
        shape = scale_shift_shape(fmt)
        assert shape.signed and (1 << (shape.width - 1)) > scale_exponent_range(fmt)


@pytest.mark.parametrize("fmt", [FP32, BF16, FP16], ids=str)
def test_special_values_and_random(fmt, rng):
    op = BankOp("scale", fmt, fmt, 2)
    sv = special_values(fmt)
    limit = (1 << (scale_shift_shape(fmt).width - 1)) - 1
    ns = np.array([0, 1, -1, fmt.man_bits + 1, -fmt.bias - fmt.man_bits, limit, -limit])
    grid_x, grid_n = np.repeat(sv, len(ns)), np.tile(ns, len(sv))
    rx, rn = random_cases(op, 400, rng)
    cols = [np.concatenate([grid_x, rx]), np.clip(np.concatenate([grid_n, rn]), -limit, limit)]
    got = run_stream_unit(FPScale(fmt, latency=1), {"x": cols[0], "n": cols[1]})
    np.testing.assert_array_equal(got, golden_op(op, *cols))
