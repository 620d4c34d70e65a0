"""Training sessions on the instruction-level simulator: golden trainer bit for bit after every
step, PyTorch float32 within tolerance, resume equality, data order."""

import numpy as np
import pytest

from caterpillar.contract.config import preset
from caterpillar.golden.trainer import GoldenTrainer, scalars, to_bits, to_float
from caterpillar.software.compiler.training import compile_training
from caterpillar.software.graph.files import (
    graph_from_torch,
    state_dict_from_weights,
    torch_module,
)
from caterpillar.software.graph.model import Optimizer, TrainingGraph
from caterpillar.software.isasim.device import IsaDevice
from caterpillar.software.training.checkpoint import load_checkpoint, save_checkpoint
from caterpillar.software.training.session import (
    Session,
    check_fits,
    default_weights,
    epoch_order,
)
from caterpillar.software.training.torch_reference import TorchTrainer
from tests.software.training.cases import synthetic

VARIANTS = [  # algorithm, loss, momentum, weight decay
    ("sgd", "softmax_ce", 0.0, 0.0), ("sgd", "mse", 0.9, 0.01),
    ("mbgd", "softmax_ce", 0.0, 0.0), ("mbgd", "mse", 0.9, 0.01),
    ("mbgd", "softmax_ce", 0.5, 0.0),
    ("dfa1", "softmax_ce", 0.0, 0.0), ("dfa", "mse", 0.9, 0.01),
]


def graph(sizes, algorithm, loss, momentum, wd, batch=5, lr=0.1):
    """``algorithm``: a graph's, or ``dfa1`` for DFA on one sample."""
    return TrainingGraph(sizes, loss=loss, algorithm="dfa" if algorithm == "dfa1" else algorithm,
                         batch=1 if algorithm in ("sgd", "dfa1") else batch,
                         optimizer=Optimizer(lr=lr, momentum=momentum, weight_decay=wd))


@pytest.mark.parametrize("config", ["tiny", "small"])
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(map(str, v)))
def test_isa_training_is_bit_exact_with_the_golden_trainer(config, variant, rng):
    algorithm, loss, momentum, wd = variant
    cfg = preset(config)
    g = graph((11, 7, 6, 5), algorithm, loss, momentum, wd)
    data = synthetic(11, 5, rng)
    session = Session(compile_training(g, cfg), data, IsaDevice(cfg), seed=3,
                      check_golden=True, limit=30)
    report = session.train_epoch()                 # compares every bit after every step
    assert report["golden_checked_steps"] == 30 // g.batch
    assert report["cycles"] == compile_training(g, cfg).step_cycles * (30 // g.batch)


@pytest.mark.parametrize("algorithm", ["sgd", "mbgd"])
@pytest.mark.parametrize("loss", ["softmax_ce", "mse"])
def test_golden_trainer_tracks_pytorch_float32(algorithm, loss, rng):
    """Same network, initial weights and data order: after 12 steps every parameter agrees
    with PyTorch float32 within 2e-5 relative to the tensor's largest magnitude (the two
    differ only in summation order and in where the 1/batch scaling is rounded)."""
    cfg = preset("small")
    sizes = (9, 8, 6, 4)
    g = graph(sizes, algorithm, loss, 0.9, 0.001, batch=6)
    init = default_weights(sizes, 5)
    fmt = cfg.operand
    gold = GoldenTrainer(sizes, loss, cfg.nr, fmt, cfg.acc,
                         [(to_bits(w, fmt), to_bits(b, fmt)) for w, b in init],
                         k_chunk=compile_training(g, cfg).k_chunk, momentum=True,
                         weight_decay=True)
    torch_trainer = TorchTrainer(g, init)
    for _ in range(12):
        x = rng.random((g.batch, sizes[0])).astype(np.float32)
        labels = rng.integers(0, sizes[-1], g.batch)
        t = np.eye(sizes[-1], dtype=np.float32)[labels]
        s = scalars(fmt, lr=0.1, batch=g.batch, momentum=0.9, weight_decay=0.001,
                    outputs=sizes[-1])
        xb = to_bits(x, fmt)
        target = labels if loss == "softmax_ce" else to_bits(t, fmt)
        if algorithm == "sgd":
            gold.sgd_step(xb[0], target[0], s)
        else:
            gold.mbgd_step(xb, target, s)
        torch_trainer.step(x, labels if loss == "softmax_ce" else t, 0.1)
    for (w, b), (tw, tb) in zip(gold.weights, torch_trainer.weights()):
        for got, want in ((to_float(w, fmt), tw), (to_float(b, fmt), tb)):
            scale = np.abs(want).max()
            np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * scale)


@pytest.mark.parametrize("algorithm", ["sgd", "mbgd", "dfa1", "dfa"])
def test_resume_continues_bit_exactly(algorithm, tmp_path, rng):
    cfg = preset("tiny")
    g = graph((6, 5, 4, 3), algorithm, "softmax_ce", 0.9, 0.01, batch=4)
    data = synthetic(6, 3, rng, train=24)
    compiled = compile_training(g, cfg)
    straight = Session(compiled, data, IsaDevice(cfg), seed=7)
    for _ in range(3):
        straight.train_epoch()
    first = Session(compiled, data, IsaDevice(cfg), seed=7)
    first.train_epoch()
    save_checkpoint(tmp_path / "ck.npz", first)
    second = Session(compiled, data, IsaDevice(cfg), seed=7)
    second.restore(load_checkpoint(tmp_path / "ck.npz"))
    second.train_epoch()
    second.train_epoch()
    want, want_m = straight.hw.read_parameters()
    got, got_m = second.hw.read_parameters()
    for (a, b), (c, d) in zip(want + want_m, got + got_m):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    strip = lambda h: [{k: v for k, v in e.items() if k != "wall_seconds"} for e in h]  # noqa
    assert strip(second.history) == strip(straight.history)


def test_pytorch_module_in_trained_state_dict_out(rng):
    """A torch nn.Sequential's weights train on the core; the result loads back into torch."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(11, 7), torch.nn.ReLU(),
                                 torch.nn.Linear(7, 5))
    g, weights = graph_from_torch(module)
    data = synthetic(11, 5, rng)
    cfg = preset("small")
    session = Session(compile_training(g, cfg), data, IsaDevice(cfg), weights=weights,
                      check_golden=True, limit=20)
    session.train_epoch()
    trained = session.float_weights()
    assert not np.array_equal(trained[0][0], weights[0][0])
    back = torch_module(g)
    back.load_state_dict(state_dict_from_weights(g, trained))
    np.testing.assert_array_equal(back[0].weight.detach().numpy(), trained[0][0])
    np.testing.assert_array_equal(back[2].bias.detach().numpy(), trained[1][1])


def test_epoch_order_is_seeded_and_optional():
    a, b = epoch_order(50, 3, 1), epoch_order(50, 3, 1)
    np.testing.assert_array_equal(a, b)
    assert sorted(a) == list(range(50)) and not np.array_equal(a, np.arange(50))
    assert not np.array_equal(a, epoch_order(50, 3, 2))
    np.testing.assert_array_equal(epoch_order(50, 3, 1, shuffle=False), np.arange(50))


def test_a_model_must_fit_the_dataset(rng):
    data = synthetic(11, 5, rng)
    check_fits(TrainingGraph((11, 7, 5)), data)
    with pytest.raises(ValueError, match="has 11 features but the model's input width is 9"):
        check_fits(TrainingGraph((9, 7, 5)), data)
    with pytest.raises(ValueError, match=r"--loss mse trains on one-hot targets of its 5 "
                                         r"classes, so the output layer needs 5 outputs, not 1"):
        check_fits(TrainingGraph((11, 7, 1), loss="mse"), data)
    with pytest.raises(ValueError, match="needs 5 outputs, not 4"):
        Session(compile_training(TrainingGraph((11, 4)), preset("tiny")), data,
                IsaDevice(preset("tiny")))


def test_an_epoch_without_a_full_batch_is_an_error(rng):
    cfg = preset("tiny")
    g = graph((6, 5, 3), "mbgd", "softmax_ce", 0.0, 0.0, batch=8)
    session = Session(compile_training(g, cfg), synthetic(6, 3, rng, train=24), IsaDevice(cfg),
                      limit=5)
    with pytest.raises(ValueError, match="holds no full batch of 8"):
        session.train_epoch()
