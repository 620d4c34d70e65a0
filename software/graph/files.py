"""Training-graph files (JSON, YAML) and conversion to and from PyTorch ``nn.Sequential``.

A graph file holds :meth:`TrainingGraph.to_dict`'s form, e.g. in YAML::

    sizes: [64, 32, 10]
    loss: softmax_ce
    algorithm: mbgd
    batch: 16
    optimizer: {lr: 0.05, momentum: 0.9, weight_decay: 0.0001, schedule: step, step: 5,
                gamma: 0.5}

Every problem with a file or a module raises :class:`~caterpillar.software.graph.model.GraphError`
with a message naming the file (or the module's child) and what is wrong.

The PyTorch form of a graph is ``nn.Sequential(Linear, ReLU, ..., ReLU, Linear)``: child
``2 k`` is the ``k``-th linear layer, so its parameters are ``"{2k}.weight"`` (``out x in``)
and ``"{2k}.bias"`` (``out``). PyTorch is imported only by the functions that need it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path

import numpy as np
import yaml

from caterpillar.software.graph.model import GraphError, TrainingGraph

__all__ = ["EXTENSIONS", "TORCH_REQUIREMENT", "load_graph", "save_graph", "graph_from_torch",
           "state_dict_from_weights", "torch_module", "check_weights", "require_torch"]

#: File extensions :func:`load_graph` and :func:`save_graph` understand, and their formats.
EXTENSIONS = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}

#: The PyTorch the conversions are tested with.
TORCH_REQUIREMENT = "torch==2.13.0"


def _format_of(path: Path) -> str:
    ext = path.suffix.lower()
    if ext not in EXTENSIONS:
        shown = repr(ext) if ext else "no extension"
        raise GraphError(f"{path}: unknown graph file extension {shown}; use one of "
                         f"{', '.join(EXTENSIONS)}")
    return EXTENSIONS[ext]


def _yaml_loader():
    """PyYAML's safe loader, also reading ``1e-3`` (no dot) as a float, as JSON does.

    YAML 1.1, which PyYAML implements, reads ``lr: 1e-3`` as the *string* ``"1e-3"``.
    """

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"))
    return Loader


def _parse(text: str, fmt: str, path: Path):
    if fmt == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise GraphError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: "
                             f"{e.msg}") from None

    try:
        return yaml.load(text, Loader=_yaml_loader())  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise GraphError(f"{path}: invalid YAML{where}: {problem}") from None


def _check_keys(mapping: dict, where: str, path: Path):
    bad = [k for k in mapping if not isinstance(k, str)]
    if bad:
        raise GraphError(f"{path}: {where} keys must be names, not {bad[0]!r}")


def load_graph(path) -> TrainingGraph:
    """Read a training graph from a ``.json``, ``.yaml`` or ``.yml`` file.

    Parameters
    ----------
    path : str or os.PathLike
        The file; its extension selects the format.

    Returns
    -------
    TrainingGraph
        The validated graph.

    Raises
    ------
    GraphError
        If the file is missing or unreadable, its extension unknown, its syntax invalid, or its
        content not a valid graph; the message starts with the file name.
    """
    path = Path(path)
    fmt = _format_of(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GraphError(f"graph file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise GraphError(f"graph file {str(path)!r} is a directory") from None
    except UnicodeDecodeError as e:
        raise GraphError(f"{path}: not UTF-8 text (bad byte at offset {e.start})") from None
    except OSError as e:
        raise GraphError(f"cannot read graph file {str(path)!r}: {e.strerror or e}") from None
    data = _parse(text, fmt, path)
    if not isinstance(data, dict):
        what = "an empty file" if data is None else f"a {type(data).__name__}"
        raise GraphError(f"{path}: a training graph must be a mapping (sizes: ..., loss: ...), "
                         f"not {what}")
    _check_keys(data, "graph", path)
    if isinstance(data.get("optimizer"), dict):
        _check_keys(data["optimizer"], "optimizer", path)
    try:
        return TrainingGraph.from_dict(data)
    except GraphError as e:
        raise GraphError(f"{path}: {e}") from None


def save_graph(graph: TrainingGraph, path) -> None:
    """Write ``graph`` as JSON or YAML (by ``path``'s extension), atomically.

    The text goes to a temporary file in the same directory, which then replaces ``path``, so a
    reader never sees a half-written file.

    Parameters
    ----------
    graph : TrainingGraph
    path : str or os.PathLike
        ``.json``, ``.yaml`` or ``.yml``.

    Raises
    ------
    GraphError
        If ``graph`` is not a :class:`TrainingGraph`, the extension is unknown or the file
        cannot be written.
    """
    if not isinstance(graph, TrainingGraph):
        raise GraphError(f"save_graph needs a TrainingGraph, not {type(graph).__name__}")
    path = Path(path)
    fmt = _format_of(path)
    data = graph.to_dict()
    if fmt == "json":
        text = json.dumps(data, indent=2) + "\n"
    else:

        text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
    folder = path.parent
    if not folder.is_dir():
        raise GraphError(f"cannot write graph file {str(path)!r}: directory {str(folder)!r} "
                         f"does not exist")
    tmp = folder / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        # os.open applies the umask to 0o666, so the file gets the usual permissions.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise GraphError(f"cannot write graph file {str(path)!r}: {e.strerror or e}") from None


def require_torch(what: str):
    """Import and return :mod:`torch`.

    Parameters
    ----------
    what : str
        The feature that needs it, for the message.

    Raises
    ------
    GraphError
        If PyTorch is not installed; the message says what to install.
    """
    try:
        import torch
    except ImportError:
        raise GraphError(f"{what} needs PyTorch, which is not installed: "
                         f"pip install {TORCH_REQUIREMENT}") from None
    return torch


_SHAPE_HINT = "a graph module is nn.Sequential(Linear, ReLU, ..., ReLU, Linear)"


def graph_from_torch(module, *, loss: str = "softmax_ce",
                     **graph_kwargs) -> tuple[TrainingGraph, list[tuple[np.ndarray, np.ndarray]]]:
    """Describe a PyTorch MLP as a training graph and take its parameters.

    Parameters
    ----------
    module : torch.nn.Sequential
        Children ``Linear, ReLU, Linear, ..., ReLU, Linear``: every ``Linear`` with a bias, each
        one's ``in_features`` equal to the previous one's ``out_features``, and no ReLU last.
    loss : str
        The graph's loss (``softmax_ce`` or ``mse``).
    **graph_kwargs
        Further :class:`TrainingGraph` fields: ``algorithm``, ``batch`` and ``optimizer`` (an
        :class:`~caterpillar.software.graph.model.Optimizer` or a mapping of its fields).

    Returns
    -------
    graph : TrainingGraph
        ``sizes`` from the linear layers.
    weights : list of (numpy.ndarray, numpy.ndarray)
        Per linear layer, float32 copies of ``W`` (``out x in``) and ``b`` (``out``).

    Raises
    ------
    GraphError
        If PyTorch is missing, or the module is not of that form (the message names the
        offending child's index and type), or the graph fields are invalid.
    """
    torch = require_torch("graph_from_torch")
    nn = torch.nn
    if not isinstance(module, nn.Sequential):
        raise GraphError(f"graph_from_torch needs a torch.nn.Sequential, not "
                         f"{type(module).__name__}; {_SHAPE_HINT}")
    if "sizes" in graph_kwargs:
        raise GraphError("graph_from_torch takes the sizes from the module's Linear layers; "
                         "do not pass sizes")
    children = list(module.children())
    if not children:
        raise GraphError(f"the Sequential is empty; {_SHAPE_HINT}")
    sizes: list[int] = []
    weights = []
    for i, child in enumerate(children):
        name = f"child {i} ({type(child).__name__})"
        if type(child) not in (nn.Linear, nn.ReLU):
            raise GraphError(f"{name} is not supported: only Linear and ReLU are; {_SHAPE_HINT}")
        want_linear = i % 2 == 0
        if isinstance(child, nn.ReLU) and want_linear:
            where = "the first child" if i == 0 else f"after child {i - 1} (ReLU)"
            raise GraphError(f"{name} is {where}; a ReLU must follow a Linear")
        if isinstance(child, nn.Linear) and not want_linear:
            raise GraphError(f"{name} follows child {i - 1} (Linear) without a ReLU between "
                             f"them; {_SHAPE_HINT}")
        if isinstance(child, nn.ReLU):
            continue
        if child.bias is None:
            raise GraphError(f"{name} has no bias; the accelerator's layers are W a + b: use "
                             f"Linear(..., bias=True)")
        if sizes and child.in_features != sizes[-1]:
            raise GraphError(f"{name} has in_features {child.in_features}, but child {i - 2} "
                             f"(Linear) has out_features {sizes[-1]}")
        if not sizes:
            sizes.append(child.in_features)
        sizes.append(child.out_features)
        pair = []
        for kind, p in (("weight", child.weight), ("bias", child.bias)):
            if p.is_meta:
                raise GraphError(f"{name} {kind} is on the meta device and has no values")
            a = p.detach().to(device="cpu", dtype=torch.float32).numpy().copy()
            if not np.isfinite(a).all():
                raise GraphError(f"{name} {kind} has non-finite values (NaN or infinity)")
            pair.append(a)
        weights.append((pair[0], pair[1]))
    if isinstance(children[-1], nn.ReLU):
        raise GraphError(f"child {len(children) - 1} (ReLU) is last; the network must end in a "
                         f"Linear whose outputs feed the loss")
    graph = TrainingGraph.from_dict({"sizes": sizes, "loss": loss, **graph_kwargs})
    return graph, weights


def check_weights(graph: TrainingGraph,
                  weights) -> list[tuple[np.ndarray, np.ndarray]]:
    """Check ``weights`` against ``graph``'s layers and return float32 copies.

    Parameters
    ----------
    graph : TrainingGraph
    weights : sequence of (array_like, array_like)
        Per linear layer, ``W`` (``out x in``) and ``b`` (``out``).

    Returns
    -------
    list of (numpy.ndarray, numpy.ndarray)
        C-contiguous float32 copies.

    Raises
    ------
    GraphError
        If the number of layers, a shape or a value (non-finite) is wrong; names the layer.
    """
    layers = graph.layers
    try:
        count = len(weights)
    except TypeError:
        raise GraphError(f"weights must be a list of (W, b) pairs, not "
                         f"{type(weights).__name__}") from None
    if count != len(layers):
        raise GraphError(f"sizes {list(graph.sizes)} have {len(layers)} layer(s), but "
                         f"{count} (W, b) pair(s) were given")
    out = []
    for k, ((o, i), pair) in enumerate(zip(layers, weights)):
        try:
            w, b = pair
        except (TypeError, ValueError):
            raise GraphError(f"layer {k}: expected a (W, b) pair, not "
                             f"{type(pair).__name__}") from None
        arrays = []
        for kind, value, shape in (("W", w, (o, i)), ("b", b, (o,))):
            try:
                a = np.array(value, dtype=np.float32, order="C", copy=True)
            except (TypeError, ValueError):
                raise GraphError(f"layer {k}: {kind} is not a numeric array") from None
            if a.shape != shape:
                raise GraphError(f"layer {k}: {kind} must have shape {shape}, not {a.shape}")
            if not np.isfinite(a).all():
                raise GraphError(f"layer {k}: {kind} has non-finite values (NaN or infinity)")
            arrays.append(a)
        out.append((arrays[0], arrays[1]))
    return out


def state_dict_from_weights(graph: TrainingGraph, weights) -> dict:
    """The ``state_dict`` of :func:`torch_module` ``(graph)`` holding ``weights``.

    Parameters
    ----------
    graph : TrainingGraph
    weights : sequence of (array_like, array_like)
        Per linear layer, ``W`` (``out x in``) and ``b`` (``out``).

    Returns
    -------
    dict of str to torch.Tensor
        ``{"0.weight": ..., "0.bias": ..., "2.weight": ...}``, float32 tensors that share no
        memory with ``weights``.

    Raises
    ------
    GraphError
        If PyTorch is missing or ``weights`` do not fit ``graph`` (see :func:`check_weights`).
    """
    torch = require_torch("state_dict_from_weights")
    state = {}
    for k, (w, b) in enumerate(check_weights(graph, weights)):
        state[f"{2 * k}.weight"] = torch.from_numpy(w)
        state[f"{2 * k}.bias"] = torch.from_numpy(b)
    return state


def torch_module(graph: TrainingGraph, weights=None):
    """Build ``graph``'s network as a float32 ``torch.nn.Sequential`` on the CPU.

    Parameters
    ----------
    graph : TrainingGraph
    weights : sequence of (array_like, array_like), optional
        Parameters to load (see :func:`state_dict_from_weights`); without them the layers keep
        PyTorch's default (random) initialisation.

    Returns
    -------
    torch.nn.Sequential
        ``Linear, ReLU, ..., ReLU, Linear`` with ``graph.sizes``.

    Raises
    ------
    GraphError
        If PyTorch is missing or ``weights`` do not fit ``graph``.
    """
    torch = require_torch("torch_module")
    nn = torch.nn
    state = None if weights is None else state_dict_from_weights(graph, weights)
    children = []
    for k, (o, i) in enumerate(graph.layers):
        if k:
            children.append(nn.ReLU())
        children.append(nn.Linear(i, o, bias=True, dtype=torch.float32))
    module = nn.Sequential(*children)
    if state is not None:
        module.load_state_dict(state, strict=True)
    return module
