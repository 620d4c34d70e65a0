"""The float64 reference (:mod:`caterpillar.software.training.float_reference`) against PyTorch
for the sequential algorithms, and against identities for DFA and CP."""

import numpy as np
import pytest

from caterpillar.software.graph.model import Optimizer, TrainingGraph
from caterpillar.software.training.float_reference import FloatReference
from caterpillar.software.training.torch_reference import TorchTrainer


def weights(sizes, rng):
    return [(rng.uniform(-0.5, 0.5, (o, i)), rng.uniform(-0.5, 0.5, o))
            for i, o in zip(sizes[:-1], sizes[1:])]


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("loss", ["softmax_ce", "mse"])
@pytest.mark.parametrize("momentum, wd", [(0.0, 0.0), (0.9, 0.01)], ids=["plain", "both"])
def test_sgd_and_mbgd_match_pytorch(batch, loss, momentum, wd, rng):
    sizes = (6, 5, 4, 3)
    init = weights(sizes, rng)
    graph = TrainingGraph(sizes, loss=loss, algorithm="sgd" if batch == 1 else "mbgd",
                          batch=batch, optimizer=Optimizer(lr=0.1, momentum=momentum,
                                                           weight_decay=wd))
    torch_trainer = TorchTrainer(graph, [(w.astype(np.float32), b.astype(np.float32))
                                         for w, b in init])
    ref = FloatReference(sizes, loss, init, lr=0.1, momentum=momentum, weight_decay=wd)
    for _ in range(5):
        x = rng.random((batch, sizes[0]))
        labels = rng.integers(0, 3, batch)
        t = labels if loss == "softmax_ce" else np.eye(3)[labels]
        ref.mbgd_step(x, t)
        torch_trainer.step(x.astype(np.float32), t if loss == "softmax_ce"
                           else t.astype(np.float32), 0.1)
    for (tw, tb), w, b in zip(torch_trainer.weights(), ref.W, ref.b):
        np.testing.assert_allclose(w, tw, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b, tb, rtol=1e-5, atol=1e-6)


def test_dfa_with_the_transposed_top_weights_is_backpropagation_for_one_step(rng):
    # One hidden layer: F_0 = W_1 makes DFA's delta W_1^T d: backpropagation's, before W_1
    # changes.
    sizes = (6, 5, 3)
    init = weights(sizes, rng)
    x, t = rng.random((1, 6)), np.array([2])
    bp = FloatReference(sizes, "softmax_ce", init, lr=0.1)
    dfa = FloatReference(sizes, "softmax_ce", init, lr=0.1, feedback=[init[1][0]])
    bp.mbgd_step(x, t)
    dfa.dfa_step(x, t)
    for a, b in zip(bp.W + bp.b, dfa.W + dfa.b):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    # A second step differs: the feedback stays fixed while W_1 moved.
    bp.mbgd_step(x, t)
    dfa.dfa_step(x, t)
    assert np.abs(bp.W[0] - dfa.W[0]).max() > 1e-9


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_cp_on_one_layer_is_sgd_and_stashing_changes_nothing_there(momentum, rng):
    sizes = (6, 3)
    init = weights(sizes, rng)
    x, t = rng.random((20, 6)), rng.integers(0, 3, 20)
    sgd = FloatReference(sizes, "softmax_ce", init, lr=0.1, momentum=momentum)
    want = np.concatenate([sgd.mbgd_step(x[k:k + 1], t[k:k + 1]) for k in range(20)])
    for stash in (False, True):
        cp = FloatReference(sizes, "softmax_ce", init, lr=0.1, momentum=momentum)
        np.testing.assert_allclose(cp.cp_epoch(x, t, stash=stash), want, rtol=1e-12)
        np.testing.assert_allclose(cp.W[0], sgd.W[0], rtol=1e-12)


def test_mbcp_groups_drop_the_incomplete_last_group(rng):
    sizes = (4, 3, 2)
    ref = FloatReference(sizes, "softmax_ce", weights(sizes, rng), lr=0.1)
    x, t = rng.random((7, 4)), rng.integers(0, 2, 7)
    assert ref.cp_epoch(x, t, batch=2).shape == (6, 2)
    assert ref.cp_epoch(x[:1], t[:1], batch=2).shape == (0, 2)
