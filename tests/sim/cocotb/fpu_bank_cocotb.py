"""cocotb tests of the FPU bank: every operation's corner cases, with idle cycles, and reset.

Configured from the environment by ``test_fpu_bank.py``: ``FPU_FORMAT``, ``FPU_LATENCIES``
(JSON), ``FPU_MAX_CASES`` and ``FPU_SEED``.
"""

import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from caterpillar.golden.numerics import format_by_name
from caterpillar.sim.fpverify.bank import BANK_PORT_WIDTH, bank_ops, golden_op
from caterpillar.sim.fpverify.cases import directed_cases

FMT = format_by_name(os.environ["FPU_FORMAT"])
LATENCIES = json.loads(os.environ["FPU_LATENCIES"])
MAX_CASES = int(os.environ.get("FPU_MAX_CASES", "1500"))
SEED = int(os.environ.get("FPU_SEED", "1"))
MASK = (1 << BANK_PORT_WIDTH) - 1


class TB:
    """Clock, reset and a one-case-per-cycle driver with a result monitor."""

    def __init__(self, dut):
        self.dut = dut
        self.rng = random.Random(SEED)
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())

    async def reset(self):
        dut = self.dut
        for port in (dut.in_valid, dut.op, dut.a, dut.b, dut.c):
            port.value = 0
        dut.rst.value = 1
        await ClockCycles(dut.clk, 3)
        await FallingEdge(dut.clk)
        dut.rst.value = 0

    async def stream(self, op_index, cols, idle_probability=0.25):
        """Send every case (idle cycles at random) and return the results, in order."""
        dut = self.dut
        count = len(cols[0])
        results, sent, cycle = [], 0, 0
        budget = 2 * count + 64  # idle cycles are at most a quarter on average; the watchdog
        dut.op.value = op_index
        while len(results) < count:
            await FallingEdge(dut.clk)
            if int(dut.out_valid.value):
                results.append(int(dut.result.value))
            if sent < count and self.rng.random() >= idle_probability:
                dut.a.value = int(cols[0][sent]) & MASK
                dut.b.value = int(cols[1][sent]) & MASK if len(cols) > 1 else 0
                dut.c.value = int(cols[2][sent]) & MASK if len(cols) > 2 else 0
                dut.in_valid.value = 1
                sent += 1
            else:
                dut.in_valid.value = 0
            cycle += 1
            assert cycle < budget, (f"watchdog: {len(results)} of {count} results after "
                                    f"{cycle} cycles (seed {SEED})")
        dut.in_valid.value = 0
        return np.array(results, dtype=np.uint64)


@cocotb.test()
async def every_op_matches_golden_on_corner_cases(dut):
    """Directed corner classes of each operation, with random idle cycles between cases."""
    tb = TB(dut)
    await tb.reset()
    sample = np.random.default_rng(SEED)
    for index, op in enumerate(bank_ops(FMT)):
        cols = directed_cases(op, np.random.default_rng(2))
        if len(cols[0]) > MAX_CASES:
            pick = np.sort(sample.choice(len(cols[0]), MAX_CASES, replace=False))
            cols = [c[pick] for c in cols]
        got = await tb.stream(index, cols)
        want = np.asarray(golden_op(op, *cols), dtype=np.uint64)
        bad = np.nonzero(got != want)[0]
        assert len(bad) == 0, (f"{FMT} {op.key}: {len(bad)} mismatches, first at case "
                               f"{bad[:1]}: got {got[bad[:1]]}, want {want[bad[:1]]} "
                               f"(seed {SEED})")
        dut._log.info("%s %s: %d cases match", FMT, op.key, len(got))


@cocotb.test()
async def reset_discards_cases_in_flight(dut):
    """Cases in the pipeline when reset rises never come out."""
    tb = TB(dut)
    await tb.reset()
    mac = next(i for i, o in enumerate(bank_ops(FMT)) if o.op == "mac")
    dut.op.value = mac
    for _ in range(3):
        await FallingEdge(dut.clk)
        dut.in_valid.value = 1
    await FallingEdge(dut.clk)
    dut.in_valid.value = 0
    dut.rst.value = 1
    for _ in range(LATENCIES["mul_latency"] + LATENCIES["add_latency"] + 4):
        await FallingEdge(dut.clk)
        assert not int(dut.out_valid.value), "a result left the pipeline during reset"
    dut.rst.value = 0
    for _ in range(8):
        await FallingEdge(dut.clk)
        assert not int(dut.out_valid.value), "a discarded case came out after reset"
