"""Training sessions: data order, epochs, reports, golden checking and checkpoints.

A :class:`Session` trains a compiled graph on a dataset through any device. Data order: epoch
``e`` visits the training set in the permutation drawn by ``numpy.random.default_rng([seed,
e])`` (identity with ``shuffle=False``), in consecutive steps of ``batch`` samples; a last
incomplete batch is dropped. The learning rate of epoch ``e`` is the optimiser's schedule at
``e``. Initial weights (unless given): PyTorch's ``Linear`` default, ``U(-1/sqrt(in),
1/sqrt(in))`` for ``W`` and ``b``, drawn from ``default_rng(seed)`` layer by layer, rounded to
the operand format. ``dfa``'s feedback matrices: :func:`feedback_matrices` from the seed, written
to the device once and never changed.

Per epoch the report holds the mean training loss and the training accuracy (both from the
logits the device produced during the epoch, in float64 on the host), the test accuracy (the
golden forward pass, in the hardware's arithmetic, on the weights read back from the device),
the device cycles, and per phase the cycles and model MACs (the compiler's exact per-instruction
prediction, which every step checks against the device's cycle counter).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from caterpillar.golden.pipelined import PipelinedTrainer
from caterpillar.golden.trainer import GoldenTrainer, scalars, to_bits, to_float
from caterpillar.software.compiler.program import PHASES, Compiled, with_utilization
from caterpillar.software.compiler.training import compiled_for_groups
from caterpillar.software.training.trainer import Trainer

#: What an epoch report adds up per phase (Compiled.step_report).
_PHASE_TOTALS = ("cycles", "core_cycles", "macs")

__all__ = ["Session", "GoldenMismatch", "check_fits", "default_weights", "epoch_order",
           "feedback_matrices", "FEEDBACK_STREAM"]


class GoldenMismatch(AssertionError):
    """The device and the golden trainer disagree; the message names step, layer and tensor."""


def check_fits(graph, dataset) -> None:
    """Raise ``ValueError`` unless ``graph``'s input and output widths fit ``dataset``: the
    features in, and one output per class (``softmax_ce``, and ``mse`` on one-hot targets)."""
    if dataset.features != graph.sizes[0]:
        raise ValueError(f"the {dataset.name} dataset has {dataset.features} features but the "
                         f"model's input width is {graph.sizes[0]}; use --model "
                         f"{dataset.features}-...")
    if graph.sizes[-1] != dataset.classes:
        target = "one-hot targets of its" if graph.loss == "mse" else "its"
        raise ValueError(f"--loss {graph.loss} trains on {target} {dataset.classes} classes, "
                         f"so the output layer needs {dataset.classes} outputs, not "
                         f"{graph.sizes[-1]}; use --model ...-{dataset.classes}")


def default_weights(sizes, seed: int):
    """PyTorch-default initial weights (float32 arrays ``[(W, b), ...]``), from ``seed``."""
    rng = np.random.default_rng(seed)
    out = []
    for i, o in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / np.sqrt(i)
        w = rng.uniform(-bound, bound, (o, i)).astype(np.float32)
        b = rng.uniform(-bound, bound, o).astype(np.float32)
        out.append((w, b))
    return out


#: Second word of the seed of ``dfa``'s feedback matrices (independent of the weights').
FEEDBACK_STREAM = 0xDFA


def feedback_matrices(sizes, seed: int):
    """``dfa``'s fixed feedback matrices (float32 ``[F_0, ...]``, ``F_l``: ``outputs x
    sizes[l + 1]``), ``U(-1/sqrt(width_l), 1/sqrt(width_l))`` (PyTorch's default for a layer from
    hidden layer ``l`` to the outputs) from ``default_rng([seed, FEEDBACK_STREAM])``."""
    rng = np.random.default_rng([seed, FEEDBACK_STREAM])
    out = []
    for width in sizes[1:-1]:
        bound = 1.0 / np.sqrt(width)
        out.append(rng.uniform(-bound, bound, (sizes[-1], width)).astype(np.float32))
    return out


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """Sample order of ``epoch`` (see the module docstring)."""
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng([seed, epoch]).permutation(n)


@dataclass
class Session:
    """Train ``compiled`` on ``dataset`` through ``device``.

    Parameters
    ----------
    compiled : Compiled
        The step of every working core (:func:`~caterpillar.software.compiler.training.
        compile_training`); ``device`` is a ring device for several cores, and the golden
        trainer models the placement's summation order.
    dataset : Dataset
    device : Device
    seed : int
    shuffle : bool
    weights : list of (W, b) float arrays, optional
        Initial parameters (default: :func:`default_weights`).
    check_golden : bool
        Step a :class:`GoldenTrainer` alongside and compare every bit after every step.
    limit : int, optional
        Train on only the first ``limit`` samples of each epoch's order (tests, benchmarks).
    """

    compiled: Compiled
    dataset: object
    device: object
    seed: int = 0
    shuffle: bool = True
    weights: list | None = None
    check_golden: bool = False
    limit: int | None = None
    progress: object = None
    history: list = field(default_factory=list)

    def __post_init__(self):
        graph, cfg = self.compiled.graph, self.compiled.config
        fmt = cfg.operand
        check_fits(graph, self.dataset)
        self.x_train = to_bits(self.dataset.x_train, fmt)
        self.x_test = to_bits(self.dataset.x_test, fmt)
        if graph.loss == "mse":
            eye = np.eye(graph.sizes[-1])
            self.t_train = to_bits(eye[self.dataset.y_train], fmt)
        else:
            self.t_train = self.dataset.y_train
        if graph.pipelined:
            samples = len(self.x_train) if self.limit is None else \
                min(self.limit, len(self.x_train))
            self.compiled = compiled_for_groups(self.compiled, samples // graph.batch)
        init = self.weights or default_weights(graph.sizes, self.seed)
        self.initial = [(to_bits(w, fmt), to_bits(b, fmt)) for w, b in init]
        self.hw = Trainer(self.compiled, self.device)
        self.cores = len(self.compiled.working_cores)
        self.hw.load_parameters(self.initial)
        self.feedback = None
        if graph.algorithm == "dfa":
            self.feedback = [to_bits(f, fmt) for f in feedback_matrices(graph.sizes, self.seed)]
            self.hw.load_feedback(self.feedback)
        self.epoch, self.steps = 0, 0
        self.golden = self._golden(self.initial, None) if self.check_golden else None

    def _golden(self, weights, moments):
        graph, cfg = self.compiled.graph, self.compiled.config
        g = GoldenTrainer(graph.sizes, graph.loss, cfg.nr, cfg.operand, cfg.acc, weights,
                          momentum=graph.optimizer.momentum > 0,
                          weight_decay=graph.optimizer.weight_decay > 0,
                          feedback=self.feedback, **self.compiled.golden_options())
        if moments is not None:
            g.moments = [(np.array(a), np.array(b)) for a, b in moments]
        return g

    def restore(self, checkpoint) -> None:
        """Continue from a checkpoint's parameters, optimiser state and progress
        (:class:`~caterpillar.software.training.checkpoint.Checkpoint`)."""
        self.hw.load_parameters(checkpoint.weights, checkpoint.moments)
        self.epoch, self.steps = checkpoint.meta["epoch"], checkpoint.meta["steps"]
        self.history = list(checkpoint.meta["history"])
        if self.check_golden:
            self.golden = self._golden(checkpoint.weights, checkpoint.moments)

    # -- training -----------------------------------------------------------------------------

    def _loss(self, logits, targets) -> np.ndarray:
        z = to_float(logits, self.compiled.config.operand)
        if self.compiled.graph.loss == "softmax_ce":
            top = z.max(axis=1, keepdims=True)
            lse = top[:, 0] + np.log(np.exp(z - top).sum(axis=1))
            return lse - z[np.arange(len(z)), targets]
        t = to_float(targets, self.compiled.config.operand)
        return ((z - t) ** 2).mean(axis=1)

    def _compare(self, logits, golden_logits):
        where = f"step {self.steps} (epoch {self.epoch})"
        if (logits is None) != (golden_logits is None):
            who = "device" if logits is not None else "golden trainer"
            raise GoldenMismatch(f"{where}: only the {who} produced logits")
        if logits is not None and not np.array_equal(logits, golden_logits):
            bad = np.argwhere(logits != golden_logits)[0]
            raise GoldenMismatch(f"{where}: logits {tuple(bad)} differ: device "
                                 f"{int(logits[tuple(bad)]):#x}, golden "
                                 f"{int(golden_logits[tuple(bad)]):#x}")
        weights, moments = self.hw.read_parameters()
        gw, gm = self.golden.weights, self.golden.moments
        graph = self.compiled.graph
        for index in range(len(weights)):
            pairs = [("W", weights[index][0], gw[index][0]), ("b", weights[index][1],
                                                               gw[index][1])]
            if graph.optimizer.momentum > 0:
                pairs += [("momentum of W", moments[index][0], gm[index][0]),
                          ("momentum of b", moments[index][1], gm[index][1])]
            for name, got, want in pairs:
                if not np.array_equal(got, want):
                    bad = tuple(np.argwhere(got != want)[0])
                    raise GoldenMismatch(
                        f"{where}: layer {index} tensor {name} element {bad} differs: device "
                        f"{int(got[bad]):#x}, golden {int(want[bad]):#x}")

    def train_epoch(self) -> dict:
        """Train one epoch; return its report (also appended to ``history``)."""
        graph, cfg = self.compiled.graph, self.compiled.config
        batch = graph.batch
        lr = graph.optimizer.lr_at(self.epoch)
        self.hw.set_lr(lr)
        s = scalars(cfg.operand, lr=lr, batch=batch, momentum=graph.optimizer.momentum,
                    weight_decay=graph.optimizer.weight_decay, outputs=graph.sizes[-1])
        order = epoch_order(len(self.x_train), self.seed, self.epoch, self.shuffle)
        if self.limit is not None:
            order = order[:self.limit]
        steps = len(order) // batch
        if steps == 0:
            raise ValueError(f"an epoch of {len(order)} samples holds no full batch of {batch}; "
                             f"use a smaller --batch or a larger --limit")
        if graph.pipelined:
            return self._train_epoch_pipelined(lr, s, order, steps)
        losses, correct, cycles = [], 0, 0
        events = {}
        started = time.monotonic()
        for step in range(steps):
            idx = order[step * batch:(step + 1) * batch]
            x, t = self.x_train[idx], self.t_train[idx]
            logits, stats = self.hw.step(x, t)
            cycles += stats.busy
            _tally(events, stats.events)
            labels = self.dataset.y_train[idx]
            losses.append(self._loss(logits, t if graph.loss == "mse" else labels))
            correct += int((to_float(logits, cfg.operand).argmax(axis=1) == labels).sum())
            if self.golden is not None:
                if graph.gemv:
                    g_logits = self.golden.gemv_step(x, t, s)
                else:
                    g_logits = self.golden.mbgd_step(x, t, s)
                self.steps += 1
                self._compare(logits, g_logits)
            else:
                self.steps += 1
            if self.progress is not None:
                self.progress(self.epoch, step + 1, steps)
        seconds = time.monotonic() - started
        per_phase = {p: {name: v[name] * steps for name in _PHASE_TOTALS}
                     for p, v in self.compiled.phase_report().items()}
        report = self._epoch_report(lr, steps, steps * graph.batch, losses, correct, cycles,
                                    seconds, per_phase, events)
        self.history.append(report)
        self.epoch += 1
        return report

    def _train_epoch_pipelined(self, lr, s, order, groups) -> dict:
        """One ``cp`` or ``mbcp`` epoch: ``groups`` groups of ``batch`` samples through the
        pipeline, filled and drained (``groups + 2L - 1`` pipeline steps; golden/pipelined.py
        gives the schedule)."""
        cfg, graph = self.compiled.config, self.compiled.graph
        layers, batch = len(graph.layers), graph.batch
        golden = None if self.golden is None else PipelinedTrainer(
            self.golden, cfg.acc_lanes, batch=batch)
        group = lambda g: order[g * batch:(g + 1) * batch]  # noqa: E731
        losses, correct, cycles = [], 0, 0
        per_phase = {p: dict.fromkeys(_PHASE_TOTALS, 0) for p in PHASES}
        steady, events = 0, {}
        started = time.monotonic()
        total = groups + 2 * layers - 1
        for t in range(total):
            x = self.x_train[group(t)] if t < groups else None
            out = t - layers + 1
            target = self.t_train[group(out)] if 0 <= out < groups else None
            logits, stats = self.hw.pipeline_step(t, x, target)
            entry = self.hw.pipeline_entry(t)
            cycles += stats.busy
            _tally(events, stats.events)
            for p, v in entry["report"].items():
                for name in _PHASE_TOTALS:
                    per_phase[p][name] += v[name]
            if all(entry["key"][1]) and all(entry["key"][2]):
                steady += stats.busy
            if logits is not None:
                labels = self.dataset.y_train[group(out)]
                losses.append(self._loss(logits, target if graph.loss == "mse" else labels))
                correct += int((to_float(logits, cfg.operand).argmax(axis=1) == labels).sum())
            if golden is not None:
                g_logits = golden.step(x, None if x is None else self.t_train[group(t)], s)
                self.steps += 1
                self._compare(logits, g_logits)
            else:
                self.steps += 1
            if self.progress is not None:
                self.progress(self.epoch, t + 1, total)
        seconds = time.monotonic() - started
        report = self._epoch_report(lr, total, groups * batch, losses, correct, cycles,
                                    seconds, per_phase, events)
        report["pipeline"] = {"steady_cycles": steady, "fill_drain_cycles": cycles - steady,
                              "fill_drain_share": (cycles - steady) / cycles if cycles else 0.0}
        self.history.append(report)
        self.epoch += 1
        return report

    def _epoch_report(self, lr, steps, samples, losses, correct, cycles, seconds,
                      per_phase, events) -> dict:
        """The epoch's report; ``per_phase``: the epoch's predicted cycles and model MACs;
        ``events``: the event counters the device counted, summed over steps and cores."""
        cfg = self.compiled.config
        pes = cfg.nr * cfg.nr * self.cores
        per_phase = with_utilization(per_phase, cfg.nr)
        macs = sum(v["macs"] for v in per_phase.values())
        return {
            "epoch": self.epoch, "lr": lr, "steps": steps, "samples": samples,
            "loss": float(np.concatenate(losses).mean()) if losses else float("nan"),
            "train_accuracy": correct / samples if samples else float("nan"),
            "test_accuracy": self.test_accuracy(), "cycles": cycles,
            "utilization": macs / (pes * cycles) if cycles else 0.0,
            "phases": {p: per_phase[p] for p in PHASES}, "wall_seconds": seconds,
            "golden_checked_steps": self.steps if self.golden is not None else 0,
            "events": dict(events),
        }

    def test_accuracy(self) -> float:
        """Accuracy on the test split (golden forward on the device's weights)."""
        cfg = self.compiled.config
        weights, _ = self.hw.read_parameters()
        g = GoldenTrainer(self.compiled.graph.sizes, self.compiled.graph.loss, cfg.nr,
                          cfg.operand, cfg.acc, weights)
        logits = to_float(g.predict(self.x_test), cfg.operand)
        return float((logits.argmax(axis=1) == self.dataset.y_test).mean())

    def float_weights(self):
        """The device's current parameters as float32 arrays ``[(W, b), ...]``."""
        fmt = self.compiled.config.operand
        weights, _ = self.hw.read_parameters()
        return [(to_float(w, fmt).astype(np.float32), to_float(b, fmt).astype(np.float32))
                for w, b in weights]


def _tally(total: dict, per_core: list) -> None:
    """Add a run's event counters (``[{name: events}, ...]``, one per core) to ``total``."""
    for core in per_core:
        for name, value in core.items():
            total[name] = total.get(name, 0) + value
