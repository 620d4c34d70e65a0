"""Golden trainer (:mod:`caterpillar.golden.trainer`): the scalar operands, the bit conversions,
inference against the training forward pass, the placement over cores (which only changes the
order of sums), and one training step against the float64 reference of the semantics."""

import copy

import ml_dtypes
import numpy as np
import pytest

from caterpillar.golden import kernels as gk
from caterpillar.golden import numerics as n
from caterpillar.golden.collectives import reduce_scatter, ring_blocks
from caterpillar.golden.numerics import BF16, FP16, FP32
from caterpillar.golden.trainer import GoldenTrainer, gemm_chunked, scalars, to_bits, to_float
from caterpillar.software.training.float_reference import FloatReference

NR = 2                        # the tiny preset's PE array side
K_CHUNK = 64                  # the tiny preset's longest GEMM (memb_words / 2)
U = 2.0 ** -24                # unit roundoff of fp32
NATIVE = {FP32: np.float32, FP16: np.float16, BF16: ml_dtypes.bfloat16}


def initial(sizes, rng, scale=0.5):
    """Random fp32 parameters ``[(W, b), ...]`` (bits) in ``[-scale, scale]``."""
    return [(to_bits(rng.uniform(-scale, scale, (o, i)), FP32),
             to_bits(rng.uniform(-scale, scale, o), FP32))
            for i, o in zip(sizes[:-1], sizes[1:])]


def trainer(sizes, weights, loss="softmax_ce", cores=1, momentum=False, weight_decay=False,
            output_columns=False):
    return GoldenTrainer(sizes, loss, NR, FP32, FP32, weights, k_chunk=K_CHUNK,
                         momentum=momentum, weight_decay=weight_decay, cores=cores,
                         output_columns=output_columns)


def targets(loss, classes, batch, rng):
    """Labels for ``softmax_ce``, one-hot bit vectors for ``mse``."""
    labels = rng.integers(0, classes, batch)
    return labels if loss == "softmax_ce" else to_bits(np.eye(classes)[labels], FP32)


def floats(bits):
    return to_float(bits, FP32)


# -- scalars and conversions -----------------------------------------------------------------

@pytest.mark.parametrize("fmt", [FP32, BF16, FP16], ids=lambda f: f.name)
@pytest.mark.parametrize("lr, batch, momentum, wd, outputs", [
    (0.05, 1, 0.0, 0.0, 10), (0.1, 3, 0.9, 5e-4, 7), (0.3, 32, 0.5, 0.01, 1)])
def test_scalars_are_the_documented_expressions_rounded_once(fmt, lr, batch, momentum, wd,
                                                             outputs):
    s = scalars(fmt, lr=lr, batch=batch, momentum=momentum, weight_decay=wd, outputs=outputs)
    want = {"zero": 0, "step": -lr / batch, "inv_batch": 1.0 / batch, "neg_lr": -lr,
            "wd": wd, "mu": momentum, "mse": 2.0 / outputs}
    assert s == {k: int(n.from_float(v, fmt)) for k, v in want.items()}
    assert all(type(v) is int for v in s.values())


def test_scalars_hand_computed():
    s = scalars(FP32, lr=0.5, batch=4, momentum=0.75, weight_decay=0.25, outputs=4)
    assert s == {"zero": 0, "step": 0xBE000000, "inv_batch": 0x3E800000, "neg_lr": 0xBF000000,
                 "wd": 0x3E800000, "mu": 0x3F400000, "mse": 0x3F000000}
    s = scalars(FP16, lr=0.5, batch=4, momentum=0.75, weight_decay=0.25, outputs=4)
    assert s == {"zero": 0, "step": 0xB000, "inv_batch": 0x3400, "neg_lr": 0xB800,
                 "wd": 0x3400, "mu": 0x3A00, "mse": 0x3800}
    # -lr / batch is rounded from its float64 value, not from the rounded -lr: in bf16,
    # -0.01 / 3 is 0xbb5a, while round(-0.01) / 3 would round to 0xbb5b.
    assert scalars(BF16, lr=0.01, batch=3, momentum=0, weight_decay=0, outputs=2)["step"] == \
        0xBB5A
    assert scalars(FP16, lr=0.3, batch=3, momentum=0, weight_decay=0, outputs=2)["step"] == \
        0xAE66


@pytest.mark.parametrize("fmt", [FP32, BF16, FP16], ids=lambda f: f.name)
def test_to_bits_rounds_like_the_native_type_and_to_float_decodes(fmt, rng):
    native = NATIVE[fmt]
    x = np.concatenate([rng.standard_normal(500) * 10.0 ** rng.integers(-6, 5, 500),
                        [0.0, -0.0, 1.0, -2.5, np.inf, -np.inf]])
    bits = to_bits(x, fmt)
    assert bits.dtype == np.uint64 and bits.shape == x.shape
    view = {16: np.uint16, 32: np.uint32}[fmt.width]
    with np.errstate(over="ignore"):
        want = x.astype(native)
    np.testing.assert_array_equal(bits, want.view(view).astype(np.uint64))
    decoded = to_float(bits, fmt)
    assert decoded.dtype == np.float64
    np.testing.assert_array_equal(decoded, want.astype(np.float64))
    assert int(to_bits(np.nan, fmt)) == fmt.canonical_nan


@pytest.mark.parametrize("fmt", [FP32, BF16, FP16], ids=lambda f: f.name)
def test_every_non_nan_bit_pattern_round_trips(fmt, rng):
    bits = rng.integers(0, 1 << fmt.width, 20_000, dtype=np.uint64)
    bits = bits[~n.is_nan(bits, fmt)]
    np.testing.assert_array_equal(to_bits(to_float(bits, fmt), fmt), bits)


# -- inference and the training forward pass ------------------------------------------------

@pytest.mark.parametrize("loss", ["softmax_ce", "mse"])
def test_predict_is_the_forward_pass_of_each_sgd_step(loss, rng):
    sizes = (9, 7, 6, 5)
    gold = trainer(sizes, initial(sizes, rng), loss, momentum=True)
    x = to_bits(rng.random((6, sizes[0])), FP32)
    t = targets(loss, sizes[-1], len(x), rng)
    s = scalars(FP32, lr=0.1, batch=1, momentum=0.9, weight_decay=0.0, outputs=sizes[-1])
    logits = gold.predict(x)
    assert logits.shape == (len(x), sizes[-1]) and logits.dtype == np.uint64
    for i in range(len(x)):
        np.testing.assert_array_equal(gold.forward(x[i])[-1][0], logits[i])
        before = copy.deepcopy(gold.weights)
        step = copy.deepcopy(gold)
        # The step returns the logits of the weights it started from, then updates them.
        np.testing.assert_array_equal(step.sgd_step(x[i], t[i], s), logits[i])
        assert not np.array_equal(step.weights[-1][1], before[-1][1])
        for (w, b), (w0, b0) in zip(gold.weights, before):
            np.testing.assert_array_equal(w, w0)
            np.testing.assert_array_equal(b, b0)


def sum_bound(w, b, x):
    """Largest difference two summation orders of ``W x + b`` can make, per output (fp32).

    ``in + 1`` terms: each order's result is within about ``in * u * sum |terms|`` of the exact
    sum (every addition rounds once; the products are rounded identically in both), so two
    orders differ by at most twice that (one more addition of slack for the bias)."""
    terms = np.abs(floats(w)) @ np.abs(floats(x)).T + np.abs(floats(b))[:, None]
    return (2 * (w.shape[1] + 1) * U * terms).T


def test_mbgd_logits_are_the_gemm_of_the_weights_before_the_update(rng):
    sizes = (13, 6)
    weights = initial(sizes, rng)
    gold = trainer(sizes, weights, "mse")
    x = to_bits(rng.random((4, sizes[0])), FP32)
    t = targets("mse", sizes[-1], len(x), rng)
    s = scalars(FP32, lr=0.1, batch=len(x), momentum=0.0, weight_decay=0.0, outputs=6)
    predicted = gold.predict(x)
    logits = gold.mbgd_step(x, t, s)
    (w, b), = weights
    # H = [W | b] [x^T; 1]: the bias is the last term of each GEMM sum.
    augmented = np.concatenate([w, b[:, None]], axis=1)
    ones = np.full((1, len(x)), int(n.from_float(1.0, FP32)), np.uint64)
    want = gemm_chunked(augmented, np.concatenate([x.T, ones]), FP32, FP32, K_CHUNK).T
    np.testing.assert_array_equal(logits, want)
    assert not np.array_equal(gold.weights[0][0], w)
    # predict sums the same terms in the GEMV's order and adds the bias last, so it agrees
    # only up to the reordering of the sums.
    np.testing.assert_allclose(floats(predicted), floats(logits), rtol=0,
                               atol=sum_bound(w, b, x).max())


# -- placement over cores ---------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", ["sgd", "mbgd"])
def test_one_core_per_layer_is_one_core(algorithm, rng):
    sizes = (10, 9, 7, 5)
    weights = initial(sizes, rng)
    batch = 1 if algorithm == "sgd" else 4
    a = trainer(sizes, weights, momentum=True, weight_decay=True)
    b = trainer(sizes, weights, momentum=True, weight_decay=True, cores=[1, 1, 1])
    assert a.cores == b.cores == [1, 1, 1]
    s = scalars(FP32, lr=0.1, batch=batch, momentum=0.9, weight_decay=0.01, outputs=5)
    for _ in range(3):
        x = to_bits(rng.random((batch, sizes[0])), FP32)
        t = targets("softmax_ce", sizes[-1], batch, rng)
        if algorithm == "sgd":
            np.testing.assert_array_equal(a.sgd_step(x[0], t[0], s), b.sgd_step(x[0], t[0], s))
        else:
            np.testing.assert_array_equal(a.mbgd_step(x, t, s), b.mbgd_step(x, t, s))
    for state in ("weights", "moments"):
        for pa, pb in zip(getattr(a, state), getattr(b, state)):
            for va, vb in zip(pa, pb):
                np.testing.assert_array_equal(va, vb)


@pytest.mark.parametrize("algorithm", ["sgd", "mbgd", "mbgd-columns"])
@pytest.mark.parametrize("cores", [2, 3, [2, 3]], ids=["2", "3", "2-3"])
def test_with_exact_sums_the_cores_change_nothing(algorithm, cores, rng):
    # Small dyadic values (quarters, lr 1/4, mse scale 1/2, batch 2) make every product and
    # sum exact in fp32, so any summation order gives the same bits.
    sizes = (8, 6, 4)
    weights = [(to_bits(rng.integers(-4, 5, (o, i)) / 4, FP32),
                to_bits(rng.integers(-4, 5, o) / 4, FP32))
               for i, o in zip(sizes[:-1], sizes[1:])]
    batch = 1 if algorithm == "sgd" else 2
    x = to_bits(rng.integers(0, 4, (batch, sizes[0])), FP32)
    t = targets("mse", sizes[-1], batch, rng)
    s = scalars(FP32, lr=0.25, batch=batch, momentum=0.0, weight_decay=0.0, outputs=4)
    one = trainer(sizes, weights, "mse")
    ring = trainer(sizes, weights, "mse", cores=cores, output_columns=algorithm != "mbgd")
    if algorithm == "sgd":
        np.testing.assert_array_equal(one.sgd_step(x[0], t[0], s), ring.sgd_step(x[0], t[0], s))
    else:
        np.testing.assert_array_equal(one.mbgd_step(x, t, s), ring.mbgd_step(x, t, s))
    for (wa, ba), (wb, bb) in zip(one.weights, ring.weights):
        np.testing.assert_array_equal(wa, wb)
        np.testing.assert_array_equal(ba, bb)
    assert not np.array_equal(one.weights[-1][1], weights[-1][1])


def test_two_cores_reorder_the_sgd_forward_sums_within_the_rounding_bound(rng):
    sizes = (16, 5)
    weights = initial(sizes, rng)
    one, two = trainer(sizes, weights), trainer(sizes, weights, cores=2)
    x = to_bits(rng.random((8, sizes[0])), FP32)
    (w, b), = weights
    bound = sum_bound(w, b, x)
    h1 = floats(np.stack([one.forward(v)[-1][0] for v in x]))
    h2 = floats(np.stack([two.forward(v)[-1][0] for v in x]))
    assert not np.array_equal(h1, h2)               # the order does change some bits
    np.testing.assert_allclose(h2, h1, rtol=0, atol=bound.max())
    assert np.all(np.abs(h2 - h1) <= bound)


def three_cores(rng, **options):
    """A 24-9-5 network on three cores: ``(weights, x, plain, other, a)``, ``plain`` the
    reduce-scatter trainer, ``other`` one with ``options``, ``a`` the hidden activation of
    ``x`` (the same on both)."""
    sizes = (24, 9, 5)
    weights = initial(sizes, rng)
    x = to_bits(rng.random(sizes[0]), FP32)
    plain = trainer(sizes, weights, cores=3)
    other = GoldenTrainer(sizes, "softmax_ce", NR, FP32, FP32, weights, cores=3, **options)
    return weights, x, plain, other, plain.forward(x)[0][1]


def test_logits_chain_sums_the_output_partials_from_the_first_core_to_the_last(rng):
    # Three cores: the logits are (p0 + p1) + p2 of the cores' column-block partials, where
    # the reduce-scatter starts block j's sum at core j + 1.
    sizes = (24, 9, 5)
    weights, x, scatter, chain, a = three_cores(rng, logits_chain=True)
    w = weights[-1][0]
    partials = [gk.gemv(w[:, lo:hi], a[lo:hi], NR, FP32, FP32)[0]
                for lo, hi in ring_blocks(sizes[1], 3, NR)]
    expected = n.add(partials[2], n.add(partials[1], partials[0], FP32), FP32)
    np.testing.assert_array_equal(chain.forward(x)[-1][0],
                                  chain._vop("add", expected, weights[-1][1], 0))
    # The hidden layer still reduce-scatters; only the output layer's order changes.
    np.testing.assert_array_equal(chain.forward(x)[0][0], scatter.forward(x)[0][0])
    hs = [np.stack([t.forward(v)[-1][0] for v in to_bits(rng.random((32, 24)), FP32)])
          for t in (scatter, chain)]
    assert not np.array_equal(*hs)


def test_a_folded_bias_is_the_last_term_of_its_cores_partial(rng):
    # Three cores, the output layer's bias a column of core 1's block: its partial is
    # gemv([W_1 | b], [a_1; 1]), summed round the ring like the others; no VOP add after.
    weights, x, plain, folded, a = three_cores(rng, bias_columns=[None, 1])
    (w, b), one = weights[-1], to_bits(np.ones(1), FP32)
    partials = []
    for k, (lo, hi) in enumerate(ring_blocks(9, 3, NR)):
        wk, ak = w[:, lo:hi], a[lo:hi]
        if k == 1:
            wk, ak = np.concatenate([wk, b[:, None]], axis=1), np.concatenate([ak, one])
        partials.append(gk.gemv(wk, ak, NR, FP32, FP32)[0])
    expected = np.concatenate(reduce_scatter(partials, NR, FP32))
    np.testing.assert_array_equal(folded.forward(x)[-1][0], expected)
    np.testing.assert_array_equal(folded.forward(x)[0][0], plain.forward(x)[0][0])
    # Another order of the same sum: some bits change, all within the rounding bound.
    xs = to_bits(rng.random((32, 24)), FP32)
    hp, hf = (floats(np.stack([t.forward(v)[-1][0] for v in xs])) for t in (plain, folded))
    assert not np.array_equal(hp, hf)
    bound = sum_bound(w, b, np.stack([plain.forward(v)[0][1] for v in xs]))
    assert np.all(np.abs(hf - hp) <= bound)


@pytest.mark.parametrize("algorithm", ["sgd", "mbgd", "mbgd-columns"])
def test_two_cores_train_close_to_one(algorithm, rng):
    sizes = (16, 12, 8, 5)
    weights = initial(sizes, rng)
    batch = 1 if algorithm == "sgd" else 4
    one = trainer(sizes, weights, momentum=True)
    two = trainer(sizes, weights, momentum=True, cores=2,
                  output_columns=algorithm == "mbgd-columns")
    s = scalars(FP32, lr=0.1, batch=batch, momentum=0.9, weight_decay=0.0, outputs=5)
    for step in range(3):
        x = to_bits(rng.random((batch, sizes[0])), FP32)
        t = targets("softmax_ce", sizes[-1], batch, rng)
        if algorithm == "sgd":
            l1, l2 = one.sgd_step(x[0], t[0], s), two.sgd_step(x[0], t[0], s)
        else:
            l1, l2 = one.mbgd_step(x, t, s), two.mbgd_step(x, t, s)
        if algorithm == "mbgd" and step == 0:
            # The mbgd forward pass does not depend on the cores; only W^T D is split.
            np.testing.assert_array_equal(l1, l2)
            np.testing.assert_array_equal(one.weights[-1][0], two.weights[-1][0])
        if algorithm == "mbgd-columns" and step == 0:
            # Split by columns, the output layer's logits are summed round the ring: with 20
            # sums of 13 random terms, some bits change.
            assert not np.array_equal(l1, l2)
        # Every sum has at most 17 terms of magnitude below 1, so two orders differ by at most
        # 2 x 16 u ~ 2e-6 of the tensor's scale; three steps at lr 0.1 amplify that only a
        # little. 1e-5 of the scale (elementwise near zero, where the relative error of a
        # cancelled sum is meaningless) leaves a wide margin.
        for got, want in [(l2, l1)] + [(p2, p1) for q1, q2 in zip(one.weights, two.weights)
                                       for p1, p2 in zip(q1, q2)]:
            want = floats(want)
            np.testing.assert_allclose(floats(got), want, rtol=1e-5,
                                       atol=1e-5 * np.abs(want).max())


# -- against float64 --------------------------------------------------------------------------

@pytest.mark.parametrize("loss", ["softmax_ce", "mse"])
@pytest.mark.parametrize("algorithm, momentum, wd", [
    (a, m, w) for a in ("sgd", "mbgd") for m, w in ((0.0, 0.0), (0.9, 0.01))]
    + [("mbgd-gemv", 0.0, 0.0)])   # the GEMV kernels take a batch without momentum
def test_one_step_agrees_with_float64_within_fp32_rounding(algorithm, loss, momentum, wd,
                                                           rng):
    sizes = (6, 5, 4)
    weights = initial(sizes, rng)
    batch, lr = (1 if algorithm == "sgd" else 3), 0.1
    gold = trainer(sizes, weights, loss, momentum=momentum > 0, weight_decay=wd > 0)
    x = to_bits(rng.random((batch, sizes[0])), FP32)
    labels = rng.integers(0, sizes[-1], batch)
    onehot = np.eye(sizes[-1])[labels]
    t = labels if loss == "softmax_ce" else to_bits(onehot, FP32)
    s = scalars(FP32, lr=lr, batch=batch, momentum=momentum, weight_decay=wd,
                outputs=sizes[-1])
    step = {"sgd": lambda: gold.sgd_step(x[0], t[0], s)[None],
            "mbgd": lambda: gold.mbgd_step(x, t, s), "mbgd-gemv": lambda: gold.gemv_step(x, t, s)}
    got = step[algorithm]()
    ref = FloatReference(sizes, loss, [(floats(w), floats(b)) for w, b in weights], lr=lr,
                         momentum=momentum, weight_decay=wd)
    logits = ref.mbgd_step(floats(x), labels if loss == "softmax_ce" else onehot)
    # fp32 keeps 24 bits (relative rounding 6e-8 per operation); a step is a few dozen
    # operations deep and the softmax's exp is accurate to a few ulp, so 1e-5 relative to
    # each tensor's scale holds with a wide margin.
    pairs = [(got, logits)] + [(g, w) for gw, nw in zip(gold.weights, zip(ref.W, ref.b))
                               for g, w in zip(gw, nw)]
    if momentum:
        pairs += [(g, m) for gm, nm in zip(gold.moments, zip(ref.mW, ref.mb))
                  for g, m in zip(gm, nm)]
    for bits, want in pairs:
        np.testing.assert_allclose(floats(bits), want, rtol=1e-5,
                                   atol=1e-5 * np.abs(want).max())


def test_a_batch_on_the_gemv_kernels_sees_the_step_weights_and_updates_per_sample(rng):
    # Every sample's forward uses the weights before the step (its logits are predict's), and
    # the batch's update is one rank-1 update per sample: with the operand format the
    # accumulator's, the same bits as mbgd's one GEMM that accumulates into [W | b] (whose
    # forward and backward sums differ from sgd's, so only a one-layer net compares whole).
    sizes, batch = (6, 4), 3
    weights = initial(sizes, rng)
    x = to_bits(rng.random((batch, sizes[0])), FP32)
    t = rng.integers(0, sizes[-1], batch)
    s = scalars(FP32, lr=0.1, batch=batch, momentum=0.0, weight_decay=0.0, outputs=sizes[-1])
    gemv, gemm = (trainer(sizes, weights, "softmax_ce") for _ in range(2))
    before = gemv.predict(x)
    logits = gemv.gemv_step(x, t, s)
    np.testing.assert_array_equal(logits, before)
    d = gemm.scale_output_gradient(
        np.stack([gemm.output_gradient(h, tk, s) for h, tk in zip(logits, t)]), s)
    (w, b), _ = gemm.update_layer(0, d, x, s)
    np.testing.assert_array_equal(gemv.weights[0][0], w)
    np.testing.assert_array_equal(gemv.weights[0][1], b)


def test_an_sgd_step_is_the_documented_sequence_of_kernels(rng):
    # Without momentum and weight decay the output gradient is scaled once by -lr and the
    # last layer takes W += d a^T (ger_accumulate) and b += d: kernel calls on the values the
    # step saw, so the trainer's bits can be rebuilt from the kernels alone.
    sizes = (7, 4)
    weights = initial(sizes, rng)
    gold = trainer(sizes, weights, "mse")
    x = to_bits(rng.random(sizes[0]), FP32)
    t = to_bits(np.eye(4)[1], FP32)
    s = scalars(FP32, lr=0.1, batch=1, momentum=0.0, weight_decay=0.0, outputs=4)
    logits = gold.sgd_step(x, t, s)
    (w, b), = weights
    h = gk.vop("add", gk.gemv(w, x, NR, FP32, FP32)[0], b, 0, FP32, FP32)
    np.testing.assert_array_equal(logits, h)
    d = gk.vop("mseg", h, t, s["mse"], FP32, FP32)
    d = gk.vop("scale", d, d, s["neg_lr"], FP32, FP32)
    np.testing.assert_array_equal(gold.weights[0][0], gk.ger_accumulate(w, d, x, FP32, FP32))
    np.testing.assert_array_equal(gold.weights[0][1], gk.vop("add", b, d, 0, FP32, FP32))
