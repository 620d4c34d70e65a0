"""The arithmetic specification: hand-computed corner cases and independent references."""

import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest

from caterpillar.golden import numerics as n
from caterpillar.golden.numerics import BF16, FP16, FP32

NATIVE = {FP32: np.float32, FP16: np.float16, BF16: ml_dtypes.bfloat16}


def bits(values, fmt):
    return np.asarray(values, dtype=np.uint64).astype(fmt.dtype)


def f(x, fmt=FP32):
    return int(n.from_float(x, fmt))


def test_format_constants():
    assert (FP32.bias, FP32.precision, FP32.width) == (127, 24, 32)
    assert (BF16.bias, BF16.precision, BF16.width) == (127, 8, 16)
    assert (FP16.bias, FP16.precision, FP16.width) == (15, 11, 16)
    assert FP32.canonical_nan == 0x7FC00000
    assert BF16.canonical_nan == 0x7FC0
    assert FP16.canonical_nan == 0x7E00
    assert FP16.max_normal == 0x7BFF and FP32.inf == 0x7F800000


def test_format_validation_messages():
    with pytest.raises(ValueError, match=r"^exp_bits must be in 2\.\.11, not 12$"):
        n.FloatFormat("x", 12, 3)
    with pytest.raises(ValueError, match=r"^unknown number format 'fp8'; choose one of "
                                         r"fp32, bf16, fp16$"):
        n.format_by_name("fp8")


@pytest.mark.parametrize("fmt", [FP32, BF16, FP16], ids=str)
def test_decode_round_trip_is_identity(fmt):
    if fmt.width == 16:
        x = np.arange(1 << 16, dtype=np.uint64)
    else:
        x = np.random.default_rng(0).integers(0, 1 << 32, 200_000, dtype=np.uint64)
    back = n.round_from_float64(n.to_float64(x, fmt), fmt)
    np.testing.assert_array_equal(back, n.canonicalize_nan(x, fmt))


def test_add_rounding_ties_to_even():
    one, ulp = f(1.0), 2.0 ** -23
    assert n.add(bits([one], FP32), bits([f(ulp / 2)], FP32), FP32)[0] == one
    assert n.add(bits([one + 1], FP32), bits([f(ulp / 2)], FP32), FP32)[0] == one + 2
    assert n.add(bits([one], FP32), bits([f(ulp / 2 * 1.5)], FP32), FP32)[0] == one + 1


def test_add_signed_zeros_and_invalid():
    pz, nz, inf = 0, FP32.sign_mask, FP32.inf
    x = f(1.5)
    got = n.add(bits([x, nz, nz, pz, inf, inf], FP32),
                bits([x | FP32.sign_mask, nz, pz, nz, inf | FP32.sign_mask, inf], FP32), FP32)
    assert got.tolist() == [pz, nz, pz, pz, FP32.canonical_nan, inf]


def test_add_overflow_and_cancellation():
    m = FP32.max_normal
    assert n.add(bits([m], FP32), bits([m], FP32), FP32)[0] == FP32.inf
    # Smallest normal minus its successor: the exact, subnormal difference -2**-149.
    lo = 1 << FP32.man_bits
    assert n.add(bits([lo], FP32), bits([(lo + 1) | FP32.sign_mask], FP32),
                 FP32)[0] == FP32.sign_mask | 1


def test_mul_gradual_underflow_rounds_to_even():
    half = f(0.5)
    got = n.mul(bits([1, 3, 1 << 23, (1 << 23) + 1], FP32), bits([half] * 4, FP32), FP32)
    # 2**-150 ties to 0 (even); 1.5 * 2**-149 ties to 2 * 2**-149; the smallest normal halves
    # exactly; its successor halved is a tie between 2**22 and 2**22 + 1 subnormal units.
    assert got.tolist() == [0, 2, 1 << 22, 1 << 22]
    assert n.mul(bits([FP32.sign_mask | 1], FP32), bits([1], FP32), FP32)[0] == FP32.sign_mask


def test_mul_invalid_and_signs():
    got = n.mul(bits([0, FP32.inf, f(-2.0)], FP32),
                bits([FP32.inf, FP32.sign_mask, f(3.0)], FP32), FP32)
    assert got.tolist() == [FP32.canonical_nan, FP32.canonical_nan, f(-6.0)]


def test_fp16_overflow_threshold():
    got = n.from_float([65504.0, 65519.99, 65520.0, -65520.0, 2.0 ** -25, 2.0 ** -25 * 1.01],
                       FP16)
    assert got.tolist() == [0x7BFF, 0x7BFF, 0x7C00, 0xFC00, 0x0000, 0x0001]


def test_nan_inputs_become_canonical():
    snan, payload = 0x7F800001, 0xFFC12345
    got = n.add(bits([snan, payload], FP32), bits([f(1.0), f(1.0)], FP32), FP32)
    assert got.tolist() == [FP32.canonical_nan] * 2
    assert n.convert(bits([snan], FP32), FP32, FP16)[0] == FP16.canonical_nan


@pytest.mark.parametrize("fmt", [FP32, BF16, FP16], ids=str)
@pytest.mark.parametrize("op", ["add", "mul"])
def test_matches_numpy_native_arithmetic(fmt, op, rng):
    count = 300_000
    a = rng.integers(0, 1 << fmt.width, count, dtype=np.uint64).astype(fmt.dtype)
    b = rng.integers(0, 1 << fmt.width, count, dtype=np.uint64).astype(fmt.dtype)
    av, bv = a.view(NATIVE[fmt]), b.view(NATIVE[fmt])
    with np.errstate(all="ignore"):
        native = av + bv if op == "add" else av * bv
    want = n.canonicalize_nan(native.view(fmt.dtype), fmt)
    got = n.add(a, b, fmt) if op == "add" else n.mul(a, b, fmt)
    np.testing.assert_array_equal(got, want)


def test_mac_is_numpy_float32_with_fp32_operands(rng):
    a, b, c = (rng.standard_normal(100_000).astype(np.float32) for _ in range(3))
    want = n.canonicalize_nan((c + a * b).view(np.uint32), FP32)
    got = n.mac(a.view(np.uint32), b.view(np.uint32), c.view(np.uint32), FP32, FP32)
    np.testing.assert_array_equal(got, want)


def test_mac_is_fused_for_bf16_operands_and_fp32_accumulator(rng):
    # Products of bf16 values inside fp32's normal range are exact, so one rounding remains.
    a, b = (n.from_float(rng.standard_normal(100_000) * 2.0 ** rng.integers(-60, 60, 100_000),
                         BF16) for _ in range(2))
    c = n.from_float(rng.standard_normal(100_000) * 2.0 ** rng.integers(-120, 120, 100_000),
                     FP32)
    exact = (n.to_float64(a, BF16) * n.to_float64(b, BF16)) + n.to_float64(c, FP32)
    with np.errstate(all="ignore"):
        want = n.round_from_float64(exact, FP32)
    np.testing.assert_array_equal(n.mac(a, b, c, BF16, FP32), want)


@pytest.mark.parametrize("src,dst", [(FP32, FP16), (FP32, BF16), (FP16, FP32), (BF16, FP32),
                                     (BF16, FP16), (FP16, BF16)], ids=str)
def test_convert_matches_numpy_casts(src, dst, rng):
    x = rng.integers(0, 1 << src.width, 200_000, dtype=np.uint64).astype(src.dtype)
    with np.errstate(all="ignore"):
        native = x.view(NATIVE[src]).astype(NATIVE[dst]).view(dst.dtype)
    np.testing.assert_array_equal(n.convert(x, src, dst), n.canonicalize_nan(native, dst))


def test_maximum_minimum_order_zeros_and_propagate_nan():
    pz, nz, one = 0, FP16.sign_mask, f(1.0, FP16)
    a = bits([nz, pz, one, 0x7C01, one], FP16)
    b = bits([pz, nz, nz, one, 0x7C00], FP16)
    assert n.maximum(a, b, FP16).tolist() == [pz, pz, one, FP16.canonical_nan, 0x7C00]
    assert n.minimum(a, b, FP16).tolist() == [nz, nz, nz, FP16.canonical_nan, one]
    assert n.less(a, b, FP16).tolist() == [False, False, False, False, True]
    assert n.equal(a, b, FP16).tolist() == [True, True, False, False, False]


@pytest.mark.parametrize("fmt", [FP32, BF16, FP16], ids=str)
def test_scale_saturation_range_preserves_results(fmt, rng):
    x = rng.integers(0, 1 << fmt.width, 50_000, dtype=np.uint64)
    r = n.scale_exponent_range(fmt)
    for k in (r, r + 1, 10 * r):
        np.testing.assert_array_equal(n.scale(x, np.full(x.shape, k), fmt),
                                      n.scale(x, np.full(x.shape, r), fmt))
        np.testing.assert_array_equal(n.scale(x, np.full(x.shape, -k), fmt),
                                      n.scale(x, np.full(x.shape, -r), fmt))


def test_scale_matches_ldexp(rng):
    x = rng.standard_normal(100_000).astype(np.float32)
    k = rng.integers(-160, 160, x.shape)
    with np.errstate(all="ignore"):
        want = np.ldexp(x, k.astype(np.int32)).view(np.uint32)
    np.testing.assert_array_equal(n.scale(x.view(np.uint32), k, FP32), want)


def test_golden_imports_only_numpy():
    code = ("import sys, caterpillar.golden.numerics; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('amaranth', 'cocotb') "
            "or m.startswith(('caterpillar.rtl', 'caterpillar.sim', 'caterpillar.software'))]; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == ""
