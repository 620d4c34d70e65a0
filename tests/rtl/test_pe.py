"""One PE driven by hand-written micro-ops: timing of every path, operations and hazards."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from caterpillar.contract.config import preset
from caterpillar.golden import numerics as gn
from caterpillar.rtl.microop import (
    NO_LIMIT,
    ASrc,
    BSrc,
    BusSrc,
    CSrc,
    Drive,
    Dst,
    Fill,
    FuOp,
    KDim,
    Select,
    XferKind,
    compute_layout,
    transfer_layout,
)
from caterpillar.rtl.pe import PE

CFG = preset("tiny")
F = gn.FP32
WB = CFG.write_back_latency


def bits(value):
    return int(gn.from_float(value, F))


def uop(**fields):
    base = {"valid": 1, "row_lim": NO_LIMIT, "col_lim": NO_LIMIT, "k_lim": NO_LIMIT,
            "a": ASrc.NEGZERO, "b": BSrc.ONE, "c": CSrc.NEGZERO}
    base.update(fields)
    return compute_layout(CFG).const(base)


def xfer(**fields):
    return transfer_layout(CFG).const({"valid": 1, "lanes": 0b11, **fields})


IDLE_U = compute_layout(CFG).const({"row_lim": NO_LIMIT, "col_lim": NO_LIMIT})
IDLE_X = transfer_layout(CFG).const({})


def run(program, *, row=0, col=1, bus=None, cycles=None):
    """Run ``program`` (per cycle: (uop or None, xfer or None)); return per-cycle samples."""
    pe = PE(CFG, row, col)
    bus = bus or {}
    samples = []

    async def testbench(ctx):
        total = cycles or len(program) + 2 * WB
        for t in range(total):
            u, x = program[t] if t < len(program) else (None, None)
            ctx.set(pe.uop, u if u is not None else IDLE_U)
            ctx.set(pe.xfer, x if x is not None else IDLE_X)
            ctx.set(pe.col_bus, bus.get(t, 0))
            ctx.set(pe.row_bus, bus.get(t, 0))
            samples.append({"col_drive": ctx.get(pe.col_drive), "col_out": ctx.get(pe.col_out),
                            "row_drive": ctx.get(pe.row_drive), "hazard": ctx.get(pe.hazard),
                            "link_e": ctx.get(pe.link_e), "mac": ctx.get(pe.events.mac)})
            await ctx.tick()

    sim = Simulator(pe)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return samples


def load_b(addr):
    return xfer(col_bus=1, target=Select.ALL, kind=XferKind.MEMB, addr=addr)


def store(kind, addr):
    return xfer(store=1, col_bus=1, target=Select.ALL, kind=kind, addr=addr)


def stored(samples):
    return [(t, s["col_out"]) for t, s in enumerate(samples) if s["col_drive"]]


def test_load_mac_store_latencies():
    # Loads land 2 cycles after issue; a MAC's result is visible WB cycles after issue; a store
    # drives the bus 2 cycles after issue.
    program = [(None, load_b(5)), (None, None), (None, None),
               (uop(fu=FuOp.MAC, a=ASrc.MEMB0, memb_rd=5, b=BSrc.SCALAR, scalar=bits(2.0),
                    dst=Dst.ACC, acc_wr=1), None)]
    program += [(None, None)] * (WB - 2)
    program += [(None, store(XferKind.ACC, 1))]
    samples = run(program, bus={2: bits(3.0)})
    assert stored(samples) == [(3 + WB - 1 + 2, bits(6.0))]
    assert samples[3]["mac"] == 1


def test_a_result_is_visible_exactly_wb_cycles_after_issue():
    # A store reads its slot one cycle after issue: issued WB - 1 cycles after the MAC it sees
    # the result, issued WB - 2 cycles after it sees the old value.
    for gap, want in ((WB - 1, bits(6.0)), (WB - 2, 0)):
        program = [(None, load_b(5)), (None, None), (None, None),
                   (uop(fu=FuOp.MAC, a=ASrc.MEMB0, memb_rd=5, b=BSrc.SCALAR,
                        scalar=bits(2.0), dst=Dst.ACC, acc_wr=1), None)]
        program += [(None, None)] * (gap - 1) + [(None, store(XferKind.ACC, 1))]
        samples = run(program, bus={2: bits(3.0)})
        assert stored(samples) == [(3 + gap + 2, want)]


def test_accumulation_interleaves_over_acc_lanes():
    # acc[l] += a*b every cycle, rotating over Lacc slots: the rate the kernels rely on.
    lanes, steps = CFG.acc_lanes, 3
    program = []
    for step in range(steps):
        for lane in range(lanes):
            program.append((uop(fu=FuOp.MAC, a=ASrc.SCALAR, scalar=bits(float(lane + 1)),
                                b=BSrc.ONE, c=CSrc.NEGZERO if step == 0 else CSrc.ACC,
                                acc_rd=lane, dst=Dst.ACC, acc_wr=lane), None))
    program += [(None, None)] * WB
    program += [(None, store(XferKind.ACC, lane)) for lane in range(lanes)]
    samples = run(program)
    assert [v for _, v in stored(samples)] == [bits(steps * (lane + 1.0))
                                                for lane in range(lanes)]


def test_reduction_bound_passes_the_addend_through():
    # Outside the k bound the product is -0: c + (-0) = c, and the MAC counter does not count.
    program = [(uop(fu=FuOp.MAC, a=ASrc.SCALAR, scalar=bits(5.0), b=BSrc.ONE,
                    c=CSrc.SCALAR2, scalar2=bits(1.5), kdim=KDim.COL, k_base=0, k_lim=1,
                    dst=Dst.ACC, acc_wr=0), None)]
    program += [(None, None)] * WB + [(None, store(XferKind.ACC, 0))]
    samples = run(program, col=1)  # k coordinate = col = 1, not < 1
    assert stored(samples)[0][1] == bits(1.5)
    assert samples[0]["mac"] == 0


@pytest.mark.parametrize("fu,a,b,c,want", [
    (FuOp.MAX, -2.0, 3.0, 0.0, 3.0),
    (FuOp.MIN, -2.0, 3.0, 0.0, -2.0),
    (FuOp.MAXC, -2.0, 0.0, -7.0, -2.0),
    (FuOp.GTSEL, 0.5, 4.0, 0.0, 4.0),
    (FuOp.GTSEL, -0.5, 4.0, 0.0, 0.0),
    (FuOp.MOVE, -9.25, 0.0, 0.0, -9.25),
])
def test_side_unit_operations(fu, a, b, c, want):
    program = [(uop(fu=fu, a=ASrc.SCALAR, scalar=bits(a), b=BSrc.MEMB1, memb_rd2=3,
                    c=CSrc.SCALAR2, scalar2=bits(c), dst=Dst.ACC, acc_wr=0), None)]
    program = [(None, load_b(3)), (None, None), (None, None)] + program
    program += [(None, None)] * WB + [(None, store(XferKind.ACC, 0))]
    samples = run(program, bus={2: bits(b)})
    assert stored(samples)[0][1] == bits(want)


def test_scale_takes_the_exponent_from_the_addend_and_rseed_estimates_a_reciprocal():
    n = 5
    program = [(uop(fu=FuOp.SCALE, a=ASrc.SCALAR, scalar=bits(1.25), c=CSrc.SCALAR2,
                    scalar2=n, dst=Dst.ACC, acc_wr=0), None),
               (uop(fu=FuOp.RSEED, c=CSrc.SCALAR2, scalar2=bits(3.0), dst=Dst.ACC, acc_wr=1),
                None)]
    program += [(None, None)] * WB + [(None, store(XferKind.ACC, 0)),
                                      (None, store(XferKind.ACC, 1))]
    values = [v for _, v in stored(run(program))]
    assert values[0] == bits(1.25 * 2 ** n)
    assert values[1] == int(gn.reciprocal_seed(np.uint64(bits(3.0)), F))
    assert abs(gn.to_float64(np.uint64(values[1]), F) * 3.0 - 1) < 0.07


def test_bus_drive_timing():
    # The driving PE reads at t, loads its bus register at t + 1: the bus carries it at t + 2.
    program = [(None, load_b(2)), (None, None), (None, None),
               (uop(fu=FuOp.MOVE, a=ASrc.NEGZERO, col_drive=Drive.SEL, drive_sel=0,
                    bus_src=BusSrc.MEMB0, memb_rd=2, select=Select.NONE), None)]
    samples = run(program, row=0, bus={2: bits(7.0)})
    assert stored(samples) == [(5, bits(7.0))]


def load_a(addr):
    return xfer(col_bus=1, target=Select.ALL, kind=XferKind.MEMA, addr=addr)


def test_side_fill_copies_the_word_read_at_issue_into_a_slot():
    # Fill.MEMA: the MemA word the MAC reads as a goes to slot 5 one cycle after issue, and the
    # MAC still computes with it; Fill.MEMB1: the MemB word on port 1, with nothing selected.
    program = [(None, load_a(4)), (None, load_b(7)), (None, None), (None, None),
               (uop(fu=FuOp.MAC, a=ASrc.MEMA, mema=4, b=BSrc.SCALAR, scalar=bits(2.0),
                    dst=Dst.ACC, acc_wr=1, fill=Fill.MEMA, fill_slot=5), None),
               (uop(select=Select.NONE, fill=Fill.MEMB1, memb_rd2=7, fill_slot=6), None),
               (None, store(XferKind.ACC, 5)), (None, None), (None, store(XferKind.ACC, 6))]
    program += [(None, None)] * WB + [(None, store(XferKind.ACC, 1))]
    samples = run(program, bus={2: bits(1.5), 3: bits(-4.0)})
    assert [v for _, v in stored(samples)] == [bits(1.5), bits(-4.0), bits(3.0)]
    assert not any(s["hazard"] for s in samples)


def test_fill_outside_the_reduction_bound_reads_nothing():
    # Outside the k bound a is a constant: MemA is not read (no port, no fill), so a transfer
    # load may write MemA in that cycle.
    program = [(None, load_a(4)), (None, store(XferKind.ACC, 5)), (None, load_a(6)),
               (None, None),
               (uop(fu=FuOp.MAC, a=ASrc.MEMA, mema=4, kdim=KDim.COL, k_base=0, k_lim=1,
                    dst=Dst.ACC, acc_wr=1, fill=Fill.MEMA, fill_slot=5), None),
               (None, None), (None, store(XferKind.ACC, 5))]
    samples = run(program, bus={2: bits(1.5), 4: bits(2.5)})          # col 1: k 1 >= 1
    first, second = [v for _, v in stored(samples)]
    assert first == second and not any(s["hazard"] for s in samples)


def test_dual_write_back_goes_to_mema_rounded_and_to_the_slot():
    program = [(None, load_a(4)), (None, None), (None, None),
               (uop(fu=FuOp.MAC, a=ASrc.SCALAR, scalar=bits(3.0), b=BSrc.SCALAR,
                    c=CSrc.MEMA, mema=4, dst=Dst.MEMA_ACC, acc_wr=2), None)]
    program += [(None, None)] * WB + [(None, store(XferKind.MEMA, 4)), (None, None),
                                      (None, store(XferKind.ACC, 2))]
    samples = run(program, bus={2: bits(0.5)})
    assert [v for _, v in stored(samples)] == [bits(0.5 + 3.0 * 3.0)] * 2


@pytest.mark.parametrize("name,program", [
    ("a fill and a write-back into one slot", [
        (uop(fu=FuOp.MOVE, dst=Dst.ACC, acc_wr=3), None)] + [(None, None)] * (WB - 3)
        + [(uop(select=Select.NONE, fill=Fill.MEMB1, memb_rd2=0, fill_slot=3), None)]),
    # A read and a write of opposite parity share a cycle (MemA's two banks); of one, not.
    ("MemA read and a transfer write to one bank", [
        (None, xfer(col_bus=1, target=Select.ALL, kind=XferKind.MEMA, addr=3)),
        (None, None),
        (uop(fu=FuOp.MOVE, a=ASrc.MEMA, mema=5, dst=Dst.ACC), None)]),
    ("three MemB accesses", [
        (uop(fu=FuOp.MAC, a=ASrc.MEMB0, b=BSrc.MEMB1, dst=Dst.MEMB, memb_wr=9), None)]
        * (WB + 1)),
    ("a bus driven twice", [
        (uop(fu=FuOp.MOVE, col_drive=Drive.SEL, drive_sel=0, bus_src=BusSrc.MEMB0,
             select=Select.NONE), store(XferKind.MEMB, 0))]),
    ("one accumulator slot written twice", [
        (uop(fu=FuOp.MOVE, dst=Dst.ACC, acc_wr=3), None)] + [(None, None)] * (WB - 4)
        + [(None, xfer(col_bus=1, target=Select.ALL, kind=XferKind.ACC, addr=3))]),
])
def test_structural_hazards_are_flagged(name, program):
    samples = run(program)
    assert any(s["hazard"] for s in samples), name


def test_no_hazard_in_a_legal_stream():
    program = [(uop(fu=FuOp.MAC, a=ASrc.MEMA, mema=t, b=BSrc.MEMB0, memb_rd=t,
                    c=CSrc.ACC if t else CSrc.NEGZERO, acc_rd=t % 4, dst=Dst.ACC,
                    acc_wr=t % 4), load_b(100 + t)) for t in range(20)]
    assert not any(s["hazard"] for s in run(program))


# MemB users that meet in cycle T: each entry is (cycle offset from T, uop or xfer, what it
# leaves behind: ("acc", slot, value) or ("memb", addr, value) or ("bus", value)).
V1, V2, VWB, VWL = 3.0, -5.0, 0.75, 6.5
T = 20
MEMB_USERS = {
    "R0": (0, uop(fu=FuOp.MOVE, a=ASrc.MEMB0, memb_rd=1, dst=Dst.ACC, acc_wr=0),
           ("acc", 0, V1)),
    "R1": (0, uop(fu=FuOp.MOVE, a=ASrc.MEMB1, memb_rd2=2, dst=Dst.ACC, acc_wr=1),
           ("acc", 1, V2)),
    "R0R1": (0, uop(fu=FuOp.MAC, a=ASrc.MEMB0, memb_rd=1, b=BSrc.MEMB1, memb_rd2=2,
                    dst=Dst.ACC, acc_wr=2), ("acc", 2, V1 * V2)),
    "store": (0, store(XferKind.MEMB, 1), ("bus", V1)),
    "WB": (1 - WB, uop(fu=FuOp.MOVE, a=ASrc.SCALAR, scalar=bits(VWB), dst=Dst.MEMB,
                       memb_wr=8), ("memb", 8, VWB)),
    "WL": (-2, load_b(9), ("memb", 9, VWL)),
}


@pytest.mark.parametrize("pair", [("R0", "WB"), ("R1", "WB"), ("R0", "WL"), ("R1", "WL"),
                                  ("WB", "WL"), ("R0R1",), ("store", "R1"), ("store", "WB"),
                                  ("store", "WL"), ("R1",), ("WB",), ("WL",)])
def test_any_two_memb_users_share_the_two_ports(pair):
    # MemB has two physical ports; any two of its users in one cycle get one each and every
    # value read or written is the right one.
    program = [(None, None)] * (T + 3 * WB)
    bus = {2: bits(V1), 5: bits(V2), T: bits(VWL)}
    program[0] = (None, load_b(1))
    program[3] = (None, load_b(2))
    for name in pair:
        offset, op, _ = MEMB_USERS[name]
        u, x = program[T + offset]
        program[T + offset] = (op, x) if name not in ("store", "WL") else (u, op)
    checks = []
    tail = T + 2 * WB
    for name in pair:
        kind, *where = MEMB_USERS[name][2]
        if kind == "bus":
            checks.append((T + 2, where[0]))
        else:
            program[tail] = (None, store(XferKind.ACC if kind == "acc" else XferKind.MEMB,
                                         where[0]))
            checks.append((tail + 2, where[1]))
            tail += 1
    samples = run(program, bus=bus)
    assert not any(s["hazard"] for s in samples), pair
    drives = dict(stored(samples))
    for cycle, value in checks:
        assert drives.get(cycle) == bits(value), (pair, cycle)


@pytest.mark.parametrize("name,program", [
    ("a word read on one port while the other writes it", [
        (None, load_b(4)), (None, None),
        (uop(fu=FuOp.MOVE, a=ASrc.MEMB0, memb_rd=4, dst=Dst.ACC), None)]),
    ("a word written by both ports", [
        (uop(fu=FuOp.MOVE, dst=Dst.MEMB, memb_wr=4), None)] + [(None, None)] * (WB - 4)
        + [(None, load_b(4))]),
])
def test_memb_collisions_are_flagged(name, program):
    # A block RAM's result is undefined when its ports collide on one word: never allowed.
    samples = run(program)
    assert any(s["hazard"] for s in samples), name
