"""Combinational building blocks shared by the floating-point units.

These functions add combinational logic (no state) to a module and return the resulting values.
The rounding they implement is the one :mod:`caterpillar.golden.numerics` specifies: round to
nearest even, gradual underflow, overflow to infinity. The shared final stage is split in three
steps so that units can pipeline it: :func:`leading_zeros`, :func:`normalize`,
:func:`round_pack`.

An intermediate result is carried as ``(sign, exp, sig, sticky)`` where ``sig`` is a ``W``-bit
unsigned significand whose bit ``W-1`` has weight ``2**(exp - bias)`` in the *result* format
(``exp`` is a signed biased exponent, possibly out of range), and ``sticky`` records nonzero bits
already dropped below bit 0.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Mux, Value

from caterpillar.golden.numerics import FloatFormat
from caterpillar.rtl.fp.pipeline import named

__all__ = ["widen_signed", "unpack", "leading_zeros", "normalize", "round_pack",
           "special_result"]


def widen_signed(v: Value) -> Value:
    """Return unsigned ``v`` as a signed value one bit wider (same numeric value)."""
    return Cat(v, Const(0, 1)).as_signed()


def unpack(m, x: Value, fmt: FloatFormat, name: str) -> dict:
    """Split a bit pattern into fields and classes.

    Returns a dict of values: ``sign``; ``exp`` (the effective biased exponent, 1 for
    subnormals, so that ``sig * 2**(exp - bias - man_bits)`` is the value); ``sig``
    (``precision`` bits, hidden bit included); ``zero``, ``inf``, ``nan``.
    """
    x = Value.cast(x)
    man = x[:fmt.man_bits]
    exp = x[fmt.man_bits:fmt.man_bits + fmt.exp_bits]
    normal_or_special = named(m, exp.any(), f"{name}_normal_or_special")
    exp_all_ones = named(m, exp.all(), f"{name}_exp_all_ones")
    man_nonzero = named(m, man.any(), f"{name}_man_nonzero")
    return {
        "sign": x[fmt.width - 1],
        "exp": named(m, Mux(normal_or_special, exp, 1), f"{name}_exp"),
        "sig": Cat(man, normal_or_special),
        "zero": ~normal_or_special & ~man_nonzero,
        "inf": exp_all_ones & ~man_nonzero,
        "nan": exp_all_ones & man_nonzero,
    }


def leading_zeros(m, v: Value, name: str) -> Value:
    """Return the number of leading zero bits of ``v`` (``len(v)`` when ``v`` is 0).

    Built as a balanced tree, so its depth is logarithmic in the width.
    """
    v = Value.cast(v)
    width = len(v)
    size = 1
    while size < width + 1:
        size *= 2
    # A one below the LSB stops the count at exactly `width` when v is all zeros.
    padded = Cat(Const(0, size - width - 1), Const(1, 1), v)

    def tree(x, path):
        if len(x) == 1:
            return ~x[0], Const(0, 0)
        half = len(x) // 2
        lo_zero, lo_count = tree(x[:half], path + "l")
        hi_zero, hi_count = tree(x[half:], path + "h")
        count = Mux(hi_zero, Cat(lo_count, Const(1, 1)), Cat(hi_count, Const(0, 1)))
        return (named(m, hi_zero & lo_zero, f"{name}_z{path}"),
                named(m, count, f"{name}_n{path}"))

    _, count = tree(padded, "")
    return count


def normalize(m, exp: Value, sig: Value, lzc: Value, name: str) -> dict:
    """Shift ``sig`` so that it is normalised, or denormalised into the subnormal range.

    The shift is ``min(lzc, exp - 1)``: left when positive (no bits are lost), right when
    negative (dropped bits go to ``sticky``). Afterwards the result's biased exponent is ``exp
    - shift >= 1`` and ``sig``'s MSB is the hidden bit (0 for a subnormal result, whose exponent
    is then 1). Returns ``exp``, ``sig`` and ``sticky`` (only the bits dropped here).
    """
    width = len(sig)
    exp = Value.cast(exp)
    assert exp.shape().signed, "normalize() needs a signed exponent"
    limit = exp - 1
    lzc_s = widen_signed(lzc)
    shift = named(m, Mux(lzc_s < limit, lzc_s, limit), f"{name}_shift")
    right = -shift
    # A right shift beyond the width drops everything; clamping keeps the shifter narrow.
    right_c = named(m, Mux(right > width, width, right)[:(width + 1).bit_length()],
                    f"{name}_right")
    all_ones = Const((1 << width) - 1, width)
    left_sig = (sig << shift[:len(lzc)])[:width]
    right_sig = sig >> right_c
    right_sticky = (sig & ~(all_ones << right_c)[:width]).any()
    negative = shift < 0
    return {
        "exp": (exp - shift).as_signed(),
        "sig": Mux(negative, right_sig, left_sig),
        "sticky": negative & right_sticky,
    }


def round_pack(m, sign: Value, exp: Value, sig: Value, sticky: Value, fmt: FloatFormat,
               name: str) -> Value:
    """Round a normalised significand to nearest even and pack it into ``fmt``.

    ``sig`` (width ``W >= precision + 1``) comes from :func:`normalize`; ``sticky`` is the OR of
    every dropped bit. A rounding carry propagates from the fraction into the exponent; a result
    at or beyond the all-ones exponent becomes infinity. A zero significand gives a signed zero.
    """
    width = len(sig)
    p = fmt.precision
    assert width >= p + 1, "the significand needs at least one guard bit"
    top = sig[width - p:]
    guard = sig[width - p - 1]
    below = sig[:width - p - 1].any() if width - p - 1 > 0 else Const(0, 1)
    round_up = guard & (below | sticky | top[0])
    # The hidden bit of `top` adds one to the exponent field, hence `exp - 1`.
    packed = named(m, Cat(Const(0, fmt.man_bits), (Value.cast(exp) - 1).as_unsigned())
                   + top + round_up, f"{name}_packed")
    magnitude = Mux(packed >= fmt.inf, fmt.inf, packed[:fmt.width - 1])
    return Cat(Mux(sig.any(), magnitude, 0), sign)


def special_result(value: Value, sign: Value, nan: Value, inf: Value,
                   fmt: FloatFormat) -> Value:
    """Return ``value`` unless the operation's result is NaN (canonical) or infinite (signed)."""
    inf_bits = Cat(Const(fmt.inf, fmt.width - 1), sign)
    return Mux(nan, fmt.canonical_nan, Mux(inf, inf_bits, value))
