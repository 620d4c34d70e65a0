"""An array of independent MAC units sharing one valid bit (a synthesis and timing vehicle)."""

from amaranth.hdl import Module
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from caterpillar.golden.numerics import FloatFormat
from caterpillar.rtl.fp.mac import FPMac

__all__ = ["MacArray"]


class MacArray(wiring.Component):
    """``count`` :class:`~caterpillar.rtl.fp.mac.FPMac` units operating in lock step.

    This is the arithmetic of an ``nr x nr`` PE array without its memories and buses: what
    synthesis reports and Fmax measurements are about. Contract: each cycle, ``count`` MACs
    enter together; their results leave together ``mul_latency + add_latency`` cycles later.
    No backpressure; nothing valid after reset.

    Parameters
    ----------
    fmt, acc_fmt : FloatFormat
        Operand and accumulator formats.
    count : int
        Number of MAC units.
    mul_latency, add_latency : int
        Pipeline stages of each unit's multiplier and adder.

    Members
    -------
    operands : In(stream.Signature(ArrayLayout({"a", "b", "acc"}, count), always_ready=True))
    result : Out(stream.Signature(ArrayLayout(acc_fmt.width, count), always_ready=True))
    """

    def __init__(self, fmt: FloatFormat, acc_fmt: FloatFormat, *, count: int = 16,
                 mul_latency: int = 2, add_latency: int = 3):
        self.fmt, self.acc_fmt, self.count = fmt, acc_fmt, count
        self.mul_latency, self.add_latency = mul_latency, add_latency
        lane = data.StructLayout({"a": fmt.width, "b": fmt.width, "acc": acc_fmt.width})
        super().__init__({
            "operands": In(stream.Signature(data.ArrayLayout(lane, count), always_ready=True)),
            "result": Out(stream.Signature(data.ArrayLayout(acc_fmt.width, count),
                                           always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        for i in range(self.count):
            mac = FPMac(self.fmt, self.acc_fmt, mul_latency=self.mul_latency,
                        add_latency=self.add_latency)
            m.submodules[f"mac{i}"] = mac
            m.d.comb += [mac.operands.valid.eq(self.operands.valid),
                         mac.operands.payload.eq(self.operands.payload[i]),
                         self.result.payload[i].eq(mac.result.payload)]
            if i == 0:
                m.d.comb += self.result.valid.eq(mac.result.valid)
        return m
