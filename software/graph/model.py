"""Training graphs: an MLP, its loss, its optimiser and its training algorithm.

A :class:`TrainingGraph` is what the user describes and what the compiler lowers. The network is
a chain of fully connected layers ``h = W a + b`` (``W`` is ``out x in``), each hidden layer
followed by ReLU; the last layer's output feeds the loss. Semantics (the golden trainer, the
compiler and the PyTorch reference all follow them):

* **Loss.** ``softmax_ce``: cross-entropy of ``softmax(h)`` against a one-hot target, averaged
  over the batch (PyTorch ``CrossEntropyLoss``); the output gradient per sample is
  ``softmax(h) - t``. ``mse``: ``mean((h - t)**2)`` over the batch and the outputs (PyTorch
  ``MSELoss``); the gradient per sample is ``(2 / outputs) (h - t)``.
* **Optimiser.** SGD on the batch-mean gradient, PyTorch's way: ``g = grad + weight_decay * p``;
  with momentum ``buf = momentum * buf + g`` (``buf`` starts at zero, so the first step gives
  ``buf = g``) and ``p -= lr * buf``; without momentum ``p -= lr * g``. Biases are parameters
  like the weights (decayed and with momentum).
* **Schedule.** ``constant``: ``lr`` every epoch. ``step``: ``lr * gamma ** (epoch // step)``.
* **Algorithm.** ``sgd``: batch 1, GEMV kernels, the weights stay in MemA. ``mbgd``: minibatch
  gradient descent with ``batch`` samples per step, GEMM kernels on the SPAD. ``dfa``: direct
  feedback alignment (every hidden layer's delta from the output error through a fixed random
  matrix), with ``sgd``'s kernels for batch 1 and for a batch ``mbgd``'s (GEMM, or GEMV:
  ``kernels``).
* **Kernels** of ``mbgd`` and of ``dfa`` with a batch (``kernels``). ``gemm``: the GEMM
  kernels on the SPAD, the batch the streamed dimension. ``gemv``: ``sgd``'s kernels with the
  weights in MemA, a small batch's way (the paper's "like SGD"): every sample's forward and
  backward with the step's weights, then every layer takes one rank-1 update per sample, in
  sample order. It sums the forward and the backward as ``sgd`` does, and rounds each weight
  to the operand format after every sample's MAC (the same bits as one update of the batch
  whenever the accumulator format is the operand format, as in every preset); it has no
  momentum or weight decay (each rank-1 update would apply them). ``auto`` (the default):
  batch 1 runs on the GEMV kernels, and an ``mbgd`` or ``dfa`` step of ``2`` to
  ``SMALL_BATCH`` samples without momentum or weight decay on a ring on whichever of the two
  the compiler's cycle model finds faster (the compiled step's graph names it); everything
  else on the GEMM kernels.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

__all__ = ["GraphError", "Optimizer", "TrainingGraph", "LOSSES", "ALGORITHMS", "SCHEDULES",
           "KERNELS", "SMALL_BATCH", "parse_model"]

LOSSES = ("softmax_ce", "mse")
ALGORITHMS = ("sgd", "mbgd", "dfa", "cp", "mbcp")
SCHEDULES = ("constant", "step")
KERNELS = ("auto", "gemv", "gemm")
#: The largest batch ``kernels: auto`` tries on the GEMV kernels (one rank-1 update per sample).
SMALL_BATCH = 8


class GraphError(ValueError):
    """A training graph is invalid; the message names the value and how to fix it."""


def _number(name, value, lo, hi, *, integer=False):
    kind = "an integer" if integer else "a number"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        raise GraphError(f"{name} must be {kind}, not {value!r}")
    if not lo <= value <= hi:
        raise GraphError(f"{name} must be in [{lo}, {hi}], not {value!r}")


@dataclass(frozen=True)
class Optimizer:
    """SGD with momentum, weight decay and a learning-rate schedule (see the module docstring)."""

    lr: float = 0.05
    momentum: float = 0.0
    weight_decay: float = 0.0
    schedule: str = "constant"
    step: int = 10
    gamma: float = 0.5

    def __post_init__(self):
        _number("lr", self.lr, 0.0, 1e3)
        if self.lr <= 0:
            raise GraphError(f"lr must be positive, not {self.lr!r}")
        _number("momentum", self.momentum, 0.0, 0.999)
        _number("weight_decay", self.weight_decay, 0.0, 1.0)
        if self.schedule not in SCHEDULES:
            raise GraphError(f"schedule must be one of {', '.join(SCHEDULES)}, "
                             f"not {self.schedule!r}")
        _number("step", self.step, 1, 1 << 20, integer=True)
        _number("gamma", self.gamma, 0.0, 1.0)
        if self.gamma <= 0:
            raise GraphError(f"gamma must be positive, not {self.gamma!r}")

    def lr_at(self, epoch: int) -> float:
        """Learning rate of ``epoch`` (0-based)."""
        if self.schedule == "step":
            return self.lr * self.gamma ** (epoch // self.step)
        return self.lr


@dataclass(frozen=True)
class TrainingGraph:
    """An MLP and how to train it.

    Parameters
    ----------
    sizes : tuple of int
        Layer widths from the input to the output, e.g. ``(64, 32, 10)``: two linear layers.
    loss : str
        ``softmax_ce`` or ``mse``.
    optimizer : Optimizer
    algorithm : str
        ``sgd`` (batch 1), ``mbgd``, ``dfa``, ``cp`` (continuous propagation, batch 1) or
        ``mbcp`` (continuous propagation of groups of ``batch`` samples).
    batch : int
        Samples per step (``mbgd``, ``dfa``), per pipeline group (``mbcp``, at least 2);
        ``sgd`` and ``cp`` require 1.
    kernels : str
        ``auto``, ``gemv`` or ``gemm``: which kernels an ``mbgd`` or ``dfa`` step of 2 or more
        samples runs on (the module docstring); the others have one kind (``auto``, or
        theirs).
    """

    sizes: tuple
    loss: str = "softmax_ce"
    optimizer: Optimizer = field(default_factory=Optimizer)
    algorithm: str = "sgd"
    batch: int = 1
    kernels: str = "auto"

    def __post_init__(self):
        sizes = self.sizes
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
            raise GraphError(f"sizes must be a list of layer widths, not {sizes!r}")
        if len(sizes) < 2:
            raise GraphError(f"a network needs an input width and at least one layer width: "
                             f"sizes {list(sizes)} has {len(sizes)}")
        for i, s in enumerate(sizes):
            _number(f"sizes[{i}]", s, 1, 65535, integer=True)
        object.__setattr__(self, "sizes", tuple(sizes))
        if self.loss not in LOSSES:
            raise GraphError(f"loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        if self.loss == "softmax_ce" and sizes[-1] < 2:
            raise GraphError("softmax_ce needs at least 2 outputs; use mse for one output")
        if not isinstance(self.optimizer, Optimizer):
            raise GraphError(f"optimizer must be an Optimizer, not {self.optimizer!r}")
        if self.algorithm not in ALGORITHMS:
            raise GraphError(f"algorithm must be one of {', '.join(ALGORITHMS)}, "
                             f"not {self.algorithm!r}")
        _number("batch", self.batch, 1, 4096, integer=True)
        if self.algorithm in ("sgd", "cp") and self.batch != 1:
            raise GraphError(f"algorithm {self.algorithm} trains on one sample per step "
                             f"(batch 1), not batch {self.batch}; use --algorithm mbgd for "
                             "batches")
        if self.algorithm == "mbcp" and self.batch < 2:
            raise GraphError(f"algorithm mbcp pipelines groups of 2 or more samples, not batch "
                             f"{self.batch}; use --batch 2 (or 4, 8), or --algorithm cp for one "
                             "sample")
        if self.kernels not in KERNELS:
            raise GraphError(f"kernels must be one of {', '.join(KERNELS)}, "
                             f"not {self.kernels!r}")
        if self.kernels != "auto" and not self.chooses_kernels:
            own = "gemv" if self.algorithm != "mbgd" else "gemm"
            if self.kernels != own:
                raise GraphError(f"algorithm {self.algorithm} with batch {self.batch} runs on "
                                 f"the {own.upper()} kernels, not {self.kernels}; only mbgd "
                                 "and dfa with a batch of 2 or more choose (kernels auto, gemv "
                                 "or gemm)")
        opt = self.optimizer
        if self.batched_gemv and (opt.momentum > 0 or opt.weight_decay > 0):
            raise GraphError(f"{self.algorithm} on the GEMV kernels updates once per sample, so "
                             f"it takes no momentum or weight decay (momentum {opt.momentum}, "
                             f"weight_decay {opt.weight_decay}); set both to 0 (--momentum 0), "
                             "or use kernels gemm (or auto)")

    @property
    def chooses_kernels(self) -> bool:
        """Whether the graph may name its kernels: ``mbgd`` or ``dfa`` with a batch of 2 or
        more (``kernels``)."""
        return self.algorithm in ("mbgd", "dfa") and self.batch > 1

    @property
    def gemv(self) -> bool:
        """Whether a step runs on the GEMV kernels with the weights in MemA (one sample:
        ``sgd``, ``dfa`` with batch 1; ``cp``; ``mbcp`` one sample after the other; ``mbgd``
        and ``dfa`` with ``kernels`` ``gemv``, one sample after the other) rather than the GEMM
        kernels on the SPAD."""
        if self.kernels != "auto":
            return self.kernels == "gemv"
        return self.algorithm == "mbcp" or (
            self.batch == 1 and self.algorithm in ("sgd", "dfa", "cp"))

    @property
    def batched_gemv(self) -> bool:
        """Whether a step of several samples runs on the GEMV kernels (``mbgd`` or ``dfa``
        with ``kernels`` ``gemv``): each sample's forward and backward, then one rank-1 update
        per sample and layer."""
        return self.gemv and self.batch > 1 and not self.pipelined

    @property
    def kernels_text(self) -> str:
        """`` on the GEMV kernels`` (or GEMM) for a graph that chose them, else nothing: for
        reports."""
        if not self.chooses_kernels or self.kernels == "auto":
            return ""
        return f" on the {self.kernels.upper()} kernels"

    @property
    def kernel_choice(self) -> bool:
        """Whether the compiler picks the kernels (``auto``, ``mbgd`` or ``dfa``, ``2`` to
        :data:`SMALL_BATCH` samples, no momentum or weight decay)."""
        opt = self.optimizer
        return (self.kernels == "auto" and self.chooses_kernels
                and self.batch <= SMALL_BATCH and opt.momentum == 0
                and opt.weight_decay == 0)

    @property
    def pipelined(self) -> bool:
        """Whether the layers train as a pipeline (``cp``, ``mbcp``: golden/pipelined.py)."""
        return self.algorithm in ("cp", "mbcp")

    @property
    def layers(self) -> list[tuple[int, int]]:
        """``(out, in)`` of every linear layer."""
        return [(o, i) for i, o in zip(self.sizes[:-1], self.sizes[1:])]

    def replace(self, **changes) -> TrainingGraph:
        """Return a copy with ``changes`` (validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain-data form (the JSON/YAML file format)."""
        d = dataclasses.asdict(self)
        d["sizes"] = list(self.sizes)
        return d

    @classmethod
    def from_dict(cls, d) -> TrainingGraph:
        """Build from :meth:`to_dict`'s form, naming unknown keys."""
        if not isinstance(d, dict):
            raise GraphError(f"a training graph must be a mapping, not {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise GraphError(f"unknown graph key(s) {', '.join(map(repr, unknown))}; known "
                             f"keys are {', '.join(sorted(known))}")
        d = dict(d)
        if "sizes" not in d:
            raise GraphError("a training graph needs 'sizes', e.g. [64, 32, 10]")
        opt = d.get("optimizer", {})
        if isinstance(opt, dict):
            known_opt = {f.name for f in dataclasses.fields(Optimizer)}
            bad = sorted(set(opt) - known_opt)
            if bad:
                raise GraphError(f"unknown optimizer key(s) {', '.join(map(repr, bad))}; known "
                                 f"keys are {', '.join(sorted(known_opt))}")
            d["optimizer"] = Optimizer(**opt)
        return cls(**d)


def parse_model(text: str) -> tuple[int, ...]:
    """Parse a model string such as ``64-32-10`` into layer widths."""
    parts = str(text).replace("x", "-").split("-")
    try:
        sizes = tuple(int(p) for p in parts)
    except ValueError:
        raise GraphError(f"--model must be layer widths joined by '-', e.g. 64-32-10, not "
                         f"{text!r}") from None
    if len(sizes) < 2:
        raise GraphError(f"--model needs at least two widths (input and output), not {text!r}")
    return sizes
