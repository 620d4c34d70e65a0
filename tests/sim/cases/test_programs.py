"""Random legal programs: deterministic for a seed, legal on every config (the
instruction-level device runs them without error, loops and all), built as documented (data
in the lower SPAD half, results and the final dumps in the upper half)."""

import collections

import numpy as np
import pytest

from caterpillar.contract.config import preset
from caterpillar.contract.isa import REL_BITS, Layout, Opcode, address_fields, decode, unpack
from caterpillar.golden import numerics as gn
from caterpillar.sim.cases import kernels as kc
from caterpillar.sim.cases.programs import random_program
from caterpillar.software.compiler.loops import unfold_loops
from caterpillar.software.driver.core import Driver
from caterpillar.software.isasim.device import IsaDevice

TINY = preset("tiny")
CONFIGS = {
    "tiny": TINY,
    "tiny-fp16": TINY.replace(name="tiny-fp16", operand_format="fp16", acc_format="fp16"),
    "tiny-bf16": TINY.replace(name="tiny-bf16", operand_format="bf16"),
    "small": preset("small"),
}
#: Setup: LDA and LDV of the whole PE memories, four SETS. End: STA, four STV, HALT.
SETUP, DUMPS = 6, 6


def test_same_seed_same_program_and_data(seed):
    a = random_program(TINY, np.random.default_rng(seed), 15)
    b = random_program(TINY, np.random.default_rng(seed), 15)
    assert a.program == b.program and a.outputs == b.outputs
    np.testing.assert_array_equal(a.spad[0], b.spad[0])
    c = random_program(TINY, np.random.default_rng(seed + 1), 15)
    assert c.program != a.program


def test_layout_of_the_case():
    case = random_program(TINY, np.random.default_rng(3), 12)
    half = TINY.spad_words // 2
    assert case.name == "random program (12 instructions)"
    assert list(case.spad) == [0] and case.spad[0].shape == (half,)
    assert case.outputs == [(half, (TINY.spad_words - half,))]
    assert case.expected == [] and case.sregs == {}
    data = case.spad[0]
    assert gn.is_nan(data, TINY.operand).any() and gn.is_inf(data, TINY.operand).any()


def test_program_starts_from_spad_data_and_ends_with_the_dumps():
    case = random_program(TINY, np.random.default_rng(4), 12)
    ops = [decode(w) for w in case.program]
    assert [o.op for o in ops[:SETUP]] == [Opcode.LDA, Opcode.LDV] + [Opcode.SETS] * 4
    assert [o.op for o in ops[-DUMPS:]] == [Opcode.STA] + [Opcode.STV] * 4 + [Opcode.HALT]
    assert [o.layout for o in ops[-5:-1]] == list(Layout)
    assert all(o.len == TINY.memb_words * TINY.nr for o in ops[-5:-1])
    loops = [o for o in ops if o.op == Opcode.LOOP]
    assert SETUP + DUMPS <= len(ops) - len(loops) <= SETUP + 12 + DUMPS
    half = TINY.spad_words // 2
    for o in ops:
        if o.op in (Opcode.STA, Opcode.STV, Opcode.RDCNT):
            assert o.spad >= half, o.text()                     # results: upper half only


@pytest.mark.parametrize("name", list(CONFIGS))
def test_programs_are_legal_and_leave_the_data_half_alone(name, seed):
    cfg = CONFIGS[name]
    half = cfg.spad_words // 2
    for index in range(6):
        case = random_program(cfg, np.random.default_rng(seed + index), 20)
        device = IsaDevice(cfg)
        outputs, stats = kc.run_case(device, case)     # a CoreError would fail the test
        loops = sum(w & 0xFF == Opcode.LOOP.value for w in case.program)
        assert stats.instret == len(unfold_loops(case.program)) + loops
        assert outputs[0].shape == (cfg.spad_words - half,)
        np.testing.assert_array_equal(Driver(device).read_spad(0, half), case.spad[0])


def test_every_single_core_instruction_appears(seed):
    """Every instruction but RING, which needs a ring."""
    kinds = collections.Counter()
    for index in range(20):
        case = random_program(TINY, np.random.default_rng(seed + index), 30)
        kinds.update(decode(w).op for w in case.program)
    assert set(kinds) == set(Opcode) - {Opcode.RING}


def test_results_depend_on_the_program(seed):
    """The upper half is a function of the whole program: two programs on the same data
    differ there, one program twice does not."""
    case = random_program(TINY, np.random.default_rng(seed), 20)
    first, _ = kc.run_case(IsaDevice(TINY), case)
    again, _ = kc.run_case(IsaDevice(TINY), case)
    np.testing.assert_array_equal(first[0], again[0])
    other = random_program(TINY, np.random.default_rng(seed + 100), 20)
    other.spad = case.spad
    different, _ = kc.run_case(IsaDevice(TINY), other)
    assert not np.array_equal(first[0], different[0])


def test_loops_move_loads_always_and_other_spad_operands_sometimes(seed):
    """Every LDV and LDA in a loop's body moves its SPAD address; stores and the kernels'
    SPAD operands move too in some bodies (the RTL's relocation of those fields is what the
    random-program comparisons then check); MemA and MemB operands never do."""
    moved = collections.Counter()
    for index in range(30):
        program = random_program(TINY, np.random.default_rng(seed + index), 20).program
        pc = 0
        while pc < len(program):
            op, values = unpack(program[pc])
            if op != Opcode.LOOP:
                assert not values.get("rel"), "outside a loop nothing moves"
                pc += 1
                continue
            for word in program[pc + 1:pc + 1 + values["body"]]:
                body_op, body = unpack(word)
                selectors = [(body.get("rel", 0) >> (REL_BITS * k)) & ((1 << REL_BITS) - 1)
                             for k in range(len(address_fields(body_op)))]
                for f, sel in zip(address_fields(body_op), selectors):
                    assert sel in (0, 1) and (sel == 0 or f.kind == "spad"), decode(word).text()
                    if f.kind == "spad" and body_op in (Opcode.LDV, Opcode.LDA):
                        assert sel == 1, decode(word).text()
                if any(selectors) and body_op not in (Opcode.LDV, Opcode.LDA):
                    moved[body_op] += 1
            pc += 1 + values["body"]
    assert {Opcode.STV, Opcode.STA, Opcode.GEMV} <= set(moved), moved
