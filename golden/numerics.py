"""Binary floating-point formats and the arithmetic the hardware implements, bit for bit.

This module is the arithmetic specification of the accelerator: every floating-point unit in
``caterpillar.rtl.fp`` must produce exactly the bit patterns these functions return. It uses NumPy
only and works on arrays of raw bit patterns (unsigned integers), vectorised.

Semantics, for every format (IEEE 754-2019, binary interchange formats, generic in exponent and
fraction width):

* round to nearest, ties to even, in the format of the result;
* gradual underflow: subnormal inputs are honoured and subnormal results are produced (no flush
  to zero); a result too small for the smallest subnormal rounds to a zero of the exact result's
  sign;
* overflow rounds to an infinity of the right sign (round to nearest never saturates);
* every NaN result is the **canonical quiet NaN** of the result format: sign 0, exponent all
  ones, fraction MSB 1 and the rest 0 (``0x7fc00000`` in fp32). Input NaN payloads, signalling
  or quiet, are not propagated; invalid operations (``inf - inf``, ``0 * inf``) produce it too;
* signed zeros: ``x + (-x) = +0``, ``(-0) + (-0) = -0``, the sign of a product is the XOR of the
  operands' signs, also for zero and infinite results.

How the reference is computed: operands are decoded exactly into float64, the exact operation is
done in float64 and the float64 result is rounded once more into the target format by
:func:`round_from_float64`. For ``+``, ``-`` and ``*`` of operands of at most 24 significant bits,
float64 (53 bits) satisfies ``53 >= 2p + 2``, so the double rounding is innocuous and the result
equals a single correct rounding of the exact value.

The multiply-accumulate is ``acc' = round_acc(acc + round_acc(a * b))``: the product is rounded
once into the accumulator format, then added with a second rounding. When the product of two
operands fits the accumulator exactly (bf16 or fp16 operands, fp32 accumulator) the first rounding
is exact and the MAC is fused; with fp32 operands it is NumPy float32 ``acc + a * b``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "FloatFormat", "FP32", "BF16", "FP16", "FORMATS", "format_by_name",
    "to_float64", "from_float", "round_from_float64", "is_nan", "is_inf", "canonicalize_nan",
    "add", "mul", "mac", "convert", "maximum", "minimum", "less", "equal", "scale",
    "scale_exponent_range", "reciprocal_seed_magic", "reciprocal_seed", "exp_constants",
]


@dataclass(frozen=True)
class FloatFormat:
    """An IEEE 754 binary interchange format: one sign bit, ``exp_bits``, ``man_bits``.

    Parameters
    ----------
    name : str
        Short name used on the command line and in configs (``"fp32"``).
    exp_bits : int
        Width of the biased exponent field, 2 to 11.
    man_bits : int
        Width of the stored fraction field (the significand without its hidden bit), 1 to 52.
    """

    name: str
    exp_bits: int
    man_bits: int

    def __post_init__(self):
        if not 2 <= self.exp_bits <= 11:
            raise ValueError(f"exp_bits must be in 2..11, not {self.exp_bits!r}")
        if not 1 <= self.man_bits <= 52:
            raise ValueError(f"man_bits must be in 1..52, not {self.man_bits!r}")

    @property
    def width(self) -> int:
        """Total width of a bit pattern."""
        return 1 + self.exp_bits + self.man_bits

    @property
    def precision(self) -> int:
        """Significand precision in bits, hidden bit included."""
        return self.man_bits + 1

    @property
    def bias(self) -> int:
        """Exponent bias."""
        return (1 << (self.exp_bits - 1)) - 1

    @property
    def exp_max(self) -> int:
        """All-ones exponent field (infinities and NaNs)."""
        return (1 << self.exp_bits) - 1

    @property
    def sign_mask(self) -> int:
        """The sign bit."""
        return 1 << (self.width - 1)

    @property
    def magnitude_mask(self) -> int:
        """Every bit but the sign."""
        return self.sign_mask - 1

    @property
    def man_mask(self) -> int:
        """The fraction field."""
        return (1 << self.man_bits) - 1

    @property
    def inf(self) -> int:
        """Bit pattern of +infinity."""
        return self.exp_max << self.man_bits

    @property
    def canonical_nan(self) -> int:
        """Bit pattern of the canonical quiet NaN (positive, fraction MSB only)."""
        return self.inf | (1 << (self.man_bits - 1))

    @property
    def max_normal(self) -> int:
        """Bit pattern of the largest finite value."""
        return self.inf - 1

    @property
    def dtype(self) -> np.dtype:
        """Smallest unsigned NumPy dtype that holds a bit pattern."""
        for dt in (np.uint8, np.uint16, np.uint32, np.uint64):
            if np.iinfo(dt).bits >= self.width:
                return np.dtype(dt)
        raise AssertionError("unreachable")  # pragma: no cover

    def __str__(self):
        return self.name


FP32 = FloatFormat("fp32", 8, 23)
BF16 = FloatFormat("bf16", 8, 7)
FP16 = FloatFormat("fp16", 5, 10)

#: The formats the accelerator stores operands in, by name.
FORMATS = {f.name: f for f in (FP32, BF16, FP16)}


def format_by_name(name: str) -> FloatFormat:
    """Return the format called ``name``; raise ``ValueError`` listing the known ones."""
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown number format {name!r}; choose one of "
                         f"{', '.join(FORMATS)}") from None


def _bits(x, fmt: FloatFormat) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind not in "ui":
        raise TypeError(f"bit patterns must be an integer array, not {a.dtype}")
    return a.astype(np.uint64) & np.uint64((1 << fmt.width) - 1)


def _fields(bits: np.ndarray, fmt: FloatFormat):
    sign = (bits >> np.uint64(fmt.width - 1)) & np.uint64(1)
    exp = (bits >> np.uint64(fmt.man_bits)) & np.uint64(fmt.exp_max)
    man = bits & np.uint64(fmt.man_mask)
    return sign, exp, man


def is_nan(x, fmt: FloatFormat) -> np.ndarray:
    """Return a boolean array: which bit patterns are NaNs (quiet or signalling)."""
    _, exp, man = _fields(_bits(x, fmt), fmt)
    return (exp == fmt.exp_max) & (man != 0)


def is_inf(x, fmt: FloatFormat) -> np.ndarray:
    """Return a boolean array: which bit patterns are infinities."""
    _, exp, man = _fields(_bits(x, fmt), fmt)
    return (exp == fmt.exp_max) & (man == 0)


def canonicalize_nan(x, fmt: FloatFormat) -> np.ndarray:
    """Replace every NaN by the canonical quiet NaN; return ``fmt.dtype`` bit patterns."""
    b = _bits(x, fmt)
    return np.where(is_nan(b, fmt), np.uint64(fmt.canonical_nan), b).astype(fmt.dtype)


def to_float64(x, fmt: FloatFormat) -> np.ndarray:
    """Decode bit patterns exactly into float64 (NaNs become float64 NaN)."""
    sign, exp, man = _fields(_bits(x, fmt), fmt)
    normal = exp != 0
    sig = (man | (normal.astype(np.uint64) << np.uint64(fmt.man_bits))).astype(np.float64)
    e = np.maximum(exp.astype(np.int64), 1) - fmt.bias - fmt.man_bits
    with np.errstate(all="ignore"):
        v = np.ldexp(sig, e)
    v = np.where(exp == fmt.exp_max, np.where(man == 0, np.inf, np.nan), v)
    return np.where(sign == 1, -v, v)


def round_from_float64(x, fmt: FloatFormat) -> np.ndarray:
    """Round float64 values to ``fmt`` (nearest, ties to even); return bit patterns.

    Subnormal results are produced with correct rounding, overflow gives an infinity, NaN gives
    the canonical NaN. float64 subnormal inputs (below ``2**-1022``) are far under half the
    smallest subnormal of any supported format and round to a signed zero.
    """
    x = np.asarray(x, dtype=np.float64)
    b = np.ascontiguousarray(x).reshape(-1).view(np.uint64)
    sign = b >> np.uint64(63)
    e64 = ((b >> np.uint64(52)) & np.uint64(0x7FF)).astype(np.int64)
    f64 = b & np.uint64((1 << 52) - 1)
    sig = f64 | np.uint64(1 << 52)
    biased = e64 - 1023 + fmt.bias
    # Keep precision bits for normal results; shift further right into the subnormal range.
    shift = (52 - fmt.man_bits) + np.maximum(1 - biased, 0)
    shift = np.minimum(shift, 62).astype(np.uint64)
    kept = sig >> shift
    rem = sig & ((np.uint64(1) << shift) - np.uint64(1))
    half = np.uint64(1) << (shift - np.uint64(1))
    round_up = (rem > half) | ((rem == half) & ((kept & np.uint64(1)) == 1))
    kept = kept + round_up.astype(np.uint64)
    # The hidden bit lands on the exponent field's LSB, so a rounding carry propagates into the
    # exponent (and from the largest subnormal into the smallest normal) by plain addition.
    exp_field = (np.maximum(biased, 1) - 1).astype(np.uint64)
    packed = (exp_field << np.uint64(fmt.man_bits)) + kept
    packed = np.minimum(packed, np.uint64(fmt.inf))
    packed = np.where(e64 == 0, np.uint64(0), packed)
    packed = np.where(e64 == 0x7FF, np.where(f64 == 0, np.uint64(fmt.inf),
                                             np.uint64(fmt.canonical_nan)), packed)
    out = packed | (sign << np.uint64(fmt.width - 1))
    out = np.where((e64 == 0x7FF) & (f64 != 0), np.uint64(fmt.canonical_nan), out)
    return out.astype(fmt.dtype).reshape(x.shape)


def from_float(x, fmt: FloatFormat) -> np.ndarray:
    """Round real numbers (anything NumPy turns into float64) to ``fmt`` bit patterns."""
    return round_from_float64(np.asarray(x, dtype=np.float64), fmt)


def add(a, b, fmt: FloatFormat) -> np.ndarray:
    """Return ``round(a + b)`` in ``fmt``."""
    with np.errstate(all="ignore"):
        return round_from_float64(to_float64(a, fmt) + to_float64(b, fmt), fmt)


def mul(a, b, fmt: FloatFormat, out_fmt: FloatFormat | None = None) -> np.ndarray:
    """Return ``round(a * b)`` in ``out_fmt`` (default: ``fmt``); operands are in ``fmt``."""
    out_fmt = fmt if out_fmt is None else out_fmt
    with np.errstate(all="ignore"):
        return round_from_float64(to_float64(a, fmt) * to_float64(b, fmt), out_fmt)


def mac(a, b, acc, fmt: FloatFormat, acc_fmt: FloatFormat) -> np.ndarray:
    """Return ``round(acc + round(a * b))`` in ``acc_fmt``; ``a``, ``b`` are in ``fmt``."""
    return add(acc, mul(a, b, fmt, acc_fmt), acc_fmt)


def convert(x, fmt: FloatFormat, out_fmt: FloatFormat) -> np.ndarray:
    """Return ``x`` rounded from ``fmt`` into ``out_fmt``."""
    return round_from_float64(to_float64(x, fmt), out_fmt)


def _order_key(bits: np.ndarray, fmt: FloatFormat) -> np.ndarray:
    # Maps bit patterns to unsigned keys whose order is the numeric order, with -0 < +0.
    negative = (bits & np.uint64(fmt.sign_mask)) != 0
    return np.where(negative, ~bits & np.uint64(fmt.magnitude_mask),
                    bits | np.uint64(fmt.sign_mask))


def maximum(a, b, fmt: FloatFormat) -> np.ndarray:
    """Return IEEE 754-2019 ``maximum(a, b)``: NaN if either is NaN, and ``-0 < +0``."""
    a, b = _bits(a, fmt), _bits(b, fmt)
    r = np.where(_order_key(a, fmt) >= _order_key(b, fmt), a, b)
    r = np.where(is_nan(a, fmt) | is_nan(b, fmt), np.uint64(fmt.canonical_nan), r)
    return r.astype(fmt.dtype)


def minimum(a, b, fmt: FloatFormat) -> np.ndarray:
    """Return IEEE 754-2019 ``minimum(a, b)``: NaN if either is NaN, and ``-0 < +0``."""
    a, b = _bits(a, fmt), _bits(b, fmt)
    r = np.where(_order_key(a, fmt) <= _order_key(b, fmt), a, b)
    r = np.where(is_nan(a, fmt) | is_nan(b, fmt), np.uint64(fmt.canonical_nan), r)
    return r.astype(fmt.dtype)


def less(a, b, fmt: FloatFormat) -> np.ndarray:
    """Return IEEE ``a < b`` (false if either is NaN; ``-0 < +0`` is false)."""
    with np.errstate(all="ignore"):
        return to_float64(a, fmt) < to_float64(b, fmt)


def equal(a, b, fmt: FloatFormat) -> np.ndarray:
    """Return IEEE ``a == b`` (false if either is NaN; ``-0 == +0`` is true)."""
    with np.errstate(all="ignore"):
        return to_float64(a, fmt) == to_float64(b, fmt)


def scale_exponent_range(fmt: FloatFormat) -> int:
    """Return ``R`` such that any ``|n| >= R`` already saturates ``scale``.

    For ``n >= R`` every finite nonzero ``x * 2**n`` overflows; for ``n <= -R`` it rounds to
    zero. Hardware may therefore clamp ``n`` to ``[-R, R]`` without changing a result.
    """
    return 2 * fmt.bias + fmt.precision + 2


def scale(x, n, fmt: FloatFormat) -> np.ndarray:
    """Return ``round(x * 2**n)`` in ``fmt`` for integer ``n`` (any magnitude).

    This is the exponent-adjust step of the exp and reciprocal micro-sequences. Infinities and
    zeros keep their sign whatever ``n`` is; NaN gives the canonical NaN.
    """
    r = scale_exponent_range(fmt)
    n = np.clip(np.asarray(n, dtype=np.int64), -r, r)
    with np.errstate(all="ignore"):
        return round_from_float64(np.ldexp(to_float64(x, fmt), n), fmt)


def reciprocal_seed_magic(fmt: FloatFormat) -> int:
    """Return the constant ``K`` of the reciprocal estimate ``bits(1/x) ~ K - bits(x)``.

    ``K = (2 * bias - 1) << man_bits`` plus a correction that centres the estimate's relative
    error for significands in [1, 2) (at most about 12%), for ``x > 0`` normal.
    """
    return ((2 * fmt.bias - 1) << fmt.man_bits) + int(0.9142 * (1 << fmt.man_bits))


def reciprocal_seed(x, fmt: FloatFormat) -> np.ndarray:
    """Return ``(K - bits(x)) mod 2**width``: the RSEED micro-op (no rounding, no checks)."""
    b = _bits(x, fmt)
    mask = np.uint64((1 << fmt.width) - 1)
    with np.errstate(over="ignore"):  # the wrap-around is the definition
        return ((np.uint64(reciprocal_seed_magic(fmt)) - b) & mask).astype(fmt.dtype)


def exp_constants(fmt: FloatFormat, acc: FloatFormat) -> dict:
    """Return the constants of the exp micro-sequence, as ``fmt`` bit patterns.

    ``exp(d) = 2**k * 2**f`` with ``k = round(d log2 e)`` found by adding ``magic`` (its sum's
    low fraction bits hold ``k``) and ``g = k - d log2 e = -f``; ``2**f = 2**-g`` is the degree-6
    Taylor polynomial in ``g`` (``coefficients``, highest degree first, signs alternating).
    ``lower`` clamps ``d`` where ``exp`` underflows anyway, keeping ``k`` inside the
    exponent-adjust range.
    """

    magic = 1.5 * 2.0 ** acc.man_bits
    lower = -(2 * acc.bias + acc.precision + 2) * math.log(2.0)
    coefficients = [(-math.log(2.0)) ** i / math.factorial(i) for i in range(6, -1, -1)]
    as_bits = lambda v: int(from_float(v, fmt))  # noqa: E731
    return {"magic": as_bits(magic), "neg_magic": as_bits(-magic),
            "log2e": as_bits(1 / math.log(2.0)), "neg_log2e": as_bits(-1 / math.log(2.0)),
            "lower": as_bits(lower), "minus_one": as_bits(-1.0), "two": as_bits(2.0),
            "neg_inf": fmt.sign_mask | fmt.inf,
            "coefficients": [as_bits(c) for c in coefficients]}
