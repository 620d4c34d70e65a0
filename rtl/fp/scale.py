"""Pipelined multiply-by-power-of-two (exponent adjust)."""

from amaranth.hdl import Module, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from caterpillar.golden.numerics import FloatFormat, scale_exponent_range
from caterpillar.rtl.fp.arith import (
    leading_zeros,
    normalize,
    round_pack,
    special_result,
    unpack,
    widen_signed,
)
from caterpillar.rtl.fp.pipeline import Pipeline, keep

__all__ = ["FPScale", "scale_shift_shape"]


def scale_shift_shape(fmt: FloatFormat):
    """Return the signed shape of the exponent operand ``n``: it covers every ``n`` that does
    not already saturate (see :func:`~caterpillar.golden.numerics.scale_exponent_range`)."""
    return signed(scale_exponent_range(fmt).bit_length() + 1)


class FPScale(wiring.Component):
    """``result = round(x * 2**n)`` in ``fmt``: the exponent-adjust step of exp and reciprocal.

    ``n`` is a signed integer of :func:`scale_shift_shape` bits; any ``n`` that can be
    represented gives the exactly rounded result (subnormal results, overflow to infinity).
    Infinities and zeros are unchanged, NaN becomes the canonical NaN.

    Contract: fully pipelined, one operation per cycle, result ``latency`` cycles after its
    operands; no backpressure; nothing valid after reset until an input arrives.

    Parameters
    ----------
    fmt : FloatFormat
        Format of ``x`` and of the result.
    latency : int
        Register stages.

    Members
    -------
    operands : In(stream.Signature({"x", "n"}, always_ready=True))
        Value and signed power of two.
    result : Out(stream.Signature(fmt.width, always_ready=True))
        The scaled value.
    """

    # unpack and add exponents, leading-zero count, normalise shift, round and pack.
    STEP_WEIGHTS = (2, 2, 3, 3)

    def __init__(self, fmt: FloatFormat, *, latency: int = 1):
        self.fmt = fmt
        self.latency = latency
        operands = data.StructLayout({"x": fmt.width, "n": scale_shift_shape(fmt)})
        super().__init__({
            "operands": In(stream.Signature(operands, always_ready=True)),
            "result": Out(stream.Signature(fmt.width, always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        fmt = self.fmt
        pipe = Pipeline(m, self.STEP_WEIGHTS, self.latency, self.operands.valid, name="scl")
        v = pipe.begin({"x": self.operands.payload.x, "n": self.operands.payload.n})

        x = unpack(m, v["x"], fmt, "x")
        width = fmt.precision + 2
        v = pipe.step({
            "sign": x["sign"], "nan": x["nan"], "inf": x["inf"],
            "exp": widen_signed(x["exp"]) + v["n"],
            "sig": x["sig"].shift_left(2),
        })
        v = pipe.step({**v, "lzc": leading_zeros(m, v["sig"], "lzc")})
        n = normalize(m, v["exp"], v["sig"][:width], v["lzc"], "norm")
        v = pipe.step({**keep(v, "sign", "nan", "inf"), **n})
        packed = round_pack(m, v["sign"], v["exp"], v["sig"], v["sticky"], fmt, "rnd")
        v = pipe.step({"result": special_result(packed, v["sign"], v["nan"], v["inf"], fmt)})

        pipe.check_complete()
        m.d.comb += [self.result.payload.eq(v["result"]), self.result.valid.eq(pipe.valid)]
        return m
