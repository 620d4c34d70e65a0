"""Runs a ring-compiled training program on a ring device: every core's share, one start.

Each core of the segment is driven by a :class:`~caterpillar.software.hw_trainer.
HardwareTrainer` through its window of the ring's host bus (parameters, inputs, scalars);
the cores start together from the ring's ``CTRL``, and every core's cycle count must equal
the ring timing model's prediction (:func:`~caterpillar.software.ring_sim.
predict_ring_cycles`).
"""

from __future__ import annotations

import numpy as np

from .hw_trainer import HardwareTrainer, StepMismatch
from .multicore import CoreWindow, RingDriver, RingRun
from .ring_compiler import RingCompiled

__all__ = ["RingTrainer"]


class RingTrainer:
    """Train through a ring ``device`` with ``compiled`` (:func:`compile_ring`).

    Parameters
    ----------
    compiled : RingCompiled
    device : Device
        A ring device (ring address map) whose config equals the compiled one.
    """

    def __init__(self, compiled: RingCompiled, device):
        self.compiled = compiled
        self.graph = compiled.graph
        self.ring = RingDriver(device)
        cfg = compiled.config
        self.ring.set_sources(compiled.sources)
        self.trainers = {k: HardwareTrainer(c, CoreWindow(device, k))
                         for k, c in compiled.compiled.items()}
        for k, program in enumerate(compiled.programs()):
            if k not in compiled.compiled:
                self.ring.cores[k].load_program(program)
        self.predicted = compiled.predicted_cycles()
        self.start_pcs = [0] * cfg.cores

    @property
    def step_cycles(self) -> int:
        """Predicted cycles of one step (the last core's)."""
        return max(self.predicted)

    # -- parameters ----------------------------------------------------------------------

    def _shares(self, pairs, core):
        """Core ``core``'s share of ``[(W, b), ...]``; ``(None, None)`` for other layers."""
        c = self.compiled
        last = len(c.blocks) - 1
        out = []
        for index, (w, b) in enumerate(pairs):
            seg = c.segments[index]
            if core not in seg:
                out.append((None, None))
                continue
            position = seg.index(core)
            w, b = np.asarray(w, dtype=np.uint64), np.asarray(b, dtype=np.uint64)
            lo, hi = c.blocks[index][position]
            if c.split == "rows":
                out.append((w[lo:hi], b[lo:hi]))
            else:
                blo, bhi = c.blocks[index + 1][position] if index < last else (0, len(b))
                out.append((w[:, lo:hi], b[blo:bhi]))
        return out

    def load_parameters(self, weights, moments=None) -> None:
        """Write ``[(W, b), ...]`` (and the momentum) as each core's share (bits)."""
        for core, trainer in self.trainers.items():
            trainer.load_parameters(self._shares(weights, core),
                                    None if moments is None else self._shares(moments, core))

    def _assemble(self, parts):
        """Whole tensors from ``{core: [(W, b) share per layer]}``."""
        c = self.compiled
        last = len(self.graph.layers) - 1
        out = []
        for index, seg in enumerate(c.segments):
            ws = [parts[k][index][0] for k in seg]
            bs = [parts[k][index][1] for k in seg]
            if c.split == "rows":
                out.append((np.vstack(ws), np.concatenate(bs)))
                continue
            if index == last:
                for other in bs[1:]:        # every core updates the whole last bias
                    if not np.array_equal(other, bs[0]):
                        raise StepMismatch("the cores' copies of the last bias differ")
                bias = bs[0]
            else:
                bias = np.concatenate(bs)
            out.append((np.hstack(ws), bias))
        return out

    def read_parameters(self):
        """Return ``(weights, moments)`` gathered from every core (bit patterns)."""
        parts = {k: t.read_parameters() for k, t in self.trainers.items()}
        weights = self._assemble({k: p[0] for k, p in parts.items()})
        if self.graph.optimizer.momentum > 0:
            moments = self._assemble({k: p[1] for k, p in parts.items()})
        else:
            moments = [(np.zeros_like(w), np.zeros_like(b)) for w, b in weights]
        return weights, moments

    # -- steps -----------------------------------------------------------------------------

    def set_lr(self, lr: float) -> None:
        """Write every core's scalar registers for learning rate ``lr``."""
        for trainer in self.trainers.values():
            trainer.set_lr(lr)

    def step(self, x, targets) -> tuple[np.ndarray, RingRun]:
        """Run one step on every core; return the logits and the ring's counters."""
        c = self.compiled
        x = np.asarray(x, dtype=np.uint64).reshape(self.graph.batch, -1)
        first, last = c.segments[0], c.segments[-1]
        for core, trainer in self.trainers.items():
            if core not in first and core not in last:
                continue
            if c.split == "columns":
                lo, hi = c.blocks[0][first.index(core)]
                trainer.stage(x[:, lo:hi], targets)
            else:
                trainer.stage(x, targets)
        run = self.ring.run(self.start_pcs, timeout_cycles=4 * self.step_cycles + 10_000)
        logits = self.trainers[last[0]].logits()
        if run.cycles != self.predicted:
            raise StepMismatch(f"the cores took {run.cycles} cycles; the ring model predicted "
                               f"{self.predicted}")
        return logits, run
