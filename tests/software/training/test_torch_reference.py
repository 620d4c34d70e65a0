"""The PyTorch training oracle against an independent NumPy float64 implementation of graph.py."""

from __future__ import annotations

import numpy as np
import pytest

from caterpillar.software.graph.model import GraphError, Optimizer, TrainingGraph

pytest.importorskip("torch")

from caterpillar.software.training.torch_reference import TorchTrainer

RTOL = 1e-5


# ---------------------------------------------------------------------------------------------
# The float64 reference: the semantics documented in caterpillar.software.graph.model, by hand.


def forward(weights, x):
    """Pre-activations ``h`` of every layer and the inputs ``a`` each layer saw."""
    a, inputs, pre = x, [], []
    for k, (w, b) in enumerate(weights):
        inputs.append(a)
        h = a @ w.T + b
        pre.append(h)
        a = np.maximum(h, 0) if k < len(weights) - 1 else h
    return inputs, pre


def loss_and_output_gradient(loss, h, target):
    """Batch-mean loss and its gradient with respect to the outputs ``h``."""
    n, outputs = h.shape
    if loss == "softmax_ce":
        z = h - h.max(axis=1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        onehot = np.eye(outputs)[target]
        value = -np.mean(np.log(p[np.arange(n), target]))
        return value, (p - onehot) / n
    diff = h - target
    return np.mean(diff ** 2), 2 * diff / (n * outputs)


def gradients(weights, x, target, loss):
    inputs, pre = forward(weights, x)
    value, d = loss_and_output_gradient(loss, pre[-1], target)
    grads = [None] * len(weights)
    for k in reversed(range(len(weights))):
        w, _ = weights[k]
        grads[k] = (d.T @ inputs[k], d.sum(axis=0))
        if k:
            d = (d @ w) * (pre[k - 1] > 0)
    return value, grads


class ReferenceTrainer:
    """PyTorch-style SGD (momentum, weight decay, biases too) in float64."""

    def __init__(self, graph, weights):
        self.graph = graph
        self.params = [p.astype(np.float64) for pair in weights for p in pair]
        self.buffers = [None] * len(self.params)

    @property
    def weights(self):
        return list(zip(self.params[::2], self.params[1::2]))

    def step(self, x, target, lr):
        opt = self.graph.optimizer
        x = x.astype(np.float64)
        if self.graph.loss == "mse":
            target = target.astype(np.float64)
        value, grads = gradients(self.weights, x, target, self.graph.loss)
        for i, grad in enumerate(g for pair in grads for g in pair):
            g = grad + opt.weight_decay * self.params[i]
            if opt.momentum:
                buf = self.buffers[i]
                g = self.buffers[i] = g if buf is None else opt.momentum * buf + g
            self.params[i] = self.params[i] - lr * g
        return value


def assert_weights_close(got, want):
    assert len(got) == len(want)
    for k, (pair_got, pair_want) in enumerate(zip(got, want)):
        for name, a, b in zip("Wb", pair_got, pair_want):
            assert a.dtype == np.float32 and a.shape == b.shape
            # Relative to the array's scale, so entries that happen to be near zero compare too.
            scale = np.abs(b).max()
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=RTOL * scale,
                                       err_msg=f"layer {k} {name}")


def random_weights(rng, sizes):
    return [((rng.standard_normal((o, i)) / np.sqrt(i)).astype(np.float32),
             (rng.standard_normal(o) * 0.1).astype(np.float32))
            for i, o in zip(sizes[:-1], sizes[1:])]


def random_batch(rng, graph, n):
    x = rng.standard_normal((n, graph.sizes[0])).astype(np.float32)
    if graph.loss == "softmax_ce":
        return x, rng.integers(0, graph.sizes[-1], n)
    return x, rng.standard_normal((n, graph.sizes[-1])).astype(np.float32)


def check_against_reference(graph, weights, batches, lrs):
    trainer = TorchTrainer(graph, weights)
    reference = ReferenceTrainer(graph, weights)
    for (x, t), lr in zip(batches, lrs):
        got = trainer.step(x, t, lr)
        want = reference.step(x, t, lr)
        assert isinstance(got, float)
        assert got == pytest.approx(want, rel=RTOL)
        assert_weights_close(trainer.weights(), reference.weights)
    x = batches[0][0]
    np.testing.assert_allclose(trainer.predict(x), forward(reference.weights, x)[1][-1],
                               rtol=RTOL, atol=RTOL)
    return trainer


# ---------------------------------------------------------------------------------------------
# Tests


OPTIMIZERS = {
    "plain": Optimizer(lr=0.1),
    "momentum": Optimizer(lr=0.1, momentum=0.9),
    "decay": Optimizer(lr=0.1, weight_decay=0.01),
    "both": Optimizer(lr=0.05, momentum=0.5, weight_decay=0.05, schedule="step", step=1,
                      gamma=0.5),
}


@pytest.mark.parametrize("loss", ["softmax_ce", "mse"])
@pytest.mark.parametrize("opt", OPTIMIZERS, ids=str)
def test_three_minibatch_steps_match_float64(rng, loss, opt):
    graph = TrainingGraph(sizes=(5, 4, 3), loss=loss, algorithm="mbgd", batch=2,
                          optimizer=OPTIMIZERS[opt])
    weights = random_weights(rng, graph.sizes)
    batches = [random_batch(rng, graph, 2) for _ in range(3)]
    lrs = [graph.optimizer.lr_at(epoch) for epoch in range(3)]
    check_against_reference(graph, weights, batches, lrs)


@pytest.mark.parametrize("loss", ["softmax_ce", "mse"])
def test_batch_one_steps_match_float64(rng, loss):
    graph = TrainingGraph(sizes=(5, 4, 3), loss=loss,
                          optimizer=Optimizer(lr=0.2, momentum=0.9, weight_decay=0.001))
    weights = random_weights(rng, graph.sizes)
    batches = [random_batch(rng, graph, 1) for _ in range(4)]
    check_against_reference(graph, weights, batches, [0.2, 0.1, 0.2, 0.05])


def test_deeper_net_and_single_output_mse(rng):
    graph = TrainingGraph(sizes=(6, 5, 4, 1), loss="mse", algorithm="mbgd", batch=3,
                          optimizer=Optimizer(lr=0.05, momentum=0.8, weight_decay=0.01))
    weights = random_weights(rng, graph.sizes)
    batches = [random_batch(rng, graph, 3) for _ in range(3)]
    check_against_reference(graph, weights, batches, [0.05] * 3)


def test_lr_zero_leaves_the_weights_unchanged_without_momentum(rng):
    graph = TrainingGraph(sizes=(5, 4, 3), algorithm="mbgd", batch=2,
                          optimizer=Optimizer(lr=0.5, weight_decay=0.1))
    weights = random_weights(rng, graph.sizes)
    trainer = TorchTrainer(graph, weights)
    x, t = random_batch(rng, graph, 2)
    loss = trainer.step(x, t, 0.0)
    for (w, b), (w0, b0) in zip(trainer.weights(), weights):
        np.testing.assert_array_equal(w, w0)
        np.testing.assert_array_equal(b, b0)
    assert trainer.step(x, t, 0.0) == loss, "the loss is computed before the update"
    assert trainer.step(x, t, 0.5) == loss
    assert trainer.step(x, t, 0.5) < loss
    assert trainer.steps == 4


def test_each_steps_lr_is_honoured_and_momentum_builds_at_lr_zero(rng):
    graph = TrainingGraph(sizes=(5, 4, 3), algorithm="mbgd", batch=2,
                          optimizer=Optimizer(lr=0.3, momentum=0.9, weight_decay=0.01))
    weights = random_weights(rng, graph.sizes)
    batches = [random_batch(rng, graph, 2) for _ in range(4)]
    check_against_reference(graph, weights, batches, [0.1, 0.0, 0.05, 0.3])
    # The graph's own lr is not used: only the one passed in.
    one = TorchTrainer(graph, weights)
    two = TorchTrainer(graph.replace(optimizer=Optimizer(lr=0.001, momentum=0.9,
                                                         weight_decay=0.01)), weights)
    for x, t in batches:
        one.step(x, t, 0.02)
        two.step(x, t, 0.02)
    for a, b in zip(one.weights(), two.weights()):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_runs_repeat_bit_for_bit_and_copies_are_independent(rng):
    graph = TrainingGraph(sizes=(5, 4, 3), algorithm="mbgd", batch=2,
                          optimizer=Optimizer(lr=0.1, momentum=0.9))
    weights = random_weights(rng, graph.sizes)
    original = [(w.copy(), b.copy()) for w, b in weights]
    batches = [random_batch(rng, graph, 2) for _ in range(3)]
    runs = []
    for _ in range(2):
        trainer = TorchTrainer(graph, weights)
        runs.append([trainer.step(x, t, 0.1) for x, t in batches] + trainer.weights())
        trainer.weights()[0][0][...] = 123
        assert not np.any(trainer.weights()[0][0] == 123), "weights() returns copies"
    assert repr(runs[0]) == repr(runs[1])
    for (w, b), (w0, b0) in zip(weights, original):
        np.testing.assert_array_equal(w, w0)
        np.testing.assert_array_equal(b, b0)


def test_float64_inputs_are_converted_and_predict_does_not_train(rng):
    graph = TrainingGraph(sizes=(5, 4, 3), loss="mse")
    weights = random_weights(rng, graph.sizes)
    trainer = TorchTrainer(graph, weights)
    x = rng.standard_normal((3, 5))
    out = trainer.predict(x)
    assert out.dtype == np.float32 and out.shape == (3, 3)
    np.testing.assert_array_equal(trainer.predict(x.astype(np.float32)), out)
    np.testing.assert_array_equal(trainer.weights()[0][0], weights[0][0])
    trainer.step(x[:1], rng.standard_normal((1, 3)), 0.1)
    assert not np.array_equal(trainer.weights()[0][0], weights[0][0])


def test_bad_arguments():
    graph = TrainingGraph(sizes=(5, 4, 3))
    trainer = TorchTrainer(graph, random_weights(np.random.default_rng(0), graph.sizes))
    x = np.zeros((2, 5), np.float32)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 5\) with batch >= 1, "
                                         r"not \(2, 4\)"):
        trainer.step(x[:, :4], np.array([0, 1]), 0.1)
    with pytest.raises(ValueError, match=r"x must have shape .*not \(0, 5\)"):
        trainer.predict(x[:0])
    with pytest.raises(ValueError, match=r"softmax_ce targets must be 2 integer class labels"):
        trainer.step(x, np.array([0.0, 1.0]), 0.1)
    with pytest.raises(ValueError, match=r"softmax_ce targets must be 2 integer class labels"):
        trainer.step(x, np.array([0, 1, 2]), 0.1)
    with pytest.raises(ValueError, match=r"class labels must be in \[0, 2\], not 0\.\.3"):
        trainer.step(x, np.array([0, 3]), 0.1)
    for lr in (-0.1, float("nan"), None, True):
        with pytest.raises(ValueError, match="lr must be a finite number >= 0"):
            trainer.step(x, np.array([0, 1]), lr)
    mse = TorchTrainer(graph.replace(loss="mse"), trainer.weights())
    with pytest.raises(ValueError, match=r"mse targets must be floats of shape \(2, 3\)"):
        mse.step(x, np.array([0, 1]), 0.1)
    assert trainer.steps == 0 and mse.steps == 0
    with pytest.raises(GraphError, match=r"layer 1: W must have shape \(3, 4\)"):
        TorchTrainer(graph, [(np.zeros((4, 5)), np.zeros(4)), (np.zeros((4, 3)), np.zeros(3))])
