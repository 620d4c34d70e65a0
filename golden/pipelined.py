"""Golden continuous propagation (CP, MBCP): layer-pipelined training in the hardware's arithmetic.

This docstring is the normative text of the schedule (``docs/training.md`` section 2a repeats
it for users). Layer ``l`` of ``L`` (``0`` is the input layer) owns its own core group. Training
runs in **pipeline steps** ``t = 0, 1, 2, ...``; a new group of ``B`` samples (``B = 1``: CP,
``B = 2, 4, 8``: MBCP) enters at every step while the epoch lasts; group ``s`` is the one that
entered at step ``s``. At step ``t`` every layer makes one pass over its weights that does

* the **backward and update** of group ``s_b = t - 2L + 1 + l``, with the layer's **current**
  weights ``W`` (the weights after the updates of every earlier group): ``e = W^T d`` per
  sample (not for layer 0), for CP summed as the fused pass sums it
  (:func:`~caterpillar.golden.kernels.cpass_backward`: per PE column, ``lanes`` row lanes
  each in row order, then the lanes, then the chain), for MBCP as ``gemvt`` sums it, and the
  layer below's deltas ``d_prev = relud(h_prev, e)``, used at step ``t + 1``; then ``W`` and
  ``b`` from the ``B`` samples' deltas ``d`` and inputs ``a``, the deltas carrying the step
  ``-lr / B``: without momentum and weight decay one MAC per weight and sample, ``W += d_s
  a_s^T`` in sample order (:meth:`~caterpillar.golden.trainer.GoldenTrainer.update_layer`
  of each sample in turn: MBCP's device runs one rank-1 update, ``ger``, per sample, so a
  weight is rounded to the operand format after every sample's MAC; the same bits as one
  update of the group whenever the accumulator format is the operand format, as in every
  preset), otherwise
  :meth:`~caterpillar.golden.trainer.GoldenTrainer.update_layer` of the group at once (no
  device path);
* then the **forward** of group ``s_f = t - l`` with the **just-updated** weights: ``h =
  gemv(W', a) (+) b'`` per sample, hidden layers ``a = max(h, +0)`` for the layer above at
  step ``t + 1``; the output layer forms the output gradient of its samples at once, scaled
  as :meth:`~caterpillar.golden.trainer.GoldenTrainer.scale_output_gradient` says (used by
  its own backward at step ``t + 1``), and returns their logits.

So one read of each weight serves the backward (old value), the update and the forward (new
value): weight temporal locality, "update and consume immediately". A group's forward through
layer ``l`` sees the updates of groups up to ``s_f - 2(L - 1 - l) - 1``: the weights are
``2(L - 1 - l)`` groups staler than in ``sgd`` (none at the output layer), and a group's
backward sees weights newer than its forward saw. No weight version is stashed; with
``stash=True`` (the PipeDream variant, offered for comparison) the backward of a group uses
the weights its own forward used instead (the update still applies to the current weights).

Nothing a layer does at step ``t`` reads what another layer writes at step ``t``, so the
layers of a step are independent (the hardware runs them at the same time). The inputs ``a``
and pre-activations ``h`` of a group stay with its layer until its backward: about ``2(L -
l) - 1`` groups in flight at layer ``l``.

**Epochs.** The pipeline fills at the start of an epoch and drains at its end: after the last
group enters, ``2L - 1`` further steps (no new group) finish every backward, so an epoch of
``N`` groups takes ``N + 2L - 1`` steps and the weights are final (for the test accuracy and
checkpoints) between epochs. The learning rate is the schedule's for the epoch, fixed for all
its steps; a last incomplete group of fewer than ``B`` samples is dropped, as in ``mbgd``.

**Equivalences** (tested): with ``L = 1`` CP is ``sgd`` bit for bit (the forward of group
``t`` sees the update of group ``t - 1``), and MBCP with ``B = 1`` is CP.

Sums are the kernels' (:mod:`caterpillar.golden.kernels`); on a segment of ``C`` cores the
layer's columns are split and its forward sums run round the segment as for ``sgd`` on a ring
(:class:`~caterpillar.golden.trainer.GoldenTrainer`'s ``cores``).
"""

from __future__ import annotations

import numpy as np

from caterpillar.golden.trainer import GoldenTrainer

__all__ = ["PipelinedTrainer"]


class PipelinedTrainer:
    """CP (``batch = 1``) or MBCP over a :class:`GoldenTrainer`'s weights and arithmetic.

    Parameters
    ----------
    trainer : GoldenTrainer
        Holds the weights, momenta, formats, loss and per-layer cores; updated in place.
    lanes : int
        Row lanes of the backward's sums: the config's ``acc_lanes`` (the fused pass's order).
    batch : int
        Samples per group (``1``: CP).
    stash : bool
        Backward with the weights the group's forward used (PipeDream) instead of the
        current ones (the paper's CP, the default).
    """

    def __init__(self, trainer: GoldenTrainer, lanes: int, batch: int = 1,
                 stash: bool = False):
        if trainer.feedback is not None:
            raise ValueError("continuous propagation backpropagates; it takes no feedback "
                             "matrices")
        self.g = trainer
        self.lanes = int(lanes)
        self.batch = int(batch)
        self.stash = bool(stash)
        self.layers = len(trainer.weights)
        self.t = 0
        # Per layer, keyed by group: its input activations (B x in), its pre-activations
        # (B x out, kept for the layer above's relud), deltas waiting for its backward, and
        # with stash the weights its forward used.
        self.inputs = [{} for _ in range(self.layers)]
        self.pre = [{} for _ in range(self.layers)]
        self.deltas = [{} for _ in range(self.layers)]
        self.stashed = [{} for _ in range(self.layers)]
        self._targets = {}

    @property
    def in_flight(self) -> int:
        """Groups that entered and have not finished their last backward."""
        return len(set().union(*(d.keys() for d in self.inputs)))

    def step(self, x, targets, s):
        """Run one pipeline step with scalars ``s``; return the logits (``B x outputs``) of the
        group whose forward left the output layer, or ``None``.

        ``x``: the entering group (``B x in`` bits), or ``None`` while draining; ``targets``:
        its labels (``softmax_ce``) or bit-pattern rows (``mse``).
        """
        L, t = self.layers, self.t
        if x is not None:
            x = self.g._tensor(x).reshape(self.batch, -1)
            self.inputs[0][t] = x
            self._targets[t] = targets
        logits = None
        for layer in range(L):
            self._backward(layer, t - 2 * L + 1 + layer, s)
            out = self._forward(layer, t - layer, s)
            if out is not None:
                logits = out
        self.t += 1
        return logits

    def drain(self, s) -> list:
        """Step without new groups until none is in flight; return the logits produced."""
        out = []
        while self.in_flight:
            logits = self.step(None, None, s)
            if logits is not None:
                out.append(logits)
        return out

    def _backward(self, layer, group, s):
        g = self.g
        d = self.deltas[layer].pop(group, None)
        if d is None:
            return
        a = self.inputs[layer].pop(group)
        w_read = self.stashed[layer].pop(group, g.weights[layer][0])
        if layer > 0:
            h_prev = self.pre[layer - 1].pop(group)
            if self.batch == 1:
                e = g.cpass_backward(w_read, d[0], self.lanes)[None]
            else:
                e = np.stack([g._gemvt(w_read, d[k]) for k in range(self.batch)])
            self.deltas[layer - 1][group] = g._vop("relud", h_prev, e, 0)
        if self.batch == 1 or g.use_mom or g.use_wd:
            g.weights[layer], g.moments[layer] = g.update_layer(layer, d, a, s)
            return
        for k in range(self.batch):     # MBCP's plain update: one rank-1 update per sample
            g.weights[layer], g.moments[layer] = g.update_layer(layer, d[k:k + 1],
                                                                a[k:k + 1], s)

    def _forward(self, layer, group, s):
        g = self.g
        a = self.inputs[layer].get(group)
        if a is None:
            return None
        w, b = g.weights[layer]
        if self.stash:
            self.stashed[layer][group] = w
        h = np.stack([g._vop("add", g._gemv(w, a[k], g.cores[layer]), b, 0)
                      for k in range(self.batch)])
        if layer + 1 < self.layers:
            self.pre[layer][group] = h
            self.inputs[layer + 1][group] = g._vop("maxs", h, h, 0)
            return None
        targets = self._targets.pop(group)
        d = np.stack([g.output_gradient(h[k], targets[k], s) for k in range(self.batch)])
        self.deltas[layer][group] = g.scale_output_gradient(d, s)
        return h
