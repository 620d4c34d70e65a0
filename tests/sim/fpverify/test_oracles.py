"""The independent FP oracles: NumPy and Berkeley SoftFloat agree with each other and with the
golden numerics on every bank operation, and every NaN comes out as the canonical NaN."""

import numpy as np
import pytest

from caterpillar.golden import numerics
from caterpillar.golden.numerics import BF16, FORMATS, FP16, FP32
from caterpillar.sim.fpverify.bank import BankOp, bank_ops, golden_op
from caterpillar.sim.fpverify.cases import directed_cases, random_cases
from caterpillar.sim.fpverify.oracles import numpy_oracle, softfloat_oracle

OPS = [op for fmt in FORMATS.values() for op in bank_ops(fmt)]
OP_IDS = [f"{op.in_fmt}-{op.key}" for op in OPS]


def _op(fmt, key):
    return next(o for o in bank_ops(fmt) if o.key == key)


def _u64(bits):
    return np.asarray(bits).astype(np.uint64)


@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_oracles_agree_with_golden_on_random_cases(op, rng):
    cols = random_cases(op, 300, rng)
    golden = _u64(golden_op(op, *cols))
    by_numpy = numpy_oracle(op, cols)
    by_softfloat = softfloat_oracle(op, cols)
    assert by_numpy.shape == by_softfloat.shape == (300,)
    assert by_numpy.dtype == op.out_fmt.dtype
    np.testing.assert_array_equal(_u64(by_numpy), golden, err_msg="numpy")
    np.testing.assert_array_equal(_u64(by_softfloat), golden, err_msg="softfloat")


@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_oracles_agree_on_corner_cases(op, rng):
    """Directed corners (zeros, subnormals, infinities, NaNs, ties): up to 20000 for NumPy,
    a sample of 200 for the one-case-at-a-time SoftFloat."""
    cols = directed_cases(op, rng)
    if len(cols[0]) > 20_000:      # 16-bit scale: every pattern times every exponent
        pick = rng.choice(len(cols[0]), size=20_000, replace=False)
        cols = [c[pick] for c in cols]
    np.testing.assert_array_equal(_u64(numpy_oracle(op, cols)), _u64(golden_op(op, *cols)))
    pick = rng.choice(len(cols[0]), size=200, replace=False)
    sample = [c[pick] for c in cols]
    np.testing.assert_array_equal(_u64(softfloat_oracle(op, sample)),
                                  _u64(golden_op(op, *sample)))


@pytest.mark.parametrize("fmt", [FP32, BF16, FP16], ids=str)
def test_every_nan_result_is_the_canonical_nan(fmt):
    s, inf, qnan = fmt.sign_mask, fmt.inf, fmt.canonical_nan
    one = int(numerics.from_float(1.0, fmt))
    nans = [inf | 1, (inf | 1) | s, qnan | s, inf | fmt.man_mask]   # signalling, signed, payload
    cases = {
        "add": ([*nans, inf], [one] * len(nans) + [inf | s]),          # NaN in, and inf - inf
        "mul": ([*nans, 0], [one] * len(nans) + [inf]),                 # NaN in, and 0 * inf
        "max": ([*nans, one], [one] * len(nans) + [nans[0]]),           # NaN on either side
    }
    for key, (a, b) in cases.items():
        op = _op(fmt, key)
        cols = [np.array(a, np.uint64), np.array(b, np.uint64)]
        for oracle in (numpy_oracle, softfloat_oracle):
            assert _u64(oracle(op, cols)).tolist() == [qnan] * len(a), (oracle.__name__, key)
    for other in FORMATS.values():
        if other != fmt:
            op = _op(fmt, f"convert.{other.name}")
            for oracle in (numpy_oracle, softfloat_oracle):
                got = _u64(oracle(op, [np.array(nans, np.uint64)])).tolist()
                assert got == [other.canonical_nan] * len(nans), (oracle.__name__, op.key)


def test_max_of_signed_zeros_is_positive_zero():
    op = _op(FP32, "max")
    cols = [np.array([0x80000000, 0, 0x80000000]), np.array([0, 0x80000000, 0x80000000])]
    for oracle in (numpy_oracle, softfloat_oracle):
        assert _u64(oracle(op, cols)).tolist() == [0, 0, 0x80000000], oracle.__name__


def test_known_values():
    add16, mac = _op(FP16, "add"), _op(BF16, "mac.fp32")
    # fp16 (ulp of 1 is 2**-10): 1 + 2**-11 and (1 + ulp) + 2**-11 are ties to even,
    # 1 + 3 * 2**-12 rounds up.
    cols = [np.array([0x3C00, 0x3C01, 0x3C00]), np.array([0x1000, 0x1000, 0x1200])]
    for oracle in (numpy_oracle, softfloat_oracle):
        assert _u64(oracle(add16, cols)).tolist() == [0x3C00, 0x3C02, 0x3C01], \
            oracle.__name__
    # bf16 1.5 * 1.5 + 1.0 = 3.25 exactly in the fp32 accumulator.
    cols = [np.array([0x3FC0]), np.array([0x3FC0]), np.array([0x3F800000])]
    for oracle in (numpy_oracle, softfloat_oracle):
        assert _u64(oracle(mac, cols)).tolist() == [0x40500000], oracle.__name__


def test_scale_saturates_huge_exponents():
    op = _op(FP32, "scale")
    cols = [np.array([0x3F800000, 0x3F800000, 0xBF800000]),
            np.array([(1 << 31) - 1, -(1 << 31), 5000])]
    want = [FP32.inf, 0, FP32.inf | FP32.sign_mask]
    for oracle in (numpy_oracle, softfloat_oracle):
        assert _u64(oracle(op, cols)).tolist() == want, oracle.__name__


def test_unknown_operation_is_refused():
    op = BankOp("div", FP32, FP32, 2)
    cols = [np.array([0x3F800000]), np.array([0x3F800000])]
    with pytest.raises(ValueError, match=r"^no NumPy oracle for div$"):
        numpy_oracle(op, cols)
    with pytest.raises(ValueError, match=r"^no SoftFloat oracle for div$"):
        softfloat_oracle(op, cols)
