"""The kernel case generators: random data, determinism for a seed, expected outputs that are
the golden kernels of the case's own data (and near the exact float64 result), and cases that
the instruction-level device runs to exactly those outputs."""

import numpy as np
import pytest

from caterpillar.contract.config import preset
from caterpillar.contract.isa import INSTR_WORDS, Counter, Layout, Opcode, VecOp, decode
from caterpillar.golden import kernels as gk
from caterpillar.golden import numerics as gn
from caterpillar.sim.cases import kernels as kc
from caterpillar.software.driver.core import Driver
from caterpillar.software.isasim.device import IsaDevice

TINY = preset("tiny")
FMT = TINY.operand


def _floats(bits):
    return gn.to_float64(np.asarray(bits, dtype=np.uint64), FMT)


def _matrix(case, addr, rows, cols):
    """The logical ``rows x cols`` matrix stored row by row at ``addr`` with padded rows."""
    flat = case.spad[addr]
    return flat.reshape(rows, -1)[:, :cols]


def _builders():
    """One small case of every generator, for a given rng."""
    return {
        "gemv": lambda rng: kc.gemv_case(TINY, 5, 7, rng),
        "gemvt": lambda rng: kc.gemvt_case(TINY, 7, 5, rng),
        "ger": lambda rng: kc.ger_case(TINY, 5, 3, rng, use_wd=True, use_mom=True),
        "cpass": lambda rng: kc.cpass_case(TINY, 6, 5, rng),
        "gemm": lambda rng: kc.gemm_case(TINY, 5, 3, 4, rng, accumulate=True),
        "vop": lambda rng: kc.vop_case(TINY, VecOp.AXPY, Layout.ROWREP, 7, rng),
        "smxce": lambda rng: kc.smxce_case(TINY, 9, rng),
        "transfer": lambda rng: kc.transfer_case(TINY, 3, 5, rng, trans=True),
        "vectors": lambda rng: kc.vector_transfer_case(TINY, 7, rng),
    }


def _same(a, b):
    assert a.name == b.name and a.program == b.program and a.sregs == b.sregs
    assert a.outputs == b.outputs and a.macs == b.macs
    assert sorted(a.spad) == sorted(b.spad)
    for key in a.spad:
        np.testing.assert_array_equal(a.spad[key], b.spad[key])
    for x, y in zip(a.expected, b.expected, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("kind", list(_builders()))
def test_cases_are_deterministic_for_a_seed(kind, seed):
    build = _builders()[kind]
    first = build(np.random.default_rng(seed))
    _same(first, build(np.random.default_rng(seed)))
    other = build(np.random.default_rng(seed + 1))
    assert any(not np.array_equal(first.spad[k], other.spad[k]) for k in first.spad)


@pytest.mark.parametrize("kind", list(_builders()))
def test_every_case_runs_to_its_expected_outputs(kind, rng):
    case = _builders()[kind](rng)
    assert decode(case.program[-1]).op == Opcode.HALT
    assert len(case.outputs) == len(case.expected) >= 1
    outputs, stats = kc.run_case(IsaDevice(TINY), case)
    for (addr, shape), got, want in zip(case.outputs, outputs, case.expected):
        assert got.shape == shape == want.shape
        np.testing.assert_array_equal(got, want, err_msg=case.name)
    assert stats.macs == case.counted_macs


def test_a_shared_device_counts_each_cases_own_host_words(rng):
    # A Verilated core serves every case of a test module; HOST_WORDS outlives clear_counters.
    shared = IsaDevice(TINY)
    for kind in ("gemv", "smxce"):
        case = _builders()[kind](rng)
        _, on_shared = kc.run_case(shared, case)
        _, on_fresh = kc.run_case(IsaDevice(TINY), case)
        assert on_shared.counted() == on_fresh.counted()
        assert on_fresh.counters[Counter.HOST_WORDS] >= len(case.program) * INSTR_WORDS


def test_random_values_are_normal_numbers_with_requested_corners(rng):
    plain = kc.random_values(4000, FMT, rng)
    values = _floats(plain)
    assert np.isfinite(values).all() and (values != 0).all()
    assert abs(values.mean()) < 0.1 and 0.9 < values.std() < 1.1
    assert 2.7 < _floats(kc.random_values(4000, FMT, rng, scale=3.0)).std() < 3.3
    corners = {0, FMT.sign_mask, 1, FMT.man_mask, FMT.inf, FMT.inf | FMT.sign_mask,
               FMT.canonical_nan, FMT.max_normal}
    mixed = kc.random_values((40, 100), FMT, rng, specials=0.5)
    assert mixed.shape == (40, 100) and mixed.dtype == np.uint64
    share = np.isin(mixed, list(corners)).mean()
    assert 0.45 < share < 0.55
    assert set(mixed.ravel().tolist()) >= corners
    assert int(mixed.max()) < 1 << FMT.width


def test_gemv_and_gemvt_expect_the_golden_kernel_of_their_data(rng):
    case = kc.gemv_case(TINY, 6, 9, rng)
    w, x = _matrix(case, 0, 6, 9), case.spad[max(case.spad)]
    want, _ = gk.gemv(w, x, TINY.nr, FMT, TINY.acc)
    np.testing.assert_array_equal(case.expected[0], want)
    exact = _floats(w) @ _floats(x)
    bound = np.abs(_floats(w)) @ np.abs(_floats(x)) * 2.0 ** -20
    assert (np.abs(_floats(want) - exact) <= bound).all()
    assert case.macs == 6 * 9 and case.outputs[0][1] == (6,)

    case = kc.gemvt_case(TINY, 6, 9, rng)
    w, d = _matrix(case, 0, 6, 9), case.spad[max(case.spad)]
    np.testing.assert_array_equal(case.expected[0], gk.gemvt(w, d, TINY.nr, FMT, TINY.acc)[0])
    assert np.allclose(_floats(case.expected[0]), _floats(w).T @ _floats(d), rtol=1e-5,
                       atol=1e-5)
    assert case.outputs[0][1] == (9,)


def test_ger_expects_the_rank_one_update(rng):
    # Without weight decay and momentum u carries the step: W += u v^T.
    case = kc.ger_case(TINY, 5, 3, rng)
    w = _floats(_matrix(case, 0, 5, 3))
    keys = sorted(case.spad)
    u, v = _floats(case.spad[keys[1]]), _floats(case.spad[keys[2]])
    got = _floats(case.expected[0][:, :3])
    assert np.allclose(got, w + np.outer(u, v), rtol=1e-6, atol=1e-6)
    assert (case.expected[0][:, 3:] == 0).all()                  # row padding stays zero
    assert case.macs == 5 * 3
    # With weight decay the step is alpha: W -= 0.0625 (u v^T + wd W).
    decayed = kc.ger_case(TINY, 5, 3, rng, use_wd=True)
    assert decayed.sregs[1] == int(gn.from_float(-0.0625, FMT))
    w = _floats(_matrix(decayed, 0, 5, 3))
    keys = sorted(decayed.spad)
    u, v = _floats(decayed.spad[keys[1]]), _floats(decayed.spad[keys[2]])
    got = _floats(decayed.expected[0][:, :3])
    assert np.allclose(got, w - 0.0625 * (np.outer(u, v) + 0.01 * w), rtol=1e-5, atol=1e-6)
    with_mom = kc.ger_case(TINY, 5, 3, rng, use_mom=True)
    assert len(with_mom.outputs) == 2 and with_mom.macs == 5 * 3 * 3


def test_gemm_expects_a_times_b_plus_c(rng):
    m, n, k = 5, 3, 4
    case = kc.gemm_case(TINY, m, n, k, rng, accumulate=True)
    addrs = sorted(case.spad)
    a_t = _matrix(case, addrs[0], k, m)                   # A is stored transposed
    b, c = _matrix(case, addrs[1], k, n), _matrix(case, addrs[2], m, n)
    want = gk.gemm(a_t.T, b, c, FMT, TINY.acc)
    np.testing.assert_array_equal(case.expected[0][:, :n], want)
    exact = _floats(a_t).T @ _floats(b) + _floats(c)
    assert np.allclose(_floats(want), exact, rtol=1e-5, atol=1e-5)
    assert case.macs == m * n * k


def test_gemm_with_several_row_groups_runs_on_the_device(rng):
    case = kc.gemm_case(TINY, 17, 5, 64, rng)
    assert decode(case.program[0]).mc == kc.best_mc(TINY, 17, 64) == 16     # 16 < 17 rows
    outputs, _ = kc.run_case(IsaDevice(TINY), case)
    np.testing.assert_array_equal(outputs[0], case.expected[0])


def test_best_mc_is_whole_row_groups_that_fit_mema():
    group = TINY.nr * TINY.acc_lanes
    assert kc.best_mc(TINY, 5, 4) == group                   # one group covers m
    assert kc.best_mc(TINY, 100, 16) % group == 0
    assert kc.best_mc(TINY, 100, 16) * -(-16 // TINY.nr) <= TINY.mema_words * TINY.nr
    with pytest.raises(ValueError, match=r"^k=129 leaves no room for one row group of A"):
        kc.best_mc(TINY, 16, 129)


@pytest.mark.parametrize("fn", list(VecOp), ids=lambda f: f.name.lower())
def test_vop_expects_the_golden_function(fn, rng):
    case = kc.vop_case(TINY, fn, Layout.COLREP, 7, rng, specials=0.2)
    x, y = case.spad[0], case.spad[max(case.spad)]
    want = gk.vop(fn.name.lower(), x, y, case.sregs[4], FMT, TINY.acc)
    np.testing.assert_array_equal(case.expected[0], want)
    outputs, stats = kc.run_case(IsaDevice(TINY), case)
    np.testing.assert_array_equal(outputs[0], want)
    assert stats.macs == case.counted_macs


def test_vop_add_is_near_the_exact_sum(rng):
    case = kc.vop_case(TINY, VecOp.ADD, Layout.DIAG, 9, rng)
    x, y = _floats(case.spad[0]), _floats(case.spad[max(case.spad)])
    assert np.allclose(_floats(case.expected[0]), x + y, rtol=1e-6, atol=1e-7)
    assert case.macs == 9                                     # the diagonal: one copy


def test_smxce_expects_softmax_minus_one_hot(rng):
    case = kc.smxce_case(TINY, 9, rng)
    x, t = _floats(case.spad[0]), _floats(case.spad[max(case.spad)])
    assert sorted(t.tolist()) == [0.0] * 8 + [1.0]
    e = np.exp(x - x.max())
    assert np.allclose(_floats(case.expected[0]), e / e.sum() - t, atol=1e-6)


def test_transfers_expect_their_input_back(rng):
    case = kc.transfer_case(TINY, 3, 5, rng, trans=True)
    stored = _matrix(case, 0, 5, 3)                          # the transposed tile: 5 x 3
    np.testing.assert_array_equal(case.expected[0][:, :3], stored)
    np.testing.assert_array_equal(case.expected[1][:, :5], stored.T)
    vectors = kc.vector_transfer_case(TINY, 7, rng)
    assert len(vectors.expected) == 3
    for want in vectors.expected:
        np.testing.assert_array_equal(want, vectors.spad[0])


def test_run_case_zeroes_outputs_left_by_earlier_work(rng):
    """Row padding the program never writes reads as zero even on a dirty SPAD."""
    case = kc.ger_case(TINY, 5, 3, rng)
    device = IsaDevice(TINY)
    Driver(device).write_spad(0, np.full(TINY.spad_words, FMT.canonical_nan, np.uint64))
    outputs, _ = kc.run_case(device, case)
    np.testing.assert_array_equal(outputs[0], case.expected[0])
    again, _ = kc.run_case(device, case)
    np.testing.assert_array_equal(again[0], case.expected[0])
