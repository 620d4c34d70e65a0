"""Independent oracles for the floating-point units: NumPy's own arithmetic and Berkeley SoftFloat.

Neither oracle shares code with :mod:`caterpillar.golden.numerics`: the NumPy oracle uses the
native ``float32``/``float16`` dtypes and ``ml_dtypes.bfloat16`` (a NumPy dtype that computes in
float32 and rounds once, which is exact for +, * of bf16 operands), the SoftFloat oracle calls
the C library through ``softfloatpy`` one case at a time. Results are bit patterns with NaNs
canonicalised, so comparing them with the hardware compares NaN as a class.
"""

from __future__ import annotations

import struct

import ml_dtypes
import numpy as np
import softfloatpy as sf

from caterpillar.golden.numerics import BF16, FP16, FP32, FloatFormat, canonicalize_nan

__all__ = ["numpy_oracle", "softfloat_oracle"]

_DTYPES = {"fp32": np.dtype(np.float32), "fp16": np.dtype(np.float16),
           "bf16": np.dtype(ml_dtypes.bfloat16)}


def _view(bits, fmt: FloatFormat) -> np.ndarray:
    return np.asarray(bits).astype(fmt.dtype).view(_DTYPES[fmt.name])


def _bits(values: np.ndarray, fmt: FloatFormat) -> np.ndarray:
    return canonicalize_nan(values.astype(_DTYPES[fmt.name]).view(fmt.dtype), fmt)


def numpy_oracle(op, cols) -> np.ndarray:
    """Return the result bit patterns of bank operation ``op`` computed by NumPy."""
    f, out = op.in_fmt, op.out_fmt
    with np.errstate(all="ignore"):
        if op.op == "add":
            return _bits(_view(cols[0], f) + _view(cols[1], f), f)
        if op.op == "mul":
            return _bits(_view(cols[0], f) * _view(cols[1], f), f)
        if op.op == "mac":
            a, b, acc = _view(cols[0], f), _view(cols[1], f), _view(cols[2], out)
            if f == out:
                return _bits(acc + a * b, out)
            # The float64 product of two formats of at most 24 bits is exact: one rounding.
            product = (a.astype(np.float64) * b.astype(np.float64)).astype(_DTYPES[out.name])
            return _bits(acc + product, out)
        if op.op == "convert":
            return _bits(_view(cols[0], f).astype(_DTYPES[out.name]), out)
        if op.op == "max":
            a, b = _view(cols[0], f), _view(cols[1], f)
            r = np.maximum(a, b)
            # NumPy returns either zero for max(-0, +0); IEEE 754-2019 maximum says +0.
            both_zero = (a == 0) & (b == 0)
            positive = ~np.signbit(a) | ~np.signbit(b)
            r = np.where(both_zero, np.where(positive, 0.0, -0.0).astype(r.dtype), r)
            return _bits(r, f)
        if op.op == "scale":
            x = _view(cols[0], f)
            n = np.clip(np.asarray(cols[1], dtype=np.int64), -1000, 1000).astype(np.int32)
            if f == FP32:
                return _bits(np.ldexp(x, n), f)
            # x * 2**n of an 8- or 11-bit significand is exact in float64: one rounding.
            return _bits(np.ldexp(x.astype(np.float64), n), f)
    raise ValueError(f"no NumPy oracle for {op.key}")


def _sf_value(bits: int, fmt: FloatFormat):

    if fmt == FP32:
        return sf.Float32.from_bytes(struct.pack(">I", bits))
    if fmt == FP16:
        return sf.Float16.from_bytes(struct.pack(">H", bits))
    # bf16 has no arithmetic in SoftFloat: widen exactly to binary32.
    return sf.BFloat16.from_bytes(struct.pack(">H", bits)).to_f32()


def _sf_bits(value, fmt: FloatFormat) -> int:

    if fmt == BF16:
        if not isinstance(value, sf.BFloat16):
            value = sf.f32_to_bf16(value)
        return struct.unpack(">H", value.to_bytes())[0]
    if fmt == FP32:
        if not isinstance(value, sf.Float32):
            value = value.to_f32()
        return struct.unpack(">I", value.to_bytes())[0]
    if not isinstance(value, sf.Float16):
        value = value.to_f16()
    return struct.unpack(">H", value.to_bytes())[0]


def softfloat_oracle(op, cols) -> np.ndarray:
    """Return the result bit patterns of bank operation ``op`` computed by Berkeley SoftFloat.

    bf16 operations run in binary32 and round once at the end (``f32_to_bf16``); products and
    sums of bf16 values are exact or innocuously double-rounded there (24 >= 2*8 + 2).
    """

    sf.set_rounding_mode(sf.RoundingMode.NEAR_EVEN)
    f, out = op.in_fmt, op.out_fmt
    cols = [np.asarray(c).tolist() for c in cols]
    results = []
    for i in range(len(cols[0])):
        a = _sf_value(cols[0][i] & ((1 << f.width) - 1), f)
        if op.op == "add":
            r = a + _sf_value(cols[1][i] & ((1 << f.width) - 1), f)
        elif op.op == "mul":
            r = a * _sf_value(cols[1][i] & ((1 << f.width) - 1), f)
        elif op.op == "mac":
            b = _sf_value(cols[1][i] & ((1 << f.width) - 1), f)
            acc = _sf_value(cols[2][i] & ((1 << out.width) - 1), out)
            product = a.to_f64() * b.to_f64()  # exact: at most 2 x 24 significant bits
            product = product.to_f32() if out == FP32 else product.to_f16()
            r = acc + product
        elif op.op == "convert":
            r = a.to_f64()
            r = r.to_f32() if out != FP16 else r.to_f16()
            if out == BF16:
                r = sf.f32_to_bf16(r)
        elif op.op == "max":
            b = _sf_value(cols[1][i] & ((1 << f.width) - 1), f)
            if _is_nan(a) or _is_nan(b):
                results.append(f.canonical_nan)
                continue
            a_bits, b_bits = _sf_bits(a, f), _sf_bits(b, f)
            if a == b:  # equal values: only the zeros differ, and +0 is the larger
                r_bits = a_bits if not a_bits >> (f.width - 1) else b_bits
            else:
                r_bits = b_bits if a < b else a_bits
            results.append(r_bits)
            continue
        elif op.op == "scale":
            n = max(-1000, min(1000, int(cols[1][i])))
            r = a.to_f64() * sf.Float64.from_bytes(struct.pack(">d", 2.0 ** n))
            r = r.to_f32() if f != FP16 else r.to_f16()
            if f == BF16:
                r = sf.f32_to_bf16(r)
        else:
            raise ValueError(f"no SoftFloat oracle for {op.key}")
        results.append(_sf_bits(r, out))
    return canonicalize_nan(np.array(results, dtype=np.uint64), out)


def _is_nan(value) -> bool:
    return value != value
