"""A plain float64 reference of every training schedule: what the algorithms mean, not how the
hardware rounds.

:class:`FloatReference` trains a graph's network in float64 NumPy with the semantics
``docs/training.md`` defines: ``sgd`` and ``mbgd`` steps, direct feedback alignment
(:meth:`~FloatReference.dfa_step`) and continuous propagation (:meth:`~FloatReference.cp_epoch`,
CP and MBCP, with or without weight stashing). It shares no code with the golden trainers
(:mod:`caterpillar.golden.trainer`, :mod:`caterpillar.golden.pipelined`): it is written from the
documented equations and schedule alone, so close agreement between the two over a few hundred
steps shows that the bit-exact trainers implement the documented semantics.

Optimiser (PyTorch's): ``g = grad + wd W``, ``m = mu m + g``, ``W -= lr m`` (``m = g`` without
momentum), gradients the batch mean; biases like weights.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FloatReference"]


class FloatReference:
    """Float64 training of an MLP (``h = W a + b``, ReLU on hidden layers).

    Parameters
    ----------
    sizes : sequence of int
    loss : str
        ``softmax_ce`` or ``mse``.
    weights : list of (W, b)
        Initial parameters (copied to float64).
    lr, momentum, weight_decay : float
    feedback : list of array_like, optional
        DFA's ``F_l`` (``outputs x width_l``) per hidden layer.
    """

    def __init__(self, sizes, loss, weights, *, lr, momentum=0.0, weight_decay=0.0,
                 feedback=None):
        self.sizes, self.loss = tuple(sizes), loss
        self.W = [np.array(w, dtype=np.float64) for w, _ in weights]
        self.b = [np.array(b, dtype=np.float64) for _, b in weights]
        self.mW = [np.zeros_like(w) for w in self.W]
        self.mb = [np.zeros_like(b) for b in self.b]
        self.lr, self.mu, self.wd = lr, momentum, weight_decay
        self.F = None if feedback is None else [np.array(f, np.float64) for f in feedback]

    # -- pieces ------------------------------------------------------------------------

    def _out_grad(self, h, t):
        """d loss / d h for one sample (``t``: label or target vector)."""
        if self.loss == "softmax_ce":
            p = np.exp(h - h.max())
            p /= p.sum()
            p[int(t)] -= 1.0
            return p
        return 2.0 / len(h) * (h - np.asarray(t, dtype=np.float64))

    def _apply(self, layer, grad_w, grad_b):
        """One optimiser step of ``layer`` with batch-mean gradients."""
        gw = grad_w + self.wd * self.W[layer]
        gb = grad_b + self.wd * self.b[layer]
        if self.mu:
            self.mW[layer] = self.mu * self.mW[layer] + gw
            self.mb[layer] = self.mu * self.mb[layer] + gb
            gw, gb = self.mW[layer], self.mb[layer]
        self.W[layer] = self.W[layer] - self.lr * gw
        self.b[layer] = self.b[layer] - self.lr * gb

    def forward(self, x):
        """Pre-activations of every layer for one sample, and the layer inputs."""
        inputs, pre = [], []
        a = np.asarray(x, dtype=np.float64)
        for layer in range(len(self.W)):
            inputs.append(a)
            h = self.W[layer] @ a + self.b[layer]
            pre.append(h)
            a = np.maximum(h, 0.0)
        return inputs, pre

    # -- sequential algorithms ---------------------------------------------------------

    def mbgd_step(self, xs, ts, dfa=False):
        """One step on a batch (``sgd`` for one sample); with ``dfa`` every hidden delta is
        ``F_l^T d_out`` masked by ReLU'. Returns the logits (``B x outputs``)."""
        L = len(self.W)
        grads_w = [np.zeros_like(w) for w in self.W]
        grads_b = [np.zeros_like(b) for b in self.b]
        logits = []
        for x, t in zip(xs, ts):
            inputs, pre = self.forward(x)
            logits.append(pre[-1])
            d_out = self._out_grad(pre[-1], t)
            d = d_out
            for layer in reversed(range(L)):
                grads_w[layer] += np.outer(d, inputs[layer])
                grads_b[layer] += d
                if layer > 0:
                    back = self.F[layer - 1].T @ d_out if dfa else self.W[layer].T @ d
                    d = back * (pre[layer - 1] > 0)
        for layer in range(L):
            self._apply(layer, grads_w[layer] / len(xs), grads_b[layer] / len(xs))
        return np.array(logits)

    def dfa_step(self, xs, ts):
        """Direct feedback alignment on a batch (one sample: batch 1)."""
        return self.mbgd_step(xs, ts, dfa=True)

    # -- continuous propagation --------------------------------------------------------

    def cp_epoch(self, xs, ts, batch=1, stash=False):
        """Train one epoch of continuous propagation on groups of ``batch`` consecutive
        samples (a last incomplete group is dropped), fill to drain; return the logits of
        every sample in order.

        Step ``t``, layer ``l``: backward and update of group ``t - 2L + 1 + l`` with the current
        weights (or, with ``stash``, the weights its forward used), then the forward of group
        ``t - l`` with the updated weights.
        """
        L = len(self.W)
        groups = len(xs) // batch
        # Per layer and group: inputs, pre-activations, deltas, stashed weights.
        a_in = [[None] * groups for _ in range(L)]
        h_pre = [[None] * groups for _ in range(L)]
        delta = [[None] * groups for _ in range(L)]
        w_used = [[None] * groups for _ in range(L)]
        out = [None] * groups
        for t in range(groups + 2 * L - 1):
            for layer in range(L):
                g = t - 2 * L + 1 + layer
                if 0 <= g < groups:
                    w = w_used[layer][g] if stash else self.W[layer]
                    d = delta[layer][g]
                    if layer > 0:
                        e = d @ w                     # rows: samples; (W^T d)^T
                        delta[layer - 1][g] = e * (h_pre[layer - 1][g] > 0)
                    self._apply(layer, d.T @ a_in[layer][g] / batch, d.sum(axis=0) / batch)
                g = t - layer
                if 0 <= g < groups:
                    if layer == 0:
                        a_in[0][g] = np.asarray(xs[g * batch:(g + 1) * batch], np.float64)
                    w_used[layer][g] = self.W[layer].copy()
                    h = a_in[layer][g] @ self.W[layer].T + self.b[layer]
                    h_pre[layer][g] = h
                    if layer + 1 < L:
                        a_in[layer + 1][g] = np.maximum(h, 0.0)
                    else:
                        out[g] = h
                        delta[layer][g] = np.array(
                            [self._out_grad(h[k], ts[g * batch + k]) for k in range(batch)])
        return np.concatenate(out) if groups else np.zeros((0, self.sizes[-1]))
