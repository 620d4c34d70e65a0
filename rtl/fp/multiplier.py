"""Pipelined floating-point multiplier."""

from amaranth.hdl import Module
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from caterpillar.golden.numerics import FloatFormat
from caterpillar.rtl.fp.arith import (
    leading_zeros,
    normalize,
    round_pack,
    special_result,
    unpack,
    widen_signed,
)
from caterpillar.rtl.fp.pipeline import Pipeline, keep

__all__ = ["FPMultiplier"]


class FPMultiplier(wiring.Component):
    """``result = round(a * b)``, operands in ``fmt``, result rounded into ``out_fmt``.

    Contract: fully pipelined, one operation accepted every cycle, the result appears exactly
    ``latency`` cycles after its operands (``latency = 0`` is combinational). No backpressure:
    the consumer must take every result. After reset no result is valid until operands arrive.
    Rounding is nearest-even with subnormal inputs and outputs, overflow to infinity, canonical
    NaN (see :mod:`caterpillar.golden.numerics`).

    Parameters
    ----------
    fmt : FloatFormat
        Operand format.
    out_fmt : FloatFormat, optional
        Result format (default ``fmt``). A wider result (e.g. bf16 operands, fp32 result) makes
        the product exact unless it leaves the result's exponent range.
    latency : int
        Register stages.

    Members
    -------
    operands : In(stream.Signature({"a", "b"}, always_ready=True))
        The two operands.
    result : Out(stream.Signature(out_fmt.width, always_ready=True))
        The rounded product.
    """

    # unpack, significand product, leading-zero count, normalise shift, round and pack.
    STEP_WEIGHTS = (1, 4, 2, 3, 3)

    def __init__(self, fmt: FloatFormat, out_fmt: FloatFormat = None, *, latency: int = 2):
        self.fmt = fmt
        self.out_fmt = fmt if out_fmt is None else out_fmt
        self.latency = latency
        operands = data.StructLayout({"a": fmt.width, "b": fmt.width})
        super().__init__({
            "operands": In(stream.Signature(operands, always_ready=True)),
            "result": Out(stream.Signature(self.out_fmt.width, always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        fmt, out = self.fmt, self.out_fmt
        pipe = Pipeline(m, self.STEP_WEIGHTS, self.latency, self.operands.valid, name="mul")

        v = pipe.begin({"a": self.operands.payload.a, "b": self.operands.payload.b})

        a, b = unpack(m, v["a"], fmt, "a"), unpack(m, v["b"], fmt, "b")
        nan = a["nan"] | b["nan"] | (a["inf"] & b["zero"]) | (a["zero"] & b["inf"])
        # Weight of the product's top bit (position 2p-1): 2**(ea + eb - 2 bias + 1).
        exp = widen_signed(a["exp"] + b["exp"]) + (out.bias - 2 * fmt.bias + 1)
        v = pipe.step({
            "sign": a["sign"] ^ b["sign"], "nan": nan, "inf": (a["inf"] | b["inf"]) & ~nan,
            "exp": exp,
            "sig_a": a["sig"], "sig_b": b["sig"],
        })

        width = max(2 * fmt.precision, out.precision + 2)
        product = (v["sig_a"] * v["sig_b"]).shift_left(width - 2 * fmt.precision)
        v = pipe.step({**keep(v, "sign", "nan", "inf", "exp"), "sig": product[:width]})

        v = pipe.step({**v, "lzc": leading_zeros(m, v["sig"], "lzc")})

        n = normalize(m, v["exp"], v["sig"], v["lzc"], "norm")
        v = pipe.step({**keep(v, "sign", "nan", "inf"), **n})

        packed = round_pack(m, v["sign"], v["exp"], v["sig"], v["sticky"], out, "rnd")
        v = pipe.step({"result": special_result(packed, v["sign"], v["nan"], v["inf"], out)})

        pipe.check_complete()
        m.d.comb += [self.result.payload.eq(v["result"]), self.result.valid.eq(pipe.valid)]
        return m

