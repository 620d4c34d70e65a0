"""The fast training path: the golden trainers' steps in vectorised float32 (docs/training.md).

:class:`FastTrainer` is :class:`~caterpillar.golden.trainer.GoldenTrainer` with other
arithmetic: every sum of a step (GEMV, GEMM, the rank-B update, the softmax) is a NumPy float32
operation, and every value the hardware stores (weights, biases, momenta, activations,
pre-activations, deltas, the output gradient) is rounded to the operand format, to nearest even
with subnormals (:func:`format_rounding`: on float32 bit patterns, the golden model's
conversion's values, several times faster). What it does not reproduce is the hardware's order
of summation and its accumulator's rounding of each partial sum, so it agrees with the
bit-exact trainer closely but not bit for bit (tests/software/training/test_fast.py bounds the
difference over the first steps). The step logic is the golden trainer's own (SGD, MBGD,
DFA; CP and MBCP through :class:`~caterpillar.golden.pipelined.PipelinedTrainer`), so the
algorithms are the same; only the primitives differ. Tensors are float32 values instead of
bit patterns: inputs, targets and scalars come in as bit patterns (as for the golden trainer)
and ``predict`` returns float logits.

It exists for studies at the paper's scale (tens of epochs of N1 on MNIST-5k), which the
bit-exact trainer cannot run in Python in reasonable time.
"""

from __future__ import annotations

import numpy as np

from caterpillar.golden.numerics import FP32, FloatFormat
from caterpillar.golden.trainer import GoldenTrainer, to_float

__all__ = ["FastTrainer", "format_rounding"]

_SIGN, _INF_BITS = np.uint32(FP32.sign_mask), np.uint32(FP32.inf)


def _float32_bits(value: float) -> np.uint32:
    return np.float32(value).view(np.uint32)


def format_rounding(fmt: FloatFormat):
    """Return the function that rounds float32 arrays to ``fmt`` (nearest even, subnormals,
    overflow to infinity, NaNs kept) into a new float32 array, on the float32 bit patterns:
    the values of the golden model's conversion (and of NumPy's ``float16`` cast) bit for bit,
    a few times faster (NumPy's cast measured 1.04 ms per 250,000 values here, the fast path's
    largest cost on N1; this 0.33 ms). ``fmt`` must fit float32 (fp32, bf16, fp16).

    Normal magnitudes drop ``23 - man_bits`` fraction bits (adding half an ulp less one plus
    the kept lsb, then masking: a carry into the exponent is the right result); magnitudes
    below ``fmt``'s smallest normal go to a multiple of its subnormal step by adding and
    subtracting ``1.5 * 2^23`` steps, whose float32 ulp is one step (float32's own rounding);
    beyond its largest finite value, infinity."""
    drop = FP32.man_bits - fmt.man_bits
    if fmt.exp_bits > FP32.exp_bits or drop < 0:
        raise ValueError(f"the fast path holds values in float32; {fmt} does not fit")
    if drop == 0:
        return lambda x: np.array(x, dtype=np.float32)    # a new array, as below

    def value(bits: int) -> float:
        return float(to_float(np.uint64(bits), fmt))

    min_normal = _float32_bits(value(1 << fmt.man_bits))
    max_finite = _float32_bits(value(fmt.max_normal))
    shift = np.float32(1.5 * 2.0 ** FP32.man_bits * value(1))     # value(1): the step
    half, keep = np.uint32((1 << (drop - 1)) - 1), np.uint32(~((1 << drop) - 1) & 0xFFFFFFFF)

    def rounding(x: np.ndarray) -> np.ndarray:
        bits = np.asarray(x, dtype=np.float32).reshape(-1).view(np.uint32)
        rounded = (bits >> np.uint32(drop)) & np.uint32(1)
        rounded += half
        rounded += bits
        rounded &= keep
        magnitude = bits & ~_SIGN
        # Below the smallest normal but not zero (zeros, common after a ReLU, are right
        # already): the wrap of 0 - 1 keeps them out.
        small = magnitude - np.uint32(1) < min_normal - np.uint32(1)
        if small.any():
            tiny = bits[small].view(np.float32)
            rounded[small] = ((tiny + shift) - shift).view(np.uint32) & ~_SIGN \
                | bits[small] & _SIGN
        big = (rounded & ~_SIGN) > max_finite
        if big.any():
            rounded[big] = bits[big] & _SIGN | _INF_BITS
        nan = magnitude > _INF_BITS
        if nan.any():
            rounded[nan] = bits[nan]
        return rounded.view(np.float32).reshape(np.shape(x))

    return rounding


class FastTrainer(GoldenTrainer):
    """A :class:`GoldenTrainer` whose arithmetic is float32 with stored values rounded to the
    operand format. Takes the same parameters (``weights`` as bit patterns)."""

    def __init__(self, sizes, loss, nr, fmt, acc, weights, **kwargs):
        super().__init__(sizes, loss, nr, fmt, acc, weights, **kwargs)
        self._rounding = format_rounding(fmt)
        self.weights = [(self._bits_in(w), self._bits_in(b)) for w, b in self.weights]
        self.moments = [(np.zeros_like(w), np.zeros_like(b)) for w, b in self.weights]
        if self.feedback is not None:
            self.feedback = [self._bits_in(f) for f in self.feedback]
        self.one = np.float32(1.0)

    def _bits_in(self, bits) -> np.ndarray:
        return to_float(bits, self.fmt).astype(np.float32)

    def _round(self, x) -> np.ndarray:
        """``x`` rounded to the operand format, as float32 values."""
        x = np.asarray(x, dtype=np.float32)
        return self._rounding(x)

    def _scalar(self, bits) -> np.float32:
        return np.float32(to_float(np.uint64(bits), self.fmt))

    # -- the primitives ----------------------------------------------------------------------

    def _tensor(self, x) -> np.ndarray:
        # Bit patterns come in (uint64); values already converted pass through.
        x = np.asarray(x)
        return x if x.dtype == np.float32 else self._bits_in(x)

    def _ones(self, shape) -> np.ndarray:
        return np.ones(shape, dtype=np.float32)

    def _vop(self, fn, x, y, alpha):
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.float32)
        a = self._scalar(alpha)
        if fn == "add":
            r = x + y
        elif fn == "maxs":
            r = np.maximum(x, a)
        elif fn == "relud":
            r = np.where(x > 0, y, np.float32(0))
        elif fn == "scale":
            r = a * x
        elif fn == "axpy":
            r = a * x + y
        elif fn == "mseg":
            r = a * self._round(x - y)
        else:
            raise ValueError(f"the fast path has no vector function {fn!r}")
        return self._round(r)

    def _gemv(self, w, a, cores, chain=False, bias=None) -> np.ndarray:
        return self._round(w @ a if bias is None else w @ a + bias[0])

    def _gemvt(self, w, d) -> np.ndarray:
        return self._round(w.T @ d)

    def _gemm(self, a, b, c=None) -> np.ndarray:
        return self._round(a @ b if c is None else c + a @ b)

    def _gemm_chunked(self, a, b, c=None) -> np.ndarray:
        return self._gemm(a, b, c)

    def _ger_batch(self, w, d, a, mw, s):
        g = d.T @ a
        if self.use_wd:
            g = g + self._scalar(s["wd"]) * w
        new_mw = None
        if self.use_mom:
            g = self._round(self._scalar(s["mu"]) * mw + g)
            new_mw = g
        return self._round(w + self._scalar(s["neg_lr"]) * self._round(g)), new_mw

    def cpass_backward(self, w, d, lanes: int) -> np.ndarray:
        return self._round(w.T @ d)

    def _weights_t_delta(self, w, d, cores) -> np.ndarray:
        return self._round(w.T @ d.T)

    def _columns_logits(self, p, a, cores) -> np.ndarray:
        return self._round(p @ a)

    def output_gradient(self, h, target, s, row=0) -> np.ndarray:
        # (The row sets only the order of the exact softmax's chains.)
        h = np.asarray(h, dtype=np.float32)
        if self.loss == "softmax_ce":
            e = np.exp(h - h.max())
            p = e / e.sum()
            p[int(target)] -= 1
            return self._round(p)
        return self._vop("mseg", h, self._tensor(target), s["mse"])

    def predict(self, x) -> np.ndarray:
        """Float logits of inputs ``x`` (``n x in`` bit patterns)."""
        a = self._tensor(x)
        for index, (w, b) in enumerate(self.weights):
            h = self._round(self._round(a @ w.T) + b)
            a = np.maximum(h, 0) if index + 1 < len(self.weights) else h
        return a

    def float_weights(self) -> list:
        """``[(W, b), ...]`` as float32 arrays (values of the operand format)."""
        return [(w.copy(), b.copy()) for w, b in self.weights]

