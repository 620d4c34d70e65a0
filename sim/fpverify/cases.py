"""Operand generators for the floating-point units: directed corner classes and targeted random.

Every generator returns a list of operand columns (arrays of bit patterns; ``scale``'s second
column holds signed integers) in the order a :class:`~caterpillar.sim.fpverify.bank.BankOp` reads
them, and is deterministic for a given ``numpy.random.Generator``.
"""

from __future__ import annotations

import itertools

import numpy as np

from caterpillar.golden.numerics import FloatFormat, from_float, mul

__all__ = ["special_values", "directed_cases", "random_cases"]


def _u(values, fmt: FloatFormat) -> np.ndarray:
    return np.asarray(values, dtype=np.uint64) & np.uint64((1 << fmt.width) - 1)


def special_values(fmt: FloatFormat) -> np.ndarray:
    """Return bit patterns of every corner class, both signs.

    Zeros, the smallest and largest subnormals, the smallest and largest normals and their
    neighbours, infinities, quiet and signalling NaNs (with payloads), one and its neighbours,
    small integers and halves, and values whose products land on the overflow and underflow
    thresholds.
    """
    one = int(from_float(1.0, fmt))
    mags = [
        0, 1, 2, 3, fmt.man_mask - 1, fmt.man_mask,               # zero, subnormals
        1 << fmt.man_bits, (1 << fmt.man_bits) + 1,                # smallest normals
        fmt.max_normal - 1, fmt.max_normal, fmt.inf,               # largest normals, inf
        fmt.canonical_nan, fmt.canonical_nan | 1, fmt.inf | 1,     # quiet and signalling NaNs
        fmt.inf | (fmt.man_mask >> 1),
        one - 1, one, one + 1, int(from_float(0.5, fmt)), int(from_float(1.5, fmt)),
        int(from_float(2.0, fmt)), int(from_float(3.0, fmt)), int(from_float(0.75, fmt)),
        int(from_float(2.0 ** (fmt.bias // 2), fmt)),             # products near overflow
        int(from_float(2.0 ** (fmt.bias // 2 + 1), fmt)) - 1,
        int(from_float(2.0 ** -(fmt.bias // 2 + fmt.man_bits // 2), fmt)),  # and underflow
    ]
    mags = sorted(set(m & fmt.magnitude_mask for m in mags))
    return _u(mags + [m | fmt.sign_mask for m in mags], fmt)


def _crafted_pairs(op: str, fmt: FloatFormat, rng) -> list[tuple[int, int]]:
    one = int(from_float(1.0, fmt))
    ulp_exp = -fmt.man_bits
    half_ulp = int(from_float(2.0 ** (ulp_exp - 1), fmt))
    s = fmt.sign_mask
    pairs = []
    if op == "add":
        pairs += [
            (one, half_ulp),                      # tie, rounds to even (down)
            (one + 1, half_ulp),                  # tie, rounds to even (up)
            (one, half_ulp + 1), (one, half_ulp - 1),
            (fmt.max_normal, fmt.max_normal),     # overflow
            (fmt.max_normal, int(from_float(2.0 ** (fmt.bias - fmt.man_bits - 1), fmt))),
            (one, one | s), (s, s), (0, s), (s, 0),  # signed zeros
            (1 << fmt.man_bits, 1 | s),           # normal minus subnormal -> subnormal
        ]
        for x in rng.integers(1 << fmt.man_bits, fmt.inf, 64):
            x = int(x)
            pairs += [(x, (x + 1) | s), (x, (x - 1) | s), (x | s, x + 2)]  # cancellation
    if op == "mul":
        min_normal = 1 << fmt.man_bits
        pairs += [
            (int(from_float(2.0, fmt)), int(from_float(3.0, fmt))),  # exact
            (one + 1, one + 1),                                      # inexact
            (min_normal, int(from_float(0.5, fmt))),                 # to subnormal, exact
            (min_normal + 1, int(from_float(0.5, fmt))),             # to subnormal, tie
            (1, int(from_float(0.5, fmt))), (3, int(from_float(0.5, fmt))),  # ties at the bottom
            (1, 1), (1, one - 1),                                    # underflow to zero
            (fmt.max_normal, int(from_float(2.0, fmt))),             # overflow
            (fmt.max_normal, one + 1),
            (0, fmt.inf), (fmt.inf | s, 0), (s, fmt.max_normal),
        ]
    return pairs


def directed_cases(op, rng=None) -> list[np.ndarray]:
    """Return the directed corner cases of bank operation ``op``.

    Binary operations take the cross product of :func:`special_values` plus crafted rounding
    ties, cancellations, overflows and underflows; ``mac`` adds accumulators that cancel the
    product exactly and special accumulators; ``convert`` and ``scale`` take every special value
    and, for 16-bit formats, every bit pattern.
    """
    rng = np.random.default_rng(2) if rng is None else rng
    f, out = op.in_fmt, op.out_fmt
    sv = special_values(f)
    if op.op in ("add", "mul", "max"):
        pairs = list(itertools.product(sv.tolist(), repeat=2))
        pairs += _crafted_pairs(op.op, f, rng)
        a, b = zip(*pairs)
        return [_u(a, f), _u(b, f)]
    if op.op == "mac":

        base = list(itertools.product(sv.tolist(), repeat=2))
        a, b = map(lambda c: _u(c, f), zip(*base))
        acc_sv = special_values(out)
        acc = acc_sv[rng.integers(0, len(acc_sv), len(a))]
        # Accumulators that cancel the (rounded) product exactly, or nearly.
        product = mul(a, b, f, out).astype(np.uint64)
        negated = product ^ np.uint64(out.sign_mask)
        cols_a = np.concatenate([a, a, a, a])
        cols_b = np.concatenate([b, b, b, b])
        cols_c = np.concatenate([acc, negated, negated + np.uint64(1), negated - np.uint64(1)])
        return [cols_a, cols_b, _u(cols_c, out)]
    if op.op == "convert":
        if f.width <= 16:
            return [np.arange(1 << f.width, dtype=np.uint64)]
        # Every target rounding boundary: values whose dropped bits are exactly half, or half
        # plus/minus one, across the whole exponent range (normal and subnormal targets).
        drop = f.man_bits - out.man_bits
        exps = np.arange(0, f.exp_max + 1, dtype=np.uint64)
        keep = rng.integers(0, 1 << out.man_bits, len(exps)).astype(np.uint64)
        half = np.uint64(1 << (drop - 1)) if drop > 0 else np.uint64(0)
        base = (exps << np.uint64(f.man_bits)) | (keep << np.uint64(max(drop, 0)))
        tails = [half, half + np.uint64(1), half - np.uint64(1), np.uint64(0)]
        vals = np.concatenate([base | t for t in tails] + [sv])
        vals = np.concatenate([vals, vals | np.uint64(f.sign_mask)])
        return [_u(vals, f)]
    if op.op == "scale":
        xs = np.arange(1 << f.width, dtype=np.uint64) if f.width <= 16 else sv
        r = 2 * f.bias + f.precision + 2
        ns = [0, 1, -1, 2, -2, f.man_bits, -f.man_bits, f.bias, -f.bias, 2 * f.bias, r, -r,
              r + 1, -(r + 1), 1000, -1000, (1 << 31) - 1, -(1 << 31)]
        grid = list(itertools.product(xs.tolist(), ns))
        x, n = zip(*grid)
        return [_u(x, f), np.asarray(n, dtype=np.int64)]
    raise ValueError(f"no directed cases for {op.key}")


def _near(a: np.ndarray, fmt: FloatFormat, rng) -> np.ndarray:
    """Return values of nearly the same magnitude as ``a``: exponent within 2, random low bits,
    random sign (sums of these cancel massively)."""
    n = len(a)
    exp_shift = rng.integers(-2, 3, n)
    low_bits = rng.integers(0, fmt.man_bits + 1, n)
    noise = rng.integers(0, 1 << 62, n, dtype=np.uint64) & ((np.uint64(1) << low_bits.astype(
        np.uint64)) - np.uint64(1))
    mag = a.astype(np.int64) & fmt.magnitude_mask
    mag = mag + (exp_shift << fmt.man_bits)
    mag = np.clip(mag, 0, fmt.inf - 1).astype(np.uint64) ^ noise
    sign = rng.integers(0, 2, n).astype(np.uint64) << np.uint64(fmt.width - 1)
    return _u((mag & np.uint64(fmt.magnitude_mask)) | sign, fmt)


def random_cases(op, n: int, rng) -> list[np.ndarray]:
    """Return ``n`` random cases of bank operation ``op``: half uniform bit patterns, half
    targeted (near-equal magnitudes for add, max and mac cancellation; exponents near the
    result's overflow and underflow thresholds for mul, convert and scale)."""
    f, out = op.in_fmt, op.out_fmt
    half = n // 2
    rest = n - half

    def uniform(fmt, k):
        return rng.integers(0, 1 << fmt.width, k, dtype=np.uint64)

    def with_exponent(fmt, k, lo, hi):
        exps = rng.integers(max(lo, 0), min(hi, fmt.exp_max) + 1, k).astype(np.uint64)
        man = rng.integers(0, 1 << fmt.man_bits, k, dtype=np.uint64)
        sign = rng.integers(0, 2, k).astype(np.uint64)
        return (sign << np.uint64(fmt.width - 1)) | (exps << np.uint64(fmt.man_bits)) | man

    a = np.concatenate([uniform(f, half), uniform(f, rest)])
    if op.op in ("add", "max"):
        b = np.concatenate([uniform(f, half), _near(a[half:], f, rng)])
        return [a, b]
    if op.op == "mul":
        # Exponent pairs whose product lands near the result's overflow threshold, its smallest
        # normal, or the bottom of its subnormal range.
        a[half:] = with_exponent(f, rest, 1, f.exp_max - 1)
        e_a = ((a[half:] >> np.uint64(f.man_bits)) & np.uint64(f.exp_max)).astype(np.int64)
        target = rng.choice([out.exp_max, 1, -out.man_bits], rest) + rng.integers(-2, 3, rest)
        e_b = np.clip(target - e_a + 2 * f.bias - out.bias, 0, f.exp_max - 1)
        b_tail = with_exponent(f, rest, 0, 0) | (e_b.astype(np.uint64) << np.uint64(f.man_bits))
        return [a, np.concatenate([uniform(f, half), b_tail])]
    if op.op == "mac":

        b = np.concatenate([uniform(f, half), uniform(f, rest)])
        product = mul(a[half:], b[half:], f, out).astype(np.uint64)
        acc = np.concatenate([uniform(out, half), _near(product ^ np.uint64(out.sign_mask),
                                                        out, rng)])
        return [a, b, acc]
    if op.op == "convert":
        # Source exponents around the destination's overflow and subnormal thresholds.
        centre = np.array([f.bias + out.bias, f.bias - out.bias, f.bias - out.bias
                           - out.man_bits])
        e = rng.choice(centre, rest) + rng.integers(-3, 4, rest)
        a[half:] = with_exponent(f, rest, 0, 0) | (np.clip(e, 0, f.exp_max).astype(np.uint64)
                                                   << np.uint64(f.man_bits))
        return [a]
    if op.op == "scale":
        r = 2 * f.bias + f.precision + 2
        n_col = np.concatenate([rng.integers(-r - 4, r + 5, half),
                                rng.integers(-f.bias - f.precision - 2, f.bias + 3, rest)])
        return [a, n_col]
    raise ValueError(f"no random cases for {op.key}")
