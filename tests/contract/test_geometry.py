"""Kernel geometry and timing: one plan per opcode, the checks the decoder applies, the
sequencer's cycle rule and the GEMM schedule."""

from dataclasses import replace
from types import SimpleNamespace

import pytest

from caterpillar.contract import geometry
from caterpillar.contract.config import preset
from caterpillar.contract.geometry import (
    INSTRUCTION_OVERHEAD,
    MAC_SEGMENTS,
    PLANS,
    RING_DRAINING_OPCODES,
    SEQUENCER_OPCODES,
    SPAD_REGIONS,
    TRANSFER_DRAIN_CYCLES,
    TRANSFER_OPCODES,
    bank_index,
    bank_of,
    cdiv,
    drain_cycles,
    execution_cycles,
    gemm_a_rows_lead,
    gemm_schedule,
    instruction_cycles,
    kernel_plan,
    log2,
    mema_bank_bit,
    mema_bank_period,
    mema_bank_words,
    python_select,
    ring_queue_depth,
    ring_waits,
    spad_bank,
    spad_bank_index,
    spad_bank_rows,
    spad_region,
    spad_region_bit,
    spad_region_rows,
    spad_span_regions,
    word_cycles,
    word_mac_step_cycles,
)
from caterpillar.contract.isa import OPERANDS, ErrorCause, Opcode, encode

CFG = preset("small")


def fields(op, **values):
    return SimpleNamespace(**{**{f.name: 0 for f in OPERANDS[op]}, **values})


def test_every_opcode_has_a_plan():
    assert set(PLANS) == set(Opcode)


def test_arithmetic_helpers():
    assert [cdiv(x, 4) for x in (0, 1, 4, 5, 8)] == [0, 1, 1, 2, 2]
    assert log2(16) == 4
    assert python_select(True, 1, 2) == 1 and python_select(0, 1, 2) == 2
    assert ring_queue_depth(CFG) == CFG.add_latency + 4


@pytest.mark.parametrize("op", SEQUENCER_OPCODES, ids=lambda o: o.name.lower())
def test_sequencer_instructions_take_the_overhead_only(op):
    # Their check, and (but halt) the next instruction's decode, fetched in that check.
    assert kernel_plan(op, fields(op), CFG).checks == []
    want = INSTRUCTION_OVERHEAD + (op != Opcode.HALT)
    assert instruction_cycles(op, fields(op), CFG) == want
    assert word_cycles(encode(op), CFG) == want


def test_micro_op_instructions_take_overhead_stream_and_drain():
    f = fields(Opcode.LDV, spad=0, memb=0, len=10, layout=0)
    plan = kernel_plan(Opcode.LDV, f, CFG)
    assert plan.stream_cycles == cdiv(10, CFG.nr)
    # A transfer kernel's loads and stores land two cycles after they reach the array.
    assert execution_cycles(Opcode.LDV, plan, CFG) == plan.stream_cycles + TRANSFER_DRAIN_CYCLES
    assert instruction_cycles(Opcode.LDV, f, CFG) == INSTRUCTION_OVERHEAD + \
        plan.stream_cycles + TRANSFER_DRAIN_CYCLES
    assert word_cycles(encode(Opcode.LDV, len=10), CFG) == \
        instruction_cycles(Opcode.LDV, f, CFG)
    # A compute kernel drains its pipeline.
    v = fields(Opcode.VOP, fn=0, layout=0, z=0, x=0, y=0, len=10, alpha=0)
    vplan = kernel_plan(Opcode.VOP, v, CFG)
    assert instruction_cycles(Opcode.VOP, v, CFG) == INSTRUCTION_OVERHEAD + \
        vplan.stream_cycles + CFG.write_back_latency > TRANSFER_DRAIN_CYCLES
    assert {op for op in Opcode if drain_cycles(op, CFG) == TRANSFER_DRAIN_CYCLES} == \
        set(TRANSFER_OPCODES)


@pytest.mark.parametrize("m, n, k, mc", [(32, 8, 5, 32), (50, 6, 7, 32), (17, 13, 3, 64)])
def test_mac_steps_are_the_padded_shape_at_one_mac_per_pe_and_cycle(m, n, k, mc):
    nr, lanes = CFG.nr, CFG.acc_lanes
    gemm = encode(Opcode.GEMM, m=m, n=n, k=k, mc=mc, lda=m, ldb=n, ldc=n)
    # Rows in whole groups of nr * Lacc, columns in whole panels of nr, over nr * nr PEs.
    padded = cdiv(m, nr * lanes) * nr * lanes * cdiv(n, nr) * nr * k
    assert word_mac_step_cycles(gemm, CFG) == padded // (nr * nr) < word_cycles(gemm, CFG)
    gemv = encode(Opcode.GEMV, rows=4 * nr * lanes, cols=3 * nr, ldw=3)
    assert word_mac_step_cycles(gemv, CFG) == 4 * nr * lanes * 3 * nr // (nr * nr)
    ger = encode(Opcode.GER, rows=4 * nr, cols=2 * nr, ldw=2)
    assert word_mac_step_cycles(ger, CFG) == 4 * 2 < word_cycles(ger, CFG)
    assert word_mac_step_cycles(encode(Opcode.LDV, len=10), CFG) == 0
    assert set(MAC_SEGMENTS) == {Opcode.GEMV, Opcode.GEMVT, Opcode.GER, Opcode.CPASS}


def test_ring_instructions_are_timed_by_the_engine():
    with pytest.raises(ValueError, match="ring simulator"):
        instruction_cycles(Opcode.RING, fields(Opcode.RING), CFG)
    plan = kernel_plan(Opcode.RING, fields(Opcode.RING, slen=9, rlen=4), CFG)
    assert plan.segments == [] and plan.values == {"send_rows": 3, "recv_rows": 1}


def failing(op, **values):
    """The error causes of the checks ``op`` fails, in the plan's order."""
    return [c.cause for c in kernel_plan(op, fields(op, **values), CFG).checks if not c.ok]


def test_checks_name_the_error_cause_in_order():
    assert failing(Opcode.LDV, spad=0, memb=0, len=4) == []
    assert failing(Opcode.LDV, spad=2, memb=0, len=4) == [ErrorCause.BAD_SHAPE]
    assert failing(Opcode.LDV, spad=CFG.spad_words - 4, memb=0, len=8) == \
        [ErrorCause.SPAD_RANGE]
    assert failing(Opcode.LDV, spad=0, memb=CFG.memb_words, len=4) == [ErrorCause.MEMB_RANGE]
    assert failing(Opcode.LDV, len=4, layout=3) == []                  # FULL, whole rows
    assert failing(Opcode.LDV, len=5, layout=3) == [ErrorCause.BAD_SHAPE]
    assert failing(Opcode.VOP, len=5, layout=3) == [ErrorCause.BAD_SHAPE]
    assert failing(Opcode.BCAST, len=4, layout=0) == [ErrorCause.ILLEGAL_FIELD]
    # A PE row's copy (row r + 1): COLREP only, r < nr; SMXCE: at most nr samples.
    assert failing(Opcode.LDV, len=4, layout=1, row=CFG.nr) == []
    assert failing(Opcode.STV, len=4, layout=1, row=CFG.nr + 1) == [ErrorCause.ILLEGAL_FIELD]
    assert failing(Opcode.LDV, len=4, layout=0, row=1) == [ErrorCause.ILLEGAL_FIELD]
    assert failing(Opcode.SMXCE, x=8, t=16, scr=24, len=4, rows=CFG.nr) == []
    assert failing(Opcode.SMXCE, x=8, t=16, scr=24, len=4, rows=CFG.nr + 1) == \
        [ErrorCause.BAD_SHAPE]
    assert failing(Opcode.BCAST, len=4, layout=3) == [ErrorCause.ILLEGAL_FIELD]
    assert failing(Opcode.GEMV, rows=4, cols=8, ldw=1) == [ErrorCause.BAD_SHAPE]
    assert failing(Opcode.GEMV, w=CFG.mema_words - 1, rows=8, cols=8, ldw=2) == \
        [ErrorCause.MEMA_RANGE]
    assert failing(Opcode.VOP, fn=12, len=4) == [ErrorCause.ILLEGAL_FIELD]
    assert failing(Opcode.RING, hold=4, rlen=8) == [ErrorCause.ILLEGAL_FIELD]   # no fwd
    assert failing(Opcode.RING, fwd=1, slen=4, hold=8, rlen=4) == [ErrorCause.BAD_SHAPE]
    assert failing(Opcode.RING, fwd=1, slen=4, rlen=8, hold=4, dst=8, wbase=8, wlen=8) == []
    assert failing(Opcode.RING, rlen=8, dst=16, wbase=8, wlen=8) == [ErrorCause.BAD_SHAPE]
    assert failing(Opcode.RING, rlen=12, dst=8, wbase=8, wlen=8) == [ErrorCause.BAD_SHAPE]
    # With wlen the wrapped vector, not dst + rlen, must lie in the SPAD.
    top = CFG.spad_words - 8
    assert failing(Opcode.RING, rlen=8, dst=top + 4, wbase=top, wlen=8) == []
    assert failing(Opcode.RING, rlen=8, dst=top + 4) == [ErrorCause.SPAD_RANGE]
    assert failing(Opcode.RING, rlen=8, dst=top, wbase=top, wlen=16) == [ErrorCause.SPAD_RANGE]
    assert failing(Opcode.GEMM, m=4, n=4, k=4, lda=4, ldb=4, ldc=4, mc=3) == \
        [ErrorCause.BAD_SHAPE]
    # A zero extent never touches memory, so it is in range at any base.
    assert failing(Opcode.GER, w=0, rows=4, cols=4, ldw=1, mom=CFG.mema_words + 7) == []


def test_the_select_is_the_callers():
    seen = []

    def recording_select(cond, a, b):
        seen.append(cond)
        return python_select(cond, a, b)

    kernel_plan(Opcode.LDA, fields(Opcode.LDA, rows=4, cols=8, lds=8, ldm=2, trans=1), CFG,
                select=recording_select)
    assert seen, "plans choose through the select they are given"


def test_int_plans_are_made_once_per_opcode_config_and_fields():
    gemv = dict(y=8, x=0, w=0, psum=16, rows=40, cols=24, ldw=6, store=1, dst=4096)
    plan = kernel_plan(Opcode.GEMV, fields(Opcode.GEMV, **gemv), CFG)
    assert kernel_plan(Opcode.GEMV, fields(Opcode.GEMV, **gemv), CFG) is plan
    fresh = geometry._make_plan(Opcode.GEMV, fields(Opcode.GEMV, **gemv), CFG, python_select)
    assert [(s.name, s.cycles) for s in plan.segments] == \
        [(s.name, s.cycles) for s in fresh.segments]
    assert plan.values == fresh.values and plan.spad_regions == fresh.spad_regions
    # Another field value, opcode or config is another plan.
    other = kernel_plan(Opcode.GEMV, fields(Opcode.GEMV, **{**gemv, "rows": 44}), CFG)
    assert other.stream_cycles > plan.stream_cycles
    assert kernel_plan(Opcode.GEMVT, fields(Opcode.GEMVT, z=8, d=0, w=0, psum=16, rows=40,
                                             cols=24, ldw=6), CFG) is not plan
    wide = replace(CFG, nr=2 * CFG.nr)
    assert kernel_plan(Opcode.GEMV, fields(Opcode.GEMV, **gemv), wide).stream_cycles \
        != plan.stream_cycles


@pytest.mark.parametrize("m, n, k, mc, accumulate, a_mema, a_rows", [
    (32, 32, 32, 32, 0, 0, 0), (37, 9, 11, 16, 1, 0, 0), (64, 16, 8, 32, 0, 0, 0),
    (32, 9, 11, 32, 1, 1, 0), (37, 9, 11, 16, 1, 0, 1), (32, 9, 1, 32, 0, 0, 1)])
def test_gemm_schedule_covers_every_block_panel_and_group(m, n, k, mc, accumulate, a_mema,
                                                         a_rows):
    f = SimpleNamespace(m=m, n=n, k=k, mc=mc, accumulate=accumulate, a_mema=a_mema,
                        a_rows=a_rows)
    schedule = gemm_schedule(f, CFG)
    group = CFG.nr * CFG.acc_lanes
    blocks = cdiv(m, mc)
    expected = sum(cdiv(min(mc, m - b * mc), group) for b in range(blocks)) * cdiv(n, CFG.nr)
    assert len(schedule.phases) == expected
    assert schedule.cycles == schedule.prologue + sum(p.length for p in schedule.phases) + \
        schedule.epilogue
    # Every phase computes K Lacc cycles at least; banks alternate.
    assert all(p.length >= k * CFG.acc_lanes for p in schedule.phases)
    assert [p.bank for p in schedule.phases] == [i % 2 for i in range(len(schedule.phases))]
    # A streams from the SPAD in a block's first panel, unless it is in MemA already.
    assert [p.astream for p in schedule.phases] == [
        p.panel == 0 and not a_mema for p in schedule.phases]
    # With a_rows such a phase first loads its rows (a k-block of nr Lacc cycles at a time)
    # and computes from the lead on.
    if a_rows:
        assert all(p.length >= max(gemm_a_rows_lead(CFG) + k * CFG.acc_lanes,
                                   cdiv(k, CFG.nr) * group + 2)
                   for p in schedule.phases if p.astream)
    plan = kernel_plan(Opcode.GEMM, fields(Opcode.GEMM, m=m, n=n, k=k, mc=mc,
                                           accumulate=accumulate, lda=64, ldb=32, ldc=32,
                                           a_mema=a_mema, a_rows=a_rows), CFG)
    assert plan.stream_cycles == schedule.cycles


def test_a_rows_gemm_takes_fewer_cycles_than_lda_then_a_mema():
    """N1's update of a 500-wide hidden layer on a core (16 rows of [W | b], batch 50): the
    GEMM that loads A's rows itself beats an lda of them and a GEMM on the tile."""
    cfg = preset("paper-n1")
    shape = dict(m=501, n=16, k=50, mc=512, accumulate=1, ldb=16, ldc=16)
    lda = kernel_plan(Opcode.LDA, fields(Opcode.LDA, rows=501, cols=50, lds=52, ldm=13), cfg)
    a_mema = kernel_plan(Opcode.GEMM, fields(Opcode.GEMM, **shape, lda=504, a_mema=1), cfg)
    a_rows = kernel_plan(Opcode.GEMM, fields(Opcode.GEMM, **shape, lda=52, a_rows=1), cfg)
    assert a_rows.stream_cycles < lda.stream_cycles + a_mema.stream_cycles
    assert a_rows.stream_cycles < 1.06 * a_mema.stream_cycles


@pytest.mark.parametrize("add_latency", [1, 2, 3, 4, 5, 7])
@pytest.mark.parametrize("spad_rows", [100, 128, 129])
def test_spad_banks_hold_every_row_once_and_split_the_add_distance(add_latency, spad_rows):
    cfg = preset("tiny").replace(add_latency=add_latency, spad_words=2 * spad_rows)
    places = {(spad_region(cfg, r), spad_bank(cfg, r), spad_bank_index(cfg, r))
              for r in range(cfg.spad_rows)}
    assert len(places) == cfg.spad_rows
    assert all(i < spad_bank_rows(cfg, region) for region, _, i in places)
    assert sum(spad_region_rows(cfg, region) for region in range(SPAD_REGIONS)) == spad_rows
    assert spad_region_rows(cfg, 0) >= spad_region_rows(cfg, 1) > 0
    # An add's read and its write La + 1 rows behind never share a bank.
    d = add_latency + 1
    assert all(spad_bank(cfg, r) != spad_bank(cfg, r - d) for r in range(d, cfg.spad_rows))


def test_an_instruction_uses_the_spad_regions_its_extents_touch():
    """The regions of a plan are those of the SPAD words its range checks name: none without
    SPAD operands (or with extent 0), both for an operand across the boundary; a RING's
    received rows count only when it keeps or adds them."""
    cfg = preset("tiny")                 # 2048 rows of 2 words: region 1 from word 2048
    half = (1 << spad_region_bit(cfg)) * cfg.nr
    assert half == 2048

    def regions(op, **values):
        return kernel_plan(op, fields(op, **values), cfg).spad_regions

    assert regions(Opcode.LDV, spad=0, len=8) == 0b01
    assert regions(Opcode.LDV, spad=half - 8, len=8) == 0b01
    assert regions(Opcode.LDV, spad=half - 8, len=9) == 0b11
    assert regions(Opcode.STV, spad=half, len=8) == 0b10
    assert regions(Opcode.VOP, len=8) == 0 and regions(Opcode.SYNC) == 0
    assert regions(Opcode.GEMV, rows=4, cols=4, ldw=2, spad=half) == 0      # no load, no store
    assert regions(Opcode.GEMV, rows=4, cols=4, ldw=2, load=1, spad=half) == 0b10
    assert regions(Opcode.GEMV, rows=4, cols=4, ldw=2, store=1, dst=0) == 0b01
    assert regions(Opcode.RING, src=0, slen=4, dst=half, rlen=4, keep=1) == 0b11
    assert regions(Opcode.RING, dst=half + 4, rlen=4, keep=1, wbase=half, wlen=8) == 0b10
    # Rows only forwarded touch no SPAD row; added to, they are read and written.
    assert regions(Opcode.RING, src=0, slen=4, dst=half, rlen=4, fwd=1) == 0b01
    assert regions(Opcode.RING, dst=half, rlen=4, fwd=1, add=1) == 0b10
    assert spad_span_regions(cfg, half, 0) == 0


@pytest.mark.parametrize("op", list(Opcode))
def test_ring_waits_holds_what_would_share_the_engines_ports(op):
    """A RING waits only for room in the queue; rdcnt, sync and halt for the whole ring; the
    others while a posted RING uses one of their regions."""
    for regions, ring_regions, busy, full in [(0b01, 0b10, True, False),
                                              (0b01, 0b01, True, True),
                                              (0b11, 0b10, True, False), (0, 0, False, False)]:
        waits = ring_waits(op, regions, ring_regions, busy, full)
        if op == Opcode.RING:
            assert waits == full
        elif op in RING_DRAINING_OPCODES:
            assert waits == busy
        else:
            assert waits == bool(regions & ring_regions)


@pytest.mark.parametrize("mul_latency,add_latency", [(1, 2), (2, 3), (2, 2), (3, 4), (1, 6)])
def test_mema_banks_hold_every_word_once_and_split_the_update_distance(mul_latency,
                                                                         add_latency):
    """MemA's bank bit: every word in one place, and the plain update's read and its write
    ``write_back_latency - 1`` words behind never in one bank; a bank period apart, the same
    bank (the momentum buffer's alignment)."""
    cfg = preset("tiny").replace(mul_latency=mul_latency, add_latency=add_latency,
                                 mema_words=200)
    bit, words = mema_bank_bit(cfg), mema_bank_words(cfg)
    places = {(bank_of(a, bit), bank_index(a, bit)) for a in range(cfg.mema_words)}
    assert len(places) == cfg.mema_words and all(i < words for _, i in places)
    d = cfg.write_back_latency - 1
    assert all(bank_of(a, bit) != bank_of(a - d, bit) for a in range(d, cfg.mema_words))
    period = mema_bank_period(cfg)
    assert all(bank_of(a, bit) == bank_of(a + period, bit) for a in range(100))
