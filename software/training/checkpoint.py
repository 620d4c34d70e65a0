"""Checkpoints and initial-weight files: written atomically, read with every field checked.

A checkpoint (``.npz``, no pickle) holds ``meta`` (JSON: graph, config, placement, dataset,
seed, data order, progress, history) and, per layer ``i``, the bit patterns of ``W{i}``,
``b{i}`` and their momenta ``mW{i}``, ``mb{i}``. An initial-weights file (``--init``) holds
float arrays ``W{i}`` and ``b{i}``. Loading reads only the members the model needs, refuses
any member larger than the model needs before reading it
(:func:`~caterpillar.software.storage.load_npz`), and refuses weights that are not finite in
the operand format (NaN, infinity, or too large to represent), naming the tensor. Every problem
is one :class:`~caterpillar.software.storage.CheckpointError` line.
"""

from __future__ import annotations

import json

import numpy as np

from caterpillar.contract.config import CaterpillarConfig, ConfigError
from caterpillar.golden.numerics import FloatFormat, from_float, to_float64
from caterpillar.software.graph.model import GraphError, TrainingGraph
from caterpillar.software.storage import CheckpointError, atomic_savez, load_npz

__all__ = ["save_checkpoint", "load_checkpoint", "load_weights", "Checkpoint", "META_LIMIT"]

#: Most bytes the JSON ``meta`` member of a checkpoint may take.
META_LIMIT = 1 << 24

#: Fields of a checkpoint's meta, and their types.
_META_FIELDS = {"graph": dict, "config": dict, "epoch": int, "steps": int, "seed": int,
                "shuffle": bool, "dataset": str, "history": list, "format": str,
                "segments": list}


class Checkpoint:
    """A loaded checkpoint: ``meta`` (checked), ``graph``, ``config``, ``weights`` and
    ``moments`` (bit patterns, per layer ``(W, b)``)."""

    def __init__(self, meta, graph, config, weights, moments):
        self.meta, self.graph, self.config = meta, graph, config
        self.weights, self.moments = weights, moments


def save_checkpoint(path, session) -> None:
    """Write the session's parameters, optimiser state and progress atomically."""
    weights, moments = session.hw.read_parameters()
    arrays = {}
    for index, ((w, b), (mw, mb)) in enumerate(zip(weights, moments)):
        arrays.update({f"W{index}": w, f"b{index}": b, f"mW{index}": mw, f"mb{index}": mb})
    meta = {"graph": session.compiled.graph.to_dict(),
            "config": session.compiled.config.to_dict(), "epoch": session.epoch,
            "steps": session.steps, "seed": session.seed, "shuffle": session.shuffle,
            "dataset": session.dataset.name, "history": session.history,
            "format": session.compiled.config.operand_format,
            "segments": [list(s) for s in session.compiled.segments]}
    atomic_savez(path, meta=np.array(json.dumps(meta)), **arrays)


def _check_meta(path, meta) -> dict:
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: its meta is not a JSON object")
    for name, kind in _META_FIELDS.items():
        if name not in meta:
            raise CheckpointError(f"{path}: its meta lacks {name!r}; it was not written by "
                                  "this program")
        value = meta[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise CheckpointError(f"{path}: meta field {name!r} must be a {kind.__name__}, "
                                  f"not {type(value).__name__}")
    for name in ("epoch", "steps"):
        if meta[name] < 0:
            raise CheckpointError(f"{path}: meta field {name!r} is negative ({meta[name]})")
    return meta


def _check_bits(path, name: str, bits: np.ndarray, fmt: FloatFormat) -> None:
    if bits.dtype != np.uint64:
        raise CheckpointError(f"{path}: {name} holds {bits.dtype}; a checkpoint stores uint64 "
                              "bit patterns")
    if bits.size and int(bits.max()) >> fmt.width:
        raise CheckpointError(f"{path}: {name} holds values wider than {fmt.width} bits "
                              f"({fmt.name} bit patterns)")
    values = to_float64(bits, fmt)
    if not np.isfinite(values).all():
        bad = tuple(int(v) for v in np.argwhere(~np.isfinite(values))[0])
        raise CheckpointError(f"{path}: {name}{list(bad)} is {values[bad]} (not finite)")


def load_checkpoint(path) -> Checkpoint:
    """Read and check a checkpoint written by :func:`save_checkpoint`."""
    meta_data = load_npz(path, ("meta",), limits={"meta": META_LIMIT})
    meta_array = meta_data["meta"]
    if meta_array.dtype.kind != "U" or meta_array.shape != ():
        raise CheckpointError(f"{path}: its meta is not a JSON text")
    try:
        meta = json.loads(str(meta_array))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: its meta is not valid JSON ({e.msg})") from None
    meta = _check_meta(path, meta)
    try:
        graph = TrainingGraph.from_dict(meta["graph"])
        config = CaterpillarConfig.from_dict(meta["config"])
    except (GraphError, ConfigError) as e:
        raise CheckpointError(f"{path}: {e}") from None
    segments = meta["segments"]
    if len(segments) != len(graph.layers) or not all(
            isinstance(s, list) and s and all(isinstance(k, int) and not isinstance(k, bool)
                                              and 0 <= k < config.cores for k in s)
            for s in segments):
        raise CheckpointError(f"{path}: meta field 'segments' must list, per layer, cores of "
                              f"the config's {config.cores}")
    meta["segments"] = [tuple(s) for s in segments]
    fmt = config.operand
    names, limits = [], {}
    for index, (o, i) in enumerate(graph.layers):
        for prefix, size in (("W", o * i), ("b", o), ("mW", o * i), ("mb", o)):
            names.append(f"{prefix}{index}")
            limits[f"{prefix}{index}"] = 8 * size
    data = load_npz(path, names, limits=limits)
    weights, moments = [], []
    for index, (o, i) in enumerate(graph.layers):
        layer = []
        for prefix, shape in (("W", (o, i)), ("b", (o,)), ("mW", (o, i)), ("mb", (o,))):
            name = f"{prefix}{index}"
            bits = data[name]
            if bits.shape != shape:
                raise CheckpointError(f"{path}: {name} has shape {bits.shape}; the model needs "
                                      f"{shape}")
            _check_bits(path, name, bits, fmt)
            layer.append(bits)
        weights.append((layer[0], layer[1]))
        moments.append((layer[2], layer[3]))
    return Checkpoint(meta, graph, config, weights, moments)


def load_weights(path, sizes, fmt: FloatFormat):
    """Read ``W0, b0, W1, b1, ...`` (float arrays) for a model of ``sizes`` from an ``.npz``.

    Shapes must match the model exactly, and every value must be finite and representable in
    ``fmt`` (the operand format the weights are rounded to). Returns float32 arrays
    ``[(W, b), ...]``.
    """
    names, limits, shapes = [], {}, {}
    for index, (i, o) in enumerate(zip(sizes[:-1], sizes[1:])):
        for prefix, shape in (("W", (o, i)), ("b", (o,))):
            name = f"{prefix}{index}"
            names.append(name)
            shapes[name] = shape
            limits[name] = 8 * int(np.prod(shape))
    data = load_npz(path, names, limits=limits)
    out = []
    for name in names:
        a = data[name]
        if a.shape != shapes[name]:
            raise CheckpointError(f"{path}: {name} has shape {a.shape}; the model "
                                  f"{'-'.join(map(str, sizes))} needs {shapes[name]}")
        if a.dtype.kind not in "fiu":
            raise CheckpointError(f"{path}: {name} holds {a.dtype}; weights are numbers")
        values = a.astype(np.float64)
        if not np.isfinite(values).all():
            bad = tuple(int(v) for v in np.argwhere(~np.isfinite(values))[0])
            raise CheckpointError(f"{path}: {name}{list(bad)} is {values[bad]} (not finite)")
        rounded = to_float64(from_float(values, fmt), fmt)
        if not np.isfinite(rounded).all():
            bad = tuple(int(v) for v in np.argwhere(~np.isfinite(rounded))[0])
            largest = float(to_float64(fmt.max_normal, fmt))
            raise CheckpointError(f"{path}: {name}{list(bad)} = {values[bad]:g} overflows "
                                  f"{fmt.name} (largest {largest:g})")
        out.append(values.astype(np.float32))
    return [(out[2 * k], out[2 * k + 1]) for k in range(len(out) // 2)]
