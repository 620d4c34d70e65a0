"""Files the tools write and read back: atomic writes, and ``.npz`` reading that trusts nothing.

Every output is written to a temporary name in the target's folder and renamed over the target,
so a reader never sees a half-written file. Output paths are checked (:func:`check_output`)
before long work starts, with one rule everywhere: missing parent folders are created.

``.npz`` files (checkpoints, compiled programs, initial weights) are read by :func:`load_npz`,
which opens only the members asked for, refuses pickled, object and structured arrays, and
checks each member's declared shape against its real size and a caller-given limit before
allocating anything, so a corrupt or hostile file ends in one :class:`CheckpointError` line
that names the file and the member.
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import os
import struct
import tempfile
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

__all__ = ["CheckpointError", "OutputPathError", "check_output", "check_figure",
           "check_figure_kind", "FIGURE_SUFFIXES", "atomic_write_bytes",
           "atomic_write_text", "atomic_savez", "load_npz", "strict_json", "write_json",
           "DEFAULT_MEMBER_LIMIT"]

#: Largest member :func:`load_npz` reads unless the caller gives a limit (bytes).
DEFAULT_MEMBER_LIMIT = 1 << 28

#: Array kinds a member may hold: booleans, integers, floats, text.
_KINDS = "biufU"


class CheckpointError(ValueError):
    """A checkpoint, program or weights file is missing, unreadable or not what was expected."""


class OutputPathError(ValueError):
    """An output path cannot be written; the message names the option and the path."""


#: File types a figure can be written as.
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


def check_figure_kind(path, what: str = "--plot") -> None:
    """Refuse a figure path whose suffix matplotlib does not write, or any figure when
    matplotlib is not installed (no folder is made)."""
    if Path(path).suffix.lower() not in FIGURE_SUFFIXES:
        raise OutputPathError(f"{what} {path}: a figure is written as one of "
                              f"{', '.join(FIGURE_SUFFIXES)}")
    if importlib.util.find_spec("matplotlib") is None:
        raise OutputPathError(f"{what} {path} needs matplotlib, which is not installed: "
                              "make setup (pip install -r requirements.txt)")


def check_figure(path, what: str = "--plot") -> Path:
    """:func:`check_figure_kind`, then :func:`check_output`."""
    check_figure_kind(path, what)
    return check_output(path, what)


def check_output(path, what: str, *, suffix: str | None = None) -> Path:
    """Make sure ``path`` can be written before any work starts; return it as a Path.

    Missing parent folders are created. ``what`` names the option for the message (e.g.
    ``--json``); ``suffix`` (e.g. ``.npz``) is the extension the file must have.
    """
    path = Path(path)
    if suffix is not None and path.suffix != suffix:
        raise OutputPathError(f"{what} {path}: the file must end in {suffix} (e.g. "
                              f"{path.with_suffix(suffix).name})")
    if path.is_dir():
        raise OutputPathError(f"{what} {path}: is a folder; give a file name")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputPathError(f"{what} {path}: cannot create folder {folder} "
                              f"({e.strerror or e})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputPathError(f"{what} {path}: folder {folder} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputPathError(f"{what} {path}: the file exists and is not writable")
    return path


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file 0600; give it the permissions a plain open would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _clean(value, where: str, found: list):
    if isinstance(value, float) and not math.isfinite(value):
        found.append(where or "(top)")
        return None
    if isinstance(value, dict):
        return {k: _clean(v, f"{where}.{k}" if where else str(k), found)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v, f"{where}[{i}]", found) for i, v in enumerate(value)]
    return value


def strict_json(value) -> str:
    """``value`` as strict JSON (RFC 8259: no ``NaN`` or ``Infinity`` tokens). A non-finite
    number becomes ``null`` and its path is listed under the top-level key ``non_finite``
    (a top-level mapping gets the key; anything else is wrapped in ``{"value": ...}``)."""
    found: list = []
    clean = _clean(value, "", found)
    if found:
        clean = dict(clean) if isinstance(clean, dict) else {"value": clean}
        clean["non_finite"] = found
    return json.dumps(clean, indent=2, allow_nan=False) + "\n"


def write_json(path, value) -> None:
    """Write ``value`` to ``path`` as :func:`strict_json`, atomically."""
    atomic_write_text(path, strict_json(value))


def atomic_savez(path, **arrays) -> None:
    """Write ``arrays`` to ``path`` (``.npz``, compressed, no pickle) atomically."""
    path = Path(path)
    if path.suffix != ".npz":
        raise CheckpointError(f"{path}: files are written as .npz; name it {path.stem}.npz")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise CheckpointError(f"{path}: folder {folder} does not exist")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def load_npz(path, required=(), optional=(), limits=None) -> dict:
    """Return the members ``required`` (each must be there) and ``optional`` of ``path``.

    ``limits`` maps a member name to the most bytes its data may take (default
    :data:`DEFAULT_MEMBER_LIMIT`). Raises :class:`CheckpointError` naming the file and the
    member for a missing file, a file that is not a ``.npz``, a missing member, a member over
    its limit, a member whose header declares more (or less) data than it holds, a pickled,
    object or structured array, or damaged compressed data.
    """
    path = Path(path)
    limits = limits or {}
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "no such file"
        raise CheckpointError(f"{path}: {what}")
    try:
        with zipfile.ZipFile(path) as archive:
            members = {n[:-4]: n for n in archive.namelist() if n.endswith(".npy")}
            missing = [k for k in required if k not in members]
            if missing:
                raise CheckpointError(f"{path} lacks {', '.join(missing)}; it was not written "
                                      "by this program for this model")
            wanted = [k for k in (*required, *optional) if k in members]
            return {k: _read_member(archive, members[k], k, path,
                                    limits.get(k, DEFAULT_MEMBER_LIMIT)) for k in wanted}
    except CheckpointError:
        raise
    except zipfile.BadZipFile as e:
        raise CheckpointError(f"{path} is not a valid .npz file ({e})") from None
    except (zlib.error, EOFError, ValueError, NotImplementedError, struct.error) as e:
        raise CheckpointError(f"{path} is damaged ({type(e).__name__}: {e})") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read it ({e.strerror or e})") from None


def _read_member(archive, name: str, key: str, path: Path, limit: int) -> np.ndarray:
    info = archive.getinfo(name)
    where = f"{path}: member {key}"
    if info.file_size > limit + 4096:     # a .npy header is well under 4 KiB
        raise CheckpointError(f"{where} holds {info.file_size} bytes; at most {limit} are "
                              "expected for this model")
    with archive.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        except (ValueError, SyntaxError, tokenize.TokenError) as e:
            # NumPy reports most bad headers as ValueError, but its fallback header filter
            # (for headers Python 2 wrote) runs tokenize, which raises TokenError.
            raise CheckpointError(f"{where} is not a NumPy array ({e})") from None
        if dtype.hasobject or dtype.names is not None or dtype.subdtype is not None \
                or dtype.kind not in _KINDS:
            raise CheckpointError(f"{where} has dtype {dtype}; only plain numbers or text are "
                                  "accepted")
        count = 1
        for extent in shape:
            count *= int(extent)
        size = count * dtype.itemsize
        header = f.tell()
        if size > limit:
            raise CheckpointError(f"{where} declares shape {shape} ({size} bytes); at most "
                                  f"{limit} bytes are expected for this model")
        if size != info.file_size - header:
            raise CheckpointError(f"{where} declares shape {shape} ({size} bytes) but holds "
                                  f"{info.file_size - header} bytes")
        data = f.read(size)
    if len(data) != size:
        raise CheckpointError(f"{where} is truncated")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()
