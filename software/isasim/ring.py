"""Instruction-level simulator of the ring: one :class:`IsaSim` per core, exact ring timing.

Local instructions run through each core's :class:`~caterpillar.software.isasim.core.IsaSim` with
their fixed durations. ``RING`` instructions run through :class:`EngineModel`, a cycle model
of :class:`~caterpillar.rtl.ring_engine.RingEngine` (same registers, same rules), stepped in
lock-step for every core whose engine is active; when no engine can move, time jumps to the
next engine start. A ``RING`` is posted (started, or queued behind the engine's current one:
``cfg.ring_commands``): its core runs on until an instruction that
:func:`~caterpillar.contract.geometry.ring_waits` holds (a ``RING`` while the queue is full,
one that uses a SPAD region a posted ``RING`` uses until that one finished, ``rdcnt``,
``sync`` and ``halt`` until the engine is idle and the queue empty), which checks in the
cycle after the engine's last (the others touch nothing the engine does, so running them
ahead is exact). So the data are bit-exact and every core's cycle count
equals the RTL's (link stalls, an RTL verification aid, are not modelled).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from caterpillar.contract.events import EVENTS_PER_INSTRUCTION, instruction_events, ring_events
from caterpillar.contract.geometry import (
    INSTRUCTION_OVERHEAD,
    RING_POST_CYCLES,
    RUN_START_CYCLES,
    SEQUENCER_OPCODES,
    instruction_cycles,
    kernel_plan,
    ring_queue_depth,
    ring_waits,
    spad_bank,
)
from caterpillar.contract.isa import LoopState, Opcode, unpack
from caterpillar.golden import numerics
from caterpillar.software.isasim.core import IsaSim, RunResult, Step, decoded

__all__ = ["EngineModel", "RingSim", "RingDeadlock", "TimelineEntry", "predict_ring",
           "predict_ring_cycles", "ring_timeline"]


class RingDeadlock(RuntimeError):
    """Every active ring engine waits and no core can start one: the RTL would hang."""


class EngineModel:
    """The registers of one core's ring engine and its per-cycle rules."""

    def __init__(self, cfg, spad: np.ndarray):
        self.cfg, self.spad = cfg, spad
        self.nr, self.depth, self.lat = cfg.nr, ring_queue_depth(cfg), cfg.add_latency
        self.active = False
        self.chain = False
        self.queue = deque()
        self.read_in_flight = None
        self.tags = [None] * (self.lat + 1)
        self.bank_waits = 0   # cycles a send read waited for a SPAD bank port

    def start(self, f):
        nr = self.nr
        self.active = True
        self.keep, self.add, self.fwd = bool(f.keep), bool(f.add), bool(f.fwd)
        self.chain = bool(f.chain)
        self.send_row, self.send_left = f.src // nr, -(-f.slen // nr)
        self.recv_row, self.recv_left = f.dst // nr, -(-f.rlen // nr)
        self.hold_rows = f.hold // nr
        self.wrap = f.wlen != 0
        self.wrap_base, self.wrap_end = f.wbase // nr, (f.wbase + f.wlen) // nr
        tail = f.rlen % nr
        self.last_lanes = tail if tail else nr

    # -- combinational outputs (registers only) ---------------------------------------------

    def valid(self) -> bool:
        return bool(self.queue)

    def pending(self) -> int:
        return len(self.tags) - self.tags.count(None)

    def ready(self) -> bool:
        if not self.active or self.recv_left == 0:
            return False
        return not self.fwd or (len(self.queue) + self.pending() < self.depth
                                and self.send_left == 0 and self.read_in_flight is None)

    def finished(self) -> bool:
        return (self.active and self.send_left == 0 and not self.queue
                and self.read_in_flight is None and self.recv_left == 0
                and self.pending() == 0)

    def _row(self, row: int):
        if self.spad is None:                   # timing only
            return True
        return self.spad[row * self.nr:(row + 1) * self.nr].copy()

    def _bank_full(self, beat) -> bool:
        """An add reads and writes rows of the send row's SPAD bank this cycle (the send read
        waits: a bank has two ports)."""
        done = self.tags[-1]
        if not (self.add and self.keep and beat is not None and done is not None):
            return False
        banks = {spad_bank(self.cfg, row) for row in (self.send_row, self.recv_row, done[0])}
        return len(banks) == 1 and self.send_left > 0

    # -- one clock edge ----------------------------------------------------------------------

    def tick(self, pop: bool, beat) -> bool:
        """Advance one cycle: ``pop`` (the head left), ``beat`` (a received row or None).

        Returns whether any register changed.
        """
        nr = self.nr
        changed = pop or beat is not None or self.read_in_flight is not None
        could_issue = (self.active and self.send_left > 0
                       and len(self.queue) + (self.read_in_flight is not None) < self.depth)
        issue = could_issue and not self._bank_full(beat)
        self.bank_waits += could_issue and not issue
        issued = self._row(self.send_row) if issue else None
        write = None
        forward = self.fwd and self.recv_left > self.hold_rows
        if self.add:
            done = self.tags[-1]
            if done is not None:
                write = done
            new_tag = None
            if beat is not None:
                lanes = self.last_lanes if self.recv_left == 1 else nr
                local = self._row(self.recv_row)
                total = (True if self.spad is None
                         else numerics.add(local, beat, self.cfg.operand))
                new_tag = (self.recv_row, lanes, total, forward)
            changed |= self.tags.count(None) != len(self.tags)
            self.tags = [new_tag, *self.tags[:-1]]
        elif beat is not None:
            lanes = self.last_lanes if self.recv_left == 1 else nr
            write = (self.recv_row, lanes, beat, forward)
        if beat is not None:
            self.recv_row += 1
            if self.wrap and self.recv_row == self.wrap_end:
                self.recv_row = self.wrap_base
            self.recv_left -= 1
        # Queue: pop the head, push the read data of the last cycle or the forwarded row.
        if pop:
            self.queue.popleft()
        if self.read_in_flight is not None:
            self.queue.append(self.read_in_flight)
        elif write is not None and write[3]:
            self.queue.append(write[2])
        if write is not None and self.keep and self.spad is not None:
            row, lanes, values, _ = write
            self.spad[row * nr:row * nr + lanes] = values[:lanes]
        self.read_in_flight = issued
        if issue:
            self.send_row += 1
            self.send_left -= 1
            changed = True
        return changed


class _TimingCore:
    """A core that only counts cycles: local instructions take their fixed durations."""

    def __init__(self, cfg, program):
        self.cfg, self.program = cfg, program
        self.spad = None
        self.loop = LoopState()
        self.reset_counters()

    def reset_counters(self):
        self.busy = self.ring = 0
        self.events = {c: 0 for c in EVENTS_PER_INSTRUCTION}
        self.waited = 0

    timeline = None      # a list to record the run's TimelineEntry in (ring_timeline)

    def start_run(self, pc: int):
        # An image in overlays (cp's) runs each program from IMEM, wherever it lies in the
        # image the model times.
        self.loop.reset()
        if pc < max(self.cfg.imem_words, len(self.program)):
            self.busy += RUN_START_CYCLES

    def execute(self, pc: int) -> Step:
        op, values = unpack(self.program[pc])
        values = self.loop.operands(op, values)
        fields = SimpleNamespace(**values)
        if op == Opcode.HALT:
            self._record(pc, INSTRUCTION_OVERHEAD)
            return Step("done", result=RunResult(self.busy, 0, 0, 0))
        if op == Opcode.RING:
            self._record(pc, INSTRUCTION_OVERHEAD, shown=RING_POST_CYCLES)
            return Step("ring", pc=self.loop.next_pc(pc), fields=fields)
        cycles = instruction_cycles(op, fields, self.cfg)
        if op not in SEQUENCER_OPCODES:
            self.count_events(instruction_events(op, fields, kernel_plan(op, fields, self.cfg),
                                                 self.cfg))
        self._record(pc, cycles)
        following = self.loop.next_pc(pc)
        if op == Opcode.LOOP:
            self.loop.begin(pc, values)     # compiled programs: legal loops only
        return Step("next", pc=following, cycles=cycles)

    def _record(self, pc: int, cycles: int, shown=None):
        """Spend ``cycles`` on the instruction at ``pc``; its timeline entry says ``shown``
        (a ``RING``'s whole post: :meth:`post_ring` adds the rest)."""
        if self.timeline is not None:
            self.timeline.append(TimelineEntry(pc, self.busy, self.waited, shown or cycles))
        self.waited = 0
        self.busy += cycles

    def count_events(self, events: dict):
        for counter, value in events.items():
            self.events[counter] += value

    def instruction_at(self, pc: int):
        return decoded(self.program[pc] if pc < len(self.program) else None, self.loop)

    def post_ring(self):
        self.busy += RING_POST_CYCLES - INSTRUCTION_OVERHEAD

    def wait_ring(self, cycles: int):
        self.busy += cycles
        self.waited += cycles

    def ring_finished(self, active_cycles: int):
        self.ring += active_cycles


@dataclass(frozen=True)
class TimelineEntry:
    """One instruction a core ran in a step: at ``pc``, checked at cycle ``start`` of the run,
    after ``wait`` cycles waiting for its ring engine (an instruction that
    :func:`~caterpillar.contract.geometry.ring_waits` holds after a posted ``RING``),
    busy for ``cycles`` (a ``RING``'s post, not its transfer). Starts are back to back: the
    next entry starts at ``start + cycles + its wait``."""

    pc: int
    start: int
    wait: int
    cycles: int


def _timed_run(programs, cfg, sources, start_pcs, timeline: bool = False):
    sim = RingSim(cfg, timing=[list(p) for p in programs])
    if sources is not None:
        sim.src = list(sources)
    for core in sim.cores:
        core.timeline = [] if timeline else None
    return sim, sim.run(list(start_pcs or [0] * cfg.cores))


def predict_ring(programs, cfg, sources=None, start_pcs=None) -> tuple[list, list]:
    """Return each core's busy cycles and event counters (``{name: events}``, the names of
    :data:`~caterpillar.contract.isa.EVENT_COUNTERS`) for ``programs`` (one per
    core, started together at ``start_pcs``, instruction 0 by default), without computing
    any data: the timing and the events of the RTL and of :class:`RingSim`."""
    sim, results = _timed_run(programs, cfg, sources, start_pcs)
    return ([r.busy_cycles for r in results],
            [{c.name.lower(): v for c, v in core.events.items()} for core in sim.cores])


def ring_timeline(programs, cfg, sources=None, start_pcs=None) -> list[list[TimelineEntry]]:
    """Every core's :class:`TimelineEntry` list of the run :func:`predict_ring` times: where
    its cycles go, instruction by instruction. A core's busy cycles are
    :data:`~caterpillar.contract.geometry.RUN_START_CYCLES` plus its entries' waits and
    cycles."""
    sim, _ = _timed_run(programs, cfg, sources, start_pcs, timeline=True)
    return [core.timeline for core in sim.cores]


def predict_ring_cycles(programs, cfg, sources=None, start_pcs=None) -> list[int]:
    """Return each core's busy cycles (:func:`predict_ring`)."""
    return predict_ring(programs, cfg, sources, start_pcs)[0]


class RingSim:
    """``cfg.cores`` instruction-level cores on the ring, run together from one start.

    Parameters
    ----------
    cfg : CaterpillarConfig
    timing : list of programs, optional
        Count cycles only (no data): each core runs its program from this list.
    """

    def __init__(self, cfg, timing=None):


        self.cfg = cfg
        if timing is None:
            self.cores = [IsaSim(cfg) for _ in range(cfg.cores)]
        else:
            self.cores = [_TimingCore(cfg, p) for p in timing]
        self.src = [(k - 1) % cfg.cores for k in range(cfg.cores)]
        self.engines = [EngineModel(cfg, core.spad) for core in self.cores]

    def run(self, start_pcs, max_cycles: int = 10**10) -> list[RunResult]:
        """Start every core together at its pc in ``start_pcs``; return each core's result.

        Raises :class:`RingDeadlock` when the cores wait on each other for ever.
        """
        n = len(self.cores)
        for core in self.cores:
            core.reset_counters()
        pcs = list(start_pcs)
        for core, pc in zip(self.cores, pcs):
            core.start_run(pc)
        # Cycle of each core's next instruction check; the first active cycle of its engine.
        check_time = [RUN_START_CYCLES] * n
        ring_from = [None] * n
        ring_pc = [None] * n      # pc of the RING the engine runs
        # Each core's posted RINGs behind the one its engine runs: (fields, check cycle, pc).
        waiting = [deque() for _ in range(n)]
        # The SPAD regions of each core's posted RINGs not yet finished, oldest first.
        posted = [deque() for _ in range(n)]
        depth = self.cfg.ring_commands
        results = [None] * n
        engines = self.engines
        for k in range(n):
            engines[k] = EngineModel(self.cfg, self.cores[k].spad)

        def must_wait(k) -> bool:
            """Whether core k's next instruction waits in its check for its engine
            (:func:`ring_waits`): a ``RING`` while the command queue is full (the engine
            busy, without a queue), ``rdcnt``, ``sync`` and ``halt`` while the engine runs or
            commands wait, the others while a posted ``RING`` uses one of their SPAD
            regions."""
            op, f = self.cores[k].instruction_at(pcs[k])
            if op is None:
                return False
            regions = kernel_plan(op, f, self.cfg).spad_regions
            ring_regions = 0
            for mask in posted[k]:
                ring_regions |= mask
            full = (len(waiting[k]) == depth) if depth else engines[k].active
            return ring_waits(op, regions, ring_regions, bool(posted[k]), full)

        def start(k, fields, check: int, pc: int):
            """Start core k's engine on the RING checked in cycle ``check``: in that cycle, or
            in the last cycle of the engine's previous RING if it ends later."""
            ring_from[k] = check + 1
            ring_pc[k] = pc
            engines[k].start(fields)

        def run_local(k):
            """Run core k until it halts, fails or waits for its engine (the instructions
            that do not wait run while posted RINGs move the data)."""
            core = self.cores[k]
            while not must_wait(k):
                step = core.execute(pcs[k])
                if step.kind == "done":
                    results[k] = step.result
                    return
                if step.kind == "ring":
                    posted[k].append(kernel_plan(Opcode.RING, step.fields,
                                                 self.cfg).spad_regions)
                    if engines[k].active:
                        waiting[k].append((step.fields, check_time[k], pcs[k]))
                    else:
                        start(k, step.fields, check_time[k], pcs[k])
                    core.count_events(ring_events(step.fields, self.cfg))
                    core.post_ring()
                    check_time[k] += RING_POST_CYCLES
                    pcs[k] = step.pc
                    continue
                check_time[k] += step.cycles
                pcs[k] = step.pc

        def next_start():
            """The first active cycle of the earliest engine that starts after ``now``."""
            starts = [ring_from[k] for k in range(n) if engines[k].active and ring_from[k] > now]
            return min(starts) if starts else None

        for k in range(n):
            run_local(k)
        now = 0
        while any(r is None for r in results):
            active = [k for k in range(n) if engines[k].active and ring_from[k] <= now]
            if not active:      # a core without a result waits for its engine to start
                now = next_start()
                continue
            finished = [k for k in active if engines[k].finished()]
            valid = {k: engines[k].valid() for k in active}
            ready = {k: engines[k].ready() for k in active}
            pops, beats = set(), {}
            for k in active:
                chain = engines[k].chain
                s = (k - 1) % n if chain else self.src[k]
                if ready[k] and valid.get(s, False) and engines[s].chain == chain:
                    pops.add(s)
                    beats[k] = engines[s].queue[0]
            changed = bool(finished)
            for k in active:
                if k in finished:
                    engines[k].active = False
                    continue
                changed |= engines[k].tick(k in pops, beats.get(k))
            for k in finished:
                core = self.cores[k]
                posted[k].popleft()
                core.ring_finished(now + 1 - ring_from[k])
                ring_from[k] = None
                if waiting[k]:
                    fields, check, pc = waiting[k].popleft()
                    start(k, fields, max(check, now), pc)
                if results[k] is None and not must_wait(k):
                    # The waiting instruction checks in the cycle after the engine's last (or
                    # after the queue's head left it).
                    core.wait_ring(max(0, now + 1 - check_time[k]))
                    check_time[k] = max(check_time[k], now + 1)
                    run_local(k)
            if not changed:
                now = next_start()
                if now is None:
                    raise RingDeadlock("every core waits on the ring: RING pcs "
                                       + ", ".join(f"core {k}: {ring_pc[k]}" for k in active))
                continue
            now += 1
            if now > max_cycles:
                raise RuntimeError(f"ring run longer than {max_cycles} cycles")
        return results
