"""Golden kernels: every value the core's kernels compute, in the hardware's order of operations.

NumPy only. Arrays hold bit patterns (unsigned integers). ``fmt`` is the operand format (what
the memories store), ``acc`` the accumulator format. Values move between them exactly as the PE
moves them (docs/architecture.md): operands are widened exactly into the accumulator format for
the adder and the compare/scale unit, results are rounded back into the operand format when
they are written to MemA, MemB or a bus; when the two formats are the same no conversion
happens at all (NaN payloads then pass a move unchanged).
"""

from __future__ import annotations

import functools

import numpy as np

from caterpillar.golden import numerics as n
from caterpillar.golden.numerics import FloatFormat

__all__ = [
    "widen", "narrow", "mac", "gemv_partials", "chain_order", "chain_sum", "gemv", "gemvt",
    "cpass_backward_partials", "cpass_backward", "ger", "ger_accumulate", "ger_batch",
    "gemm", "vop", "VOP_FUNCTIONS", "smxce",
]


def widen(x, fmt: FloatFormat, acc: FloatFormat) -> np.ndarray:
    """Return operand-format bits ``x`` in the accumulator format (exact)."""
    x = np.asarray(x, dtype=np.uint64)
    return x if fmt == acc else n.convert(x, fmt, acc).astype(np.uint64)


def narrow(x, fmt: FloatFormat, acc: FloatFormat) -> np.ndarray:
    """Return accumulator-format bits ``x`` rounded to the operand format."""
    x = np.asarray(x, dtype=np.uint64)
    return x if fmt == acc else n.convert(x, acc, fmt).astype(np.uint64)


def mac(a, b, c, fmt: FloatFormat, acc: FloatFormat) -> np.ndarray:
    """Return the PE's MAC: ``c + round_acc(a * b)``, ``a``, ``b`` operand format, ``c`` acc.

    Same bits as :func:`caterpillar.golden.numerics.mac` (the specification); with fp32
    operands and accumulator it takes a shortcut through IEEE float32 arithmetic, which rounds
    the product and the sum exactly as specified (tests compare the two on corner cases).
    """
    if fmt.name == acc.name == "fp32":
        return _mac_fp32(a, b, c)
    return n.mac(a, b, c, fmt, acc).astype(np.uint64)


def _mac_fp32(a, b, c) -> np.ndarray:
    f = [np.asarray(v, dtype=np.uint64).astype(np.uint32).view(np.float32)
         for v in (a, b, c)]
    with np.errstate(all="ignore"):
        r = (f[0] * f[1]) + f[2]
    bits = r.view(np.uint32).astype(np.uint64)
    return np.where(np.isnan(r), np.uint64(n.FP32.canonical_nan), bits)


@functools.lru_cache(maxsize=None)
def _constant(value: float, fmt: FloatFormat) -> int:
    return int(n.from_float(value, fmt))


@functools.lru_cache(maxsize=None)
def _exp_constants(fmt: FloatFormat, acc: FloatFormat) -> dict:
    return n.exp_constants(fmt, acc)


def _neg_zero(fmt: FloatFormat, shape) -> np.ndarray:
    return np.full(shape, fmt.sign_mask, dtype=np.uint64)


def gemv_partials(w, x, nr: int, fmt: FloatFormat, acc: FloatFormat) -> np.ndarray:
    """Return the partial sums ``P[i, c]`` of ``y = W x`` (accumulator format).

    ``P[i, c]`` starts from ``-0`` and adds ``round_acc(W[i, j] * x[j])`` for
    ``j = c, c + nr, ...`` (``j < cols``) in increasing order: what ``PE(i mod nr, c)``
    accumulates. ``w`` is ``rows x cols``, ``x`` has ``cols`` elements.
    """
    w = np.asarray(w, dtype=np.uint64)
    x = np.asarray(x, dtype=np.uint64)
    rows, cols = w.shape
    k_loc = -(-cols // nr)
    partial = _neg_zero(acc, (rows, nr))
    for jj in range(k_loc):
        j = jj * nr + np.arange(nr)
        valid = j < cols
        jc = np.minimum(j, cols - 1)
        products = mac(w[:, jc], np.broadcast_to(x[jc], (rows, nr)), partial, fmt, acc)
        partial = np.where(valid[None, :], products, partial)
    return partial


def chain_order(i, nr: int) -> np.ndarray:
    """Return, for each output index ``i``, the PE coordinates its chain visits in order.

    The chain of output ``i`` runs over ``q = 0..nr-1`` at coordinate ``(i mod nr + 1 + q) mod
    nr``, ending on the diagonal coordinate ``i mod nr``. Shape ``(len(i), nr)``.
    """
    i = np.asarray(i)
    return (i[:, None] % nr + 1 + np.arange(nr)[None, :]) % nr


def chain_sum(stored_partials, nr: int, fmt: FloatFormat, acc: FloatFormat) -> np.ndarray:
    """Return the chain reduction of partials stored in MemB (operand format).

    Position 0 computes ``-0 + round_acc(p * 1)``; each later position adds its partial the same
    way to the value arriving on its link (accumulator format). Returns accumulator-format sums.
    """
    p = np.asarray(stored_partials, dtype=np.uint64)
    count = p.shape[0]
    order = chain_order(np.arange(count), nr)
    one = np.full(count, _constant(1.0, fmt), dtype=np.uint64)
    total = _neg_zero(acc, count)
    for q in range(nr):
        total = mac(p[np.arange(count), order[:, q]], one, total, fmt, acc)
    return total


def gemv(w, x, nr: int, fmt: FloatFormat, acc: FloatFormat):
    """Return ``(y, stored_partials)`` of the ``gemv`` instruction (operand format).

    ``stored_partials[i, c]`` is what ``PE(i mod nr, c)`` leaves in its ``psum`` scratch at
    ``i div nr``; ``y[i]`` what the diagonal writes.
    """
    stored = narrow(gemv_partials(w, x, nr, fmt, acc), fmt, acc)
    return narrow(chain_sum(stored, nr, fmt, acc), fmt, acc), stored


def gemvt(w, d, nr: int, fmt: FloatFormat, acc: FloatFormat):
    """Return ``(z, stored_partials)`` of ``gemvt``: ``z = W^T d`` by the same kernel on ``W^T``.

    ``stored_partials[j, r]`` is what ``PE(r, j mod nr)`` leaves at ``j div nr``.
    """
    return gemv(np.asarray(w, dtype=np.uint64).T, d, nr, fmt, acc)


def cpass_backward_partials(w, d, nr: int, lanes: int, fmt: FloatFormat, acc: FloatFormat):
    """Return ``(stored, q)``: the partial sums of ``z = W^T d`` the way ``cpass`` forms them.

    ``PE(r, c)`` splits the rows ``i = ii nr + r`` it holds into ``lanes`` row lanes (``ii mod
    lanes``). For each of its columns ``j`` and each lane ``rho`` it keeps ``q[rho, r, j]`` in
    MemB (operand format): ``-0``, then for ``ii = rho, rho + lanes, ...`` (``i < rows``)
    ``narrow(widen(q) + round_acc(W[i, j] d[i]))``. Then ``(((-0 + q[0]) + q[1]) + ...)`` in the
    accumulator, rounded once: ``stored[j, r]``, what ``PE(r, j mod nr)`` leaves in ``bpsum``.
    """
    w = np.asarray(w, dtype=np.uint64)
    d = np.asarray(d, dtype=np.uint64)
    rows, cols = w.shape
    groups = -(-(-(-rows // nr)) // lanes)
    q = _neg_zero(fmt, (lanes, nr, cols))
    for g in range(groups):
        for rho in range(lanes):
            i = (g * lanes + rho) * nr + np.arange(nr)
            valid = i < rows
            if not valid.any():
                continue
            ic = np.minimum(i, rows - 1)
            new = narrow(mac(w[ic], np.broadcast_to(d[ic][:, None], (nr, cols)),
                             widen(q[rho], fmt, acc), fmt, acc), fmt, acc)
            q[rho] = np.where(valid[:, None], new, q[rho])
    total = _neg_zero(acc, (nr, cols))
    one = np.full((nr, cols), _constant(1.0, fmt), dtype=np.uint64)
    for rho in range(lanes):
        total = mac(q[rho], one, total, fmt, acc)
    return narrow(total, fmt, acc).T, q


def cpass_backward(w, d, nr: int, lanes: int, fmt: FloatFormat, acc: FloatFormat):
    """Return ``(z, stored)`` of ``cpass``'s backward, ``z = W^T d`` (operand format): the
    partials of :func:`cpass_backward_partials` (``lanes``: the config's ``acc_lanes``) summed
    down each column by the chain, as in :func:`gemvt`."""
    stored, _ = cpass_backward_partials(w, d, nr, lanes, fmt, acc)
    return narrow(chain_sum(stored, nr, fmt, acc), fmt, acc), stored


def ger(w, u, v, alpha: int, fmt: FloatFormat, acc: FloatFormat, *, wd=None, mom=None,
        mu=None):
    """Return ``(w', mom')`` of the rank-1 update (``mom'`` is None without momentum).

    Per weight: ``g = round_acc(u_i v_j)``; with ``wd``: ``g = g + round_acc(wd * W)``; with
    momentum: ``m = g + round_acc(mu * mom)``, ``mom' = narrow(m)``, and ``g = m``;
    ``W' = narrow(widen(W) + round_acc(alpha * narrow(g)))``. The one-sample case of
    :func:`ger_batch`. The instruction without ``use_wd`` and ``use_mom`` computes
    :func:`ger_accumulate` instead.
    """
    u = np.asarray(u, dtype=np.uint64)[None]
    v = np.asarray(v, dtype=np.uint64)[None]
    return ger_batch(w, u, v, alpha, fmt, acc, wd=wd, mom=mom, mu=mu)


def ger_accumulate(w, u, v, fmt: FloatFormat, acc: FloatFormat) -> np.ndarray:
    """Return ``W'`` of ``ger`` without weight decay and momentum: one MAC per weight into the
    loaded weight, ``W' = narrow(widen(W) + round_acc(u_i v_j))`` (``u`` carries the step)."""
    u = np.asarray(u, dtype=np.uint64)
    v = np.asarray(v, dtype=np.uint64)
    return gemm(u[:, None], v[None, :], w, fmt, acc)


def ger_batch(w, u, v, alpha: int, fmt: FloatFormat, acc: FloatFormat, *, wd=None, mom=None,
              mu=None):
    """Return ``(w', mom')`` of a rank-``B`` update from ``B`` sample pairs ``u[s]``, ``v[s]``.

    Per weight the gradient is summed in the accumulator over the samples in order, ``g =
    (((-0 + round_acc(u_0i v_0j)) + round_acc(u_1i v_1j)) + ...)``, and never rounded to the
    operand format in between; the rest is :func:`ger`'s: weight decay, momentum, then ``W' =
    narrow(widen(W) + round_acc(alpha * narrow(g)))``. With ``B = 1`` this is :func:`ger`.
    """
    w = np.asarray(w, dtype=np.uint64)
    u = np.asarray(u, dtype=np.uint64)
    v = np.asarray(v, dtype=np.uint64)
    rows, cols = w.shape
    g = _neg_zero(acc, (rows, cols))
    for sample in range(u.shape[0]):
        g = mac(np.broadcast_to(u[sample][:, None], (rows, cols)),
                np.broadcast_to(v[sample][None, :], (rows, cols)), g, fmt, acc)
    w_acc = widen(w, fmt, acc)
    if wd is not None:
        g = mac(np.full(w.shape, wd, np.uint64), narrow(w_acc, fmt, acc), g, fmt, acc)
    new_mom = None
    if mom is not None:
        g = mac(np.full(w.shape, mu, np.uint64), np.asarray(mom, dtype=np.uint64), g, fmt, acc)
        new_mom = narrow(widen(narrow(g, fmt, acc), fmt, acc), fmt, acc)
    step = narrow(g, fmt, acc)
    new_w = narrow(mac(np.full(w.shape, alpha, np.uint64), step, w_acc, fmt, acc), fmt, acc)
    return new_w, new_mom


def gemm(a, b, c, fmt: FloatFormat, acc: FloatFormat) -> np.ndarray:
    """Return ``C = A B`` (``c`` None) or ``C + A B``, operand format, the core's way.

    Each element starts from ``widen(C[i, j])`` (or ``-0``) and adds ``round_acc(A[i, p] *
    B[p, j])`` for ``p = 0, 1, ..., K-1`` in order; the sum is rounded once to the operand
    format when it leaves the accumulator.
    """
    a = np.asarray(a, dtype=np.uint64)
    b = np.asarray(b, dtype=np.uint64)
    rows, inner = a.shape
    cols = b.shape[1]
    total = (_neg_zero(acc, (rows, cols)) if c is None
             else widen(np.asarray(c, dtype=np.uint64), fmt, acc))
    for p in range(inner):
        total = mac(np.broadcast_to(a[:, p:p + 1], (rows, cols)),
                    np.broadcast_to(b[p:p + 1, :], (rows, cols)), total, fmt, acc)
    return narrow(total, fmt, acc)


def _gt_zero(x, fmt: FloatFormat) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return n.to_float64(x, fmt) > 0


def vop(fn: str, x, y, alpha: int, fmt: FloatFormat, acc: FloatFormat) -> np.ndarray:
    """Return ``z`` of ``vop fn`` on operand-format vectors ``x``, ``y`` (scalar ``alpha``)."""
    x = np.asarray(x, dtype=np.uint64)
    # Two-input functions pass y through an accumulator slot first (widened, and narrowed
    # again where it is a multiplier operand): identical values, NaN made canonical.
    y = narrow(widen(np.asarray(y, dtype=np.uint64), fmt, acc), fmt, acc)
    a = np.full(x.shape, alpha, np.uint64)
    one = np.full(x.shape, _constant(1.0, fmt), np.uint64)
    minus = np.full(x.shape, _constant(-1.0, fmt), np.uint64)
    zero = _neg_zero(acc, x.shape)
    wx, wy = widen(x, fmt, acc), widen(y, fmt, acc)
    if fn == "copy":
        r = wx
    elif fn == "add":
        r = mac(y, one, wx, fmt, acc)
    elif fn == "sub":
        r = mac(y, minus, wx, fmt, acc)
    elif fn == "mul":
        r = mac(x, y, zero, fmt, acc)
    elif fn == "axpy":
        r = mac(a, x, wy, fmt, acc)
    elif fn == "scale":
        r = mac(a, x, zero, fmt, acc)
    elif fn == "max":
        r = n.maximum(wx, wy, acc).astype(np.uint64)
    elif fn == "maxs":
        r = n.maximum(wx, widen(a, fmt, acc), acc).astype(np.uint64)
    elif fn == "relud":
        r = np.where(_gt_zero(wx, acc), wy, np.uint64(0))
    elif fn == "mseg":
        d = mac(y, minus, wx, fmt, acc)
        r = mac(a, narrow(d, fmt, acc), zero, fmt, acc)
    else:
        raise ValueError(f"unknown vector function {fn!r}")
    return narrow(r, fmt, acc)


#: Names of the ``VOP`` functions, in encoding order (matches ``caterpillar.contract.isa.VecOp``).
VOP_FUNCTIONS = ("copy", "add", "sub", "mul", "axpy", "scale", "max", "maxs", "relud", "mseg")


def _scale_shift(bits, acc: FloatFormat) -> np.ndarray:
    # The exponent-adjust unit reads n from the addend's low bits, two's complement, as wide as
    # needed to cover every exponent that does not saturate (see numerics.scale).
    width = n.scale_exponent_range(acc).bit_length() + 1
    low = np.asarray(bits, dtype=np.int64) & ((1 << width) - 1)
    return np.where(low >= 1 << (width - 1), low - (1 << width), low)


def smxce(x_local, t_local, length: int, nr: int, fmt: FloatFormat, acc: FloatFormat,
          row: int = 0):
    """Return ``z = softmax(x) - t`` as the ``smxce`` micro-program computes it in PE row
    ``row``, and scratch.

    ``x_local[c]``/``t_local[c]`` are the elements ``c, c + nr, ...`` of the logits and targets
    as ``PE(row, c)`` holds them. Steps (docs in ``caterpillar.rtl.kernels``): local maxima, a
    max chain along the row ending in the diagonal ``PE(row, row)`` (from column ``row + 1``
    round to ``row``: the order of the chain's maxima and sums), its broadcast, per element
    ``exp(x - max)`` (clamp, magic-number split ``2**k * 2**f``, Horner polynomial, exponent
    adjust), local sums in order, a sum chain, a reciprocal seed and three Newton steps in
    ``PE(row, row)``, its broadcast, and ``z = e r - t``. Returns ``(z, scratch)``;
    ``scratch[c]`` is what ``PE(row, c)`` leaves in its ``3 ceil(len / nr) + 2`` scratch words
    (``None`` for words never written).
    """
    k = _exp_constants(fmt, acc)
    w = lambda bits: widen(np.asarray(bits, dtype=np.uint64), fmt, acc)  # noqa: E731
    nw = lambda bits: narrow(np.asarray(bits, dtype=np.uint64), fmt, acc)  # noqa: E731
    full = lambda value, size: np.full(size, value, dtype=np.uint64)  # noqa: E731
    per_pe = -(-length // nr)
    counts = [len(range(c, length, nr)) for c in range(nr)]
    x_local = [np.asarray(v, dtype=np.uint64)[:counts[c]] for c, v in enumerate(x_local)]
    t_local = [np.asarray(v, dtype=np.uint64)[:counts[c]] for c, v in enumerate(t_local)]

    def chain(values, op, first):
        total = first
        for q in range(nr):
            total = op(values[(row + q + 1) % nr], total)
        return total

    one = _constant(1.0, fmt)
    local_max = []
    for c in range(nr):
        m = w(k["neg_inf"])
        for value in x_local[c]:
            m = n.maximum(m, w(value), acc).astype(np.uint64)
        local_max.append(m)
    top = chain(local_max, lambda v, tot: n.maximum(tot, w(nw(v)), acc).astype(np.uint64),
                w(k["neg_inf"]))
    top_op = nw(top)

    scratch = [[None] * (3 * per_pe + 2) for _ in range(nr)]
    e_local = []
    for c in range(nr):
        x = x_local[c]
        size = len(x)
        d = mac(full(top_op, size), full(k["minus_one"], size), w(x), fmt, acc)
        dscr = nw(n.maximum(w(nw(d)), full(w(k["lower"]), size), acc))
        t = mac(dscr, full(k["log2e"], size), full(w(k["magic"]), size), fmt, acc)
        kk = mac(full(k["neg_magic"], size), full(one, size), t, fmt, acc)
        g = nw(mac(dscr, full(k["neg_log2e"], size), kk, fmt, acc))
        coefficients = k["coefficients"]
        p = mac(full(coefficients[0], size), g, full(w(coefficients[1]), size), fmt, acc)
        for coefficient in coefficients[2:]:
            p = mac(nw(p), g, full(w(coefficient), size), fmt, acc)
        e = nw(n.scale(w(nw(p)), _scale_shift(t, acc), acc))
        for q in range(size):
            scratch[c][q], scratch[c][per_pe + q], scratch[c][2 * per_pe + q] = \
                int(dscr[q]), int(g[q]), int(e[q])
        e_local.append(e)

    local_sum = []
    for c in range(nr):
        total = w(fmt.sign_mask)
        for value in e_local[c]:
            total = mac(np.uint64(value), np.uint64(one), total, fmt, acc)
        local_sum.append(total)
    total = chain(local_sum, lambda v, tot: mac(nw(v), np.uint64(one), tot, fmt, acc),
                  np.uint64(acc.sign_mask))
    r = np.uint64(n.reciprocal_seed(total, acc))
    neg_s = nw(mac(nw(total), np.uint64(k["minus_one"]), np.uint64(acc.sign_mask), fmt, acc))
    tn = None
    for _ in range(3):
        tn = nw(mac(nw(r), neg_s, w(k["two"]), fmt, acc))
        r = mac(nw(r), tn, np.uint64(acc.sign_mask), fmt, acc)
    scratch[row][3 * per_pe], scratch[row][3 * per_pe + 1] = int(neg_s), int(tn)
    r_op = nw(r)

    z = np.zeros(length, dtype=np.uint64)
    for c in range(nr):
        size = counts[c]
        prod = mac(e_local[c], full(r_op, size), full(acc.sign_mask, size), fmt, acc)
        zz = mac(t_local[c], full(k["minus_one"], size), prod, fmt, acc)
        z[c::nr] = nw(w(nw(zz)))
    return z, scratch
