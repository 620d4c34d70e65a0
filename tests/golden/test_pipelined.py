"""Golden continuous propagation (:mod:`caterpillar.golden.pipelined`) and direct feedback
alignment (:class:`~caterpillar.golden.trainer.GoldenTrainer` with ``feedback``): the schedule,
the equivalences the docstring promises, and agreement with the plain float64 reference of the
same schedules over a few hundred steps."""

import numpy as np
import pytest

from caterpillar.golden.numerics import FP32
from caterpillar.golden.pipelined import PipelinedTrainer
from caterpillar.golden.trainer import GoldenTrainer, scalars, to_bits, to_float
from caterpillar.software.training.float_reference import FloatReference

NR = 2
K_CHUNK = 64
LANES = 4          # the backward's row lanes (the fused pass's order on tiny and small)


def initial(sizes, rng, scale=0.5):
    return [(to_bits(rng.uniform(-scale, scale, (o, i)), FP32),
             to_bits(rng.uniform(-scale, scale, o), FP32))
            for i, o in zip(sizes[:-1], sizes[1:])]


def golden(sizes, weights, loss="softmax_ce", momentum=0.0, wd=0.0, feedback=None, cores=1):
    return GoldenTrainer(sizes, loss, NR, FP32, FP32, weights, k_chunk=K_CHUNK,
                         momentum=momentum > 0, weight_decay=wd > 0, feedback=feedback,
                         cores=cores)


def floats(bits):
    return to_float(bits, FP32)


def reference(sizes, weights, loss, lr, momentum=0.0, wd=0.0, feedback=None):
    return FloatReference(sizes, loss, [(floats(w), floats(b)) for w, b in weights], lr=lr,
                          momentum=momentum, weight_decay=wd,
                          feedback=None if feedback is None else [floats(f) for f in feedback])


def data(sizes, samples, rng):
    """Inputs (bits) and labels of a small separable problem: the label picks a mean."""
    classes = sizes[-1]
    means = rng.normal(0, 1, (classes, sizes[0]))
    labels = rng.integers(0, classes, samples)
    x = means[labels] + 0.3 * rng.normal(0, 1, (samples, sizes[0]))
    return to_bits(x, FP32), labels


def run_cp(trainer, x, labels, s, batch=1, stash=False):
    """One epoch of CP through the golden trainer; return the logits and the step count."""
    cp = PipelinedTrainer(trainer, LANES, batch=batch, stash=stash)
    out = []
    for g in range(len(x) // batch):
        logits = cp.step(x[g * batch:(g + 1) * batch], labels[g * batch:(g + 1) * batch], s)
        if logits is not None:
            out.append(logits)
    drained = cp.drain(s)
    return np.concatenate(out + drained), cp.t, cp


def assert_close(bits, want, rtol):
    got = floats(bits)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())


# -- the schedule -----------------------------------------------------------------------------

@pytest.mark.parametrize("layers", [1, 2, 3, 4])
def test_an_epoch_of_n_groups_takes_n_plus_2l_minus_1_steps(layers, rng):
    sizes = (5,) + (4,) * (layers - 1) + (3,)
    g = golden(sizes, initial(sizes, rng))
    x, labels = data(sizes, 9, rng)
    s = scalars(FP32, lr=0.05, batch=1, momentum=0, weight_decay=0, outputs=3)
    cp = PipelinedTrainer(g, LANES, batch=1)
    produced = []
    for t in range(9):
        logits = cp.step(x[t:t + 1], labels[t:t + 1], s)
        produced.append(logits is not None)
        # Groups in flight: at most 2L - 1 (the layer-0 backward of a group is 2L - 1 steps
        # after it entered).
        assert cp.in_flight == min(t + 1, 2 * layers - 1)
    # The first logits leave the output layer L - 1 steps after the first group entered.
    assert produced == [t >= layers - 1 for t in range(9)]
    drained = cp.drain(s)
    assert cp.t == 9 + 2 * layers - 1 and cp.in_flight == 0
    assert len(drained) == layers - 1
    assert all(not d for d in cp.inputs + cp.pre + cp.deltas)


@pytest.mark.parametrize("momentum, wd", [(0.0, 0.0), (0.9, 0.01)], ids=["plain", "both"])
@pytest.mark.parametrize("loss", ["softmax_ce", "mse"])
def test_cp_on_one_layer_is_sgd_bit_for_bit(loss, momentum, wd, rng):
    sizes = (6, 4)
    weights = initial(sizes, rng)
    x, labels = data(sizes, 12, rng)
    t = labels if loss == "softmax_ce" else to_bits(np.eye(4)[labels], FP32)
    s = scalars(FP32, lr=0.1, batch=1, momentum=momentum, weight_decay=wd, outputs=4)
    sgd = golden(sizes, weights, loss, momentum, wd)
    want = np.stack([sgd.sgd_step(x[k], t[k], s) for k in range(12)])
    cp = golden(sizes, weights, loss, momentum, wd)
    got, steps, _ = run_cp(cp, x, t, s)
    assert steps == 12 + 1
    np.testing.assert_array_equal(got, want)
    for (gw, gb), (cw, cb) in zip(sgd.weights, cp.weights):
        np.testing.assert_array_equal(cw, gw)
        np.testing.assert_array_equal(cb, gb)
    for (gw, gb), (cw, cb) in zip(sgd.moments, cp.moments):
        np.testing.assert_array_equal(cw, gw)
        np.testing.assert_array_equal(cb, gb)


def test_mbcp_of_one_sample_is_cp_and_of_more_is_not(rng):
    sizes = (6, 5, 4, 3)
    weights = initial(sizes, rng)
    x, labels = data(sizes, 8, rng)
    s1 = scalars(FP32, lr=0.1, batch=1, momentum=0, weight_decay=0, outputs=3)
    a, b = golden(sizes, weights), golden(sizes, weights)
    got_a, _, _ = run_cp(a, x, labels, s1)
    cp = PipelinedTrainer(b, LANES, batch=1)
    out = [cp.step(x[k], labels[k:k + 1], s1) for k in range(8)]
    out = [o for o in out if o is not None] + cp.drain(s1)
    np.testing.assert_array_equal(np.concatenate(out), got_a)
    s2 = scalars(FP32, lr=0.1, batch=2, momentum=0, weight_decay=0, outputs=3)
    c = golden(sizes, weights)
    run_cp(c, x, labels, s2, batch=2)
    assert not np.array_equal(c.weights[0][0], a.weights[0][0])


def test_the_forward_sees_the_documented_weight_version(rng):
    # L = 2: step t updates layer 0 with group t - 3, then runs group t's forward through
    # it, so that forward reads the layer-0 weights as they are after step t; the stash
    # (kept until the group's layer-0 backward) records exactly those.
    sizes = (4, 3, 2)
    weights = initial(sizes, rng)
    x, labels = data(sizes, 8, rng)
    s = scalars(FP32, lr=0.1, batch=1, momentum=0, weight_decay=0, outputs=2)
    g = golden(sizes, weights)
    cp = PipelinedTrainer(g, LANES, batch=1, stash=True)
    seen = {}
    for t in range(8):
        cp.step(x[t:t + 1], labels[t:t + 1], s)
        seen[t] = g.weights[0][0].copy()               # layer 0 after step t
    # The stash holds, for groups still in flight at layer 0, the weights their forward read.
    for group in cp.stashed[0]:
        np.testing.assert_array_equal(cp.stashed[0][group], seen[group])
    # Step t's layer-0 update is group t - 3's (2L - 1 = 3 steps after it entered).
    assert sorted(cp.deltas[0]) == [8 - 3]


# -- against the float64 reference ------------------------------------------------------------

@pytest.mark.parametrize("batch, stash", [(1, False), (2, False), (4, False), (1, True)],
                         ids=["cp", "mbcp2", "mbcp4", "cp-stash"])
@pytest.mark.parametrize("momentum, wd", [(0.0, 0.0), (0.9, 0.01)], ids=["plain", "both"])
def test_cp_follows_the_float64_reference_for_hundreds_of_steps(batch, stash, momentum, wd,
                                                                  rng):
    sizes = (8, 7, 6, 4)
    weights = initial(sizes, rng)
    x, labels = data(sizes, 240, rng)
    lr = 0.02
    s = scalars(FP32, lr=lr, batch=batch, momentum=momentum, weight_decay=wd, outputs=4)
    g = golden(sizes, weights, momentum=momentum, wd=wd)
    got, steps, _ = run_cp(g, x, labels, s, batch=batch, stash=stash)
    assert steps == 240 // batch + 2 * 3 - 1
    ref = reference(sizes, weights, "softmax_ce", lr, momentum, wd)
    want = ref.cp_epoch(floats(x), labels, batch=batch, stash=stash)
    # fp32 against float64 after hundreds of dependent updates: rounding grows slowly, so a
    # 1e-4 relative band holds; a schedule off by one group misses by far more (next test).
    assert_close(got, want, 1e-4)
    for (w, b), rw, rb in zip(g.weights, ref.W, ref.b):
        assert_close(w, rw, 1e-4)
        assert_close(b, rb, 1e-4)


def test_the_reference_tells_the_schedules_apart(rng):
    # The agreement above is meaningful: CP, CP with stashing, MBCP and SGD land far apart.
    sizes = (8, 7, 6, 4)
    weights = initial(sizes, rng)
    x, labels = data(sizes, 120, rng)
    runs = {}
    for name, kw in {"cp": {}, "stash": {"stash": True}, "mbcp": {"batch": 2}}.items():
        ref = reference(sizes, weights, "softmax_ce", 0.05)
        ref.cp_epoch(floats(x), labels, **kw)
        runs[name] = ref.W[0]
    ref = reference(sizes, weights, "softmax_ce", 0.05)
    for k in range(120):
        ref.mbgd_step(floats(x[k:k + 1]), labels[k:k + 1])
    runs["sgd"] = ref.W[0]
    names = list(runs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert np.abs(runs[a] - runs[b]).max() > 1e-3 * np.abs(runs[a]).max(), (a, b)


# -- direct feedback alignment ----------------------------------------------------------------

def feedback(sizes, rng):
    return [to_bits(rng.uniform(-0.5, 0.5, (sizes[-1], width)), FP32) for width in sizes[1:-1]]


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("momentum, wd", [(0.0, 0.0), (0.9, 0.01)], ids=["plain", "both"])
def test_dfa_follows_the_float64_reference(batch, momentum, wd, rng):
    sizes = (8, 7, 6, 4)
    weights = initial(sizes, rng)
    fb = feedback(sizes, rng)
    x, labels = data(sizes, 200, rng)
    lr = 0.01
    s = scalars(FP32, lr=lr, batch=batch, momentum=momentum, weight_decay=wd, outputs=4)
    g = golden(sizes, weights, momentum=momentum, wd=wd, feedback=fb)
    ref = reference(sizes, weights, "softmax_ce", lr, momentum, wd, feedback=fb)
    bp = reference(sizes, weights, "softmax_ce", lr, momentum, wd)
    for k in range(0, 200, batch):
        xb, tb = x[k:k + batch], labels[k:k + batch]
        got = g.sgd_step(xb[0], tb[0], s)[None] if batch == 1 else g.mbgd_step(xb, tb, s)
        want = ref.dfa_step(floats(xb), tb)
        bp.mbgd_step(floats(xb), tb)
        assert_close(got, want, 1e-4)
    for (w, b), rw, rb in zip(g.weights, ref.W, ref.b):
        assert_close(w, rw, 1e-4)
        assert_close(b, rb, 1e-4)
    # Feedback alignment is not backpropagation: the hidden layers went elsewhere.
    assert np.abs(ref.W[0] - bp.W[0]).max() > 1e-3
    # ... and the top layer's update rule is the same, so it stays near BP's early on.


def test_dfa_on_one_layer_is_sgd_and_feedback_shapes_are_checked(rng):
    sizes = (6, 4)
    weights = initial(sizes, rng)
    x, labels = data(sizes, 10, rng)
    s = scalars(FP32, lr=0.1, batch=1, momentum=0, weight_decay=0, outputs=4)
    a, b = golden(sizes, weights), golden(sizes, weights, feedback=[])
    for k in range(10):
        np.testing.assert_array_equal(a.sgd_step(x[k], labels[k], s),
                                      b.sgd_step(x[k], labels[k], s))
    np.testing.assert_array_equal(a.weights[0][0], b.weights[0][0])
    with pytest.raises(ValueError, match=r"feedback matrices must have shapes \[\(4, 5\)\]"):
        golden((6, 5, 4), initial((6, 5, 4), rng), feedback=[np.zeros((5, 4), np.uint64)])
    with pytest.raises(ValueError, match="continuous propagation backpropagates"):
        PipelinedTrainer(golden((6, 5, 4), initial((6, 5, 4), rng),
                                feedback=feedback((6, 5, 4), rng)), LANES)


def test_cp_on_a_ring_segment_sums_like_sgd_on_a_ring(rng):
    # Layer 1 on a segment of 2 cores: its forward sums change order, the rest does not;
    # with L = 1 this is again SGD on 2 cores.
    sizes = (12, 4)
    weights = initial(sizes, rng)
    x, labels = data(sizes, 10, rng)
    s = scalars(FP32, lr=0.1, batch=1, momentum=0, weight_decay=0, outputs=4)
    sgd = golden(sizes, weights, cores=2)
    want = np.stack([sgd.sgd_step(x[k], labels[k], s) for k in range(10)])
    got, _, _ = run_cp(golden(sizes, weights, cores=2), x, labels, s)
    np.testing.assert_array_equal(got, want)
