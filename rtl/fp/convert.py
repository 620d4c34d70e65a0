"""Pipelined format conversion."""

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
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

__all__ = ["FPConvert"]


class FPConvert(wiring.Component):
    """``result = round(x)`` from ``fmt`` into ``out_fmt`` (e.g. fp32 to bf16, fp16 to fp32).

    Narrowing rounds to nearest even, produces subnormals and overflows to infinity; widening is
    exact. NaNs become the canonical NaN of ``out_fmt``.

    Contract: fully pipelined, one conversion per cycle, result ``latency`` cycles after its
    input; no backpressure; nothing valid after reset until an input arrives.

    Parameters
    ----------
    fmt, out_fmt : FloatFormat
        Source and destination formats.
    latency : int
        Register stages.

    Members
    -------
    operands : In(stream.Signature(fmt.width, always_ready=True))
        The value to convert.
    result : Out(stream.Signature(out_fmt.width, always_ready=True))
        The converted value.
    """

    # unpack, leading-zero count, normalise shift, round and pack.
    STEP_WEIGHTS = (1, 2, 3, 3)

    def __init__(self, fmt: FloatFormat, out_fmt: FloatFormat, *, latency: int = 1):
        self.fmt = fmt
        self.out_fmt = out_fmt
        self.latency = latency
        super().__init__({
            "operands": In(stream.Signature(fmt.width, always_ready=True)),
            "result": Out(stream.Signature(out_fmt.width, always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        fmt, out = self.fmt, self.out_fmt
        pipe = Pipeline(m, self.STEP_WEIGHTS, self.latency, self.operands.valid, name="cvt")
        v = pipe.begin({"x": self.operands.payload})

        x = unpack(m, v["x"], fmt, "x")
        width = max(fmt.precision, out.precision + 2)
        v = pipe.step({
            "sign": x["sign"], "nan": x["nan"], "inf": x["inf"],
            # The significand's top bit has weight 2**(exp - fmt.bias).
            "exp": widen_signed(x["exp"]) + (out.bias - fmt.bias),
            "sig": x["sig"].shift_left(width - fmt.precision),
        })
        v = pipe.step({**v, "lzc": leading_zeros(m, v["sig"], "lzc")})
        n = normalize(m, v["exp"], v["sig"], v["lzc"], "norm")
        v = pipe.step({**keep(v, "sign", "nan", "inf"), **n})
        packed = round_pack(m, v["sign"], v["exp"], v["sig"], v["sticky"], out, "rnd")
        v = pipe.step({"result": special_result(packed, v["sign"], v["nan"], v["inf"], out)})

        pipe.check_complete()
        m.d.comb += [self.result.payload.eq(v["result"]), self.result.valid.eq(pipe.valid)]
        return m
