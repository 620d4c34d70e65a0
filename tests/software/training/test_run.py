"""A run from options: defaults, every conflicting or impossible option refused with one line
before any work, and the session it runs."""

import json

import pytest

from caterpillar.contract.config import ConfigError, preset
from caterpillar.software.compiler.program import CompileError
from caterpillar.software.graph.model import GraphError
from caterpillar.software.isasim.device import IsaDevice
from caterpillar.software.storage import CheckpointError, OutputPathError
from caterpillar.software.training.run import (
    UsageError,
    config_from_options,
    parse_segments,
    plan_run,
    run_session,
)


def test_defaults():
    plan = plan_run({})
    assert plan.dataset.name == "digits" and plan.config == preset("small")
    assert plan.graph.sizes == (64, 32, 10) and plan.graph.algorithm == "sgd"
    assert plan.epochs == 5 and plan.seed == 0 and plan.shuffle
    assert plan.weights is None and plan.checkpoint is None


@pytest.mark.parametrize("opts, error, message", [
    ({"batch": 0}, UsageError, "--batch must be a positive integer, not 0"),
    ({"epochs": 0}, UsageError, "--epochs must be a positive integer"),
    ({"limit": -1}, UsageError, "--limit must be a positive integer"),
    ({"seed": -1}, UsageError, "--seed must be a non-negative integer"),
    ({"algorithm": "mbgd", "batch": 64, "limit": 20}, UsageError,
     "an epoch of 20 samples holds no full batch of 64"),
    ({"loss": "mse", "model": "64-8-1"}, ValueError,
     "--loss mse trains on one-hot targets of its 10 classes, so the output layer needs 10"),
    ({"model": "64-8-3"}, ValueError, "needs 10 outputs, not 3"),
    ({"model": "60-8-10"}, ValueError, "has 64 features"),
    ({"set": ["nr=4.0"]}, ConfigError, "nr must be one of 2, 4, 8, 16, not 4.0"),
    ({"set": ["foo=1"]}, ConfigError, "unknown config field(s) 'foo'; the fields are name"),
    ({"set": ["nr"]}, UsageError, "--set needs FIELD=VALUE"),
    ({"config": "nope"}, ConfigError, "unknown config preset 'nope'"),
    ({"config": "missing.json"}, UsageError, "--config missing.json: no such file"),
    ({"cores": 2, "segments": "0-999999999999"}, UsageError, "is not a range of cores 0..1"),
    ({"model": "64-64-10", "config": "tiny"}, CompileError, "MemA needs"),
    ({"lr": -1.0}, GraphError, "lr must be in [0.0, 1000.0], not -1.0"),
    ({"save": "out.json"}, OutputPathError, "--save out.json: the file must end in .npz"),
    ({"init": "missing.npz"}, CheckpointError, "missing.npz: no such file"),
])
def test_bad_options(opts, error, message):
    with pytest.raises(error) as info:
        plan_run(opts)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_segments_are_checked_before_expanding():
    assert parse_segments("2,0-1/3", 4) == [(2, 0, 1), (3,)]
    with pytest.raises(UsageError, match="names a core twice"):
        parse_segments("0-2,1", 4)


def test_config_files(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(preset("tiny").replace(name="mine").to_json())
    assert config_from_options({"config": str(path), "cores": 2}) == \
        preset("tiny").replace(name="mine", cores=2)
    path.write_text("{oops")
    with pytest.raises(ConfigError, match="c.json: config is not valid JSON"):
        config_from_options({"config": str(path)})
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(UsageError, match="cannot read it"):
        config_from_options({"config": str(path)})


@pytest.fixture
def trained(tmp_path):
    """A checkpoint of one epoch of 64-12-10 on 24 digits."""
    path = tmp_path / "ck.npz"
    opts = {"model": "64-12-10", "epochs": 1, "limit": 24, "save": str(path),
            "backend": "isa"}
    run_session(IsaDevice(preset("small")), opts, out=lambda _: None)
    return path


@pytest.mark.parametrize("extra, message", [
    ({"lr": 0.5}, "--resume continues .* own graph, optimiser, weights and data order: "
                  "drop --lr"),
    ({"model": "64-12-10", "seed": 3}, "drop --model, --seed"),
    ({"epochs": 1}, r"has already trained 1 epochs; ask for more with --epochs N \(N > 1\)"),
    ({"dataset": "mnist"}, "was trained on digits, not mnist; drop --dataset"),
    ({"set": ["mema_words=4096"]}, "was trained with config small"),
    ({"segments": "0"}, None),
])
def test_resume_refuses_what_the_checkpoint_fixes(trained, extra, message):
    opts = {"resume": str(trained), "epochs": 3, **extra}
    if message is None:
        assert plan_run(opts).checkpoint.meta["epoch"] == 1
        return
    with pytest.raises(UsageError, match=message):
        plan_run(opts)


def test_a_saved_program_fixes_graph_and_config(tmp_path, capsys):
    path = tmp_path / "p.npz"
    plan = plan_run({"model": "64-12-10", "algorithm": "mbgd", "batch": 4})
    plan.compiled.save(path)
    again = plan_run({"program": str(path), "limit": 8})
    assert again.graph == plan.graph and again.compiled.cores[0] == plan.compiled.cores[0]
    with pytest.raises(UsageError, match="--program runs .* own graph, config and placement: "
                                         "drop --lr, --config"):
        plan_run({"program": str(path), "lr": 0.1, "config": "tiny"})


def test_run_session_reports(tmp_path):
    lines = []
    report = run_session(IsaDevice(preset("small")),
                         {"model": "64-12-10", "epochs": 2, "limit": 10, "check_golden": True,
                          "backend": "isa", "save_program": str(tmp_path / "p.npz")},
                         out=lines.append)
    assert lines[0].startswith("training 64-12-10 (softmax_ce, sgd, batch 1")
    assert lines[1].startswith("epoch 0: loss") and lines[2].startswith("epoch 1: loss")
    assert lines[-1].startswith("golden check: 20 steps")
    assert report["golden_checked_steps"] == 20 and len(report["epochs"]) == 2
    assert report["cores"] == [0] and report["segments"] == [[0], [0]]
    assert (tmp_path / "p.npz").exists()
    json.dumps(report)
