"""The convergence benchmark (the paper's Fig. 5) on a few samples: its curves, files and
errors (the benchmark itself is `caterpillar bench convergence`)."""

import json

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from caterpillar.app.cli import main
from caterpillar.bench import convergence
from caterpillar.contract.config import preset
from caterpillar.software.training.datasets import load_dataset


def test_a_short_run_writes_the_curves_and_the_figure(tmp_path, capsys):
    out, fig = tmp_path / "new" / "curves.json", tmp_path / "curves.png"
    assert main(["bench", "convergence", "--epochs", "2", "--limit", "300", "--lr", "0.1",
                 "--dfa-lr", "0.08", "--model", "64-32-10",
                 "--cases", "sgd", "cp", "mbcp-4", "dfa-8",
                 "--json", str(out), "--plot", str(fig)]) == 0
    report = json.loads(out.read_text())
    assert list(report["cases"]) == ["sgd", "cp", "mbcp-4", "dfa-8"]
    assert report["model"] == "64-32-10" and report["format"] == "fp32"
    for name, case in report["cases"].items():
        assert len(case["test_accuracy"]) == 2 and all(0 <= a <= 1 for a in case["test_accuracy"])
        rate = 0.08 if case["algorithm"] == "dfa" else 0.1
        assert case["lr"] == pytest.approx(rate * np.sqrt(case["batch"]))
    # 600 samples lift the test accuracy far above chance (10 %) for every algorithm.
    assert all(case["test_accuracy"][-1] > 0.4 for case in report["cases"].values()), report
    assert fig.stat().st_size > 10_000
    text = capsys.readouterr().out
    assert "cp       batch   1 lr 0.1000:" in text and f"wrote {fig}" in text


def test_cp_on_one_layer_has_sgds_curve():
    data = load_dataset("digits")
    kw = dict(epochs=2, lr=0.05, seed=3, limit=30)
    sgd = convergence.train_case("sgd", (64, 10), data, preset("small"), **kw)
    cp = convergence.train_case("cp", (64, 10), data, preset("small"), **kw)
    assert cp["test_accuracy"] == sgd["test_accuracy"]
    deep = convergence.train_case("cp", (64, 16, 10), data, preset("small"), **kw)
    assert deep["test_accuracy"] != convergence.train_case(
        "sgd", (64, 16, 10), data, preset("small"), **kw)["test_accuracy"]


RATES = "--epochs, --limit and --lr-step must be positive and --lr and --dfa-lr > 0"


@pytest.mark.parametrize("argv, message", [
    (["--model", "64-32-9"], "the digits dataset needs a model 64-...-10, not 64-32-9"),
    (["--epochs", "0"], RATES),
    (["--lr-step", "0"], RATES),
    (["--dfa-lr", "0"], RATES),
    (["--plot", "curves.txt"], "--plot curves.txt: a figure is written as one of .png, .pdf, "
                               ".svg"),
])
def test_bad_options_end_in_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "convergence", *argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err == f"caterpillar: error: {message}\n"


def test_the_rate_halves_every_lr_step_epochs_and_fast_runs_say_so(tmp_path):
    data = load_dataset("digits")
    kw = dict(epochs=2, lr=0.05, seed=1, limit=200, fast=True)
    every, rarely = (convergence.train_case("sgd", (64, 16, 10), data, preset("small"),
                                            lr_step=step, **kw) for step in (1, 5))
    # The same rate in the first epoch, halved in the second with lr_step 1 only.
    assert every["test_accuracy"][0] == rarely["test_accuracy"][0]
    assert every["test_accuracy"][1] != rarely["test_accuracy"][1]
    out = tmp_path / "curves.json"
    assert main(["bench", "convergence", "--epochs", "1", "--limit", "50", "--fast",
                 "--lr-step", "3", "--model", "64-16-10", "--cases", "sgd",
                 "--json", str(out)]) == 0
    assert json.loads(out.read_text())["arithmetic"].startswith("fast")


def test_a_fast_curve_does_not_depend_on_the_blas_thread_count(monkeypatch):
    # NumPy's BLAS sums 500 x 500 products in an order that depends on its thread count: the
    # run pins it to one thread, so the weights after 64 samples of MBGD b = 8 are the same
    # whatever the caller's limit (unpinned, one thread and two differ on N1's layers).
    trainers = []

    class Kept(convergence.FastTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            trainers.append(self)

    monkeypatch.setattr(convergence, "FastTrainer", Kept)
    data = load_dataset("mnist")
    for threads in (1, 2):
        with threadpool_limits(limits=threads, user_api="blas"):
            convergence.train_case("mbgd-8", (784, 500, 500, 10), data, preset("paper-n1"),
                                   epochs=1, lr=0.05, seed=0, limit=64, fast=True)
    one, two = ([np.concatenate([w.ravel(), b.ravel()]) for w, b in t.weights]
                for t in trainers)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)


def test_dfa_may_have_its_own_rate():
    assert convergence.case_lr("dfa-8", 0.05, None) == 0.05
    assert convergence.case_lr("dfa-8", 0.05, 0.02) == 0.02
    assert convergence.case_lr("sgd", 0.05, 0.02) == convergence.case_lr("mbcp-4", 0.05, 0.02) \
        == 0.05
