"""Pipelined multiply-accumulate unit."""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from caterpillar.golden.numerics import FloatFormat
from caterpillar.rtl.fp.adder import FPAdder
from caterpillar.rtl.fp.multiplier import FPMultiplier

__all__ = ["FPMac"]


class FPMac(wiring.Component):
    """``result = round_acc(acc + round_acc(a * b))``: the MAC of SPEC section 3.

    The product of the operands (format ``fmt``) is rounded into the accumulator format
    ``acc_fmt``, then added to ``acc`` with a second rounding. When the product fits the
    accumulator exactly (bf16 or fp16 operands, fp32 accumulator) this is a fused MAC.

    Contract: fully pipelined, one MAC accepted every cycle, the result appears exactly
    ``mul_latency + add_latency`` cycles after its operands. ``acc`` travels beside the product
    through ``mul_latency`` delay registers and enters the adder with it. No backpressure. After
    reset no result is valid until operands arrive.

    Parameters
    ----------
    fmt : FloatFormat
        Format of ``a`` and ``b``.
    acc_fmt : FloatFormat
        Format of ``acc`` and of the result.
    mul_latency, add_latency : int
        Register stages of the multiplier and of the adder.

    Members
    -------
    operands : In(stream.Signature({"a", "b", "acc"}, always_ready=True))
        Multiplicands and the accumulator value to add to.
    result : Out(stream.Signature(acc_fmt.width, always_ready=True))
        The new accumulator value.
    """

    def __init__(self, fmt: FloatFormat, acc_fmt: FloatFormat, *, mul_latency: int = 2,
                 add_latency: int = 3):
        self.fmt = fmt
        self.acc_fmt = acc_fmt
        self.mul_latency = mul_latency
        self.add_latency = add_latency
        operands = data.StructLayout({"a": fmt.width, "b": fmt.width, "acc": acc_fmt.width})
        super().__init__({
            "operands": In(stream.Signature(operands, always_ready=True)),
            "result": Out(stream.Signature(acc_fmt.width, always_ready=True)),
        })

    @property
    def latency(self) -> int:
        """Cycles from operands to result."""
        return self.mul_latency + self.add_latency

    def elaborate(self, platform):
        m = Module()
        m.submodules.mul = mul = FPMultiplier(self.fmt, self.acc_fmt, latency=self.mul_latency)
        m.submodules.add = add = FPAdder(self.acc_fmt, latency=self.add_latency)

        m.d.comb += [
            mul.operands.valid.eq(self.operands.valid),
            mul.operands.payload.a.eq(self.operands.payload.a),
            mul.operands.payload.b.eq(self.operands.payload.b),
        ]
        acc = self.operands.payload.acc
        for stage in range(self.mul_latency):
            delayed = Signal(self.acc_fmt.width, name=f"acc_d{stage + 1}", reset_less=True)
            m.d.sync += delayed.eq(acc)
            acc = delayed

        m.d.comb += [
            add.operands.valid.eq(mul.result.valid),
            add.operands.payload.a.eq(acc),
            add.operands.payload.b.eq(mul.result.payload),
        ]
        wiring.connect(m, wiring.flipped(self.result), add.result)
        return m
