"""The ISA definition: one encoding, used by the Amaranth layout, encode and decode alike."""

import random

import pytest

from caterpillar.rtl.isa import (
    INSTR_BITS,
    OPERANDS,
    IsaError,
    Layout,
    Opcode,
    VecOp,
    decode,
    encode,
    instruction_layout,
    operand_layout,
)


def random_fields(op, rng):
    values = {}
    for f in OPERANDS[op]:
        shape = operand_layout(op).members[f.name]
        if isinstance(shape, type):
            values[f.name] = rng.choice(list(shape))
        else:
            values[f.name] = rng.randrange(1 << f.width)
    return values


@pytest.mark.parametrize("op", list(Opcode), ids=lambda o: o.name.lower())
def test_encode_matches_the_amaranth_layout_and_decodes_back(op):
    rng = random.Random(op.value)
    layout = instruction_layout()
    assert layout.size == INSTR_BITS
    for _ in range(20):
        fields = random_fields(op, rng)
        word = encode(op, **fields)
        assert word < 1 << INSTR_BITS
        if OPERANDS[op]:
            const = layout.const({"op": op, "args": {op.name.lower(): fields}})
            assert const.as_bits() == word
        decoded = decode(word)
        assert decoded.op is op and decoded.args == fields
        assert decode(encode(op, **decoded.args)) == decoded


def test_field_errors_name_the_field():
    with pytest.raises(IsaError, match=r"^field 'rows' of gemv must be in 0\.\.65535 "
                                       r"\(16 bits\), not 70000$"):
        encode(Opcode.GEMV, rows=70000)
    with pytest.raises(IsaError, match=r"^gemv has no field 'q'; its fields are y, x, w, psum, "
                                       r"rows, cols, ldw$"):
        encode(Opcode.GEMV, q=1)
    with pytest.raises(IsaError, match=r"^field 'layout' of ldv must be one of diag, colrep, "
                                       r"rowrep, not 9$"):
        encode(Opcode.LDV, layout=9)
    with pytest.raises(IsaError, match=r"^illegal opcode 0x7f$"):
        decode(0x7F)
    with pytest.raises(IsaError, match=r"^field 'fn' of vop holds 15, which is not a VecOp$"):
        decode(Opcode.VOP.value | 15 << 8)


def test_text_form():
    word = encode(Opcode.VOP, fn=VecOp.AXPY, layout=Layout.DIAG, z=5, x=1, y=2, len=10, alpha=3)
    assert decode(word).text() == "vop fn=axpy layout=diag z=0x5 x=0x1 y=0x2 len=10 alpha=3"
