"""Collective cases: deterministic random segments and inputs, per-core programs ending in
HALT, golden expectations (checked against plain NumPy where that is exact or close), and runs
on the ring simulator that leave every core holding what the golden collective says."""

import numpy as np
import pytest

from caterpillar.contract.config import preset
from caterpillar.contract.isa import Opcode, decode
from caterpillar.golden import numerics as gn
from caterpillar.golden.collectives import ring_blocks
from caterpillar.sim.cases.collectives import (
    KINDS,
    CollectiveCase,
    expected_outputs,
    random_case,
    run_collective,
)
from caterpillar.software.isasim.device import RingIsaDevice

CORES = 4
CFG = preset("tiny").replace(cores=CORES)
FMT = CFG.operand
#: Out of ring order, and one core (3) outside the segment.
SEGMENT = (2, 0, 1)


def _check(case, inputs, outputs):
    want = expected_outputs(case, inputs, CFG)
    assert len(want) == len(outputs) == len(case.segment)
    for position, ((start, stop, values), got) in enumerate(zip(want, outputs)):
        assert got.shape == (case.n,)
        np.testing.assert_array_equal(got[start:stop], values,
                                      err_msg=f"{case.kind} position {position}")


@pytest.mark.parametrize("kind", KINDS)
def test_fixed_case_runs_to_the_golden_result(kind):
    n = 12 if kind.startswith("piped_") else 13         # piped: whole rows of nr
    case = CollectiveCase(kind, SEGMENT, n, root=1, seed=4)
    inputs, outputs, run = run_collective(RingIsaDevice(CFG), case)
    assert len(inputs) == len(SEGMENT) and all(len(v) == n for v in inputs)
    _check(case, inputs, outputs)
    assert len(run.cycles) == CORES and all(c > 0 for c in run.cycles)


@pytest.mark.parametrize("kind", KINDS)
def test_random_cases_run_to_the_golden_result(kind, rng, seed):
    for i in range(3):
        case = random_case(rng, kind, CORES, CFG, seed + i)
        inputs, outputs, _ = run_collective(RingIsaDevice(CFG), case)
        _check(case, inputs, outputs)


def test_random_case_is_a_legal_deterministic_draw(seed):
    draws = [[random_case(np.random.default_rng(seed), kind, CORES, CFG, seed)
              for kind in KINDS] for _ in range(2)]
    assert draws[0] == draws[1]
    rng = np.random.default_rng(seed)
    for _ in range(200):
        case = random_case(rng, "all_reduce", CORES, CFG, 9)
        assert 1 <= len(case.segment) <= CORES
        assert len(set(case.segment)) == len(case.segment)
        assert set(case.segment) <= set(range(CORES))
        assert 1 <= case.n < 64 * CFG.nr and 0 <= case.root < len(case.segment)
        assert case.seed == 9 and case.buf == 64


def test_inputs_depend_only_on_seed_length_and_segment_size():
    case = CollectiveCase("broadcast", SEGMENT, 11, seed=3)
    first = case.inputs(CFG)
    again = CollectiveCase("all_reduce", (3, 1, 0), 11, root=2, seed=3).inputs(CFG)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    other = CollectiveCase("broadcast", SEGMENT, 11, seed=4).inputs(CFG)
    assert not np.array_equal(first[0], other[0])
    assert all(v.dtype == np.uint64 and int(v.max()) < 1 << FMT.width for v in first)


@pytest.mark.parametrize("kind", KINDS)
def test_every_core_runs_ring_instructions_then_halt(kind):
    case = CollectiveCase(kind, SEGMENT, 13)
    programs = case.programs(CFG.nr, CORES)
    assert set(SEGMENT) <= set(programs) <= set(range(CORES))
    for core, words in programs.items():
        ops = [decode(w).op for w in words]
        assert len(ops) >= 2 and ops[-1] == Opcode.HALT, core
        assert set(ops[:-1]) == {Opcode.RING}, core


def test_relay_runs_through_cores_outside_the_segment():
    """Core 0 sends to core 3 along the chain 0 -> 1 -> 2 -> 3: 1 and 2 relay."""
    case = CollectiveCase("relay", (0, 3), 9, seed=2)
    assert sorted(case.programs(CFG.nr, CORES)) == [0, 1, 2, 3]
    inputs, outputs, _ = run_collective(RingIsaDevice(CFG), case)
    np.testing.assert_array_equal(outputs[1], inputs[0])
    np.testing.assert_array_equal(outputs[0], inputs[0])


def test_expected_outputs_match_plain_numpy(seed):
    n = 21
    inputs = CollectiveCase("all_reduce", SEGMENT, n, seed=seed).inputs(CFG)
    values = [gn.to_float64(v, FMT) for v in inputs]
    # Elements without NaN, infinity or the largest normal (whose sums may overflow).
    tame = np.all([np.abs(v) < 1e30 for v in values], axis=0)

    def case(kind, root=0):
        return CollectiveCase(kind, SEGMENT, n, root=root, seed=seed)

    for kind in ("broadcast", "relay"):
        root = 2 if kind == "broadcast" else 0
        for start, stop, got in expected_outputs(case(kind, root), inputs, CFG):
            assert (start, stop) == (0, n)
            np.testing.assert_array_equal(got, inputs[root])
    for (_, _, got), vector in zip(expected_outputs(case("barrier"), inputs, CFG), inputs):
        np.testing.assert_array_equal(got, vector)

    (_, _, gathered), *rest = expected_outputs(case("all_gather"), inputs, CFG)
    blocks = ring_blocks(n, len(SEGMENT), CFG.nr)
    for i, (a, b) in enumerate(blocks):
        np.testing.assert_array_equal(gathered[a:b], inputs[i][a:b])
    assert all(np.array_equal(g, gathered) for _, _, g in rest)

    exact = np.sum([v[tame] for v in values], axis=0)
    bound = 2.0 ** -21 * np.sum([np.abs(v[tame]) for v in values], axis=0)  # two roundings

    def near_exact(bits):
        return (np.abs(gn.to_float64(bits, FMT)[tame] - exact) <= bound).all()

    (_, _, total), *_ = expected_outputs(case("all_reduce"), inputs, CFG)
    assert near_exact(total)
    for i, (start, stop, part) in enumerate(expected_outputs(case("reduce_scatter"), inputs,
                                                             CFG)):
        assert (start, stop) == blocks[i]
        np.testing.assert_array_equal(part, total[start:stop])  # the same order of sums

    chain = expected_outputs(case("chain_reduce", root=1), inputs, CFG)
    assert near_exact(chain[1][2])
    np.testing.assert_array_equal(chain[0][2], inputs[0])      # non-roots keep their input
    np.testing.assert_array_equal(chain[2][2], inputs[2])


def test_unknown_kind_is_refused():
    case = CollectiveCase("gossip", SEGMENT, 4)
    with pytest.raises(ValueError, match=r"^unknown collective 'gossip'$"):
        expected_outputs(case, case.inputs(CFG), CFG)
