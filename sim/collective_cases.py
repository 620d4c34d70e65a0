"""Collective cases on a ring: random vectors, the per-core programs, the golden result.

:func:`run_collective` runs one collective on any ring device (the ring simulator, the
Verilated ring) through :class:`~caterpillar.software.multicore.RingDriver` and returns what
every core holds; :func:`expected_outputs` says what the golden collectives require.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from caterpillar.golden import collectives as gc
from caterpillar.rtl.isa import Opcode, encode
from caterpillar.software import collectives as sc
from caterpillar.software.multicore import RingDriver

from .kernel_cases import random_values

__all__ = ["CollectiveCase", "KINDS", "run_collective", "expected_outputs", "random_case"]

#: Collectives with a defined result per core.
KINDS = ("broadcast", "chain_reduce", "all_gather", "reduce_scatter", "all_reduce", "barrier")


@dataclass(frozen=True)
class CollectiveCase:
    """One collective on one segment: ``n`` words at SPAD word ``buf`` of every member."""

    kind: str
    segment: tuple
    n: int
    root: int = 0
    buf: int = 64
    seed: int = 0

    def programs(self, nr: int) -> dict:
        """Return ``{core: instruction words}`` (the collective, then HALT)."""
        s, buf, n = self.segment, self.buf, self.n
        calls = {
            "broadcast": lambda: sc.broadcast(s, buf, n, self.root),
            "chain_reduce": lambda: sc.chain_reduce(s, buf, n, self.root),
            "all_gather": lambda: sc.all_gather(s, buf, n, nr),
            "reduce_scatter": lambda: sc.reduce_scatter(s, buf, n, nr),
            "all_reduce": lambda: sc.all_reduce(s, buf, n, nr),
            "barrier": lambda: sc.barrier(s, buf),
        }
        body = calls[self.kind]()
        return {core: [*body[core], encode(Opcode.HALT)] for core in s}

    def inputs(self, cfg) -> list[np.ndarray]:
        """Random vectors, one per segment position (normal values and a few corner values)."""
        rng = np.random.default_rng([self.seed, self.n, len(self.segment)])
        return [random_values(self.n, cfg.operand, rng, specials=0.05)
                for _ in self.segment]


def random_case(rng, kind: str, cores: int, nr: int, seed: int) -> CollectiveCase:
    """A random segment of the ``cores`` cores (any order) and a random length (any n)."""
    size = int(rng.integers(1, cores + 1))
    segment = tuple(int(c) for c in rng.permutation(cores)[:size])
    n = int(rng.choice([rng.integers(1, 4 * nr), rng.integers(1, 64 * nr)]))
    return CollectiveCase(kind, segment, n, root=int(rng.integers(size)), seed=seed)


def run_collective(device, case: CollectiveCase, *, stall: int = 0):
    """Run ``case`` on ring ``device``; return ``(inputs, outputs, RingRun)``.

    ``stall``: link stall probability x 256 per cycle (RTL only; 0 for none). Cores outside
    the segment run an empty program.
    """
    driver = RingDriver(device)
    cfg = driver.cfg
    inputs = case.inputs(cfg)
    programs = case.programs(cfg.nr)
    driver.set_sources(sc.link_sources([case.segment], cfg.cores))
    driver.set_stalls(stall, seed=case.seed + 1)
    for core, d in enumerate(driver.cores):
        d.load_program(programs.get(core, [encode(Opcode.HALT)]))
    for vector, core in zip(inputs, case.segment):
        driver.cores[core].write_spad(case.buf, vector)
    run = driver.run()
    outputs = [driver.cores[core].read_spad(case.buf, case.n) for core in case.segment]
    return inputs, outputs, run


def expected_outputs(case: CollectiveCase, inputs, cfg) -> list:
    """Return, per segment position, ``(start, stop, values)`` the golden collective defines
    (ranges outside are scratch, e.g. partial sums after a reduce-scatter)."""
    n, c, fmt, nr = case.n, len(case.segment), cfg.operand, cfg.nr
    whole = (0, n)
    if case.kind == "broadcast":
        return [(*whole, v) for v in gc.broadcast(inputs, case.root)]
    if case.kind == "chain_reduce":
        total = gc.chain_reduce(inputs, fmt, case.root)
        return [(*whole, total if i == case.root else inputs[i]) for i in range(c)]
    if case.kind == "all_gather":
        return [(*whole, gc.all_gather(inputs, nr))] * c
    if case.kind == "reduce_scatter":
        blocks = gc.ring_blocks(n, c, nr)
        return [(*blocks[i], part) for i, part in enumerate(gc.reduce_scatter(inputs, nr, fmt))]
    if case.kind == "all_reduce":
        return [(*whole, gc.all_reduce(inputs, nr, fmt))] * c
    if case.kind == "barrier":
        return [(*whole, v) for v in inputs]     # tokens are dropped: nothing changes
    raise ValueError(f"unknown collective {case.kind!r}")
