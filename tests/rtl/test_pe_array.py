"""The PE array: bus multiplexing and conflicts, and reduction chains over the torus links."""

from amaranth.sim import Simulator

from caterpillar.contract.config import preset
from caterpillar.golden import numerics as gn
from caterpillar.rtl.microop import (
    NO_LIMIT,
    ASrc,
    BSrc,
    BusSrc,
    Chain,
    CSrc,
    Drive,
    Dst,
    FuOp,
    Select,
    XferKind,
    compute_layout,
    transfer_layout,
)
from caterpillar.rtl.pe_array import PEArray

CFG = preset("small")  # nr = 4
F = gn.FP32


def bits(v):
    return int(gn.from_float(v, F))


def uop(**fields):
    base = {"valid": 1, "row_lim": NO_LIMIT, "col_lim": NO_LIMIT, "k_lim": NO_LIMIT,
            "a": ASrc.NEGZERO, "b": BSrc.ONE, "c": CSrc.NEGZERO}
    return compute_layout(CFG).const({**base, **fields})


def run(steps, cycles):
    """steps: {cycle: (uop, xfer, spad_drive, spad_col, spad_data)}; returns samples."""
    array = PEArray(CFG)
    idle_u = compute_layout(CFG).const({"row_lim": NO_LIMIT, "col_lim": NO_LIMIT})
    idle_x = transfer_layout(CFG).const({})
    samples = []

    async def testbench(ctx):
        for t in range(cycles):
            u, x, drive, col, data = steps.get(t, (idle_u, idle_x, 0, 0, [0] * CFG.nr))
            ctx.set(array.issue.uop, u)
            ctx.set(array.issue.xfer, x)
            ctx.set(array.spad.drive, drive)
            ctx.set(array.spad.col, col)
            for k in range(CFG.nr):
                ctx.set(array.spad.data[k], data[k])
            samples.append({"hazard": ctx.get(array.status.hazard),
                            "col": [ctx.get(array.spad.col_bus[k]) for k in range(CFG.nr)],
                            "row": [ctx.get(array.spad.row_bus[k]) for k in range(CFG.nr)]})
            await ctx.tick()

    sim = Simulator(array)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return samples


def test_spad_lanes_reach_every_pe_and_chains_reduce_along_rows():
    nr = CFG.nr
    idle_u = compute_layout(CFG).const({"row_lim": NO_LIMIT, "col_lim": NO_LIMIT})
    load = transfer_layout(CFG).const({"valid": 1, "col_bus": 1, "lanes": (1 << nr) - 1,
                                       "target": Select.ALL, "kind": XferKind.MEMB, "addr": 0})
    values = [bits(float(2 ** c)) for c in range(nr)]
    steps = {0: (idle_u, load, 0, 0, [0] * nr),
             2: (idle_u, transfer_layout(CFG).const({}), 1, 1, values)}
    # Chain along each row: position q adds its MemB[0] (2**col) to the west link, the
    # diagonal last: every row's total is the sum of all columns' values.
    delay = CFG.add_latency + 1
    for idx in range((nr - 1) * delay + 1):
        steps[10 + idx] = (uop(fu=FuOp.MAC, a=ASrc.MEMB0, memb_rd=0, b=BSrc.ONE,
                               chain=Chain.ROW, chain_idx=idx, chain_len=1, dst=Dst.MEMB,
                               memb_wr=1),
                           transfer_layout(CFG).const({}), 0, 0, [0] * nr)
    store_at = 10 + (nr - 1) * delay + 1 + CFG.write_back_latency
    steps[store_at] = (idle_u, transfer_layout(CFG).const({
        "valid": 1, "store": 1, "col_bus": 1, "lanes": (1 << nr) - 1, "target": Select.DIAG,
        "kind": XferKind.MEMB, "addr": 1}), 0, 0, [0] * nr)
    samples = run(steps, store_at + 4)
    assert samples[2]["col"] == values
    assert samples[store_at + 2]["col"] == [bits(float(2 ** nr - 1))] * nr
    assert not any(s["hazard"] for s in samples)


def test_two_drivers_on_one_bus_are_a_hazard():
    # The diagonal drives every row bus two cycles after issue; the SPAD driving the row buses
    # in that cycle too is a conflict, flagged in exactly that cycle.
    u = uop(fu=FuOp.MOVE, row_drive=Drive.DIAG, bus_src=BusSrc.ACC, select=Select.NONE)
    idle_u = compute_layout(CFG).const({"row_lim": NO_LIMIT, "col_lim": NO_LIMIT})
    idle_x = transfer_layout(CFG).const({})
    samples = run({0: (u, idle_x, 0, 0, [0] * CFG.nr),
                   2: (idle_u, idle_x, 1, 0, [1] * CFG.nr)}, 6)
    assert [s["hazard"] for s in samples] == [0, 0, 1, 0, 0, 0]
