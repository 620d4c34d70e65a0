# amaranth: UnusedElaboratable=no
"""The FP self-check bank: its operation list, its golden reference and, in the Amaranth
simulator, one bank answering every operation after that operation's latency."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from caterpillar.golden import numerics
from caterpillar.golden.numerics import BF16, FORMATS, FP16, FP32
from caterpillar.sim.fpverify.bank import (
    ACC_FORMATS,
    BANK_PORT_WIDTH,
    BankOp,
    FPUBank,
    bank_ops,
    golden_op,
)
from caterpillar.sim.fpverify.cases import random_cases

OPS = [op for fmt in FORMATS.values() for op in bank_ops(fmt)]
OP_IDS = [f"{op.in_fmt}-{op.key}" for op in OPS]


@pytest.mark.parametrize("fmt", FORMATS.values(), ids=str)
def test_bank_ops_cover_every_operation_once(fmt):
    ops = bank_ops(fmt)
    others = [f.name for f in FORMATS.values() if f != fmt]
    assert [o.key for o in ops] == ["add", "mul", "mac.fp32", "mac.fp16",
                                    *(f"convert.{name}" for name in others), "max", "scale"]
    assert len({o.key for o in ops}) == len(ops)
    assert len(ops) <= 1 << len(FPUBank(fmt).op)        # every index fits the op port
    assert all(o.in_fmt == fmt for o in ops)


@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_bank_op_formats_arity_and_widths(op):
    arity = {"add": 2, "mul": 2, "mac": 3, "convert": 1, "max": 2, "scale": 2}[op.op]
    assert op.arity == arity
    if op.op == "mac":
        assert op.out_fmt.name in ACC_FORMATS and op.key == f"mac.{op.out_fmt.name}"
    elif op.op == "convert":
        assert op.out_fmt != op.in_fmt and op.key == f"convert.{op.out_fmt.name}"
    else:
        assert op.out_fmt == op.in_fmt and op.key == op.op
    assert op.in_fmt.width <= BANK_PORT_WIDTH and op.out_fmt.width <= BANK_PORT_WIDTH


def test_bank_ports_and_latencies():
    bank = FPUBank(FP16, mul_latency=2, add_latency=4, misc_latency=3)
    assert [bank.latency_of(o.key) for o in bank.ops] == [4, 2, 6, 6, 3, 3, 3, 3]
    for name in ("a", "b", "c", "result"):
        assert len(getattr(bank, name)) == BANK_PORT_WIDTH
    with pytest.raises(StopIteration):
        bank.latency_of("div")


def _reference(op, cols):
    """The numerics call each bank operation stands for, written out independently."""
    f, out = op.in_fmt, op.out_fmt
    return {
        "add": lambda: numerics.add(cols[0], cols[1], f),
        "mul": lambda: numerics.mul(cols[0], cols[1], f),
        "mac": lambda: numerics.mac(cols[0], cols[1], cols[2], f, out),
        "convert": lambda: numerics.convert(cols[0], f, out),
        "max": lambda: numerics.maximum(cols[0], cols[1], f),
        "scale": lambda: numerics.scale(cols[0], cols[1], f),
    }[op.op]()


@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_golden_op_is_the_numerics_function(op, rng):
    cols = random_cases(op, 300, rng)
    got = np.asarray(golden_op(op, *cols))
    want = _reference(op, cols)
    assert got.dtype == op.out_fmt.dtype and got.shape == (300,)
    np.testing.assert_array_equal(got, want)


def test_golden_op_results_have_the_output_format():
    one16, two16 = numerics.from_float([1.0, 2.0], FP16)
    convert = next(o for o in bank_ops(FP16) if o.key == "convert.fp32")
    assert golden_op(convert, np.array([two16])).tolist() == [0x40000000]
    mac16 = next(o for o in bank_ops(FP16) if o.key == "mac.fp16")
    mac32 = next(o for o in bank_ops(FP16) if o.key == "mac.fp32")
    a, b = np.array([one16]), np.array([two16])
    assert golden_op(mac16, a, b, np.array([one16])).tolist() == [0x4200]       # 3.0 in fp16
    assert golden_op(mac32, a, b, np.array([0x3F800000])).tolist() == [0x40400000]
    scale = next(o for o in bank_ops(BF16) if o.op == "scale")
    assert golden_op(scale, np.array([0x3F80]), np.array([-3])).tolist() == [0x3E00]  # 1/8


def test_golden_op_rejects_an_unknown_operation():
    with pytest.raises(AssertionError):
        golden_op(BankOp("div", FP32, FP32, 2), np.zeros(1, np.uint64), np.zeros(1, np.uint64))


def _simulate_bank(bank, batches, drain):
    """Feed each ``(index, cols)`` batch back to back, then ``drain`` idle cycles; return, per
    batch, the results in order with the cycle each case was sent and seen."""
    seen = []

    async def bench(ctx):
        cycle = 0
        for index, cols in batches:
            sent, got = [], []
            ctx.set(bank.op, index)
            for i in range(len(cols[0]) + drain):
                valid = i < len(cols[0])
                if valid:
                    for port, col in zip((bank.a, bank.b, bank.c), cols):
                        ctx.set(port, int(col[i]) & 0xFFFFFFFF)
                    sent.append(cycle)
                ctx.set(bank.in_valid, valid)
                if ctx.get(bank.out_valid):
                    got.append((int(ctx.get(bank.result)), cycle))
                await ctx.tick()
                cycle += 1
            seen.append((sent, got))

    sim = Simulator(bank)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return seen


def test_bank_in_the_amaranth_simulator_answers_every_op_after_its_latency(rng):
    bank = FPUBank(BF16, mul_latency=2, add_latency=3, misc_latency=1)
    batches = []
    for index, op in enumerate(bank.ops):
        cols = random_cases(op, 12, rng)
        if op.op == "scale":   # exponents the bank must saturate without changing the result
            cols[1][:3] = [(1 << 31) - 1, -(1 << 31), 1000]
        batches.append((index, cols))
    results = _simulate_bank(bank, batches, drain=8)
    for (index, cols), (sent, got) in zip(batches, results):
        op = bank.ops[index]
        assert len(got) == len(sent), op.key
        want = np.asarray(golden_op(op, *cols), dtype=np.uint64)
        np.testing.assert_array_equal([r for r, _ in got], want, err_msg=op.key)
        latency = bank.latency_of(op.key)
        assert [c - s for (_, c), s in zip(got, sent)] == [latency] * len(sent), op.key
