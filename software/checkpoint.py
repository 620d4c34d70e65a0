"""Atomic ``.npz`` files without pickle: checkpoints and compiled programs.

A file is written to a temporary name in the target directory and renamed over the target, so
a reader never sees a half-written file. Loading refuses object arrays (``allow_pickle=False``)
and names the file and the missing or malformed entry in :class:`CheckpointError`.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["CheckpointError", "atomic_savez", "load_npz"]


class CheckpointError(ValueError):
    """A checkpoint or program file is missing, unreadable or not what was expected."""


def atomic_savez(path, **arrays) -> None:
    """Write ``arrays`` to ``path`` (``.npz``, compressed) atomically."""
    path = Path(path)
    if path.suffix != ".npz":
        raise CheckpointError(f"{path}: files are written as .npz; name it {path.stem}.npz")
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise CheckpointError(f"{path}: directory {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_npz(path, required=()) -> dict:
    """Return the arrays of ``path``; every name in ``required`` must be present."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise CheckpointError(f"{path} is not a readable .npz file ({e})") from None
    missing = [k for k in required if k not in arrays]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}; it was not written by "
                              f"this program")
    return arrays
