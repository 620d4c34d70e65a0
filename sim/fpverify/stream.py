"""Stream operand sets through a pipelined unit in the Amaranth simulator."""

from __future__ import annotations

import numpy as np
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

__all__ = ["run_stream_unit", "WatchdogTimeout"]


class WatchdogTimeout(RuntimeError):
    """A simulation waited longer than its cycle budget."""


def run_stream_unit(unit, operands: dict[str, np.ndarray] | np.ndarray, *, field=None,
                    valid_pattern=None, vcd_path=None, slack: int = 64,
                    timing: bool = False):
    """Feed one operand set per cycle to ``unit`` and return its results in order.

    Parameters
    ----------
    unit : wiring.Component
        A component with ``operands`` (always-ready input stream) and ``result`` (output
        stream) members, as the floating-point units have.
    operands : dict of arrays, or array
        One array per field of a struct payload (all the same length), or one array for a plain
        payload. Values are raw bit patterns (signed fields take signed integers).
    field : str, optional
        Return this field of a struct result payload instead of the whole payload.
    valid_pattern : sequence of bool, optional
        Cycled over to insert idle cycles between operand sets (``True`` = send).
    vcd_path : str, optional
        Write a waveform.
    slack : int
        Cycles allowed beyond ``cases + idle cycles`` before :class:`WatchdogTimeout`.

    timing : bool
        Also return the cycle each operand set was sent and each result was seen.

    Returns
    -------
    numpy.ndarray of uint64
        One result per operand set, in order; with ``timing``, a tuple ``(results, sent_at,
        seen_at)`` of three arrays.
    """
    if isinstance(operands, dict):
        names = list(operands)
        count = len(operands[names[0]])
        columns = {k: np.asarray(v).tolist() for k, v in operands.items()}
    else:
        names = None
        count = len(operands)
        columns = {None: np.asarray(operands).tolist()}
    pattern = [True] if valid_pattern is None else list(valid_pattern)
    results, sent_at, seen_at = [], [], []

    def payload_int(payload):
        if field is not None:
            payload = getattr(payload, field)
        return int(payload) if isinstance(payload, int) else int(payload.as_value().value)

    async def testbench(ctx):
        # Inputs are set, then outputs sampled, within the same cycle: correct for latency 0.
        budget = count * len(pattern) + slack
        sent = 0
        for cycle in range(budget):
            send = sent < count and pattern[cycle % len(pattern)]
            if send:
                if names is None:
                    ctx.set(unit.operands.payload, columns[None][sent])
                else:
                    for k in names:
                        ctx.set(getattr(unit.operands.payload, k), columns[k][sent])
                sent += 1
                sent_at.append(cycle)
            ctx.set(unit.operands.valid, send)
            if ctx.get(unit.result.valid):
                results.append(payload_int(ctx.get(unit.result.payload)))
                seen_at.append(cycle)
                if len(results) == count:
                    return
            await ctx.tick()
        raise WatchdogTimeout(f"{type(unit).__name__}: {len(results)} of {count} results "
                              f"after {budget} cycles")

    top = Module()
    top.submodules.dut = unit
    top.domains.sync = ClockDomain()  # so that combinational (latency 0) units run too
    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    if vcd_path:
        with sim.write_vcd(vcd_path):
            sim.run()
    else:
        sim.run()
    results = np.array(results, dtype=np.uint64)
    if timing:
        return results, np.array(sent_at), np.array(seen_at)
    return results
