"""Pipelined floating-point adder."""

from amaranth.hdl import Cat, Const, Module, Mux
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
from caterpillar.rtl.fp.pipeline import Pipeline, keep, named

__all__ = ["FPAdder"]

# Guard, round and sticky bits below the significand during alignment: enough for a correctly
# rounded sum, since a subtraction that loses more than one leading bit is exact.
_GRS = 3


class FPAdder(wiring.Component):
    """``result = round(a + b)`` in ``fmt``.

    Contract: fully pipelined, one addition accepted every cycle, the sum appears exactly
    ``latency`` cycles after its operands (``latency = 0`` is combinational). No backpressure.
    After reset no result is valid until operands arrive. Nearest-even rounding, subnormals,
    ``x + (-x) = +0``, ``(-0) + (-0) = -0``, ``inf - inf`` and any NaN operand give the
    canonical NaN.

    Parameters
    ----------
    fmt : FloatFormat
        Operand and result format.
    latency : int
        Register stages.

    Members
    -------
    operands : In(stream.Signature({"a", "b"}, always_ready=True))
        The two addends.
    result : Out(stream.Signature(fmt.width, always_ready=True))
        The rounded sum.
    """

    # unpack and order, align, add, leading-zero count, normalise shift, round and pack.
    STEP_WEIGHTS = (2, 3, 2, 2, 3, 3)

    def __init__(self, fmt: FloatFormat, *, latency: int = 3):
        self.fmt = fmt
        self.latency = latency
        operands = data.StructLayout({"a": fmt.width, "b": fmt.width})
        super().__init__({
            "operands": In(stream.Signature(operands, always_ready=True)),
            "result": Out(stream.Signature(fmt.width, always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        fmt = self.fmt
        p = fmt.precision
        pipe = Pipeline(m, self.STEP_WEIGHTS, self.latency, self.operands.valid, name="add")

        v = pipe.begin({"a": self.operands.payload.a, "b": self.operands.payload.b})

        a, b = unpack(m, v["a"], fmt, "a"), unpack(m, v["b"], fmt, "b")
        magnitude = fmt.width - 1
        a_bigger = named(m, v["a"][:magnitude] >= v["b"][:magnitude], "a_bigger")
        big = {k: Mux(a_bigger, a[k], b[k]) for k in ("sign", "exp", "sig")}
        small = {k: Mux(a_bigger, b[k], a[k]) for k in ("sign", "exp", "sig")}
        nan = a["nan"] | b["nan"] | (a["inf"] & b["inf"] & (a["sign"] ^ b["sign"]))
        v = pipe.step({
            "nan": nan, "inf": (a["inf"] | b["inf"]) & ~nan,
            "inf_sign": Mux(a["inf"], a["sign"], b["sign"]),
            "zero_sign": a["sign"] & b["sign"],
            "subtract": a["sign"] ^ b["sign"],
            "sign": big["sign"], "exp": big["exp"], "big_sig": big["sig"],
            "small_sig": small["sig"], "distance": big["exp"] - small["exp"],
        })

        width = p + _GRS
        distance = Mux(v["distance"] > width, width, v["distance"])[:width.bit_length()]
        small_ext = Cat(Const(0, _GRS), v["small_sig"])
        dropped = (small_ext & ~(Const((1 << width) - 1, width) << distance)[:width]).any()
        aligned = (small_ext >> distance) | dropped
        v = pipe.step({**keep(v, "nan", "inf", "inf_sign", "zero_sign", "subtract", "sign",
                              "exp"),
                       "big_ext": Cat(Const(0, _GRS), v["big_sig"]), "aligned": aligned})

        total = Mux(v["subtract"], v["big_ext"] - v["aligned"], v["big_ext"] + v["aligned"])
        v = pipe.step({**keep(v, "nan", "inf", "inf_sign", "zero_sign", "sign"),
                       # The sum's top bit (the carry) has weight 2**(exp_big + 1 - bias).
                       "exp": widen_signed(v["exp"] + 1), "sig": total[:width + 1]})

        v = pipe.step({**v, "lzc": leading_zeros(m, v["sig"], "lzc")})

        n = normalize(m, v["exp"], v["sig"], v["lzc"], "norm")
        v = pipe.step({**keep(v, "nan", "inf", "inf_sign", "zero_sign", "sign"), **n,
                       "zero": ~v["sig"].any()})

        packed = round_pack(m, v["sign"], v["exp"], v["sig"], v["sticky"], fmt, "rnd")
        packed = Mux(v["zero"], Cat(Const(0, fmt.width - 1), v["zero_sign"]), packed)
        v = pipe.step({"result": special_result(packed, v["inf_sign"], v["nan"], v["inf"],
                                                fmt)})

        pipe.check_complete()
        m.d.comb += [self.result.payload.eq(v["result"]), self.result.valid.eq(pipe.valid)]
        return m
