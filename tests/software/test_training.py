"""Training on the instruction-level simulator: golden trainer bit for bit after every step,
PyTorch float32 within tolerance, resume equality, saved programs, and every bad input."""

import json

import numpy as np
import pytest

from caterpillar.golden.trainer import GoldenTrainer, scalars, to_bits, to_float
from caterpillar.rtl.config import preset
from caterpillar.software.checkpoint import CheckpointError
from caterpillar.software.cli import main
from caterpillar.software.compiler import CompileError, compile_training, load_compiled
from caterpillar.software.graph import GraphError, Optimizer, TrainingGraph
from caterpillar.software.isasim import IsaDevice
from caterpillar.software.torch_reference import TorchTrainer
from caterpillar.software.training import Session, default_weights, load_checkpoint, save_checkpoint
from tests.software.training_cases import synthetic

VARIANTS = [  # algorithm, loss, momentum, weight decay
    ("sgd", "softmax_ce", 0.0, 0.0), ("sgd", "mse", 0.9, 0.01),
    ("mbgd", "softmax_ce", 0.0, 0.0), ("mbgd", "mse", 0.9, 0.01),
    ("mbgd", "softmax_ce", 0.5, 0.0),
]


def graph(sizes, algorithm, loss, momentum, wd, batch=5, lr=0.1):
    return TrainingGraph(sizes, loss=loss, algorithm=algorithm,
                         batch=1 if algorithm == "sgd" else batch,
                         optimizer=Optimizer(lr=lr, momentum=momentum, weight_decay=wd))


@pytest.mark.parametrize("config", ["tiny", "small"])
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(map(str, v)))
def test_isa_training_is_bit_exact_with_the_golden_trainer(config, variant, rng):
    algorithm, loss, momentum, wd = variant
    cfg = preset(config)
    g = graph((11, 7, 5), algorithm, loss, momentum, wd)
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


@pytest.mark.parametrize("algorithm", ["sgd", "mbgd"])
def test_resume_continues_bit_exactly(algorithm, tmp_path, rng):
    cfg = preset("tiny")
    g = graph((6, 5, 3), algorithm, "softmax_ce", 0.9, 0.01, batch=4)
    data = synthetic(6, 3, rng, train=24)
    compiled = compile_training(g, cfg)
    straight = Session(compiled, data, IsaDevice(cfg), seed=7)
    for _ in range(3):
        straight.train_epoch()
    first = Session(compiled, data, IsaDevice(cfg), seed=7)
    first.train_epoch()
    save_checkpoint(tmp_path / "ck.npz", first)
    meta, weights, moments = load_checkpoint(tmp_path / "ck.npz")
    second = Session(compiled, data, IsaDevice(cfg), seed=7)
    second.restore(meta, weights, moments)
    second.train_epoch()
    second.train_epoch()
    want, want_m = straight.hw.read_parameters()
    got, got_m = second.hw.read_parameters()
    for (a, b), (c, d) in zip(want + want_m, got + got_m):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    strip = lambda h: [{k: v for k, v in e.items() if k != "wall_seconds"} for e in h]  # noqa
    assert strip(second.history) == strip(straight.history)


def test_saved_program_reloads_and_disassembles(tmp_path):
    cfg = preset("small")
    g = graph((10, 6, 4), "mbgd", "softmax_ce", 0.9, 0.0)
    compiled = compile_training(g, cfg)
    compiled.save(tmp_path / "p.npz")
    again = load_compiled(tmp_path / "p.npz")
    assert again.program == compiled.program and again.phases == compiled.phases
    assert again.graph == g and again.config == cfg
    text = again.disassemble().splitlines()
    assert len(text) == len(compiled.program) and text[-1].startswith("halt")
    assert any(line.startswith("gemm ") for line in text)


def test_compile_errors_say_what_to_change():
    with pytest.raises(CompileError, match=r"MemA needs \d+ words but the config has 256.*"
                                           r"mema_words"):
        compile_training(TrainingGraph((64, 64, 10)), preset("tiny"))
    with pytest.raises(CompileError, match="SPAD needs .*spad_words"):
        compile_training(TrainingGraph((784, 256, 10), algorithm="mbgd", batch=32),
                         preset("small"))
    with pytest.raises(CompileError, match="IMEM holds 256.*imem_words"):
        compile_training(TrainingGraph((64, 32, 10), algorithm="mbgd", batch=100),
                         preset("tiny").replace(spad_words=1 << 20))


@pytest.mark.parametrize("bad, message", [
    (dict(sizes=(5,)), "at least one layer"),
    (dict(sizes=(5, 0)), r"sizes\[1\] must be in"),
    (dict(sizes=(5, 3), loss="hinge"), "loss must be one of"),
    (dict(sizes=(5, 3), algorithm="sgd", batch=4), "batch 1"),
    (dict(sizes=(5, 1)), "at least 2 outputs"),
])
def test_bad_graphs(bad, message):
    with pytest.raises(GraphError, match=message):
        TrainingGraph(**bad)


def test_bad_optimizer_values():
    with pytest.raises(GraphError, match="momentum must be in"):
        Optimizer(momentum=1.5)
    with pytest.raises(GraphError, match="lr must be positive"):
        Optimizer(lr=0.0)


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(CheckpointError, match="lacks meta"):
        load_checkpoint(tmp_path / "other.npz")


def cli(capsys, *argv):
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--model", "64-x"], "--model must be"),
    (["--model", "10-5-10"], "has 64 features"),
    (["--model", "64-5-3"], "has 10 classes"),
    (["--dataset", "cifar"], "cifar"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--config", "huge"], "unknown config preset"),
    (["--set", "nr=3"], "nr must be one of"),
    (["--set", "colour=1"], "colour"),
    (["--init", "nothing.npz"], "no such file"),
    (["--resume", "nothing.npz"], "no such file"),
    (["--algorithm", "sgd", "--batch", "8"], "batch 1"),
])
def test_train_command_rejects_bad_options(capsys, argv, message):
    code, err = cli(capsys, "train", "--backend", "isa", "--quiet", *argv)
    assert code == 2
    assert err.startswith("caterpillar: error:") and message in err
    assert "Traceback" not in err


def test_train_command_end_to_end(tmp_path, capsys):
    """check-golden, JSON report, figure, checkpoint and resume through the command line."""
    base = ["train", "--backend", "isa", "--quiet", "--limit", "40", "--model", "64-12-10",
            "--check-golden", "--save", str(tmp_path / "ck.npz")]
    assert main(base + ["--epochs", "1"]) == 0
    assert main(base + ["--epochs", "2", "--resume", str(tmp_path / "ck.npz"), "--json",
                        str(tmp_path / "r.json"), "--plot", str(tmp_path / "r.png")]) == 0
    out = capsys.readouterr().out
    assert "golden check: 80 steps" in out and "epoch 1:" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert [e["epoch"] for e in report["epochs"]] == [0, 1]
    assert report["epochs"][1]["phases"]["forward"]["cycles"] > 0
    assert (tmp_path / "r.png").stat().st_size > 10_000


def test_pytorch_module_in_trained_state_dict_out(rng):
    """A torch nn.Sequential's weights train on the core; the result loads back into torch."""
    import torch

    from caterpillar.software.graph_io import (
        graph_from_torch,
        state_dict_from_weights,
        torch_module,
    )

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


def test_compile_command_saves_a_program_that_train_reruns(tmp_path, capsys):
    prog = tmp_path / "p.npz"
    assert main(["compile", "--model", "64-12-10", "--algorithm", "mbgd", "--batch", "4",
                 "--asm", "-o", str(prog)]) == 0
    out = capsys.readouterr().out
    assert "gemm " in out and "instructions" in out and f"wrote {prog}" in out
    assert main(["train", "--backend", "isa", "--program", str(prog), "--epochs", "1",
                 "--limit", "12", "--check-golden", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "64-12-10 (softmax_ce, mbgd, batch 4" in out and "golden check: 3 steps" in out
    code, err = cli(capsys, "train", "--backend", "isa", "--program", str(tmp_path / "x.npz"))
    assert code == 2 and "no such file" in err


def test_init_file_sets_the_starting_weights(tmp_path, capsys):
    sizes = (64, 12, 10)
    weights = default_weights(sizes, 99)
    np.savez(tmp_path / "init.npz", **{f"{k}{i}": v for i, (w, b) in enumerate(weights)
                                       for k, v in (("W", w), ("b", b))})
    json_path = tmp_path / "r.json"
    assert main(["train", "--backend", "isa", "--quiet", "--model", "64-12-10", "--init",
                 str(tmp_path / "init.npz"), "--epochs", "1", "--limit", "1", "--lr", "1e-30",
                 "--momentum", "0", "--json", str(json_path), "--no-shuffle"]) == 0
    # A negligible step leaves the loaded weights: the first logits are those of the file's.
    from caterpillar.software.datasets import load_dataset

    data = load_dataset("digits")
    fmt = preset("small").operand
    gold = GoldenTrainer(sizes, "softmax_ce", 4, fmt, fmt,
                         [(to_bits(w, fmt), to_bits(b, fmt)) for w, b in weights])
    logits = to_float(gold.predict(to_bits(data.x_train[:1], fmt)), fmt)
    z = logits[0] - logits[0].max()
    expected = float(np.log(np.exp(z).sum()) - z[data.y_train[0]])
    report = json.loads(json_path.read_text())
    assert report["epochs"][0]["loss"] == pytest.approx(expected, rel=1e-6)
    np.savez(tmp_path / "bad.npz", W0=np.zeros((3, 3)), b0=np.zeros(3), W1=np.zeros(1),
             b1=np.zeros(1))
    code, err = cli(capsys, "train", "--backend", "isa", "--model", "64-12-10", "--init",
                    str(tmp_path / "bad.npz"))
    assert code == 2 and "the model needs (12, 64)" in err


def test_epoch_order_is_seeded_and_optional():
    from caterpillar.software.training import epoch_order

    a, b = epoch_order(50, 3, 1), epoch_order(50, 3, 1)
    np.testing.assert_array_equal(a, b)
    assert sorted(a) == list(range(50)) and not np.array_equal(a, np.arange(50))
    assert not np.array_equal(a, epoch_order(50, 3, 2))
    np.testing.assert_array_equal(epoch_order(50, 3, 1, shuffle=False), np.arange(50))


def test_batch_larger_than_the_epoch_is_rejected(capsys):
    code, err = cli(capsys, "train", "--backend", "isa", "--quiet", "--algorithm", "mbgd",
                    "--batch", "16", "--limit", "10")
    assert code == 2 and "holds no full batch of 16" in err
