"""The ring engine alone, fed back to itself (its link out into its link in) over a SPAD modelled
in the testbench: the rows it writes equal the sent rows (or their sums with the local rows),
and it finishes in the cycle the simulator's cycle model (:class:`EngineModel`) says."""

from types import SimpleNamespace

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from caterpillar.contract.config import preset
from caterpillar.contract.geometry import spad_bank
from caterpillar.golden import numerics
from caterpillar.rtl.ring_engine import RingEngine
from caterpillar.software.isasim.ring import EngineModel

CFG = preset("tiny")
NR = CFG.nr


def ring_fields(**values):
    base = {"src": 0, "slen": 0, "dst": 0, "rlen": 0, "keep": 0, "add": 0, "fwd": 0,
            "chain": 0, "hold": 0, "wbase": 0, "wlen": 0}
    return {**base, **values}


def run_rtl(fields: dict, spad: np.ndarray, limit: int = 500, blocked=frozenset()):
    """Run one ``RING`` on a looped-back engine; return (cycles until finished, final SPAD).

    The loop carries no beat in the cycles of ``blocked`` (counted from 1 after the start)."""
    m = Module()
    m.submodules.engine = engine = RingEngine(CFG)
    block = Signal()
    tx, rx = engine.port.tx, engine.port.rx
    m.d.comb += [rx.payload.eq(tx.payload), rx.valid.eq(tx.valid & ~block),
                 tx.ready.eq(rx.ready & ~block)]
    rows = spad.reshape(-1, NR).copy()
    port, command = engine.spad, engine.command
    result = {}

    async def bench(ctx):
        for name, value in fields.items():
            ctx.set(getattr(command.fields, name), value)
        ctx.set(command.start, 1)
        await ctx.tick()
        ctx.set(command.start, 0)
        reads = {"rd": None, "op": None}
        for cycle in range(1, limit):
            ctx.set(block, cycle in blocked)
            for kind in ("rd", "op"):          # read data one cycle after the request
                if reads[kind] is not None:
                    for lane in range(NR):
                        ctx.set(getattr(port, f"{kind}_data")[lane], int(rows[reads[kind],
                                                                              lane]))
            finished = ctx.get(command.finished)
            reads = {kind: ctx.get(getattr(port, f"{kind}_addr"))
                     if ctx.get(getattr(port, f"{kind}_en")) else None for kind in ("rd", "op")}
            lanes = ctx.get(port.wr_lanes)
            # A SPAD bank has two ports: never three of the engine's accesses in one bank.
            rows_used = [r for r in reads.values() if r is not None]
            rows_used += [ctx.get(port.wr_addr)] if lanes else []
            banks = [spad_bank(CFG, r) for r in rows_used]
            assert max(banks.count(0), banks.count(1)) <= 2, (cycle, rows_used)
            if lanes:
                row = ctx.get(port.wr_addr)
                for lane in range(NR):
                    if lanes >> lane & 1:
                        rows[row, lane] = ctx.get(port.wr_data[lane])
            if finished:
                result["cycles"] = cycle
                return
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert "cycles" in result, f"the engine did not finish within {limit} cycles"
    return result["cycles"], rows.ravel()


def run_model(fields: dict, spad: np.ndarray, blocked=frozenset()):
    """The same ``RING`` on :class:`EngineModel`: (ticks until finished, final SPAD, cycles a
    send read waited for a bank port)."""
    spad = spad.copy()
    model = EngineModel(CFG, spad)
    model.start(SimpleNamespace(**fields))
    ticks = 0
    while not model.finished():
        pop = model.valid() and model.ready() and ticks + 1 not in blocked
        model.tick(pop, model.queue[0] if pop else None)
        ticks += 1
        assert ticks < 500
    return ticks, spad, model.bank_waits


@pytest.mark.parametrize("case", [
    dict(src=0, slen=8, dst=16, rlen=8, keep=1),
    dict(src=0, slen=7, dst=16, rlen=7, keep=1),           # a partial last beat
    dict(src=4, slen=10, dst=20, rlen=10, keep=1, add=1),  # received + local
    dict(src=0, slen=0, dst=0, rlen=0),                    # nothing to move
    # One instruction of a collective: the own rows first, then the received ones forwarded
    # but for the held last ones, round a wrapped vector (looped back: the engine receives
    # what it sent).
    dict(src=0, slen=8, dst=24, rlen=24, keep=1, fwd=1, hold=8, wbase=16, wlen=16),
    dict(src=4, slen=8, dst=28, rlen=16, keep=1, add=1, fwd=1, hold=8, wbase=16, wlen=16),
], ids=["copy", "partial", "add", "empty", "piped", "piped-add"])
def test_engine_matches_its_cycle_model(case, rng):
    fmt = CFG.operand
    spad = numerics.from_float(rng.standard_normal(40), fmt).astype(np.uint64)
    fields = ring_fields(**case)
    rtl_cycles, rtl_spad = run_rtl(fields, spad)
    model_ticks, model_spad, _ = run_model(fields, spad)
    np.testing.assert_array_equal(rtl_spad, model_spad)
    assert rtl_cycles == model_ticks + 1, (rtl_cycles, model_ticks)
    if case.get("wlen"):
        return
    if case.get("keep") and not case.get("add"):
        n = case["rlen"]
        np.testing.assert_array_equal(rtl_spad[case["dst"]:case["dst"] + n],
                                      spad[case["src"]:case["src"] + n])
    if case.get("add"):
        n, src, dst = case["rlen"], case["src"], case["dst"]
        want = numerics.add(spad[dst:dst + n], spad[src:src + n], fmt)
        np.testing.assert_array_equal(rtl_spad[dst:dst + n], want)


def test_one_instruction_forwards_all_but_the_held_rows_round_the_wrapped_vector(rng):
    # Looped back, the two sent rows return, are kept at rows 6, 7 and sent on; they return
    # again to rows 4, 5 (wrapped: the vector is rows 4-7) and are sent on; the third time,
    # rows 6, 7, they are held: six beats in all, and the engine finishes.
    spad = numerics.from_float(rng.standard_normal(40), CFG.operand).astype(np.uint64)
    fields = ring_fields(src=0, slen=8, dst=24, rlen=24, keep=1, fwd=1, hold=8, wbase=16,
                         wlen=16)
    _, out = run_rtl(fields, spad)
    sent = spad[0:8]
    np.testing.assert_array_equal(out[16:32], np.r_[sent, sent])
    np.testing.assert_array_equal(out[:16], spad[:16])
    np.testing.assert_array_equal(out[32:], spad[32:])
    # With add, each pass adds the row it lands on: rows 7, 4 (wrapped), 5, from src row 1.
    fields = ring_fields(src=4, slen=4, dst=28, rlen=12, keep=1, add=1, fwd=1, hold=4,
                         wbase=16, wlen=16)
    _, out = run_rtl(fields, spad)
    fmt, first = CFG.operand, numerics.add(spad[28:32], spad[4:8], CFG.operand)
    second = numerics.add(spad[16:20], first, fmt)
    np.testing.assert_array_equal(out[28:32], first)
    np.testing.assert_array_equal(out[16:20], second)
    np.testing.assert_array_equal(out[20:24], numerics.add(spad[20:24], second, fmt))
    np.testing.assert_array_equal(out[24:28], spad[24:28])


def test_a_send_read_waits_for_a_bank_port_as_the_model_says(rng):
    # Gaps in the received beats put an add's read and write in one bank now and then: the
    # send read waits, in the RTL and the model alike, and no bank sees three accesses.
    fmt = CFG.operand
    spad = numerics.from_float(rng.standard_normal(96), fmt).astype(np.uint64)
    waits = 0
    for gap in range(3, 9):
        blocked = frozenset(range(gap, 60, gap))
        fields = ring_fields(src=0, slen=32, dst=48, rlen=32, keep=1, add=1)
        rtl_cycles, rtl_spad = run_rtl(fields, spad, blocked=blocked)
        model_ticks, model_spad, bank_waits = run_model(fields, spad, blocked=blocked)
        np.testing.assert_array_equal(rtl_spad, model_spad)
        assert rtl_cycles == model_ticks + 1
        waits += bank_waits
    assert waits > 0
