"""A self-check harness top: every floating-point unit for one operand format, behind one port.

The bank is what the Verilator stream runner, the cocotb tests and ``caterpillar fpu`` drive: a
case enters as ``(op, a, b, c)`` and leaves as ``result`` after the selected unit's latency.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from caterpillar.golden import numerics
from caterpillar.golden.numerics import FORMATS, FloatFormat
from caterpillar.rtl.fp.adder import FPAdder
from caterpillar.rtl.fp.compare import FPCompare
from caterpillar.rtl.fp.convert import FPConvert
from caterpillar.rtl.fp.mac import FPMac
from caterpillar.rtl.fp.multiplier import FPMultiplier
from caterpillar.rtl.fp.scale import FPScale, scale_shift_shape

__all__ = ["BankOp", "bank_ops", "FPUBank", "BANK_PORT_WIDTH", "golden_op"]

#: Width of the bank's operand and result ports (the widest format).
BANK_PORT_WIDTH = 32

ACC_FORMATS = ("fp32", "fp16")


@dataclass(frozen=True)
class BankOp:
    """One operation of the bank: its name, formats and how many operands it reads.

    ``in_fmt`` is the operand format, ``out_fmt`` the result format; ``arity`` is the number of
    operand columns (``mac`` reads ``a b acc``; ``scale`` reads ``x n``).
    """

    op: str
    in_fmt: FloatFormat
    out_fmt: FloatFormat
    arity: int

    @property
    def key(self) -> str:
        """Unique name within a bank, e.g. ``mac.fp32`` (accumulator) or ``convert.bf16``."""
        if self.op == "mac":
            return f"mac.{self.out_fmt.name}"
        if self.op == "convert":
            return f"convert.{self.out_fmt.name}"
        return self.op


def bank_ops(fmt: FloatFormat) -> list[BankOp]:
    """Return the operations a bank for operand format ``fmt`` offers, in op-code order."""
    ops = [BankOp("add", fmt, fmt, 2), BankOp("mul", fmt, fmt, 2)]
    ops += [BankOp("mac", fmt, FORMATS[acc], 3) for acc in ACC_FORMATS]
    ops += [BankOp("convert", fmt, other, 1) for other in FORMATS.values() if other != fmt]
    ops += [BankOp("max", fmt, fmt, 2), BankOp("scale", fmt, fmt, 2)]
    return ops


class FPUBank(wiring.Component):
    """All floating-point units for one operand format, selected per case by ``op``.

    Contract: one case per cycle; a case with ``in_valid`` goes to the unit ``op`` selects
    (the index into :func:`bank_ops`) and its result leaves on ``result`` with ``out_valid``
    after that unit's latency. Results of one op come out in order; switching ``op`` while
    cases are in flight may collide results of units with different latencies, so drain first.
    ``scale`` reads its exponent from ``b`` as a signed 32-bit integer and saturates it to the
    unit's range, which never changes a result. No backpressure; nothing valid after reset.

    Parameters
    ----------
    fmt : FloatFormat
        Operand format.
    mul_latency, add_latency : int
        Latencies of the multiplier and adder (also inside the MACs).
    misc_latency : int
        Latency of convert, max and scale.

    Members
    -------
    op : In(4)
    in_valid : In(1)
    a, b, c : In(32)
        Operands, LSB-aligned bit patterns.
    out_valid : Out(1)
    result : Out(32)
    """

    def __init__(self, fmt: FloatFormat, *, mul_latency=2, add_latency=3, misc_latency=1):
        self.fmt = fmt
        self.ops = bank_ops(fmt)
        self.mul_latency = mul_latency
        self.add_latency = add_latency
        self.misc_latency = misc_latency
        w = BANK_PORT_WIDTH
        super().__init__({
            "op": In(4), "in_valid": In(1), "a": In(w), "b": In(w), "c": In(w),
            "out_valid": Out(1), "result": Out(w),
        })

    def latency_of(self, key: str) -> int:
        """Return the latency in cycles of the operation called ``key``."""
        op = next(o for o in self.ops if o.key == key)
        return {"add": self.add_latency, "mul": self.mul_latency,
                "mac": self.mul_latency + self.add_latency}.get(op.op, self.misc_latency)

    def _unit(self, op: BankOp):
        if op.op == "add":
            return FPAdder(op.in_fmt, latency=self.add_latency)
        if op.op == "mul":
            return FPMultiplier(op.in_fmt, latency=self.mul_latency)
        if op.op == "mac":
            return FPMac(op.in_fmt, op.out_fmt, mul_latency=self.mul_latency,
                         add_latency=self.add_latency)
        if op.op == "convert":
            return FPConvert(op.in_fmt, op.out_fmt, latency=self.misc_latency)
        if op.op == "max":
            return FPCompare(op.in_fmt, latency=self.misc_latency)
        if op.op == "scale":
            return FPScale(op.in_fmt, latency=self.misc_latency)
        raise AssertionError(op)  # pragma: no cover

    def elaborate(self, platform):
        m = Module()
        width = self.fmt.width
        valids, results = [], []
        for index, op in enumerate(self.ops):
            unit = self._unit(op)
            m.submodules[op.key.replace(".", "_")] = unit
            payload = unit.operands.payload
            m.d.comb += unit.operands.valid.eq(self.in_valid & (self.op == index))
            if op.op == "convert":
                m.d.comb += payload.eq(self.a[:width])
            elif op.op == "scale":
                shape = scale_shift_shape(op.in_fmt)
                limit = (1 << (shape.width - 1)) - 1
                n = self.b.as_signed()
                m.d.comb += [payload.x.eq(self.a[:width]),
                             payload.n.eq(Mux(n > limit, limit, Mux(n < -limit, -limit, n)))]
            else:
                m.d.comb += [payload.a.eq(self.a[:width]), payload.b.eq(self.b[:width])]
                if op.op == "mac":
                    m.d.comb += payload.acc.eq(self.c[:op.out_fmt.width])
            value = unit.result.payload.max if op.op == "max" else unit.result.payload
            valids.append(unit.result.valid)
            results.append(Mux(unit.result.valid, value, 0))

        # Only the selected unit produces valid results, so an OR is the output multiplexer.
        m.d.comb += [self.out_valid.eq(_or_all(valids)), self.result.eq(_or_all(results))]
        return m


def _or_all(values):
    acc = values[0]
    for v in values[1:]:
        acc = acc | v
    return acc


def golden_op(op: BankOp, a, b=None, c=None):
    """Return the golden result bit patterns of ``op`` on operand arrays (NumPy)."""
    f = op.in_fmt
    if op.op == "add":
        return numerics.add(a, b, f)
    if op.op == "mul":
        return numerics.mul(a, b, f, op.out_fmt)
    if op.op == "mac":
        return numerics.mac(a, b, c, f, op.out_fmt)
    if op.op == "convert":
        return numerics.convert(a, f, op.out_fmt)
    if op.op == "max":
        return numerics.maximum(a, b, f)
    if op.op == "scale":
        return numerics.scale(a, b, f)
    raise AssertionError(op)  # pragma: no cover
