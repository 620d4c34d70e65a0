"""Files: atomic writes, output paths checked first, strict JSON, and .npz reading that refuses
every damaged or hostile file before allocating anything for it."""

import io
import json
import math
import os
import zipfile

import numpy as np
import pytest

from caterpillar.software.storage import (
    CheckpointError,
    OutputPathError,
    atomic_savez,
    atomic_write_text,
    check_output,
    load_npz,
    strict_json,
    write_json,
)


def npz_with(path, members: dict):
    """An .npz whose members are raw .npy bytes (for headers NumPy would not write)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(f"{name}.npy", data)
    return path


def npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def npy_v1(header: str, payload: bytes) -> bytes:
    """A version 1.0 .npy with ``header`` padded as NumPy pads it, then ``payload``."""
    header = header + " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + payload


def test_round_trip_reads_only_what_is_asked(tmp_path):
    path = tmp_path / "a.npz"
    atomic_savez(path, x=np.arange(4, dtype=np.uint64), meta=np.array("{}"), y=np.zeros(3))
    data = load_npz(path, ("x",), optional=("meta", "absent"))
    assert set(data) == {"x", "meta"}
    np.testing.assert_array_equal(data["x"], np.arange(4))
    assert str(data["meta"]) == "{}"
    with pytest.raises(CheckpointError, match="lacks z, w"):
        load_npz(path, ("x", "z", "w"))


def test_members_over_their_limit_are_not_read(tmp_path):
    path = tmp_path / "a.npz"
    atomic_savez(path, x=np.zeros(1000, dtype=np.uint64))
    with pytest.raises(CheckpointError, match="member x holds 8128 bytes; at most 80"):
        load_npz(path, ("x",), limits={"x": 80})


def test_a_header_declaring_a_huge_shape_is_refused_before_allocating(tmp_path):
    # A version 1.0 header declaring 10**13 words over 32 bytes of data.
    header = "{'descr': '<u8', 'fortran_order': False, 'shape': (10000000000000,), }"
    path = npz_with(tmp_path / "h.npz", {"x": npy_v1(header, bytes(32))})
    with pytest.raises(CheckpointError, match=r"declares shape \(10000000000000,\)"):
        load_npz(path, ("x",), limits={"x": 1 << 40})
    with pytest.raises(CheckpointError, match=r"declares shape .* at most 4096"):
        load_npz(path, ("x",), limits={"x": 4096})


def test_a_deflate_bomb_is_refused_by_its_size(tmp_path):
    path = tmp_path / "bomb.npz"
    atomic_savez(path, x=np.zeros(1 << 22, dtype=np.uint64))       # 32 MiB of zeros
    assert path.stat().st_size < 100_000
    with pytest.raises(CheckpointError, match="holds 33554560 bytes; at most 8000"):
        load_npz(path, ("x",), limits={"x": 8000})


@pytest.mark.parametrize("header", [
    # An unterminated string: NumPy's header filter (tokenize) raises TokenError, not ValueError
    # (a damaged checkpoint in tests/app/test_fuzz.py met it).
    "{'descr': '<u8', 'fortran_order': False, 'shape': \"12, 64), }",
    "{'descr': '<u8', 'fortran_order': False, 'shape': (12, 64",
    "{'descr': '<u8', 'fortran_order': False, 'shape': (12, 64), }}",
    "\x00\x01",
])
def test_a_header_that_does_not_parse_is_refused_in_one_line(tmp_path, header):
    path = npz_with(tmp_path / "h.npz", {"x": npy_v1(header, bytes(12 * 64 * 8))})
    with pytest.raises(CheckpointError, match="member x is not a NumPy array"):
        load_npz(path, ("x",))


@pytest.mark.parametrize("array, message", [
    (np.array([object()], dtype=object), "dtype object"),
    (np.zeros(2, dtype=[("a", "<u4"), ("b", "<f4")]), "dtype"),
    (np.zeros(2, dtype="complex64"), "dtype complex64"),
])
def test_pickled_object_structured_and_odd_dtypes_are_refused(tmp_path, array, message):
    path = npz_with(tmp_path / "o.npz", {"x": npy_bytes(array)})
    with pytest.raises(CheckpointError, match=message):
        load_npz(path, ("x",))


def test_files_that_are_not_npz(tmp_path):
    np.save(tmp_path / "plain.npy", np.zeros(3))
    os.rename(tmp_path / "plain.npy", tmp_path / "plain.npz")
    with pytest.raises(CheckpointError, match="plain.npz is not a valid .npz file"):
        load_npz(tmp_path / "plain.npz", ("x",))
    with pytest.raises(CheckpointError, match="no such file"):
        load_npz(tmp_path / "none.npz")
    with pytest.raises(CheckpointError, match="is a folder"):
        load_npz(tmp_path)
    path = tmp_path / "t.npz"
    atomic_savez(path, x=np.arange(100, dtype=np.uint64))
    raw = bytearray(path.read_bytes())
    raw[60:80] = bytes(20)                          # zero bytes inside the deflate stream
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="t.npz"):
        load_npz(path, ("x",))
    path.write_bytes(bytes(raw[:len(raw) // 2]))    # truncated
    with pytest.raises(CheckpointError, match="t.npz"):
        load_npz(path, ("x",))


def test_check_output_creates_folders_and_refuses_what_cannot_be_written(tmp_path):
    target = check_output(tmp_path / "a" / "b" / "r.json", "--json")
    assert target.parent.is_dir()
    with pytest.raises(OutputPathError, match="--save .*must end in .npz"):
        check_output(tmp_path / "x.json", "--save", suffix=".npz")
    with pytest.raises(OutputPathError, match="is a folder"):
        check_output(tmp_path, "--json")
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputPathError, match="cannot create folder"):
        check_output(tmp_path / "file" / "r.json", "--json")
    if os.geteuid() != 0:                          # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(OutputPathError, match="not writable"):
            check_output(locked / "r.json", "--json")


def test_strict_json_turns_non_finite_numbers_into_null_and_says_where(tmp_path):
    text = strict_json({"loss": math.nan, "epochs": [{"acc": 1.0}, {"acc": math.inf}]})
    data = json.loads(text)       # strict parsers accept it: no NaN tokens
    assert "NaN" not in text and "Infinity" not in text
    assert data["loss"] is None and data["epochs"][1]["acc"] is None
    assert data["non_finite"] == ["loss", "epochs[1].acc"]
    assert json.loads(strict_json([1.0, -math.inf])) == {"value": [1.0, None],
                                                          "non_finite": ["[1]"]}
    write_json(tmp_path / "r.json", {"a": 1})
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": 1}
    atomic_write_text(tmp_path / "t.txt", "hello")
    assert (tmp_path / "t.txt").read_text() == "hello"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
