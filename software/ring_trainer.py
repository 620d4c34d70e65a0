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
        self.trainers = [HardwareTrainer(c, CoreWindow(device, k))
                         for k, c in zip(compiled.segment, compiled.cores)]
        for k, program in enumerate(compiled.programs()):
            if k not in compiled.segment:
                self.ring.cores[k].load_program(program)
        self.predicted = compiled.predicted_cycles()
        self.start_pcs = [0] * cfg.cores

    @property
    def step_cycles(self) -> int:
        """Predicted cycles of one step (the last core's)."""
        return max(self.predicted)

    # -- parameters ----------------------------------------------------------------------

    def _shares(self, pairs, position):
        blocks = [parts[position] for parts in self.compiled.blocks]
        last = len(blocks) - 1
        out = []
        for index, (w, b) in enumerate(pairs):
            w, b = np.asarray(w, dtype=np.uint64), np.asarray(b, dtype=np.uint64)
            lo, hi = blocks[index]
            if self.compiled.split == "rows":
                out.append((w[lo:hi], b[lo:hi]))
            else:
                blo, bhi = blocks[index + 1] if index < last else (0, len(b))
                out.append((w[:, lo:hi], b[blo:bhi]))
        return out

    def load_parameters(self, weights, moments=None) -> None:
        """Write ``[(W, b), ...]`` (and the momentum) as each core's share (bits)."""
        for position, trainer in enumerate(self.trainers):
            trainer.load_parameters(self._shares(weights, position),
                                    None if moments is None else
                                    self._shares(moments, position))

    def _assemble(self, shares):
        last = len(self.graph.layers) - 1
        out = []
        for index in range(len(self.graph.layers)):
            ws = [s[index][0] for s in shares]
            bs = [s[index][1] for s in shares]
            if self.compiled.split == "rows":
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
        parts = [t.read_parameters() for t in self.trainers]
        weights = self._assemble([p[0] for p in parts])
        if self.graph.optimizer.momentum > 0:
            moments = self._assemble([p[1] for p in parts])
        else:
            moments = [(np.zeros_like(w), np.zeros_like(b)) for w, b in weights]
        return weights, moments

    # -- steps -----------------------------------------------------------------------------

    def set_lr(self, lr: float) -> None:
        """Write every core's scalar registers for learning rate ``lr``."""
        for trainer in self.trainers:
            trainer.set_lr(lr)

    def step(self, x, targets) -> tuple[np.ndarray, RingRun]:
        """Run one step on every core; return the logits and the ring's counters."""
        x = np.asarray(x, dtype=np.uint64).reshape(self.graph.batch, -1)
        for position, trainer in enumerate(self.trainers):
            if self.compiled.split == "columns":
                lo, hi = self.compiled.blocks[0][position]
                trainer.stage(x[:, lo:hi], targets)
            else:
                trainer.stage(x, targets)
        run = self.ring.run(self.start_pcs, timeout_cycles=4 * self.step_cycles + 10_000)
        logits = self.trainers[0].logits()
        if run.cycles != self.predicted:
            raise StepMismatch(f"the cores took {run.cycles} cycles; the ring model predicted "
                               f"{self.predicted}")
        return logits, run
