"""Register placement for datapaths written as a chain of combinational steps."""

from __future__ import annotations

import functools
import itertools

from amaranth.hdl import Signal, Value

__all__ = ["plan_registers", "Pipeline", "keep", "named"]


@functools.lru_cache(maxsize=None)
def plan_registers(weights: tuple[int, ...], latency: int) -> tuple[int, ...]:
    """Return how many register stages to place at each cut of a chain of steps.

    A chain of ``K`` combinational steps with estimated logic depths ``weights`` has ``K + 1``
    cuts: cut 0 is on the inputs, cut ``i`` is after step ``i``. The ``latency`` registers are
    spread so that the deepest register-to-register segment (the inputs and outputs count as
    segment ends, because the unit sits between other logic) is as shallow as possible; ties
    are broken towards an even spread, then towards later cuts. Returns ``K + 1`` counts that
    sum to ``latency``.
    """
    if latency < 0:
        raise ValueError(f"latency must be a non-negative integer, not {latency!r}")
    k = len(weights)
    best, best_key = None, None
    for cuts in itertools.combinations_with_replacement(range(k + 1), latency):
        bounds = (0, *cuts, k)
        segments = [sum(weights[lo:hi]) for lo, hi in zip(bounds, bounds[1:])]
        key = (max(segments), sum(s * s for s in segments), [-c for c in cuts])
        if best_key is None or key < best_key:
            best, best_key = cuts, key
    counts = [0] * (k + 1)
    for c in best:
        counts[c] += 1
    return tuple(counts)


class Pipeline:
    """Insert the planned register stages between the steps of a datapath, with a valid bit.

    Use :meth:`begin` on the input values, :meth:`step` on the values each combinational step
    produces, in order, then read :attr:`valid` for the output valid bit. Each call passes a
    dict of named Amaranth values; where the plan puts registers, every value of the dict is
    registered (data registers are reset-less; the valid bit resets to 0), elsewhere it is
    assigned to a named combinational signal.

    Parameters
    ----------
    m : Module
        Module receiving the registers.
    weights : sequence of int
        Estimated logic depth of each step, in the order the steps will be applied.
    latency : int
        Register stages to place.
    valid : Value
        Input valid bit.
    name : str
        Prefix for register names (visible in waveforms).
    """

    def __init__(self, m, weights, latency, valid, *, name):
        self._m = m
        self._plan = plan_registers(tuple(weights), latency)
        self._cut = 0
        self._stage = 0
        self._name = name
        self.valid = valid

    def _cross(self, values: dict) -> dict:
        if not self._plan[self._cut]:
            # Name the values even without registers: waveforms stay readable and the simulator
            # does not re-expand shared subexpressions of later steps.
            values = {key: named(self._m, value, f"{self._name}_c{self._cut}_{key}")
                      for key, value in values.items()}
        for _ in range(self._plan[self._cut]):
            self._stage += 1
            regs = {}
            for key, value in values.items():
                value = Value.cast(value)
                reg = Signal(value.shape(), name=f"{self._name}_s{self._stage}_{key}",
                             reset_less=True)
                self._m.d.sync += reg.eq(value)
                regs[key] = reg
            valid = Signal(name=f"{self._name}_s{self._stage}_valid")
            self._m.d.sync += valid.eq(self.valid)
            values, self.valid = regs, valid
        self._cut += 1
        return values

    def begin(self, values: dict) -> dict:
        """Return the input values after the registers planned on the inputs (cut 0)."""
        assert self._cut == 0, "begin() must be called first and once"
        return self._cross(values)

    def step(self, values: dict) -> dict:
        """Return the values of the step just applied, after the registers planned behind it."""
        assert 0 < self._cut < len(self._plan), "step() called more times than weights given"
        return self._cross(values)

    def check_complete(self):
        """Assert that every planned step was applied."""
        assert self._cut == len(self._plan), (
            f"{self._name}: {self._cut - 1} steps applied, {len(self._plan) - 1} planned")


def keep(values: dict, *names) -> dict:
    """Return the sub-dict of ``values`` with the given keys (values a later step still needs)."""
    return {k: values[k] for k in names}


def named(m, value, name: str) -> Signal:
    """Return a combinational signal called ``name`` driven by ``value``.

    Naming a subexpression that is used several times keeps the generated netlist and the
    simulator's compiled code from duplicating it.
    """
    value = Value.cast(value)
    sig = Signal(value.shape(), name=name)
    m.d.comb += sig.eq(value)
    return sig
