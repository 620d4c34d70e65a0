"""Checkpoints and initial weights: a saved session reloads exactly; every damaged, foreign or
non-finite file is refused with one line naming the file and the tensor or field."""

import json

import numpy as np
import pytest

from caterpillar.contract.config import preset
from caterpillar.golden.numerics import FP16, FP32, from_float
from caterpillar.software.compiler.training import compile_training
from caterpillar.software.graph.model import Optimizer, TrainingGraph
from caterpillar.software.isasim.device import IsaDevice
from caterpillar.software.storage import CheckpointError
from caterpillar.software.training.checkpoint import (
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from caterpillar.software.training.session import Session, default_weights
from tests.software.training.cases import synthetic

SIZES = (6, 5, 3)


@pytest.fixture
def checkpoint(tmp_path, rng):
    cfg = preset("tiny")
    graph = TrainingGraph(SIZES, algorithm="mbgd", batch=4,
                          optimizer=Optimizer(lr=0.1, momentum=0.9))
    session = Session(compile_training(graph, cfg), synthetic(6, 3, rng, train=24),
                      IsaDevice(cfg), seed=4)
    session.train_epoch()
    path = tmp_path / "ck.npz"
    save_checkpoint(path, session)
    return path, session


def rewrite(path, *, meta=None, **arrays):
    with np.load(path) as data:
        members = {k: data[k] for k in data.files}
    if meta is not None:
        m = json.loads(str(members["meta"]))
        meta(m)
        members["meta"] = np.array(json.dumps(m))
    members.update(arrays)
    np.savez(path, **members)


def test_a_checkpoint_reloads_every_bit(checkpoint):
    path, session = checkpoint
    loaded = load_checkpoint(path)
    weights, moments = session.hw.read_parameters()
    for (w, b), (lw, lb) in zip(weights + moments, loaded.weights + loaded.moments):
        np.testing.assert_array_equal(w, lw)
        np.testing.assert_array_equal(b, lb)
    assert loaded.meta["epoch"] == 1 and loaded.meta["segments"] == [(0,), (0,)]
    assert loaded.graph == session.compiled.graph and loaded.config == preset("tiny")


@pytest.mark.parametrize("change, message", [
    (dict(meta=lambda m: m.pop("seed")), "its meta lacks 'seed'"),
    (dict(meta=lambda m: m.update(epoch="1")), "meta field 'epoch' must be a int, not str"),
    (dict(meta=lambda m: m.update(shuffle=1)), "meta field 'shuffle' must be a bool"),
    (dict(meta=lambda m: m.update(steps=-3)), "meta field 'steps' is negative"),
    (dict(meta=lambda m: m["graph"].update(sizes=[6, 0, 3])), r"sizes\[1\] must be in"),
    (dict(meta=lambda m: m["config"].update(nr=4.0)), "nr must be one of"),
    (dict(meta=lambda m: m.update(segments=[[0], [9]])), "'segments' must list"),
    (dict(W0=np.zeros((3, 3), np.uint64)), r"W0 has shape \(3, 3\); the model needs \(5, 6\)"),
    (dict(W0=np.zeros((9, 9), np.uint64)), r"W0 declares shape \(9, 9\) \(648 bytes\); at "
                                           r"most 240"),
    (dict(b1=np.zeros(3, np.float64)), "b1 holds float64; a checkpoint stores uint64"),
    (dict(mW1=np.full((3, 5), 1 << 40, np.uint64)), "mW1 holds values wider than 32 bits"),
    (dict(W1=np.full((3, 5), FP32.inf, np.uint64)), r"W1\[0, 0\] is inf \(not finite\)"),
    (dict(b0=np.full(5, FP32.canonical_nan, np.uint64)), r"b0\[0\] is nan"),
])
def test_damaged_checkpoints_are_refused(checkpoint, change, message):
    path, _ = checkpoint
    rewrite(path, **change)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_foreign_files_are_refused(tmp_path):
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(CheckpointError, match="lacks meta"):
        load_checkpoint(tmp_path / "other.npz")
    np.savez(tmp_path / "meta.npz", meta=np.zeros(3))
    with pytest.raises(CheckpointError, match="its meta is not a JSON text"):
        load_checkpoint(tmp_path / "meta.npz")
    np.savez(tmp_path / "json.npz", meta=np.array("{not json"))
    with pytest.raises(CheckpointError, match="its meta is not valid JSON"):
        load_checkpoint(tmp_path / "json.npz")


def init_file(path, weights):
    np.savez(path, **{f"{k}{i}": v for i, (w, b) in enumerate(weights)
                      for k, v in (("W", w), ("b", b))})
    return path


def test_initial_weights_are_checked(tmp_path):
    good = default_weights(SIZES, 1)
    loaded = load_weights(init_file(tmp_path / "w.npz", good), SIZES, FP32)
    for (w, b), (lw, lb) in zip(good, loaded):
        np.testing.assert_array_equal(w, lw)
        np.testing.assert_array_equal(b, lb)
    nan = [(w.copy(), b.copy()) for w, b in good]
    nan[1][0][2, 1] = np.nan
    with pytest.raises(CheckpointError, match=r"W1\[2, 1\] is nan \(not finite\)"):
        load_weights(init_file(tmp_path / "n.npz", nan), SIZES, FP32)
    big = [(w.copy(), b.copy()) for w, b in good]
    big[0][1][4] = 1e5
    with pytest.raises(CheckpointError, match=r"b0\[4\] = 100000 overflows fp16 "
                                              r"\(largest 65504\)"):
        load_weights(init_file(tmp_path / "b.npz", big), SIZES, FP16)
    assert int(from_float(1e5, FP16)) == FP16.inf
    wrong = [(np.zeros((5, 7)), np.zeros(5)), good[1]]
    with pytest.raises(CheckpointError, match=r"W0 declares shape \(5, 7\) \(280 bytes\); "
                                              r"at most 240"):
        load_weights(init_file(tmp_path / "s.npz", wrong), SIZES, FP32)
