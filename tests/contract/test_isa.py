"""The ISA definition: one encoding, used by encode, decode, unpack and the docs alike."""

import random

import pytest

from caterpillar.contract.isa import (
    INSTR_BITS,
    OPCODE_BITS,
    OPERANDS,
    ErrorCause,
    IsaError,
    Layout,
    LoopState,
    Opcode,
    VecOp,
    address_fields,
    decode,
    encode,
    field_enum,
    isa_markdown,
    relocate,
    reserved_bits,
    unpack,
)
from caterpillar.golden import kernels as gk


def random_fields(op, rng):
    values = {}
    for f in OPERANDS[op]:
        kind = field_enum(f)
        values[f.name] = rng.choice(list(kind)) if kind else rng.randrange(1 << f.width)
    return values


@pytest.mark.parametrize("op", list(Opcode), ids=lambda o: o.name.lower())
def test_encode_decode_and_unpack_agree(op):
    rng = random.Random(op.value)
    for _ in range(20):
        fields = random_fields(op, rng)
        word = encode(op, **fields)
        assert word < 1 << INSTR_BITS and reserved_bits(word) == 0
        decoded = decode(word)
        assert decoded.op is op and decoded.args == fields
        assert decode(encode(op, **decoded.args)) == decoded
        raw_op, raw = unpack(word)
        assert raw_op is op
        assert raw == {k: v.value if hasattr(v, "value") else v for k, v in fields.items()}


def test_unpack_gives_each_caller_its_own_fields():
    word = encode(Opcode.LDV, spad=64, memb=8, len=12)
    op, values = unpack(word)
    values["spad"] = 0
    assert unpack(word) == (op, {**values, "spad": 64})


def test_fields_are_packed_from_bit_8_in_table_order():
    # The one statement of bit positions: a field's offset is the sum of the widths before it.
    word = encode(Opcode.GEMV, y=1, x=2, w=3)
    assert word & ((1 << OPCODE_BITS) - 1) == Opcode.GEMV.value
    assert (word >> OPCODE_BITS) & 0xFFFF == 1
    assert (word >> (OPCODE_BITS + 16)) & 0xFFFF == 2
    assert (word >> (OPCODE_BITS + 32)) & 0xFFFF == 3
    assert all(OPCODE_BITS + sum(f.width for f in fields) <= INSTR_BITS
               for fields in OPERANDS.values())


def test_field_errors_name_the_field():
    with pytest.raises(IsaError, match=r"^field 'rows' of gemv must be in 0\.\.65535 "
                                       r"\(16 bits\), not 70000$"):
        encode(Opcode.GEMV, rows=70000)
    with pytest.raises(IsaError, match=r"^gemv has no field 'q'; its fields are y, x, w, psum, "
                                       r"rows, cols, ldw, load, spad, store, dst, rel$"):
        encode(Opcode.GEMV, q=1)
    with pytest.raises(IsaError, match=r"^field 'layout' of ldv must be one of diag, colrep, "
                                       r"rowrep, full, not 9$"):
        encode(Opcode.LDV, layout=9)
    with pytest.raises(IsaError, match=r"^illegal opcode 0x7f$"):
        decode(0x7F)
    with pytest.raises(IsaError, match=r"^field 'fn' of vop holds 15, which is not a VecOp$"):
        decode(Opcode.VOP.value | 15 << 8)


def test_encoding_again_checks_as_the_first_time():
    # encode keeps the words it made: the same operands give the same word, and a value equal
    # to a cached one but of another type (True for 1, 1.0, a list) is still refused.
    word = encode(Opcode.RING, keep=1, slen=4)
    assert encode(Opcode.RING, keep=1, slen=4) == word == encode(Opcode.RING, slen=4, keep=1)
    assert encode(Opcode.RING, keep=0, slen=4) != word
    for bad in (True, 1.0, [1]):
        with pytest.raises(IsaError, match=r"^field 'keep' of ring must be an integer"):
            encode(Opcode.RING, keep=bad, slen=4)
    assert encode(Opcode.LDV, layout=Layout.ROWREP) == encode(Opcode.LDV, layout=2)
    assert unpack(encode(Opcode.VOP, fn=12, strict=False))[1]["fn"] == 12
    with pytest.raises(IsaError, match="must be one of"):
        encode(Opcode.VOP, fn=12)


def test_nonzero_reserved_bits_are_refused_by_decode_but_seen_by_unpack():
    word = encode(Opcode.HALT) | 1 << 200
    assert reserved_bits(word) == 1 << (200 - OPCODE_BITS)
    with pytest.raises(IsaError, match=r"^halt has nonzero reserved bits"):
        decode(word)
    assert unpack(word) == (Opcode.HALT, {})
    gemv = encode(Opcode.GEMV, rows=3)
    used = OPCODE_BITS + sum(f.width for f in OPERANDS[Opcode.GEMV])
    assert reserved_bits(gemv | 1 << used) == 1
    assert unpack(0x7F) == (None, {})


def test_text_form():
    word = encode(Opcode.VOP, fn=VecOp.AXPY, layout=Layout.DIAG, z=5, x=1, y=2, len=10, alpha=3)
    assert decode(word).text() == "vop fn=axpy layout=diag z=0x5 x=0x1 y=0x2 len=10 alpha=3"


def test_golden_vector_functions_are_the_isa_vecops():
    # The simulator asks golden.kernels.vop for VecOp(fn).name.lower(): both lists are one.
    assert set(gk.VOP_FUNCTIONS) == {op.name.lower() for op in VecOp}


def test_markdown_lists_every_opcode_field_and_enum():
    text = isa_markdown()
    for op in Opcode:
        assert f"## `{op.name.lower()}` (opcode {op.value:#04x})" in text
        for f in OPERANDS[op]:
            assert f"| `{f.name}` |" in text
    for cause in ErrorCause:
        assert f"| {cause.value} | `{cause.name.lower()}` |" in text


def test_rel_selectors_move_the_address_fields_they_name_modulo_their_width():
    assert [f.name for f in address_fields(Opcode.GEMV)] == ["y", "x", "w", "psum", "spad",
                                                             "dst"]
    assert address_fields(Opcode.CPASS) == []       # no room for selectors: nothing moves
    values = unpack(encode(Opcode.LDV, spad=100, memb=3, len=8, layout=Layout.DIAG,
                           rel=1 | 3 << 2))[1]
    assert relocate(Opcode.LDV, values, (8, 5, (1 << 24) - 4)) == {**values, "spad": 108,
                                                                   "memb": 65535}
    assert relocate(Opcode.LDV, {**values, "rel": 0}, (8, 5, 7))["spad"] == 100


def test_a_loop_state_walks_its_body_count_times_then_goes_on():
    loop = LoopState()
    loop.begin(10, {"count": 3, "body": 2, "stride1": 4, "stride2": 0, "stride3": 1 << 23})
    pcs, offsets, pc = [], [], 11
    while 10 < pc < 14:
        pcs.append(pc)
        offsets.append(loop.offsets)
        pc = loop.next_pc(pc)
    assert pcs == [11, 12, 11, 12, 11, 12, 13]
    assert offsets[::2] == [(0, 0, 0), (4, 0, 1 << 23), (8, 0, 0), (0, 0, 0)]
    assert not loop.active and not loop.legal({"count": 0, "body": 1})
    loop.begin(0, {"count": 1, "body": 1, "stride1": 0, "stride2": 0, "stride3": 0})
    assert not loop.legal({"count": 1, "body": 1})      # no loop in a running loop's body
