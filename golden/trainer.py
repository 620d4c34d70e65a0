"""Golden trainer: MLP training with exactly the hardware's arithmetic, in NumPy.

Every tensor is a NumPy array of bit patterns in the operand format; every arithmetic step is a
golden kernel (:mod:`caterpillar.golden.kernels`) applied in the order the compiled program
applies the core's instructions, so the trainer predicts every bit the hardware computes. It
is independent of the compiler, the instruction-level simulator and the RTL: it works on
whole logical matrices, never on PE-local memories or instruction streams.

Network: linear layers ``h = W a + b`` (``W`` is ``out x in``), ReLU after every hidden layer,
then the loss gradient. Scalars (:func:`scalars`) are rounded once to the operand format.

``sgd`` (batch 1), per sample ``x`` with target ``t``:

1. forward, per layer: ``h = gemv(W, a) (+) b`` (VOP ``add``: ``h + round(b * 1)``), hidden
   layers ``a = max(h, +0)`` (VOP ``maxs``);
2. output gradient ``d``: ``softmax_ce``: ``smxce(h, onehot(t))``; ``mse``:
   ``round(s * (h - t))`` with ``s = 2 / outputs`` (VOP ``mseg``); without momentum and
   weight decay it is scaled once, ``d = round(-lr * d)`` (VOP ``scale``), and every delta
   below inherits the step;
3. backward, from the last layer: ``e = gemvt(W, d)`` with the weights before their update,
   ``d_prev = relud(h_prev, e)``; then the update. Without momentum and weight decay one MAC
   per weight, ``W = narrow(widen(W) + round_acc(d_i a_prev_j))`` (``ger`` without ``alpha``),
   and the bias ``b = b + d`` (VOP ``add``). Otherwise ``W`` by ``ger(W, d, a_prev, -lr, wd,
   mu, mom)``, and the bias by VOPs in the same order as ``ger``: ``g = round(wd * b) + d``
   (with weight decay), ``m = round(mu * m) + g`` (with momentum), ``b = round(-lr * m) +
   b``. (:meth:`GoldenTrainer.update_layer` is the update for one or more samples.)

``mbgd`` (batch ``B``): every layer keeps ``[W | b]`` (``out x (in + 1)``) and the activations
get a row of ones, so the bias is the last term of each sum. GEMMs over more than ``k_chunk``
terms run in chunks of ``k_chunk`` (``C = A1 B1``, then ``C += A2 B2``, ...; each chunk's sum is
rounded to the operand format):

1. forward: ``H = [W | b] [A_prev; 1]`` for all samples, hidden ``A = max(H, +0)``;
2. output gradient per sample as for ``sgd`` (``D``, ``B x outputs``);
3. the output gradient is scaled once: ``D = round(-lr / B * D)`` without momentum and weight
   decay, else ``D = round(1 / B * D)``; every later delta and gradient inherits the scale;
4. backward from the last layer: ``E = W^T D^T`` (pre-update ``W``), ``D_prev = relud(H_prev,
   E)``; then the update. Without momentum and weight decay: ``[W | b] += D^T [A_prev^T | 1]``
   (one GEMM with accumulate; for the first layer the core updates the transpose, whose
   elements are the same sums of the same products in the same order). Otherwise ``G = D^T
   [A_prev^T | 1]``, then elementwise ``g = round(wd * P) + G``, ``m = round(mu * m) + g``,
   ``P = round(-lr * m) + P`` (weight decay and momentum only where enabled).

``dfa`` (direct feedback alignment; batch 1 with the ``sgd`` kernels, a batch with the ``mbgd``
ones or, below, the GEMV kernels): each hidden layer ``l`` has a fixed feedback matrix ``F_l``
(``outputs x width_l``, bit patterns, never updated). Its delta comes from the output gradient
``d`` directly instead of the layer above: ``e_l = gemvt(F_l, d)`` (batch: ``E_l = F_l^T
D^T``, ``D`` scaled as in step 3, summed like ``E`` above), ``d_l = relud(h_l, e_l)``;
everything else (forward, output gradient, updates) is the step of ``sgd`` or ``mbgd``. No
update depends on another layer's weights.

``mbgd`` and ``dfa`` on the GEMV kernels (``kernels: gemv``, batch ``B``;
:meth:`GoldenTrainer.gemv_step`): every sample's forward, output gradient and backward as in
``sgd`` (``dfa``: its deltas from the sample's output gradient), all with the step's
weights; the output gradients scaled by ``step`` (``-lr / B``); each layer, once its deltas
below are formed, updated by one rank-1 update per sample in sample order (``W = narrow(widen(W)
+ round_acc(d_si a_prev_sj))`` for ``s = 0, 1, ...``, the bias the same way), so a weight is
rounded to the operand format after every sample: the bits of ``mbgd``'s ``[W | b] += D^T
[A_prev^T | 1]`` whenever the accumulator format is the operand format, only the forward's and
the backward's sums are ``sgd``'s. No momentum or weight decay.

On ``cores = C > 1`` cores of a ring (:mod:`caterpillar.golden.collectives`) two sums change
order; everything else is computed by one core for its share and is bit-identical:

* ``sgd``: core ``k`` holds the input columns ``I_k`` of every ``W`` (``ring_blocks(in, C,
  nr)``), so the forward ``gemv(W, a)`` is ``gemv(W[:, I_k], a[I_k])`` per core, summed round
  the ring (reduce-scatter: output block ``j``'s sum starts at core ``j + 1``); with
  ``logits_chain`` the output layer's by a chain instead, from core ``0`` to core ``C - 1``
  (which broadcasts the logits), in segments whose sums the running total then gathers
  (:func:`~caterpillar.golden.collectives.segmented_chain_reduce`). A layer the compiler
  splits by rows (the first hidden one, on the whole sample) sums as on one core: ``cores`` 1
  for it. With ``bias_columns`` a
  layer's bias is one more column of one core's block (``[W[:, I_k] | b]`` against ``[a[I_k];
  1]``, the bias the last term of that core's partial) instead of a VOP ``add`` after the
  sum; its update is the same MAC per entry either way. With ``row_orders`` a layer's
  backward ``gemvt(W, d)`` sums its rows in that order (``gemvt(W[order], d[order])``): the
  order the cores store them in (the compiler's piped collectives keep a layer's output
  blocks in reverse order, :func:`~caterpillar.software.compiler.collectives.piped_places`).
* ``mbgd``: core ``k`` holds the output rows ``R_k`` of every ``[W | b]`` (``ring_blocks(out,
  C, 1)``), so ``E = W^T D^T`` is ``W[R_k]^T D[:, R_k]^T`` per core, summed round the ring per
  input feature block in the same way. With a segment per layer, ``C`` is the layer's
  segment's size. With ``output_columns`` the output layer is split the other way: core ``k``
  holds the columns ``R_k`` of its ``[W | b]`` that match its rows of the layer below (the
  bias column after them on the core ``output_bias`` names, else the segment's last), so its
  ``E`` rows are local (one GEMM, the
  one-core sums) and the logits are the per-core partials ``[A_prev; 1][R_k]^T [W |
  b][:, R_k]^T`` (``B x outputs``) summed round the ring per sample (an all-reduce; a core
  with no columns adds ``+0``). ``dfa`` then holds the matching columns of every ``F_l``, so
  each ``E_l`` is local as well.
"""

from __future__ import annotations

import numpy as np

from caterpillar.golden import kernels as gk
from caterpillar.golden import numerics as n
from caterpillar.golden.collectives import (
    all_reduce,
    reduce_scatter,
    ring_blocks,
    sample_rows,
    segmented_chain_reduce,
)

__all__ = ["scalars", "GoldenTrainer", "gemm_chunked", "to_bits", "to_float"]


def to_bits(x, fmt) -> np.ndarray:
    """Round real values to operand-format bit patterns (uint64)."""
    return n.from_float(np.asarray(x, dtype=np.float64), fmt).astype(np.uint64)


def to_float(bits, fmt) -> np.ndarray:
    """Return the float64 values of bit patterns."""
    return n.to_float64(np.asarray(bits, dtype=np.uint64), fmt)


def scalars(fmt, *, lr: float, batch: int, momentum: float, weight_decay: float,
            outputs: int) -> dict:
    """Return the scalar operands of a training step as operand-format bit patterns.

    ``zero`` (+0, the ReLU bound), ``step`` (``-lr / batch``: ``-lr`` for ``sgd``),
    ``inv_batch`` (``1 / batch``), ``neg_lr`` (``-lr``), ``wd``, ``mu``, ``mse`` (``2 /
    outputs``). Each is rounded once from the float64 value.
    """
    def b(v):
        return int(to_bits(v, fmt))

    return {"zero": 0, "step": b(-lr / batch), "inv_batch": b(1.0 / batch), "neg_lr": b(-lr),
            "wd": b(weight_decay), "mu": b(momentum), "mse": b(2.0 / outputs)}


def gemm_chunked(a, b, fmt, acc, k_chunk: int, c=None) -> np.ndarray:
    """``C (+)= A B`` the core's way, in GEMM instructions of at most ``k_chunk`` terms each."""
    a = np.asarray(a, dtype=np.uint64)
    b = np.asarray(b, dtype=np.uint64)
    k = a.shape[1]
    total = c
    for k0 in range(0, k, k_chunk):
        total = gk.gemm(a[:, k0:k0 + k_chunk], b[k0:k0 + k_chunk], total, fmt, acc)
    return total


class GoldenTrainer:
    """Train an MLP with the hardware's arithmetic (see the module docstring).

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, input first.
    loss : str
        ``softmax_ce`` or ``mse``.
    nr : int
        PE array side (fixes the GEMV summation order and the softmax's chains).
    fmt, acc : FloatFormat
        Operand and accumulator formats.
    weights : list of (W, b)
        Initial parameters as bit patterns (``W``: ``out x in``, ``b``: ``out``).
    k_chunk : int, optional
        Longest GEMM of the ``mbgd`` path (required for :meth:`mbgd_step`).
    momentum, weight_decay : bool
        Whether the optimiser uses them (the scalars come with every step).
    cores : int or list of int
        Cores of the ring the model is spread over (the module docstring says how), or, per
        layer, the cores of the layer's segment.
    feedback : list of array_like, optional
        ``dfa``'s feedback matrix ``F_l`` (``outputs x width_l`` bits) of every hidden layer;
        without it the steps backpropagate.
    output_columns : bool
        ``mbgd`` on a ring: the output layer is split over its cores by input columns (the
        module docstring says how its sums change).
    logits_chain : bool or sequence of int
        ``sgd`` on a ring: the output layer's partial sums are chain-reduced (the module
        docstring); a sequence gives the chain's segments, consecutive runs of cores of these
        lengths (:func:`~caterpillar.golden.collectives.segmented_chain_reduce`), ``True`` is
        one segment.
    bias_columns : list of (int or None), optional
        ``sgd`` and ``dfa`` (batch 1) on a ring: per layer, the position of the core whose
        column block holds the bias as one more column (the module docstring; for a layer
        summed as on one core, ``[W | b]`` against ``[a; 1]``), or ``None`` where the bias is
        added by a VOP after the sum.
    row_orders : list of sequence of int, optional
        ``sgd`` (batch 1) on a ring: per layer, the order in which the backward ``gemvt``
        sums the rows of ``W`` (empty or ``None``: in order).
    output_bias : int, optional
        With ``output_columns``: the position of the core whose partial logits take the bias
        (its last term); ``None``: the last core.
    """

    def __init__(self, sizes, loss, nr, fmt, acc, weights, *, k_chunk=None, momentum=False,
                 weight_decay=False, cores=1, feedback=None, output_columns=False,
                 logits_chain=False, bias_columns=None, row_orders=None, output_bias=None):
        layers = len(sizes) - 1
        self.output_bias = output_bias
        self.row_orders = [list(o) if o is not None and len(o) else None
                           for o in (row_orders or [None] * layers)]
        self.bias_columns = list(bias_columns) if bias_columns else [None] * layers
        self.output_columns = bool(output_columns)
        self.logits_chain = (tuple(logits_chain) if isinstance(logits_chain, (tuple, list))
                             else bool(logits_chain))
        self.cores = [cores] * layers if isinstance(cores, int) else list(cores)
        self.sizes = tuple(sizes)
        self.loss = loss
        self.nr, self.fmt, self.acc = nr, fmt, acc
        self.k_chunk = k_chunk
        self.use_mom, self.use_wd = bool(momentum), bool(weight_decay)
        self.weights = [(np.array(w, dtype=np.uint64), np.array(b, dtype=np.uint64))
                        for w, b in weights]
        self.moments = [(np.zeros_like(w), np.zeros_like(b)) for w, b in self.weights]
        self.one = int(n.from_float(1.0, fmt))
        self.feedback = None
        if feedback is not None:
            self.feedback = [np.array(f, dtype=np.uint64) for f in feedback]
            want = [(sizes[-1], width) for width in sizes[1:-1]]
            got = [f.shape for f in self.feedback]
            if got != want:
                raise ValueError(f"feedback matrices must have shapes {want}, not {got}")

    # -- shared pieces ----------------------------------------------------------------------

    # -- the arithmetic (every sum of a step goes through these; FastTrainer overrides them) --

    def _tensor(self, x) -> np.ndarray:
        """An input tensor in this trainer's representation (bit patterns)."""
        return np.asarray(x, dtype=np.uint64)

    def _ones(self, shape) -> np.ndarray:
        return np.full(shape, self.one, dtype=np.uint64)

    def _vop(self, fn, x, y, alpha):
        return gk.vop(fn, x, y, alpha, self.fmt, self.acc)

    def _gemvt(self, w, d) -> np.ndarray:
        """``W^T d`` as ``gemvt`` sums it."""
        return gk.gemvt(w, d, self.nr, self.fmt, self.acc)[0]

    def _gemm(self, a, b, c=None) -> np.ndarray:
        """``C (+)= A B`` in one GEMM."""
        return gk.gemm(a, b, c, self.fmt, self.acc)

    def _gemm_chunked(self, a, b, c=None) -> np.ndarray:
        """``C (+)= A B`` in GEMMs of at most ``k_chunk`` terms (:func:`gemm_chunked`)."""
        return gemm_chunked(a, b, self.fmt, self.acc, self.k_chunk, c=c)

    def _ger_batch(self, w, d, a, mw, s):
        """``(W', mW')`` of the update with momentum or weight decay (``ger``'s steps)."""
        return gk.ger_batch(w, d, a, s["neg_lr"], self.fmt, self.acc,
                            wd=s["wd"] if self.use_wd else None,
                            mom=mw if self.use_mom else None, mu=s["mu"])

    def cpass_backward(self, w, d, lanes: int) -> np.ndarray:
        """``W^T d`` as the fused pass sums it with ``lanes`` row lanes (CP's backward,
        :mod:`.pipelined`)."""
        return gk.cpass_backward(w, d, self.nr, lanes, self.fmt, self.acc)[0]

    def output_gradient(self, h, target, s, row=0) -> np.ndarray:
        """Gradient of the loss for one sample's output ``h`` (bits); ``target``: a label for
        ``softmax_ce``, a bit-pattern vector for ``mse``; ``row``: the PE row whose ``smxce``
        forms it (:func:`~caterpillar.golden.collectives.sample_rows`)."""
        nr = self.nr
        if self.loss == "softmax_ce":
            t = np.zeros(len(h), dtype=np.uint64)
            t[int(target)] = self.one
            d, _ = gk.smxce([h[c::nr] for c in range(nr)], [t[c::nr] for c in range(nr)],
                            len(h), nr, self.fmt, self.acc, row)
            return d
        return self._vop("mseg", h, np.asarray(target, dtype=np.uint64), s["mse"])

    # -- SGD (batch 1, GEMV kernels) ---------------------------------------------------------

    def forward(self, x) -> list:
        """Return ``[(h, a), ...]`` per layer for one input ``x`` (bits); ``a`` is ``None``
        for the last layer."""
        a = self._tensor(x)
        out = []
        last = len(self.weights) - 1
        for index, (w, b) in enumerate(self.weights):
            chain = self.logits_chain and index == last
            where = self.bias_columns[index]
            if where is None:
                h = self._vop("add", self._gemv(w, a, self.cores[index], chain=chain), b, 0)
            else:
                h = self._gemv(w, a, self.cores[index], chain=chain, bias=(b, where))
            a = self._vop("maxs", h, h, 0) if index + 1 < len(self.weights) else None
            out.append((h, a))
        return out

    def _gemv(self, w, a, cores, chain=False, bias=None) -> np.ndarray:
        """``W a`` on ``cores`` holding column blocks: their partials summed round the ring by
        a reduce-scatter, or with ``chain`` by a chain from the first core to the last. With
        ``bias = (b, k)`` the block of position ``k`` is ``[W_k | b]`` against ``[a_k; 1]``
        (on one core, the whole ``[W | b]``): ``W a + b`` with ``b`` the last term of that
        core's sum."""
        def partial(wk, ak, folded):
            if folded:          # [W_k | b] against [a_k; 1]
                wk = np.concatenate([wk, bias[0][:, None]], axis=1)
                ak = np.concatenate([ak, self._ones(1)])
            return gk.gemv(wk, ak, self.nr, self.fmt, self.acc)[0]

        if cores == 1:
            return partial(w, a, bias is not None)
        partials = [partial(w[:, lo:hi], a[lo:hi], bias is not None and k == bias[1])
                    for k, (lo, hi) in enumerate(ring_blocks(w.shape[1], cores, self.nr))]
        if chain:
            lengths = self.logits_chain if isinstance(self.logits_chain, tuple) else (cores,)
            return segmented_chain_reduce(partials, self.fmt, lengths)
        return np.concatenate(reduce_scatter(partials, self.nr, self.fmt))

    def sgd_step(self, x, target, s) -> np.ndarray:
        """Train on one sample with scalars ``s`` (:func:`scalars`); return the logits."""
        return self.gemv_step(self._tensor(x)[None], [target], s)[0]

    def gemv_step(self, x, targets, s) -> np.ndarray:
        """Train on ``B`` samples ``x`` (``B x in`` bits) on the GEMV kernels with scalars
        ``s``; return the logits (``B x outputs``). ``B = 1`` is ``sgd``'s step; ``B > 1``
        (``mbgd`` or ``dfa`` on the GEMV kernels) runs every sample's forward and backward with the
        step's weights, the output gradients scaled by ``step`` (``-lr / B``), and updates
        each layer, after its deltas below are formed, by one rank-1 update per sample in
        sample order (:meth:`update_layer` of each sample in turn)."""
        x = self._tensor(x)
        x = x.reshape(len(targets), -1)
        batch = x.shape[0]
        if batch > 1 and (self.use_mom or self.use_wd):
            raise ValueError("a batch on the GEMV kernels takes no momentum or weight decay")
        acts = [self.forward(sample) for sample in x]
        d = d_out = self.scale_output_gradient(
            np.stack([self.output_gradient(a[-1][0], t, s) for a, t in zip(acts, targets)]), s)
        for index in reversed(range(len(self.weights))):
            w, b = self.weights[index]
            a_prev = x if index == 0 else np.stack([a[index - 1][1] for a in acts])
            d_prev = None
            if index > 0:
                order = self.row_orders[index]
                if self.feedback is not None:
                    e = [self._gemvt(self.feedback[index - 1], dk) for dk in d_out]
                elif order is not None:
                    e = [self._gemvt(w[order], dk[order]) for dk in d]
                else:
                    e = [self._gemvt(w, dk) for dk in d]
                d_prev = np.stack([self._vop("relud", a[index - 1][0], ek, 0)
                                   for a, ek in zip(acts, e)])
            for k in range(batch):
                self.weights[index], self.moments[index] = self.update_layer(
                    index, d[k:k + 1], a_prev[k:k + 1], s)
            d = d_prev
        return np.stack([a[-1][0] for a in acts])

    def scale_output_gradient(self, d, s) -> np.ndarray:
        """The output gradient ``d`` (``B x outputs``) as the backward pass carries it: scaled
        once by ``step`` (``-lr / B``) without momentum and weight decay, else by ``1 / B`` for
        ``B > 1`` (unscaled for one sample); every delta below inherits the scale."""
        if not (self.use_mom or self.use_wd):
            return self._vop("scale", d, d, s["step"])
        return d if d.shape[0] == 1 else self._vop("scale", d, d, s["inv_batch"])

    def update_layer(self, index, d, a, s):
        """Return layer ``index``'s ``((W', b'), (mW', mb'))`` from ``B`` samples' deltas ``d``
        (``B x out``, scaled by :meth:`scale_output_gradient`) and inputs ``a`` (``B x in``).

        Without momentum and weight decay the deltas carry the step and every weight takes one
        MAC per sample: ``W' = narrow(widen(W) + round_acc(d_0i a_0j) + round_acc(d_1i a_1j) +
        ...)`` (:func:`~caterpillar.golden.kernels.gemm` accumulating into ``W``), the bias the
        same with ``a = 1``. Otherwise :func:`~caterpillar.golden.kernels.ger_batch` with
        ``alpha = -lr``, and the bias by ``ger``'s steps on ``narrow(-0 + d_0 + d_1 + ...)``.
        """
        w, b = self.weights[index]
        mw, mb = self.moments[index]
        ones = self._ones((d.shape[0], 1))
        if not (self.use_mom or self.use_wd):
            w = self._gemm(d.T, a, w)
            b = self._gemm(d.T, ones, b[:, None])[:, 0]
            return (w, b), (mw, mb)
        w, new_mw = self._ger_batch(w, d, a, mw, s)
        grad = self._gemm(d.T, ones)[:, 0]
        if self.use_wd:
            grad = self._vop("axpy", b, grad, s["wd"])
        if self.use_mom:
            mb = self._vop("axpy", mb, grad, s["mu"])
            grad = mb
        b = self._vop("axpy", grad, b, s["neg_lr"])
        return (w, b), (new_mw if self.use_mom else mw, mb)

    # -- MBGD (GEMM kernels) -----------------------------------------------------------------

    def _augmented(self, index):
        w, b = self.weights[index]
        return np.concatenate([w, b[:, None]], axis=1)

    def mbgd_step(self, x, targets, s) -> np.ndarray:
        """Train on a batch ``x`` (``B x in`` bits) with scalars ``s``; return the logits
        (``B x outputs``)."""
        if self.k_chunk is None:
            raise ValueError("mbgd_step needs k_chunk")
        x = self._tensor(x)
        batch = x.shape[0]
        ones = self._ones((1, batch))
        a_t = [np.concatenate([x.T, ones])]               # [A_prev; 1], features x batch
        h_t = []
        last = len(self.weights) - 1
        for index in range(len(self.weights)):
            if index == last and self.output_columns and self.cores[index] > 1:
                h = self._columns_logits(self._augmented(index), a_t[-1], self.cores[index])
            else:
                h = self._gemm_chunked(self._augmented(index), a_t[-1])
            h_t.append(h)
            if index + 1 < len(self.weights):
                a_t.append(np.concatenate([self._vop("maxs", h, h, 0), ones]))
        logits = h_t[-1].T
        t = [targets[i] for i in range(batch)]
        rows = sample_rows(batch, self.cores[last], self.nr)
        d = np.stack([self.output_gradient(logits[i], t[i], s, rows[i]) for i in range(batch)])
        plain = not (self.use_mom or self.use_wd)
        d = d_out = self._vop("scale", d, d, s["step"] if plain else s["inv_batch"])
        for index in reversed(range(len(self.weights))):
            p = self._augmented(index)
            d_prev = None
            if index > 0:
                if self.feedback is None:
                    local = index == last and self.output_columns
                    e = self._weights_t_delta(p[:, :self.sizes[index]], d,
                                              1 if local else self.cores[index])
                else:
                    e = self._weights_t_delta(self.feedback[index - 1], d_out,
                                              1 if self.output_columns else self.cores[index])
                d_prev = self._vop("relud", h_t[index - 1], e, 0).T
            if plain:
                p = self._gemm_chunked(d.T, a_t[index].T, c=p)
            else:
                g = self._gemm_chunked(d.T, a_t[index].T)
                if self.use_wd:
                    g = self._vop("axpy", p, g, s["wd"])
                if self.use_mom:
                    mw, mb = self.moments[index]
                    m = self._vop("axpy", np.concatenate([mw, mb[:, None]], axis=1), g,
                                  s["mu"])
                    self.moments[index] = (m[:, :-1], m[:, -1])
                    g = m
                p = self._vop("axpy", g, p, s["neg_lr"])
            self.weights[index] = (p[:, :-1].copy(), p[:, -1].copy())
            d = d_prev
        return logits

    def _weights_t_delta(self, w, d, cores) -> np.ndarray:
        """``E = W^T D^T`` (``in x B``), summed round the ring on several cores."""
        fmt, acc, kc = self.fmt, self.acc, self.k_chunk
        if cores == 1:
            return gemm_chunked(w.T, d.T, fmt, acc, kc)
        # A core without rows adds +0 (the hardware multiplies two zero vectors).
        partials = [gemm_chunked(w[lo:hi].T, d[:, lo:hi].T, fmt, acc, kc).ravel() if hi > lo
                    else np.zeros(w.shape[1] * d.shape[0], dtype=np.uint64)
                    for lo, hi in ring_blocks(w.shape[0], cores, 1)]
        return np.concatenate(reduce_scatter(partials, d.shape[0], fmt)).reshape(
            w.shape[1], d.shape[0])

    def _columns_logits(self, p, a, cores) -> np.ndarray:
        """``H = P A`` (``outputs x B``) with ``P`` split by input columns over ``cores``:
        each core's partial over its columns (the bias column, ``A``'s ones row, last on the
        core :attr:`output_bias` names, else the last core), summed round the ring per
        sample."""
        outputs, batch = p.shape[0], a.shape[1]
        inputs = p.shape[1] - 1
        blocks = ring_blocks(inputs, cores, 1)
        at = cores - 1 if self.output_bias is None else self.output_bias
        partials = []
        for position, (lo, hi) in enumerate(blocks):
            rows = list(range(lo, hi)) + [inputs] * (position == at)
            if rows:
                part = gemm_chunked(a[rows].T, p[:, rows].T, self.fmt, self.acc, self.k_chunk)
                partials.append(part.ravel())
            else:
                partials.append(np.zeros(batch * outputs, dtype=np.uint64))
        return all_reduce(partials, outputs, self.fmt).reshape(batch, outputs).T

    # -- inference ---------------------------------------------------------------------------

    def predict(self, x) -> np.ndarray:
        """Logits (bits) for inputs ``x`` (``n x in`` bits): :meth:`forward` for every sample,
        vectorised over the samples (bit-identical to calling it per sample)."""
        fmt, acc, nr = self.fmt, self.acc, self.nr
        a = np.asarray(x, dtype=np.uint64)
        if any(cores > 1 for cores in self.cores):
            # The ring's order of summation: sample by sample (vectorised for one core only).
            return np.stack([self.forward(sample)[-1][0] for sample in a])
        samples = a.shape[0]
        one = np.uint64(self.one)
        for index, (w, b) in enumerate(self.weights):
            rows, cols = w.shape
            partial = np.full((samples, rows, nr), acc.sign_mask, dtype=np.uint64)
            for jj in range(-(-cols // nr)):
                j = jj * nr + np.arange(nr)
                valid = j < cols
                jc = np.minimum(j, cols - 1)
                products = gk.mac(np.broadcast_to(w[:, jc], partial.shape),
                                  np.broadcast_to(a[:, None, jc], partial.shape), partial,
                                  fmt, acc)
                partial = np.where(valid, products, partial)
            stored = gk.narrow(partial, fmt, acc)
            order = gk.chain_order(np.arange(rows), nr)          # rows x nr
            total = np.full((samples, rows), acc.sign_mask, dtype=np.uint64)
            for q in range(nr):
                pick = np.take_along_axis(stored, order[None, :, q:q + 1], axis=2)[..., 0]
                total = gk.mac(pick, np.full(pick.shape, one), total, fmt, acc)
            h = gk.narrow(total, fmt, acc)
            h = self._vop("add", h, np.broadcast_to(b, h.shape), 0)
            a = self._vop("maxs", h, h, 0) if index + 1 < len(self.weights) else h
        return a
