"""Pipelined comparison: maximum, minimum and ordering flags."""

from amaranth.hdl import Cat, Module, Mux
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from caterpillar.golden.numerics import FloatFormat
from caterpillar.rtl.fp.arith import unpack
from caterpillar.rtl.fp.pipeline import Pipeline, named

__all__ = ["FPCompare", "compare_layout"]


def compare_layout(fmt: FloatFormat) -> data.StructLayout:
    """Return the result layout of :class:`FPCompare` for ``fmt``."""
    return data.StructLayout({
        "max": fmt.width, "min": fmt.width, "less": 1, "equal": 1, "unordered": 1,
    })


class FPCompare(wiring.Component):
    """IEEE 754-2019 ``maximum``/``minimum`` and the ``<``/``==`` predicates of ``a`` and ``b``.

    ``max``/``min`` order ``-0 < +0`` and return the canonical NaN if either input is NaN (ReLU
    is ``max(x, +0)``). ``less`` and ``equal`` are the quiet IEEE predicates (``-0 == +0``; false
    when unordered); ``unordered`` is set when either input is NaN.

    Contract: fully pipelined, one comparison per cycle, results ``latency`` cycles after the
    operands; no backpressure; nothing valid after reset until an input arrives.

    Parameters
    ----------
    fmt : FloatFormat
        Operand format.
    latency : int
        Register stages.

    Members
    -------
    operands : In(stream.Signature({"a", "b"}, always_ready=True))
        The two values.
    result : Out(stream.Signature(compare_layout(fmt), always_ready=True))
        ``max``, ``min``, ``less``, ``equal``, ``unordered``.
    """

    # order keys and flags, select.
    STEP_WEIGHTS = (2, 1)

    def __init__(self, fmt: FloatFormat, *, latency: int = 1):
        self.fmt = fmt
        self.latency = latency
        operands = data.StructLayout({"a": fmt.width, "b": fmt.width})
        super().__init__({
            "operands": In(stream.Signature(operands, always_ready=True)),
            "result": Out(stream.Signature(compare_layout(fmt), always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        fmt = self.fmt
        pipe = Pipeline(m, self.STEP_WEIGHTS, self.latency, self.operands.valid, name="cmp")
        v = pipe.begin({"a": self.operands.payload.a, "b": self.operands.payload.b})

        a, b = unpack(m, v["a"], fmt, "a"), unpack(m, v["b"], fmt, "b")
        unordered = a["nan"] | b["nan"]

        def key(x, fields):
            # Unsigned key with the numeric order (and -0 < +0): flip negatives, set positives.
            magnitude = x[:fmt.width - 1]
            return Mux(fields["sign"], Cat(~magnitude, 0), Cat(magnitude, 1))

        a_ge_b = named(m, key(v["a"], a) >= key(v["b"], b), "a_ge_b")
        both_zero = a["zero"] & b["zero"]
        v = pipe.step({
            "a": v["a"], "b": v["b"], "a_ge_b": a_ge_b, "unordered": unordered,
            "less": ~unordered & ~a_ge_b & ~both_zero,
            "equal": ~unordered & ((v["a"] == v["b"]) | both_zero),
        })

        nan = fmt.canonical_nan
        v = pipe.step({
            "max": Mux(v["unordered"], nan, Mux(v["a_ge_b"], v["a"], v["b"])),
            "min": Mux(v["unordered"], nan, Mux(v["a_ge_b"], v["b"], v["a"])),
            "less": v["less"], "equal": v["equal"], "unordered": v["unordered"],
        })

        pipe.check_complete()
        m.d.comb += [self.result.valid.eq(pipe.valid)]
        for name in ("max", "min", "less", "equal", "unordered"):
            m.d.comb += getattr(self.result.payload, name).eq(v[name])
        return m
