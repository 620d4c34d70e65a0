"""The ring simulator (:mod:`caterpillar.software.isasim.ring`): the ring engine's cycle rules
(one row per cycle, an outgoing queue of ``ring_queue_depth`` entries, the add pipeline, when an
engine has finished), the timing model's cycles equal to those of the data-carrying simulator
for collectives, sub-rings and compiled steps, timing-only cores, and deadlocks."""

from types import SimpleNamespace

import numpy as np
import pytest

from caterpillar.contract.config import preset
from caterpillar.contract.events import EVENTS_PER_INSTRUCTION
from caterpillar.contract.geometry import (
    RING_DRAINING_OPCODES,
    RUN_START_CYCLES,
    kernel_plan,
    ring_queue_depth,
    word_cycles,
)
from caterpillar.contract.isa import Counter, Layout, Opcode, decode, encode, unpack
from caterpillar.golden import numerics
from caterpillar.golden.trainer import to_bits
from caterpillar.software.compiler import collectives as sc
from caterpillar.software.compiler.training import compile_training
from caterpillar.software.graph.model import Optimizer, TrainingGraph
from caterpillar.software.isasim.ring import (
    EngineModel,
    RingDeadlock,
    RingSim,
    predict_ring,
    predict_ring_cycles,
    ring_timeline,
)

TINY = preset("tiny")
HALT = encode(Opcode.HALT)


def fields(src=0, slen=0, dst=0, rlen=0, keep=0, add=0, fwd=0, chain=0, hold=0, wbase=0,
           wlen=0):
    return SimpleNamespace(src=src, slen=slen, dst=dst, rlen=rlen, keep=keep, add=add,
                           fwd=fwd, chain=chain, hold=hold, wbase=wbase, wlen=wlen)


def spad_of(cfg, rng, words=256):
    return to_bits(rng.uniform(-2.0, 2.0, words), cfg.operand)


def test_an_engine_sends_one_row_per_cycle_through_its_queue(rng):
    cfg = TINY
    nr, depth = cfg.nr, ring_queue_depth(cfg)
    assert depth == cfg.add_latency + 4
    spad = spad_of(cfg, rng)
    engine = EngineModel(cfg, spad)
    assert engine.depth == depth
    rows = 3 * depth
    engine.start(fields(src=8, slen=rows * nr))
    # Nobody pops: the engine reads one row per cycle until the queue is full, then waits.
    for cycle in range(depth):
        assert engine.tick(False, None)
        assert len(engine.queue) == cycle and engine.send_left == rows - cycle - 1
    assert engine.tick(False, None) and len(engine.queue) == depth
    assert not engine.tick(False, None)                     # nothing can change any more
    assert len(engine.queue) == depth and engine.send_left == rows - depth
    assert engine.valid() and not engine.finished()
    # Popped every cycle, a row leaves every cycle, in order, until all have gone.
    sent = []
    while engine.valid():
        sent.append(engine.queue[0])
        engine.tick(True, None)
    assert len(sent) == rows
    np.testing.assert_array_equal(np.concatenate(sent), spad[8:8 + rows * nr])
    assert engine.finished()


def test_a_received_sum_is_written_after_the_add_pipeline(rng):
    cfg, nr = TINY, TINY.nr
    spad = spad_of(cfg, rng)
    before = spad.copy()
    engine = EngineModel(cfg, spad)
    engine.start(fields(dst=4, rlen=2 * nr - 1, keep=1, add=1))     # the last row is partial
    beats = [spad_of(cfg, rng, nr) for _ in range(2)]
    assert engine.ready() and not engine.finished()
    for beat in beats:
        engine.tick(False, beat)
    assert not engine.ready()                          # every row has arrived
    assert engine.pending() == 2 and not engine.finished()
    np.testing.assert_array_equal(spad, before)         # both sums are still in the adder
    ticks = 0
    while engine.pending():
        assert not engine.finished()
        engine.tick(False, None)
        ticks += 1
    assert ticks == cfg.add_latency + 1                 # the second beat's trip through it
    assert engine.finished()
    want = before.copy()
    want[4:4 + nr] = numerics.add(before[4:4 + nr], beats[0], cfg.operand)
    want[4 + nr] = numerics.add(before[4 + nr:5 + nr], beats[1][:1], cfg.operand)[0]
    np.testing.assert_array_equal(spad, want)           # word 4 + 2 nr - 1 is untouched


def test_an_engine_is_finished_only_when_active_and_idle(rng):
    cfg = TINY
    engine = EngineModel(cfg, spad_of(cfg, rng))
    assert not engine.finished() and not engine.ready() and not engine.valid()
    engine.start(fields())                              # nothing to send or receive
    assert engine.finished()
    engine.start(fields(src=0, slen=1))
    assert not engine.finished()                        # a row to read
    engine.tick(False, None)
    assert not engine.finished() and engine.read_in_flight is not None
    engine.tick(False, None)
    assert not engine.finished() and engine.valid()     # the row waits in the queue
    engine.tick(True, None)
    assert engine.finished()
    engine.start(fields(dst=0, rlen=1, keep=0))
    assert not engine.finished() and engine.ready()     # a row to receive
    engine.tick(False, np.zeros(cfg.nr, np.uint64))
    assert engine.finished()


def test_a_forwarding_engine_takes_beats_only_while_its_queue_has_room(rng):
    cfg, nr = TINY, TINY.nr
    depth = ring_queue_depth(cfg)
    engine = EngineModel(cfg, spad_of(cfg, rng))
    engine.start(fields(dst=0, rlen=4 * depth * nr, add=1, fwd=1))
    taken = 0
    while engine.ready():
        engine.tick(False, spad_of(cfg, rng, nr))
        taken += 1
    # Queued sums and sums still in the adder together never exceed the queue.
    assert taken == depth and len(engine.queue) + engine.pending() == depth
    engine.tick(True, None)
    assert engine.ready()


def engine_trace(engine, script):
    trace = []
    for pop, beat in script:
        engine.tick(pop and engine.valid(), beat)
        trace.append((engine.valid(), engine.ready(), engine.finished(), len(engine.queue),
                      engine.pending(), engine.send_left, engine.recv_left))
    return trace


def test_a_timing_only_engine_moves_like_a_data_engine(rng):
    cfg, nr = TINY, TINY.nr
    f = fields(src=16, slen=5 * nr, dst=64, rlen=7 * nr - 1, keep=1, add=1)
    script = [(c % 3 != 0, spad_of(cfg, rng, nr) if c % 2 and c < 14 else None)
              for c in range(40)]
    data, timing = EngineModel(cfg, spad_of(cfg, rng)), EngineModel(cfg, None)
    data.start(f)
    timing.start(f)
    trace = engine_trace(data, script)
    assert trace == engine_trace(timing, [(p, None if b is None else True) for p, b in script])
    assert trace[-1][2]                                 # both finished


def local(k):
    """A few local instructions, more on later cores, so that they reach the ring apart."""
    work = [encode(Opcode.LDV, spad=0, memb=0, len=5 + 7 * k, layout=Layout.DIAG),
            encode(Opcode.NOP)]
    return work * (k + 1)


def collective_programs(segment, cores, nr, buf=64, n=21):
    """Every kind of collective on ``segment``, one after another, with local work between."""
    steps = [sc.broadcast(segment, buf, n, root=1 % len(segment)),
             sc.chain_reduce(segment, buf, n), sc.all_gather(segment, buf, n, nr),
             sc.reduce_scatter(segment, buf, 2 * n, nr), sc.all_reduce(segment, buf, n, nr),
             sc.barrier(segment, buf)]
    programs = [list(local(k)) for k in range(cores)]
    for step in steps:
        for k in segment:
            programs[k] += step[k] + local(k)[:1]
    return [p + [HALT] for p in programs]


def simulate(cfg, programs, rng, sources=None):
    """Run ``programs`` on the data-carrying ring; return the results, the ring cycles and
    the event counters of every core."""
    sim = RingSim(cfg)
    for core, program in zip(sim.cores, programs):
        core.load_program(program)
        core.spad[:256] = spad_of(cfg, rng)
    if sources is not None:
        sim.src = list(sources)
    results = sim.run([0] * cfg.cores)
    assert all(r.ok for r in results)
    events = [{c.name.lower(): core.counters[c] for c in EVENTS_PER_INSTRUCTION}
              for core in sim.cores]
    return results, [core.counters[Counter.RING] for core in sim.cores], events


@pytest.mark.parametrize("cores", [2, 3, 5])
def test_predicted_cycles_are_the_simulated_cycles(cores, rng):
    cfg = TINY.replace(cores=cores)
    programs = collective_programs(tuple(range(cores)), cores, cfg.nr)
    results, ring, _ = simulate(cfg, programs, rng)
    assert predict_ring_cycles(programs, cfg) == [r.busy_cycles for r in results]
    assert all(r > 0 for r in ring)
    # The cores reached the ring at different times, so some waited longer than others.
    assert len(set(ring)) > 1


def test_sub_rings_and_chain_relays_are_predicted_exactly(rng):
    cfg = TINY.replace(cores=4)
    left, right = (0, 1), (2, 3)
    sources = sc.link_sources([left, right], cfg.cores)
    assert sources == [1, 0, 3, 2]
    programs = [[] for _ in range(cfg.cores)]
    for step in (sc.all_reduce(left, 64, 30, cfg.nr), sc.all_reduce(right, 64, 18, cfg.nr),
                 sc.relay(1, right, 128, 25, cfg.cores), sc.all_gather(right, 128, 25, cfg.nr)):
        for k, words in step.items():
            programs[k] += words + local(k)[:1]
    programs = [p + [HALT] for p in programs]
    results, _, events = simulate(cfg, programs, rng, sources)
    assert predict_ring(programs, cfg, sources) == ([r.busy_cycles for r in results], events)


def test_ring_transfers_take_one_more_cycle_per_row():
    cfg = TINY.replace(cores=2)

    def cycles(rows):
        return predict_ring_cycles([[sc.ring(src=0, slen=rows * cfg.nr), HALT],
                                    [sc.ring(dst=0, rlen=rows * cfg.nr, keep=True), HALT]], cfg)

    base = cycles(4)
    for rows in (5, 8, 16, 40):
        assert cycles(rows) == [c + rows - 4 for c in base]


@pytest.mark.parametrize("timing", [False, True], ids=["data", "timing"])
def test_an_unmatched_receive_is_a_deadlock(timing, rng):
    cfg = TINY.replace(cores=2)
    programs = [[encode(Opcode.NOP), sc.ring(dst=0, rlen=4, keep=True), HALT], [HALT]]
    sim = RingSim(cfg, timing=programs if timing else None)
    if not timing:
        for core, program in zip(sim.cores, programs):
            core.load_program(program)
    with pytest.raises(RingDeadlock, match=r"every core waits on the ring: RING pcs core 0: 1$"):
        sim.run([0, 0])


def test_a_send_nobody_takes_is_a_deadlock():
    cfg = TINY.replace(cores=3)
    programs = [[sc.ring(src=0, slen=2 * cfg.nr), HALT], [HALT], [HALT]]
    with pytest.raises(RingDeadlock, match="core 0: 0"):
        predict_ring_cycles(programs, cfg)


@pytest.mark.parametrize("cores", [2, 3])
def test_timing_only_cores_count_the_cycles_of_data_cores(cores, rng):
    cfg = TINY.replace(cores=cores)
    programs = collective_programs(tuple(range(cores)), cores, cfg.nr)
    results, ring, events = simulate(cfg, programs, rng)
    timing = RingSim(cfg, timing=programs)
    timed = timing.run([0] * cores)
    assert [r.busy_cycles for r in timed] == [r.busy_cycles for r in results]
    assert [core.ring for core in timing.cores] == ring
    assert all(core.spad is None for core in timing.cores)
    # The events too, without data: what the energy of a compiled step is computed from.
    assert predict_ring(programs, cfg)[1] == events


@pytest.mark.parametrize("algorithm, segments", [
    ("sgd", None), ("mbgd", None), ("mbgd", [(0, 1), (2,), (0, 1)])],
    ids=["sgd", "mbgd", "mbgd-segments"])
def test_compiled_steps_are_predicted_exactly(algorithm, segments, rng):
    cfg = TINY.replace(cores=3)
    graph = TrainingGraph((10, 9, 8, 6), loss="mse", algorithm=algorithm,
                          batch=1 if algorithm == "sgd" else 3,
                          optimizer=Optimizer(lr=0.1, momentum=0.9))
    compiled = compile_training(graph, cfg, segments)
    results, _, events = simulate(cfg, compiled.programs(), rng, compiled.sources)
    assert compiled.predicted_cycles() == [r.busy_cycles for r in results]
    assert compiled.predicted_events() == events


def _may_wait(word, cfg) -> bool:
    """Whether the instruction ``word`` can wait for a ring engine (ring_waits)."""
    op, values = unpack(word)
    return (op == Opcode.RING or op in RING_DRAINING_OPCODES
            or kernel_plan(op, SimpleNamespace(**values), cfg).spad_regions != 0)


@pytest.mark.parametrize("algorithm", ["sgd", "mbgd", "cp"])
def test_a_timeline_accounts_for_every_cycle_of_every_core(algorithm):
    """Each core's entries run back to back from the run's start to its halt; their waits
    (only before instructions that wait for the engine) and cycles add up to the model's."""
    cfg = TINY.replace(cores=3)
    graph = TrainingGraph((10, 9, 8, 6), loss="mse", algorithm=algorithm,
                          batch=3 if algorithm == "mbgd" else 1,
                          optimizer=Optimizer(lr=0.1, momentum=0.0 if algorithm == "cp" else 0.9))
    compiled = compile_training(graph, cfg)
    programs = compiled.programs()
    timelines = ring_timeline(programs, cfg, compiled.sources)
    for k, (entries, cycles) in enumerate(zip(timelines, compiled.predicted_cycles())):
        assert RUN_START_CYCLES + sum(e.wait + e.cycles for e in entries) == cycles, k
        at = RUN_START_CYCLES
        for e in entries:
            assert e.start == at + e.wait, (k, e)
            assert e.wait == 0 or _may_wait(programs[k][e.pc], cfg), (k, e)
            at = e.start + e.cycles
        assert decode(programs[k][entries[-1].pc]).op == Opcode.HALT
    assert any(e.wait for entries in timelines for e in entries)
    # Compiled.timeline: the core that finishes last by default, one clear error off the ring.
    last, entries = compiled.timeline()
    assert compiled.predicted_cycles()[last] == compiled.step_cycles
    assert entries == timelines[last]
    with pytest.raises(ValueError, match="core 3 is not on the ring of tiny, whose cores are"):
        compiled.timeline(3)


@pytest.mark.parametrize("vops", [0, 1, 2, 6])
def test_a_posted_ring_hides_the_local_work_after_it(vops, rng):
    """Instructions after a RING that do not wait for the engine run during the transfer: the
    receiver's cycles fall by the local work, up to the transfer's length less the RING's
    decode cycle; data, RING counter and events do not change."""
    cfg = TINY.replace(cores=2)
    nr, n = cfg.nr, 12 * cfg.nr
    vop = encode(Opcode.VOP, fn=0, layout=Layout.DIAG, z=8, x=0, y=4, len=4 * nr, alpha=0)
    load = encode(Opcode.LDV, spad=0, memb=16, len=n, layout=Layout.DIAG)
    send = [sc.ring(src=0, slen=n), HALT]
    sent = spad_of(cfg, rng, n)
    runs = {}
    for posted in (True, False):
        middle = [vop] * vops + [load] if posted else [load] + [vop] * vops
        programs = [send, [sc.ring(dst=0, rlen=n, keep=True), *middle, HALT]]
        sim = RingSim(cfg)
        for core, program in zip(sim.cores, programs):
            core.load_program(program)
        sim.cores[0].spad[:n] = sent
        results = sim.run([0, 0])
        assert predict_ring_cycles(programs, cfg) == [r.busy_cycles for r in results]
        runs[posted] = (results[1].busy_cycles, sim.cores[1].counters[Counter.RING],
                        sim.cores[1].memb.copy())
    ring = runs[False][1]
    local = vops * word_cycles(vop, cfg)
    assert runs[True][1] == ring > 1
    assert runs[True][0] == runs[False][0] - min(local, ring - 1)
    np.testing.assert_array_equal(runs[True][2], runs[False][2])


def test_queued_rings_let_the_core_run_on(rng):
    """Three RINGs receive three blocks, then local work, then the LDV of the blocks. With a
    command queue of two or more the core posts all three and runs the VOPs during the
    transfers; with a queue of one the third RING waits for the first to finish; without one
    each RING waits for the one before it. Data and events do not change; timing-only runs
    predict every case."""
    cfg = TINY.replace(cores=2)
    nr, n = cfg.nr, 6 * cfg.nr
    vop = encode(Opcode.VOP, fn=0, layout=Layout.DIAG, z=8, x=0, y=4, len=4 * nr, alpha=0)
    load = encode(Opcode.LDV, spad=0, memb=64, len=3 * n, layout=Layout.DIAG)
    send = [sc.ring(src=i * n, slen=n) for i in range(3)] + [HALT]
    receive = [sc.ring(dst=i * n, rlen=n, keep=True) for i in range(3)] + [vop] * 8 + [load,
                                                                                      HALT]
    sent = spad_of(cfg, rng, 3 * n)
    runs = {}
    for depth in (0, 1, 2, 16):
        c = cfg.replace(ring_commands=depth)
        sim = RingSim(c)
        for core, program in zip(sim.cores, (send, receive)):
            core.load_program(program)
        sim.cores[0].spad[:3 * n] = sent
        results = sim.run([0, 0])
        assert predict_ring_cycles([send, receive], c) == [r.busy_cycles for r in results]
        np.testing.assert_array_equal(sim.cores[1].spad[:3 * n], sent)
        runs[depth] = (results[1].busy_cycles, sim.cores[1].memb.copy(),
                       sim.cores[0].counters[Counter.LINK_WORDS])
    assert runs[0][0] > runs[1][0] > runs[2][0] == runs[16][0]
    for depth in (1, 2, 16):
        np.testing.assert_array_equal(runs[depth][1], runs[0][1])
        assert runs[depth][2] == runs[0][2] == 3 * n
