"""Collective cases on a ring: random vectors, the per-core programs, the golden result.

:func:`run_collective` runs one collective on any ring device (the ring simulator, the
Verilated ring) through :class:`~caterpillar.software.driver.ring.RingDriver` and returns what
every core holds; :func:`expected_outputs` says what the golden collectives require.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from caterpillar.contract.geometry import ring_queue_depth
from caterpillar.contract.isa import Opcode, encode
from caterpillar.golden import collectives as gc
from caterpillar.sim.cases.kernels import random_values
from caterpillar.software.compiler import collectives as sc
from caterpillar.software.driver.ring import RingDriver

__all__ = ["CollectiveCase", "KINDS", "run_collective", "expected_outputs", "random_case"]

#: Collectives with a defined result per core.
KINDS = ("broadcast", "chain_reduce", "segmented_chain_reduce", "all_gather", "reduce_scatter",
         "all_reduce", "barrier", "relay", "gather_relay", "piped_all_gather",
         "piped_reduce_scatter")


@dataclass(frozen=True)
class CollectiveCase:
    """One collective on one segment: ``n`` words at SPAD word ``buf`` of every member.

    ``relay``: the segment's first core sends over the chain links to the others.
    ``gather_relay``: positions ``0..root`` hold the blocks ``ring_blocks(n, root + 1, nr)``
    (in chain order from the first), the later positions receive the whole vector. The
    ``piped_`` kinds hold their vectors in the piped layout
    (:func:`~caterpillar.software.compiler.collectives.piped_places`).
    ``segmented_chain_reduce``: segments of ``lengths`` (default: up to three about equal
    ones)."""

    kind: str
    segment: tuple
    n: int
    root: int = 0
    buf: int = 64
    seed: int = 0
    lengths: tuple = ()

    @property
    def segment_lengths(self) -> tuple:
        """The segments of ``segmented_chain_reduce``."""
        c = len(self.segment)
        return self.lengths or tuple(b - a for a, b in gc.ring_blocks(c, min(c, 3), 1))

    def programs(self, nr: int, cores: int) -> dict:
        """Return ``{core: instruction words}`` (the collective, then HALT)."""
        s, buf, n = self.segment, self.buf, self.n
        calls = {
            "broadcast": lambda: sc.broadcast(s, buf, n, self.root),
            "chain_reduce": lambda: sc.chain_reduce(s, buf, n, self.root),
            "segmented_chain_reduce": lambda: sc.segmented_chain_reduce(
                s, buf, n, self.segment_lengths),
            "all_gather": lambda: sc.all_gather(s, buf, n, nr),
            "reduce_scatter": lambda: sc.reduce_scatter(s, buf, n, nr),
            "all_reduce": lambda: sc.all_reduce(s, buf, n, nr),
            "piped_all_gather": lambda: sc.piped_all_gather(s, buf, n, nr),
            "piped_reduce_scatter": lambda: sc.piped_reduce_scatter(s, buf, n, nr),
            "barrier": lambda: sc.barrier(s, buf),
            "relay": lambda: sc.relay(s[0], s[1:], buf, n, cores),
            "gather_relay": lambda: sc.gather_relay(
                s[:self.root + 1], gc.ring_blocks(n, self.root + 1, nr), s[self.root + 1:],
                buf, cores) or {},
        }
        body = calls[self.kind]()
        return {core: [*body.get(core, []), encode(Opcode.HALT)]
                for core in sorted(set(s) | set(body))}

    def inputs(self, cfg) -> list[np.ndarray]:
        """Random vectors, one per segment position (normal values and a few corner values)."""
        rng = np.random.default_rng([self.seed, self.n, len(self.segment)])
        return [random_values(self.n, cfg.operand, rng, specials=0.05)
                for _ in self.segment]


def random_case(rng, kind: str, cores: int, cfg, seed: int) -> CollectiveCase:
    """A random segment of the ``cores`` cores (any order) and a random length (any n; the
    piped kinds: what :func:`~caterpillar.software.compiler.collectives.piped_fits`)."""
    nr, depth = cfg.nr, ring_queue_depth(cfg)
    size = int(rng.integers(1, cores + 1))
    segment = tuple(int(c) for c in rng.permutation(cores)[:size])
    if kind == "gather_relay":
        # Holders then targets, in chain order from a random first core (gaps pass through).
        start, later = int(rng.integers(cores)), rng.permutation(range(1, cores))[:size - 1]
        segment = tuple((start + int(d)) % cores for d in (0, *sorted(later)))
    n = int(rng.choice([rng.integers(1, 4 * nr), rng.integers(1, 64 * nr)]))
    if kind.startswith("piped_"):           # whole rows, blocks that fit the queue
        n = nr * int(rng.integers(1, size * (depth - 1) + 1))
    root, lengths = int(rng.integers(size)), ()
    if kind == "segmented_chain_reduce" and size > 1:       # a random split into segments
        cuts = sorted(int(c) for c in rng.choice(range(1, size), int(rng.integers(size)),
                                                 replace=False))
        lengths = tuple(b - a for a, b in zip([0, *cuts], [*cuts, size]))
    return CollectiveCase(kind, segment, n, root=root, seed=seed, lengths=lengths)


def run_collective(device, case: CollectiveCase, *, stall: int = 0):
    """Run ``case`` on ring ``device``; return ``(inputs, outputs, RingRun)``.

    ``stall``: link stall probability x 256 per cycle (RTL only; 0 for none). Cores outside
    the segment run an empty program.
    """
    driver = RingDriver(device)
    cfg = driver.cfg
    inputs = case.inputs(cfg)
    programs = case.programs(cfg.nr, cfg.cores)
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
    if case.kind == "relay":
        return [(*whole, v) for v in gc.broadcast(inputs, 0)]
    if case.kind == "gather_relay":
        holders = case.root + 1
        if holders >= c:
            return [(*whole, v) for v in inputs]         # no target: nothing moves
        gathered = np.concatenate([inputs[p][a:b] for p, (a, b) in
                                   enumerate(gc.ring_blocks(n, holders, nr))])
        return [(*whole, inputs[p] if p < holders else gathered) for p in range(c)]
    if case.kind == "chain_reduce":
        total = gc.chain_reduce(inputs, fmt, case.root)
        return [(*whole, total if i == case.root else inputs[i]) for i in range(c)]
    if case.kind == "segmented_chain_reduce":
        lengths = case.segment_lengths
        ends = {sum(lengths[:j + 1]) - 1: j for j in range(len(lengths))}
        starts = [sum(lengths[:j]) for j in range(len(lengths))]
        sums = {i: gc.chain_reduce(inputs[starts[j]:i + 1], fmt, i - starts[j])
                for i, j in ends.items()}
        sums[c - 1] = gc.segmented_chain_reduce(inputs, fmt, lengths)
        return [(*whole, sums.get(i, inputs[i])) for i in range(c)]
    if case.kind == "all_gather":
        return [(*whole, gc.all_gather(inputs, nr))] * c
    if case.kind == "reduce_scatter":
        blocks = gc.ring_blocks(n, c, nr)
        return [(*blocks[i], part) for i, part in enumerate(gc.reduce_scatter(inputs, nr, fmt))]
    if case.kind == "all_reduce":
        return [(*whole, gc.all_reduce(inputs, nr, fmt))] * c
    if case.kind.startswith("piped_"):
        order = sc.piped_permutation(n, c, nr)
        natural = [np.empty_like(v) for v in inputs]
        for v, nat in zip(inputs, natural):
            nat[order] = v
        if case.kind == "piped_all_gather":
            return [(*whole, gc.all_gather(natural, nr)[order])] * c
        places = sc.piped_places(n, c, nr)
        return [(*places[i], part)
                for i, part in enumerate(gc.reduce_scatter(natural, nr, fmt))]
    if case.kind == "barrier":
        return [(*whole, v) for v in inputs]     # tokens are dropped: nothing changes
    raise ValueError(f"unknown collective {case.kind!r}")


def run_crossing_traffic(device, n: int = 37, seed: int = 5):
    """Two sub-rings {0, 1} and {2, 3} (of 4+ cores) and chain traffic 1 -> 2 between them, in
    flight while core 0 already waits on core 1's segment link: every core must get only the
    data meant for it. Returns ``(inputs, outputs, RingRun)``: core 0 and 1 hold the
    all-gather of their two vectors, core 2 holds core 1's original vector."""
    driver = RingDriver(device)
    cfg = driver.cfg
    rng = np.random.default_rng(seed)
    inputs = [random_values(n, cfg.operand, rng) for _ in range(3)]
    buf, other = 64, 64 + 4 * n
    driver.set_sources(sc.link_sources([(0, 1), (2, 3)], cfg.cores))
    driver.set_stalls(0)
    gather = sc.all_gather((0, 1), buf, n, cfg.nr)
    programs = {0: gather[0], 1: [*sc.relay(1, (2,), other, n, cfg.cores)[1], *gather[1]],
                2: sc.relay(1, (2,), other, n, cfg.cores)[2]}
    for core, d in enumerate(driver.cores):
        d.load_program([*programs.get(core, []), encode(Opcode.HALT)])
    for core in range(3):
        driver.cores[core].write_spad(buf, inputs[core])
    driver.cores[1].write_spad(other, inputs[1])
    run = driver.run()
    outputs = [driver.cores[0].read_spad(buf, n), driver.cores[1].read_spad(buf, n),
               driver.cores[2].read_spad(other, n)]
    return inputs, outputs, run


def crossing_traffic_expected(inputs, nr):
    """What :func:`run_crossing_traffic` must leave in cores 0, 1 and 2."""
    gathered = gc.all_gather(inputs[:2], nr)
    return [gathered, gathered, inputs[1]]
