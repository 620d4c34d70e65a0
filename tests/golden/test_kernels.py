"""Golden kernels: the fp32 MAC shortcut against the numerics specification."""

import numpy as np
import pytest

from caterpillar.golden import kernels as gk
from caterpillar.golden import numerics as n

SPECIALS = np.array([0, 0x80000000, 1, 0x807FFFFF, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F800000,
                     0xFF800000, 0x7FC00000, 0x7F800001, 0xFFFFFFFF, 0x3F800000, 0x00800000,
                     0x34000000, 0x4B000000], dtype=np.uint64)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fp32_mac_shortcut_matches_the_specification(seed):
    rng = np.random.default_rng(seed)
    size = 200_000
    a, b, c = (rng.integers(0, 1 << 32, size, dtype=np.uint64) for _ in range(3))
    # Near-equal magnitudes and specials: cancellation, ties, subnormal results.
    c[: size // 4] = (n.mul(a[: size // 4], b[: size // 4], n.FP32).astype(np.uint64)
                      ^ np.uint64(0x80000000)) + rng.integers(-3, 4, size // 4).astype(np.uint64)
    pick = rng.random((3, size)) < 0.05
    for v, p in zip((a, b, c), pick):
        v[p] = SPECIALS[rng.integers(0, len(SPECIALS), p.sum())]
    got = gk.mac(a, b, c, n.FP32, n.FP32)
    want = n.mac(a, b, c, n.FP32, n.FP32).astype(np.uint64)
    bad = np.nonzero(got != want)[0]
    assert not len(bad), (f"seed {seed}: {len(bad)} differ, first a={a[bad[0]]:#x} "
                          f"b={b[bad[0]]:#x} c={c[bad[0]]:#x}: {got[bad[0]]:#x} != "
                          f"{want[bad[0]]:#x}")


def test_fp32_mac_shortcut_keeps_scalar_shapes():
    r = gk.mac(np.uint64(0x3F800000), np.uint64(0x40000000), np.uint64(0x80000000), n.FP32,
               n.FP32)
    assert np.shape(r) == () and int(r) == 0x40000000


@pytest.mark.parametrize("lanes", [1, 2, 4])
def test_cpass_backward_sums_w_transposed_d_by_row_lanes(lanes, rng):
    fmt = n.FP32
    rows, cols, nr = 23, 9, 2
    w = n.from_float(rng.standard_normal((rows, cols)), fmt).astype(np.uint64)
    d = n.from_float(rng.standard_normal(rows), fmt).astype(np.uint64)
    z, stored = gk.cpass_backward(w, d, nr, lanes, fmt, fmt)
    exact = n.to_float64(w, fmt).T @ n.to_float64(d, fmt)
    np.testing.assert_allclose(n.to_float64(z, fmt), exact, rtol=1e-5, atol=1e-5)
    # By hand: PE(r, j mod nr)'s lanes, each summed in row order, then the lanes in order.
    j, r = 4, 1
    f = n.to_float64(w, fmt).astype(np.float32)
    dd = n.to_float64(d, fmt).astype(np.float32)
    lane_sums = []
    for rho in range(lanes):
        q = np.float32(-0.0)
        for i in range(r, rows, nr):
            if (i // nr) % lanes == rho:
                q = np.float32(q + np.float32(f[i, j] * dd[i]))
        lane_sums.append(q)
    total = np.float32(-0.0)
    for q in lane_sums:
        total = np.float32(total + q)
    assert n.to_float64(stored[j, r], fmt) == total
    if lanes == 1:       # one lane is gemvt's order
        np.testing.assert_array_equal(z, gk.gemvt(w, d, nr, fmt, fmt)[0])
    else:
        assert not np.array_equal(z, gk.gemvt(w, d, nr, fmt, fmt)[0])
