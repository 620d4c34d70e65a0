"""The RTL's view of an instruction word is the ISA's encoding, bit for bit."""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from caterpillar.contract.isa import INSTR_BITS, OPERANDS, Opcode, encode, field_enum
from caterpillar.rtl.instruction import FieldView, instruction_layout, operand_layout


def random_fields(op, rng):
    values = {}
    for f in OPERANDS[op]:
        kind = field_enum(f)
        values[f.name] = rng.choice(list(kind)).value if kind else rng.randrange(1 << f.width)
    return values


@pytest.mark.parametrize("op", [op for op in Opcode if OPERANDS[op]],
                         ids=lambda o: o.name.lower())
def test_layout_constants_equal_encoded_words(op):
    rng = random.Random(op.value)
    layout = instruction_layout()
    assert layout.size == INSTR_BITS
    assert list(operand_layout(op).members) == [f.name for f in OPERANDS[op]]
    for _ in range(20):
        fields = random_fields(op, rng)
        const = layout.const({"op": op.value, "args": {op.name.lower(): fields}})
        assert const.as_bits() == encode(op, **fields)


def test_field_view_reads_the_fields_of_a_word():
    word = encode(Opcode.GEMV, y=7, x=9, rows=300, cols=5, ldw=2)
    instr = Signal(instruction_layout())
    view = FieldView(instr.args.gemv)
    seen = {}

    async def bench(ctx):
        ctx.set(instr.as_value(), word)
        for name in ("y", "x", "rows", "cols", "ldw"):
            seen[name] = ctx.get(getattr(view, name))

    sim = Simulator(Module())
    sim.add_testbench(bench)
    sim.run()
    assert seen == {"y": 7, "x": 9, "rows": 300, "cols": 5, "ldw": 2}
