"""Accuracy on the shipped datasets, trained on the instruction-level simulator (bit-exact with
the RTL, see tests/sim/test_verilator_training.py). Settings are the documented ones."""

import json

import pytest

from caterpillar.app.cli import main

SETTINGS = {
    # dataset: (options, required test accuracy)
    "digits": (["--dataset", "digits"], 0.95),          # defaults: 64-32-10 sgd, 5 epochs
    "mnist": (["--dataset", "mnist", "--model", "784-32-10", "--algorithm", "mbgd", "--batch",
               "16", "--lr", "0.05", "--epochs", "3", "--set", "spad_words=131072"], 0.90),
}


@pytest.mark.slow
@pytest.mark.parametrize("dataset", SETTINGS)
def test_accuracy(dataset, tmp_path):
    options, required = SETTINGS[dataset]
    out = tmp_path / "r.json"
    assert main(["train", "--backend", "isa", "--quiet", "--json", str(out), *options]) == 0
    final = json.loads(out.read_text())["epochs"][-1]
    assert final["test_accuracy"] >= required, (dataset, final)
