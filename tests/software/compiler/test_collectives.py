"""Collectives on the ring simulator: every kind, random segments and lengths, against the
golden collectives; segment wiring; errors and deadlocks."""

import numpy as np
import pytest

from caterpillar.contract.config import preset
from caterpillar.contract.isa import ErrorCause, Opcode, decode, encode
from caterpillar.sim.cases.collectives import (
    KINDS,
    CollectiveCase,
    expected_outputs,
    random_case,
    run_collective,
)
from caterpillar.software.compiler import collectives as sc
from caterpillar.software.driver.ring import RingCoreError, RingDriver
from caterpillar.software.isasim.device import RingIsaDevice
from caterpillar.software.isasim.ring import RingDeadlock


@pytest.mark.parametrize("cores", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("kind", KINDS)
def test_collective_matches_golden(kind, cores, rng, seed):
    cfg = preset("tiny").replace(cores=cores)
    for i in range(6):
        case = random_case(rng, kind, cores, cfg, seed + i)
        inputs, outputs, run = run_collective(RingIsaDevice(cfg), case)
        for position, ((a, b, want), got) in enumerate(
                zip(expected_outputs(case, inputs, cfg), outputs)):
            np.testing.assert_array_equal(got[a:b], want, err_msg=f"{case} position {position}")
        assert all(c > 0 for c in run.cycles)


def _reduce_then_broadcast_cycles(cfg, n, lengths):
    """Cycles of the ring simulator for a segmented chain reduce and a broadcast of the sum."""
    segment = tuple(range(cfg.cores))
    driver = RingDriver(RingIsaDevice(cfg))
    driver.set_sources(sc.link_sources([segment], cfg.cores))
    reduce = sc.segmented_chain_reduce(segment, 64, n, lengths)
    spread = sc.broadcast(segment, 64, n, cfg.cores - 1)
    for k, core in enumerate(driver.cores):
        core.load_program([*reduce[k], *spread[k], encode(Opcode.HALT)])
    return max(driver.run().cycles)


@pytest.mark.parametrize("name, cores, n", [("tiny", 5, 2), ("tiny", 8, 10), ("small", 9, 40),
                                            ("paper-n1", 32, 10), ("paper-n3", 8, 10)])
def test_chain_segments_never_lose_to_one_chain(name, cores, n):
    cfg = preset(name).replace(cores=cores)
    lengths = sc.chain_segments(cfg, cores, n)
    assert sum(lengths) == cores and min(lengths) >= 1
    chosen = _reduce_then_broadcast_cycles(cfg, n, lengths)
    single = _reduce_then_broadcast_cycles(cfg, n, (cores,))
    assert chosen <= single, (lengths, chosen, single)
    if (name, cores) == ("paper-n1", 32):   # N1's ten logits: the latency-bound chain shrinks
        assert chosen < 0.6 * single, (lengths, chosen, single)


def test_one_long_segment_is_a_chain_reduce_and_all_ones_too():
    segment = (3, 0, 2, 1)
    chain = sc.chain_reduce(segment, 8, 5, root=3)
    assert sc.segmented_chain_reduce(segment, 8, 5, (4,)) == chain
    assert sc.segmented_chain_reduce(segment, 8, 5, (1, 1, 1, 1)) == chain
    with pytest.raises(ValueError, match="do not cover 4 positions"):
        sc.segmented_chain_reduce(segment, 8, 5, (2, 1))


def test_link_sources_close_each_segment():
    assert sc.link_sources([(0, 1), (2, 3, 4)], 6) == [1, 0, 4, 2, 3, 4]
    with pytest.raises(ValueError, match="two segments"):
        sc.link_sources([(0, 1), (1, 2)], 4)


def test_bucket_all_gather_moves_each_block_once_per_hop():
    cfg = preset("tiny").replace(cores=4)
    n = 4 * 64 * cfg.nr
    _, _, run = run_collective(RingIsaDevice(cfg), CollectiveCase("all_gather", (0, 1, 2, 3), n))
    beats = 3 * (n // 4) // cfg.nr                     # (c - 1) blocks of n / c words
    assert beats <= min(run.ring_cycles) <= beats + 3 * 12  # a few cycles of latency per step


@pytest.mark.parametrize("kind", ["all_gather", "reduce_scatter", "all_reduce"])
def test_bucket_steps_of_empty_blocks_are_left_out(kind):
    """6 words (3 units of nr = 2) on 8 cores: five blocks are empty; no core runs a ``RING``
    that neither sends nor receives, and the results are still the golden ones."""
    cfg = preset("tiny").replace(cores=8)
    case = CollectiveCase(kind, tuple(range(8)), 6)
    rings = [i for words in case.programs(cfg.nr, 8).values()
             for i in map(decode, words) if i.op == Opcode.RING]
    assert rings and all(i.slen or i.rlen for i in rings)
    inputs, outputs, _ = run_collective(RingIsaDevice(cfg), case)
    for (a, b, want), got in zip(expected_outputs(case, inputs, cfg), outputs):
        np.testing.assert_array_equal(got[a:b], want)


def test_ring_field_errors_stop_the_core():
    cfg = preset("tiny").replace(cores=2)
    driver = RingDriver(RingIsaDevice(cfg))
    driver.cores[0].load_program([sc.ring(src=1, slen=4), encode(Opcode.HALT)])
    driver.cores[1].load_program([sc.ring(dst=0, rlen=4, hold=4, src=0),
                                  encode(Opcode.HALT)])
    with pytest.raises(RingCoreError) as info:
        driver.run()
    assert info.value.errors[0].cause == ErrorCause.BAD_SHAPE      # src not row-aligned
    assert info.value.errors[1].cause == ErrorCause.ILLEGAL_FIELD  # hold without fwd


def test_unmatched_receive_is_a_deadlock():
    cfg = preset("tiny").replace(cores=2)
    driver = RingDriver(RingIsaDevice(cfg))
    driver.cores[0].load_program([sc.ring(dst=0, rlen=4, keep=True), encode(Opcode.HALT)])
    driver.cores[1].load_program([encode(Opcode.HALT)])
    with pytest.raises(RingDeadlock, match="core 0: 0"):
        driver.run()


def test_chain_and_segment_traffic_do_not_mix():
    from caterpillar.sim.cases.collectives import crossing_traffic_expected, run_crossing_traffic

    cfg = preset("tiny").replace(cores=4)
    inputs, outputs, run = run_crossing_traffic(RingIsaDevice(cfg))
    for got, want in zip(outputs, crossing_traffic_expected(inputs, cfg.nr)):
        np.testing.assert_array_equal(got, want)
    # Core 0's one gather outlasts the whole relay (core 2's): it waited for the relay to pass.
    assert run.ring_cycles[0] > run.ring_cycles[2]


def test_relay_reaches_targets_round_the_ring():
    assert sc.relay_source((0, 1), (2, 3), 8) == 1
    program = sc.relay(6, (0, 1), 64, 5, 8)
    assert sorted(program) == [0, 1, 6, 7]           # 7 relays without keeping


def test_gather_relay_needs_holders_in_chain_order_and_targets_beyond():
    blocks = [(0, 6), (6, 10)]
    program = sc.gather_relay((0, 2), blocks, (3,), 64, 4)
    assert sorted(program) == [0, 1, 2, 3]           # core 1 passes block 0 on
    assert len(program[2]) == 2                       # forward block 0, then send block 1
    assert sc.gather_relay((2, 0), blocks, (1,), 64, 4) is not None   # round the ring
    assert sc.gather_relay((0, 2), blocks, (1,), 64, 4) is None       # a target in between
    assert sc.gather_relay((0, 1), [(0, 4), (6, 10)], (2,), 64, 4) is None  # a gap
    assert sc.gather_relay((0, 1), blocks, (), 64, 4) is None


@pytest.mark.parametrize("how", ["gather_relay", "relay"])
def test_targets_keep_only_their_ranges(how, rng):
    """A 22-word vector from cores 0-1 (blocks of 12 and 10 words) to cores 4, 5 and 7 of 8
    (6 passes it on), each keeping only its range, at its own address: its words land there
    and nowhere else, and a core passes on only what the targets beyond it keep."""
    cfg = preset("tiny").replace(cores=8)
    holders, targets, n, buf, dst = (0, 1), (4, 5, 7), 22, 64, 256
    ranges = {4: (0, 8), 5: (8, 14), 7: (14, 22)}
    vector = rng.integers(1, 1 << 15, n).astype(np.uint64)
    if how == "gather_relay":
        program = sc.gather_relay(holders, [(0, 12), (12, 22)], targets, buf, 8, dst=dst,
                                  ranges=ranges)
    else:
        program = sc.relay(1, targets, buf, n, 8, dst=dst, ranges=ranges)
    driver = RingDriver(RingIsaDevice(cfg))
    driver.set_sources(sc.link_sources([holders, targets], 8))
    for core, d in enumerate(driver.cores):
        d.load_program([*program.get(core, []), encode(Opcode.HALT)])
        d.write_spad(0, np.full(cfg.spad_words, 7, dtype=np.uint64))
    for core in holders:
        driver.cores[core].write_spad(buf, vector)
    driver.run()
    for core, (lo, hi) in ranges.items():
        got = driver.cores[core].read_spad(dst, 16)
        np.testing.assert_array_equal(got[:hi - lo], vector[lo:hi], err_msg=f"core {core}")
        assert (got[hi - lo:] == 7).all() and (driver.cores[core].read_spad(buf, n) == 7).all()
    # Core 5 passes on only core 7's words; core 7 (the last) none.
    assert sum(decode(w).rlen for w in program[5] if decode(w).fwd) == 8
    assert not any(decode(w).fwd for w in program[7])


def test_gather_relay_beats_an_all_gather_and_a_relay():
    from caterpillar.golden.collectives import ring_blocks
    from caterpillar.software.isasim.ring import predict_ring_cycles

    cfg = preset("tiny").replace(cores=8)
    holders, targets, n = (0, 1, 2, 3), (4, 5, 6, 7), 256

    def cycles(body):
        return max(predict_ring_cycles([[*body.get(k, []), encode(Opcode.HALT)]
                                        for k in range(8)], cfg,
                                       sc.link_sources([holders, targets], 8)))

    gathered = sc.all_gather(holders, 64, n, cfg.nr)
    relayed = sc.relay(3, targets, 64, n, 8)
    both = {k: gathered.get(k, []) + relayed.get(k, []) for k in range(8)}
    one_pass = sc.gather_relay(holders, ring_blocks(n, 4, cfg.nr), targets, 64, 8)
    assert cycles(one_pass) < cycles(both) * 0.75, (cycles(one_pass), cycles(both))


@pytest.mark.parametrize("n", [13, 200], ids=["partial-rows", "blocks-over-the-queue"])
def test_piped_collectives_that_do_not_fit_are_refused_by_the_cores(n):
    # 13 words: the wrapped vector is not whole rows; 200 words: each core's first block is
    # more rows than the ring queue keeps free. Every core stops with BAD_SHAPE, none hangs.
    cfg = preset("tiny").replace(cores=3)
    assert not sc.piped_fits(n, 3, cfg.nr, cfg)
    with pytest.raises(RingCoreError) as info:
        run_collective(RingIsaDevice(cfg), CollectiveCase("piped_reduce_scatter", (0, 1, 2), n))
    assert [e.cause for e in info.value.errors.values()] == [ErrorCause.BAD_SHAPE] * 3
