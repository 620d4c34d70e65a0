"""Loop folding: runs of repeated blocks become LOOPs, unfolding gives the program back, and the
folded program runs to the same state two cycles per LOOP later."""

import numpy as np
import pytest

from caterpillar.contract.config import preset
from caterpillar.contract.isa import (
    ADDRESS_KINDS,
    OPERANDS,
    Layout,
    Opcode,
    VecOp,
    address_fields,
    encode,
    unpack,
)
from caterpillar.golden import kernels as gk
from caterpillar.golden.numerics import from_float
from caterpillar.sim.cases.kernels import random_values
from caterpillar.software.compiler.loops import MAX_COUNT, fold_loops, unfold_loops
from caterpillar.software.isasim.core import IsaSim

HALT = encode(Opcode.HALT)
NOP = encode(Opcode.NOP)
RANDOM_OPS = (Opcode.LDV, Opcode.STV, Opcode.GEMV, Opcode.RING, Opcode.VOP, Opcode.GER)


def loops_of(words):
    """``(index, fields)`` of every LOOP in ``words``."""
    return [(i, v) for i, (op, v) in enumerate(map(unpack, words)) if op == Opcode.LOOP]


def signed_strides(loop):
    return [(s ^ (1 << 23)) - (1 << 23) for s in (loop[f"stride{k}"] for k in (1, 2, 3))]


def selectors(word):
    """The rel selector of each address field of ``word``, by field name."""
    op, values = unpack(word)
    return {f.name: (values["rel"] >> (2 * i)) & 3 for i, f in enumerate(address_fields(op))}


def ldv(spad, memb, length=8, layout=Layout.DIAG):
    return encode(Opcode.LDV, spad=spad % (1 << 24), memb=memb % (1 << 16), len=length,
                  layout=layout)


def stv(spad, memb, length=8, layout=Layout.DIAG):
    return encode(Opcode.STV, spad=spad % (1 << 24), memb=memb % (1 << 16), len=length,
                  layout=layout)


def assert_round_trip(words, **kw):
    folded = fold_loops(words, **kw)
    assert unfold_loops(folded) == list(words)
    return folded


# -- hand-made programs ------------------------------------------------------------------------

def test_trivial_programs_are_unchanged():
    for words in ([], [HALT], [NOP, HALT], [NOP, NOP, HALT], [ldv(0, 0), ldv(8, 4), HALT]):
        assert assert_round_trip(words) == words


def test_a_run_of_one_instruction_folds_when_it_saves_words():
    # Three NOPs take 3 words, LOOP + NOP 2: folded; two would take 2 either way: not.
    assert fold_loops([NOP] * 3 + [HALT]) == [encode(Opcode.LOOP, count=3, body=1), NOP, HALT]
    assert fold_loops([NOP] * 5 + [HALT]) == [encode(Opcode.LOOP, count=5, body=1), NOP, HALT]
    assert fold_loops([NOP, NOP, HALT]) == [NOP, NOP, HALT]


def test_strided_loads_fold_and_unfold_to_the_same_words():
    words = [ldv(64 + 8 * r, 3 * r) for r in range(10)] + [HALT]
    folded = assert_round_trip(words)
    assert len(folded) == 3
    (_, loop), = loops_of(folded)
    assert (loop["count"], loop["body"]) == (10, 1)
    assert signed_strides(loop) == [8, 3, 0]
    assert selectors(folded[1]) == {"spad": 1, "memb": 2}
    op, values = unpack(folded[1])
    assert (values["spad"], values["memb"]) == (64, 0)


def test_a_negative_step_in_a_16_bit_and_a_24_bit_field_shares_one_stride():
    # spad (24 bits) and memb (16 bits) both step by -4, wrapping below 0 in their widths.
    words = [ldv(8 - 4 * r, 6 - 4 * r) for r in range(6)] + [HALT]
    folded = assert_round_trip(words)
    (_, loop), = loops_of(folded)
    assert loop["stride1"] == (-4) % (1 << 24) and loop["stride2"] == loop["stride3"] == 0
    assert selectors(folded[1]) == {"spad": 1, "memb": 1}
    unrolled = unfold_loops(folded)
    assert unpack(unrolled[5])[1]["spad"] == (8 - 20) % (1 << 24)
    assert unpack(unrolled[5])[1]["memb"] == (6 - 20) % (1 << 16)


def test_a_16_bit_step_is_read_as_twos_complement():
    # memb stepping by 0xfffc is a step of -4, the same stride as spad's -4.
    words = [ldv(100 - 4 * r, (0xFFFC * r) % (1 << 16)) for r in range(4)] + [HALT]
    (_, loop), = loops_of(assert_round_trip(words))
    assert signed_strides(loop) == [-4, 0, 0]


def test_a_body_of_several_instructions_with_three_strides():
    words = [encode(Opcode.SETS, reg=1, value=7)]
    for r in range(5):
        words += [ldv(0 + 8 * r, 4 * r), stv(400 - 8 * r, 4 * r), NOP]
    words.append(HALT)
    folded = assert_round_trip(words)
    assert len(folded) == 1 + 1 + 3 + 1
    (i, loop), = loops_of(folded)
    assert i == 1 and (loop["count"], loop["body"]) == (5, 3)
    assert signed_strides(loop) == [8, 4, -8]
    assert selectors(folded[2]) == {"spad": 1, "memb": 2}
    assert selectors(folded[3]) == {"spad": 3, "memb": 2}


def test_four_distinct_steps_do_not_fold():
    # LDV steps by 8 and 4, STV by -8 and 12: four strides, one too many, at any body length.
    words = []
    for r in range(8):
        words += [ldv(8 * r, 4 * r), stv(800 - 8 * r, 12 * r)]
    words.append(HALT)
    assert assert_round_trip(words) == words
    # One GEMV with four moving fields, each its own step.
    gemv = [encode(Opcode.GEMV, y=3 * r, x=100 + 5 * r, w=7 * r, psum=200 - 2 * r, rows=4,
                   cols=4, ldw=2) for r in range(6)]
    assert assert_round_trip(gemv + [HALT]) == gemv + [HALT]
    # The same with three distinct steps folds.
    gemv3 = [encode(Opcode.GEMV, y=3 * r, x=100 + 5 * r, w=7 * r, psum=200 + 3 * r, rows=4,
                    cols=4, ldw=2) for r in range(6)]
    assert len(assert_round_trip(gemv3 + [HALT])) == 3


def test_non_address_fields_must_repeat():
    words = [ldv(8 * r, 0, length=8 + (r == 3)) for r in range(6)] + [HALT]
    folded = assert_round_trip(words)
    # Only the runs either side of the odd length fold: 0-2 (3 words) and 4-5 (too short).
    assert [v["count"] for _, v in loops_of(folded)] == [3]
    assert len(folded) == 2 + 3 + 1


def test_a_step_must_be_the_same_in_every_repetition():
    words = [ldv(s, 0) for s in (0, 8, 16, 24, 40, 56, 72)] + [HALT]
    folded = assert_round_trip(words)
    # 0..24 by 8 (4 words into 2), then 24..72 is taken already: 40..72 by 16 (3 into 2).
    assert [(v["count"], signed_strides(v)[0]) for _, v in loops_of(folded)] == [(4, 8), (3, 16)]


def test_greedy_takes_the_candidate_that_saves_most():
    a, b = ldv(0, 0), encode(Opcode.SETS, reg=2, value=5)
    # A B A B A B A B: body 2 four times (saves 5) beats nothing else; A A A: body 1.
    words = [a, b] * 4 + [NOP] * 7 + [HALT]
    folded = assert_round_trip(words)
    assert [(v["count"], v["body"]) for _, v in loops_of(folded)] == [(4, 2), (7, 1)]
    assert len(folded) == 3 + 2 + 1


def test_max_body_bounds_the_body():
    body = [ldv(0, 0), NOP, encode(Opcode.SETS, reg=1, value=1), NOP, stv(0, 0)]
    words = body * 4 + [HALT]
    assert len(assert_round_trip(words)) == 1 + 5 + 1
    assert assert_round_trip(words, max_body=4) == words
    with pytest.raises(ValueError, match="max_body"):
        fold_loops(words, max_body=0)


def test_a_run_longer_than_a_count_holds_takes_two_loops():
    words = [NOP] * (MAX_COUNT + 10) + [HALT]
    folded = assert_round_trip(words, max_body=1)
    assert [v["count"] for _, v in loops_of(folded)] == [MAX_COUNT, 10]
    assert len(folded) == 5


# -- HALT, CPASS, LOOP, rel ----------------------------------------------------------------------

def test_halt_is_never_in_a_body():
    words = ([NOP] * 4 + [HALT]) * 3
    folded = assert_round_trip(words)
    assert folded == [encode(Opcode.LOOP, count=4, body=1), NOP, HALT] * 3
    assert assert_round_trip([HALT] * 6) == [HALT] * 6
    for i, v in loops_of(folded):
        assert HALT not in folded[i + 1:i + 1 + v["body"]]


def cpass(**kw):
    args = dict(w=0, d=10, a=20, x=30, y=40, z=50, q=60, fpsum=70, bpsum=80, rows=4, cols=4,
                ldw=2, prop=1, fwd=1)
    return encode(Opcode.CPASS, **{**args, **kw})


def test_cpass_folds_only_when_identical():
    assert "rel" not in [f.name for f in OPERANDS[Opcode.CPASS]]
    same = []
    for r in range(4):
        same += [ldv(16 * r, 8), cpass()]
    folded = assert_round_trip(same + [HALT])
    assert [(v["count"], v["body"]) for _, v in loops_of(folded)] == [(4, 2)]
    assert folded[2] == cpass()
    moving = []
    for r in range(4):
        moving += [ldv(16 * r, 8), cpass(x=30 + r)]
    assert assert_round_trip(moving + [HALT]) == moving + [HALT]


def test_existing_loops_are_kept_and_folding_twice_changes_nothing():
    words = []
    for r in range(6):
        words += [ldv(8 * r, 0), stv(512 + 8 * r, 0)]
    words += [NOP] * 5 + [HALT]
    once = fold_loops(words)
    assert fold_loops(once) == once
    assert unfold_loops(once) == words


def test_an_instruction_with_rel_set_stays_out_of_loops():
    # rel means nothing outside a loop, but folding would lose it: such a word is kept as is.
    odd = encode(Opcode.LDV, spad=0, memb=0, len=8, rel=1)
    words = [odd] * 5 + [HALT]
    assert fold_loops(words) == words


# -- unfold_loops --------------------------------------------------------------------------------

def test_unfold_applies_strides_modulo_the_field_width():
    body = encode(Opcode.LDV, spad=16, memb=2, len=8, rel=1 | (2 << 2))
    loop = encode(Opcode.LOOP, count=3, body=1, stride1=(-8) % (1 << 24),
                  stride2=(-4) % (1 << 24))
    assert unfold_loops([loop, body, HALT]) == [ldv(16, 2), ldv(8, -2), ldv(0, -6), HALT]


def test_unfold_rejects_bad_loops():
    loop = encode(Opcode.LOOP, count=2, body=2)
    with pytest.raises(ValueError, match="nest"):
        unfold_loops([loop, NOP, encode(Opcode.LOOP, count=2, body=1), NOP, HALT])
    with pytest.raises(ValueError, match="past the program's end"):
        unfold_loops([loop, NOP])
    with pytest.raises(ValueError, match="halt"):
        unfold_loops([loop, NOP, HALT])
    with pytest.raises(ValueError, match=">= 1"):
        unfold_loops([encode(Opcode.LOOP, count=0, body=1), NOP, HALT])


# -- random programs of repeated bodies ----------------------------------------------------------

def random_instruction(op, rng):
    """An instruction of ``op`` with random fields (rel 0) and its address fields' names."""
    values = {}
    for f in OPERANDS[op]:
        if f.name != "rel":
            values[f.name] = int(rng.integers(0, 1 << min(f.width, 20)))
    return values


def random_block(rng, strides: int):
    """A body of 1-6 random instructions, each address field stepping by 0 or by one of
    ``strides`` distinct nonzero steps (every step used at least once)."""
    pool = []
    while len(pool) < strides:
        step = int(rng.integers(-300, 301))
        if step and step not in pool:
            pool.append(step)
    while True:
        n = int(rng.integers(1, 7))
        body = []
        for _ in range(n):
            op = RANDOM_OPS[rng.integers(len(RANDOM_OPS))]
            values = random_instruction(op, rng)
            steps = {f.name: (pool[rng.integers(len(pool))] if rng.random() < 0.7 else 0)
                     for f in OPERANDS[op] if f.kind in ADDRESS_KINDS}
            body.append((op, values, steps))
        used = {s for _, _, steps in body for s in steps.values() if s}
        if used == set(pool):
            return body


def repeat(body, count):
    words = []
    for r in range(count):
        for op, values, steps in body:
            moved = dict(values)
            for f in OPERANDS[op]:
                if f.name in steps:
                    moved[f.name] = (values[f.name] + r * steps[f.name]) % (1 << f.width)
            words.append(encode(op, strict=False, **moved))
    return words


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_random_repeated_bodies_fold_and_round_trip(seed):
    rng = np.random.default_rng(seed)
    words, expected, blocks = [], 0, []
    for b in range(12):
        words.append(encode(Opcode.SETS, reg=1, value=1000 * seed + b))   # matches nothing
        strides = 1 + b % 3
        body = random_block(rng, strides)
        count = int(rng.integers(3, 9))
        words += repeat(body, count)
        expected += 1 + 1 + len(body)
        blocks.append((count, len(body), strides))
    words.append(HALT)
    expected += 1
    folded = assert_round_trip(words)
    assert len(folded) == expected < len(words)
    found = loops_of(folded)
    assert [(v["count"], v["body"]) for _, v in found] == [(c, n) for c, n, _ in blocks]
    for (_, v), (_, _, strides) in zip(found, blocks):
        assert sum(s != 0 for s in signed_strides(v)) == strides


@pytest.mark.parametrize("seed", [5, 6])
def test_four_distinct_steps_in_a_random_body_do_not_fold_at_its_length(seed):
    rng = np.random.default_rng(seed)
    body = random_block(rng, 4)
    words = repeat(body, 6) + [HALT]
    folded = assert_round_trip(words)
    assert all(v["body"] % len(body) for _, v in loops_of(folded))


def test_random_words_round_trip():
    rng = np.random.default_rng(7)
    words = []
    for _ in range(400):
        op = RANDOM_OPS[rng.integers(len(RANDOM_OPS))]
        values = random_instruction(op, rng)
        # Few distinct values: accidental short runs, which must round-trip too.
        values = {k: v % 3 for k, v in values.items()}
        words.append(encode(op, strict=False, **values))
    words.append(HALT)
    assert_round_trip(words, max_body=16)


def test_five_thousand_instructions_of_repeated_bodies_fold_to_a_third():
    rng = np.random.default_rng(8)
    words = []
    while len(words) < 5000:
        words.append(ldv(int(rng.integers(1 << 20)), int(rng.integers(1 << 12))))
        words += repeat(random_block(rng, 1 + len(words) % 3), int(rng.integers(2, 30)))
    words = words[:5000] + [HALT]
    folded = fold_loops(words, max_body=64)
    assert unfold_loops(folded) == words and len(folded) < len(words) // 3


# -- the folded program runs as the unrolled one -------------------------------------------------

def test_folded_program_runs_to_the_same_state_two_cycles_per_loop_later():
    cfg = preset("tiny")
    nr, fmt, acc = cfg.nr, cfg.operand, cfg.acc
    rng = np.random.default_rng(9)
    length, samples = 8, 5
    per_pe, ld = -(-length // nr), -(-length // nr) * nr
    x_base, y_spad, out_top, copy_base = 0, 512, 1024, 2048
    y_memb, x_memb, z_memb, w_memb = 0, per_pe, per_pe * (1 + samples), 60
    alpha = int(from_float(-0.75, fmt))
    words = [encode(Opcode.SETS, reg=4, value=alpha),
             ldv(y_spad, y_memb, length)]
    for r in range(samples):     # per sample: x_r in, z_r = alpha x_r + y out, downwards
        words += [ldv(x_base + r * ld, x_memb + r * per_pe, length),
                  encode(Opcode.VOP, fn=VecOp.AXPY, layout=Layout.DIAG, z=z_memb + r * per_pe,
                         x=x_memb + r * per_pe, y=y_memb, len=length, alpha=4),
                  stv(out_top - r * ld, z_memb + r * per_pe, length)]
    for r in range(4):           # copy the outputs upwards through one MemB buffer
        words += [ldv(out_top - r * ld, w_memb, length), stv(copy_base + r * ld, w_memb, length)]
    words.append(HALT)

    folded = fold_loops(words)
    found = loops_of(folded)
    assert [(v["count"], v["body"]) for _, v in found] == [(samples, 3), (4, 2)]
    assert signed_strides(found[0][1]) == [ld, per_pe, -ld]
    assert len(folded) == 2 + 4 + 3 + 1 < len(words)
    assert unfold_loops(folded) == words

    xs = [random_values(length, fmt, rng) for _ in range(samples)]
    y = random_values(length, fmt, rng)
    sims, results = [], []
    for program in (words, folded):
        sim = IsaSim(cfg)
        for r, x in enumerate(xs):
            sim.spad[x_base + r * ld:x_base + r * ld + length] = x
        sim.spad[y_spad:y_spad + length] = y
        sim.load_program(program)
        results.append(sim.run())
        sims.append(sim)
    unrolled, looped = results
    assert unrolled.ok and looped.ok, (unrolled.error, looped.error)
    for r, x in enumerate(xs):
        want = gk.vop("axpy", x, y, alpha, fmt, acc)
        np.testing.assert_array_equal(sims[0].spad[out_top - r * ld:][:length], want)
        if r < 4:
            np.testing.assert_array_equal(sims[0].spad[copy_base + r * ld:][:length], want)
    np.testing.assert_array_equal(sims[0].spad, sims[1].spad)
    np.testing.assert_array_equal(sims[0].memb, sims[1].memb)
    np.testing.assert_array_equal(sims[0].mema, sims[1].mema)
    assert looped.busy_cycles - unrolled.busy_cycles == 2 * len(found)
    assert looped.instret - unrolled.instret == len(found)
    assert looped.macs == unrolled.macs and looped.stalls == unrolled.stalls
