"""The PyTorch float32 oracle for training: a graph's network trained step by step in PyTorch.

:class:`TorchTrainer` follows the semantics of :mod:`caterpillar.software.graph.model` with
PyTorch's own modules: ``nn.Sequential(Linear, ReLU, ..., Linear)`` in float32 on the CPU,
``nn.CrossEntropyLoss()`` or ``nn.MSELoss()`` (batch means) and ``torch.optim.SGD`` with the
graph's momentum and weight decay. The caller passes each step's learning rate (the schedule,
:meth:`~caterpillar.software.graph.model.Optimizer.lr_at`, is the caller's).

PyTorch is imported when a trainer is made; without it the constructor raises
:class:`~caterpillar.software.graph.model.GraphError` saying what to install.
"""

from __future__ import annotations

import math

import numpy as np

from caterpillar.software.graph.files import check_weights, require_torch, torch_module
from caterpillar.software.graph.model import TrainingGraph

__all__ = ["TorchTrainer"]


class TorchTrainer:
    """Trains ``graph``'s network in PyTorch float32 from given initial weights, step by step.

    Making a trainer limits PyTorch to one thread and turns on its deterministic algorithms
    (both process-wide settings), so runs repeat bit for bit.

    Parameters
    ----------
    graph : TrainingGraph
        Network, loss and optimiser (momentum, weight decay; the learning rate comes with each
        :meth:`step`).
    weights : sequence of (array_like, array_like)
        Initial ``W`` (``out x in``) and ``b`` (``out``) of every linear layer; copied.

    Raises
    ------
    GraphError
        If PyTorch is missing or ``weights`` do not fit ``graph``.
    """

    def __init__(self, graph: TrainingGraph, weights: list[tuple[np.ndarray, np.ndarray]]):
        torch = require_torch("TorchTrainer")
        if not isinstance(graph, TrainingGraph):
            raise TypeError(f"TorchTrainer needs a TrainingGraph, not {type(graph).__name__}")
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
        self._torch = torch
        self.graph = graph
        self._model = torch_module(graph, check_weights(graph, weights))
        self._linears = [m for m in self._model if isinstance(m, torch.nn.Linear)]
        if graph.loss == "softmax_ce":
            self._criterion = torch.nn.CrossEntropyLoss()
        else:
            self._criterion = torch.nn.MSELoss()
        opt = graph.optimizer
        self._optimizer = torch.optim.SGD(self._model.parameters(), lr=opt.lr,
                                          momentum=opt.momentum,
                                          weight_decay=opt.weight_decay)
        #: Optimiser steps taken so far.
        self.steps = 0

    def _inputs(self, x) -> np.ndarray:
        x = np.asarray(x)
        n_in = self.graph.sizes[0]
        if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] != n_in:
            raise ValueError(f"x must have shape (batch, {n_in}) with batch >= 1, "
                             f"not {x.shape}")
        if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
            raise ValueError(f"x must be real numbers, not {x.dtype}")
        return np.ascontiguousarray(x, dtype=np.float32)

    def _targets(self, target, n: int):
        torch = self._torch
        target = np.asarray(target)
        n_out = self.graph.sizes[-1]
        if self.graph.loss == "softmax_ce":
            if target.shape != (n,) or not np.issubdtype(target.dtype, np.integer):
                raise ValueError(f"softmax_ce targets must be {n} integer class labels "
                                 f"(shape ({n},)), not {target.dtype} of shape {target.shape}")
            if target.min() < 0 or target.max() >= n_out:
                raise ValueError(f"class labels must be in [0, {n_out - 1}], not "
                                 f"{int(target.min())}..{int(target.max())}")
            return torch.from_numpy(target.astype(np.int64))
        if target.shape != (n, n_out) or not np.issubdtype(target.dtype, np.floating):
            raise ValueError(f"mse targets must be floats of shape ({n}, {n_out}), not "
                             f"{target.dtype} of shape {target.shape}")
        return torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32))

    def step(self, x: np.ndarray, target: np.ndarray, lr: float) -> float:
        """One optimiser step on the batch ``x``.

        Parameters
        ----------
        x : numpy.ndarray
            Inputs, ``batch x in`` (converted to float32).
        target : numpy.ndarray
            For ``softmax_ce``, integer class labels (``batch``); for ``mse``, float targets
            (``batch x outputs``, converted to float32).
        lr : float
            This step's learning rate (``0`` is allowed: no move, but momentum still builds).

        Returns
        -------
        float
            The batch-mean loss before the update.
        """
        torch = self._torch
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating, np.integer)) \
                or not math.isfinite(lr) or lr < 0:
            raise ValueError(f"lr must be a finite number >= 0, not {lr!r}")
        xs = self._inputs(x)
        ts = self._targets(target, xs.shape[0])
        for group in self._optimizer.param_groups:
            group["lr"] = float(lr)
        self._model.train()
        self._optimizer.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = self._criterion(self._model(torch.from_numpy(xs)), ts)
            loss.backward()
        self._optimizer.step()
        self.steps += 1
        return float(loss.item())

    def weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The current parameters.

        Returns
        -------
        list of (numpy.ndarray, numpy.ndarray)
            Per linear layer, float32 copies of ``W`` (``out x in``) and ``b`` (``out``).
        """
        return [(m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy())
                for m in self._linears]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The network's outputs (logits for ``softmax_ce``), without training.

        Parameters
        ----------
        x : numpy.ndarray
            Inputs, ``n x in`` (converted to float32).

        Returns
        -------
        numpy.ndarray
            ``n x outputs``, float32.
        """
        torch = self._torch
        xs = self._inputs(x)
        self._model.eval()
        with torch.no_grad():
            return self._model(torch.from_numpy(xs)).numpy().copy()
