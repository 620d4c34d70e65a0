"""The SPAD: host port, the array port's transfer timing, and its two regions of two banks of
two ports."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from caterpillar.contract.config import preset
from caterpillar.contract.geometry import spad_bank, spad_region_bit
from caterpillar.rtl.microop import transfer_layout
from caterpillar.rtl.spad import Spad

CFG = preset("tiny")


def test_host_words_and_array_rows():
    spad = Spad(CFG)
    log = {}

    async def testbench(ctx):
        for addr in range(8):
            ctx.set(spad.host.addr, addr)
            ctx.set(spad.host.wdata, 100 + addr)
            ctx.set(spad.host.we, 1)
            await ctx.tick()
        ctx.set(spad.host.we, 0)
        # A load of row 1 at t: on the buses at t + 2.
        ctx.set(spad.issue.xfer, transfer_layout(CFG).const({"valid": 1, "spad_row": 1,
                                                       "col_bus": 1, "lanes": 0b11}))
        await ctx.tick()
        ctx.set(spad.issue.xfer, transfer_layout(CFG).const({}))
        await ctx.tick()
        log["load"] = (ctx.get(spad.edge.drive), ctx.get(spad.edge.col),
                       [ctx.get(spad.edge.data[k]) for k in range(CFG.nr)])
        # A store of lane 1 only, from the column buses, lands at t + 2.
        ctx.set(spad.issue.xfer, transfer_layout(CFG).const({"valid": 1, "store": 1, "spad_row": 3,
                                                       "col_bus": 1, "lanes": 0b10}))
        await ctx.tick()
        ctx.set(spad.issue.xfer, transfer_layout(CFG).const({}))
        await ctx.tick()
        for k in range(CFG.nr):
            ctx.set(spad.edge.col_bus[k], 7 + k)
        await ctx.tick()
        words = []
        for addr in (6, 7):
            ctx.set(spad.host.addr, addr)
            ctx.set(spad.host.re, 1)
            await ctx.tick()
            words.append(ctx.get(spad.host.rdata))
        log["stored"] = words

    sim = Simulator(spad)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert log["load"] == (1, 1, [102, 103])
    assert log["stored"] == [106, 8]  # lane 0 kept, lane 1 written from column bus 1


#: Rows the random tests use: 12 at the start of each region (both banks of each).
REGION_ROWS = [list(range(12)), [(1 << spad_region_bit(CFG)) + r for r in range(12)]]
ROWS = REGION_ROWS[0] + REGION_ROWS[1]


def _random_spad_run(rng, cycles, mode):
    """Drive the SPAD with random legal users for ``cycles`` cycles and check every read
    against a reference that applies each cycle's writes after its reads (read-before-write).

    ``mode``: ``ring``, the ring engine's send read, add read and write (never three in one
    bank); ``array``, the array's loads and stores (stores land two cycles after issue);
    ``both``, the two at once in different regions (the engine in region 1, then, after two
    cycles without array transfers, in region 0)."""
    spad = Spad(CFG)
    nr, ring = CFG.nr, spad.ring
    index = {row: k for k, row in enumerate(ROWS)}
    reference = rng.integers(0, 1 << 32, size=(len(ROWS), nr), dtype=np.uint64)
    problems = []

    async def testbench(ctx):
        for row in ROWS:               # the host fills the SPAD while idle
            for lane in range(nr):
                ctx.set(spad.host.addr, row * nr + lane)
                ctx.set(spad.host.wdata, int(reference[index[row], lane]))
                ctx.set(spad.host.we, 1)
                await ctx.tick()
        ctx.set(spad.host.we, 0)
        ctx.set(ring.active, mode != "array")
        expect = {}                      # cycle -> [(what, row values)]
        stores = {}                      # cycle the store lands -> (row, lanes, values)
        half = cycles // 2
        for t in range(cycles):
            ctx.set(spad.issue.xfer, transfer_layout(CFG).const({}))
            for name in ("rd_en", "op_en"):
                ctx.set(getattr(ring, name), 0)
            ctx.set(ring.wr_lanes, 0)
            ring_rows = ROWS if mode == "ring" else REGION_ROWS[int(t < half)]
            array_rows = ROWS if mode == "array" else REGION_ROWS[int(t >= half)]
            writes = []
            if mode != "array":
                rd, op, wr = (int(rng.choice(ring_rows)) if rng.random() < 0.7 else None
                              for _ in range(3))
                used = [spad_bank(CFG, r) for r in (rd, op, wr) if r is not None]
                if len(used) == 3 and len(set(used)) == 1:
                    rd = None                 # the engine's rule: the send read waits
                for name, row in (("rd", rd), ("op", op)):
                    if row is not None:
                        ctx.set(getattr(ring, f"{name}_addr"), row)
                        ctx.set(getattr(ring, f"{name}_en"), 1)
                        expect.setdefault(t + 1, []).append((name,
                                                             reference[index[row]].copy()))
                if wr is not None:
                    lanes = int(rng.integers(1, 1 << nr))
                    values = rng.integers(0, 1 << 32, size=nr, dtype=np.uint64)
                    ctx.set(ring.wr_addr, wr)
                    ctx.set(ring.wr_lanes, lanes)
                    for lane in range(nr):
                        ctx.set(ring.wr_data[lane], int(values[lane]))
                    writes.append((wr, lanes, values))
            # In both, no array transfer in the two cycles before the regions swap: a store
            # issued then would land in the engine's new region.
            if mode != "ring" and not (mode == "both" and half - 2 <= t < half):
                if rng.random() < 0.5:
                    row = int(rng.choice(array_rows))
                    ctx.set(spad.issue.xfer, transfer_layout(CFG).const(
                        {"valid": 1, "spad_row": row, "col_bus": 1, "lanes": (1 << nr) - 1}))
                    expect.setdefault(t + 2, []).append(("edge",
                                                         reference[index[row]].copy()))
                elif rng.random() < 0.8:
                    row, lanes = int(rng.choice(array_rows)), int(rng.integers(1, 1 << nr))
                    values = rng.integers(0, 1 << 32, size=nr, dtype=np.uint64)
                    ctx.set(spad.issue.xfer, transfer_layout(CFG).const(
                        {"valid": 1, "store": 1, "spad_row": row, "col_bus": 1,
                         "lanes": lanes}))
                    stores[t + 2] = (row, lanes, values)
            landing = stores.pop(t, None)
            if landing is not None:
                for lane in range(nr):
                    ctx.set(spad.edge.col_bus[lane], int(landing[2][lane]))
                writes.append(landing)
            if ctx.get(spad.collision):
                problems.append((t, "collision"))
            for what, values in expect.pop(t, []):
                port = {"rd": ring.rd_data, "op": ring.op_data, "edge": spad.edge.data}[what]
                got = [ctx.get(port[lane]) for lane in range(nr)]
                if got != [int(v) for v in values]:
                    problems.append((t, what, got, values.tolist()))
            for row, lanes, values in writes:
                for lane in range(nr):
                    if lanes >> lane & 1:
                        reference[index[row], lane] = values[lane]
            await ctx.tick()

    sim = Simulator(spad)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert not problems, problems[:3]


@pytest.mark.parametrize("mode", ["array", "ring", "both"])
def test_two_regions_of_two_banks_serve_every_legal_cycle(rng, mode):
    _random_spad_run(rng, 400, mode)


def test_only_two_reads_of_other_rows_than_the_write_in_one_bank_collide():
    """Three users in one bank are served when a read is of the written row (port 0 reads the
    old row, port 1 the other); two reads of two other rows are the one cycle no port can
    take."""
    spad = Spad(CFG)
    ring = spad.ring
    rows = [r for r in REGION_ROWS[0] if spad_bank(CFG, r) == 0][:3]
    cases = {"read shares the write's row": (rows[0], rows[1], rows[0], 0),
             "add read shares the write's row": (rows[1], rows[0], rows[0], 0),
             "both reads of one other row": (rows[1], rows[1], rows[0], 0),
             "three rows": (rows[1], rows[2], rows[0], 1)}
    seen = {}

    async def testbench(ctx):
        ctx.set(ring.active, 1)
        for name, (rd, op, wr, _) in cases.items():
            ctx.set(ring.rd_addr, rd)
            ctx.set(ring.op_addr, op)
            ctx.set(ring.wr_addr, wr)
            ctx.set(ring.rd_en, 1)
            ctx.set(ring.op_en, 1)
            ctx.set(ring.wr_lanes, 1)
            seen[name] = ctx.get(spad.collision)
            ctx.set(ring.wr_lanes, 0)
            seen[name + ", no write"] = ctx.get(spad.collision)
            await ctx.tick()

    sim = Simulator(spad)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert seen == {**{name: c[3] for name, c in cases.items()},
                    **{name + ", no write": 0 for name in cases}}


@pytest.mark.parametrize("fmt", ["fp16", "fp32"])
def test_a_relu_store_writes_what_vop_maxs_with_plus_zero_computes(fmt, rng):
    """Every fp16 word (fp32: its specials and random words) through the store's
    rectifier against the golden ``vop maxs`` with +0: -0 and negatives +0, NaN canonical."""
    from amaranth.hdl import Module, Signal

    from caterpillar.golden import kernels as gk
    from caterpillar.golden.numerics import FORMATS
    from caterpillar.rtl.spad import _rectified

    f = FORMATS[fmt]
    if f.width == 16:
        words = np.arange(1 << 16, dtype=np.uint64)
    else:
        specials = [0, 1 << 31, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00001, 0x80000001,
                    0x00000001, 0xBF800000, 0x3F800000]
        words = np.concatenate([np.array(specials, dtype=np.uint64),
                                rng.integers(0, 1 << 32, 4000, dtype=np.uint64)])
    want = gk.vop("maxs", words, words, 0, f, FORMATS["fp32"])
    m = Module()
    value, out = Signal(f.width), Signal(f.width)
    m.d.comb += out.eq(_rectified(m, f, value, "word"))
    got = []

    async def bench(ctx):
        for w in words:
            ctx.set(value, int(w))
            got.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    np.testing.assert_array_equal(np.array(got, dtype=np.uint64), want)
