"""The fast training path: the golden trainers' steps in vectorised float32 (docs/training.md).

:class:`FastTrainer` is :class:`~caterpillar.golden.trainer.GoldenTrainer` with other
arithmetic: every sum of a step (GEMV, GEMM, the rank-B update, the softmax) is a NumPy float32
operation, and every value the hardware stores (weights, biases, momenta, activations,
pre-activations, deltas, the output gradient) is rounded to the operand format, to nearest even
with subnormals (:data:`ROUNDING`: on float32 bit patterns, the values NumPy's ``float16`` and
the golden model's bfloat16 conversion give, several times faster). What it does not reproduce
is the hardware's order of summation and its accumulator's rounding of each partial sum, so it
agrees with the bit-exact trainer closely but not bit for bit
(tests/software/training/test_fast.py bounds the difference over the first steps). The step
logic is the golden trainer's own (SGD, MBGD, DFA; CP and MBCP through
:class:`~caterpillar.golden.pipelined.PipelinedTrainer`), so the algorithms are the same; only
the primitives differ. Tensors are float32 values instead of bit patterns: inputs, targets and
scalars come in as bit patterns (as for the golden trainer) and ``predict`` returns float
logits.

It exists for studies at the paper's scale (tens of epochs of N1 on MNIST-5k), which the
bit-exact trainer cannot run in Python in reasonable time.
"""

from __future__ import annotations

import numpy as np

from caterpillar.golden.trainer import GoldenTrainer, to_float

__all__ = ["FastTrainer", "ROUNDING", "round_fp16", "round_mantissa"]

#: Float32 bit patterns (sign cleared) of fp16's smallest normal magnitude, 2^-14, and of its
#: largest finite value, 65504.
_FP16_MIN_NORMAL_BITS, _FP16_MAX_BITS = np.uint32(0x38800000), np.uint32(0x477FE000)
_SIGN, _INF_BITS = np.uint32(0x80000000), np.uint32(0x7F800000)
#: Added and subtracted, it rounds a magnitude below 2^-14 to a multiple of 2^-24 (fp16's
#: subnormal step): 0.75's float32 ulp is 2^-24, so float32's own rounding is the one wanted.
_FP16_SUBNORMAL_SHIFT = np.float32(0.75)


def _rounded_bits(x, drop: int):
    """``x``'s float32 bit patterns (flat) and those rounded to ``23 - drop`` fraction bits,
    to nearest even (a carry into the exponent is the right result; NaN's are not kept)."""
    bits = np.asarray(x, dtype=np.float32).reshape(-1).view(np.uint32)
    rounded = (bits >> np.uint32(drop)) & np.uint32(1)
    rounded += np.uint32((1 << (drop - 1)) - 1)
    rounded += bits
    rounded &= np.uint32(~((1 << drop) - 1) & 0xFFFFFFFF)
    return bits, rounded


def _keep_nans(bits, rounded, magnitude=None) -> np.ndarray:
    """``rounded`` as float32 values, with ``bits``' NaNs put back (``magnitude``: ``bits``
    without the sign, if at hand)."""
    nan = (bits & ~_SIGN if magnitude is None else magnitude) > _INF_BITS
    if nan.any():
        rounded[nan] = bits[nan]
    return rounded.view(np.float32)


def round_mantissa(x: np.ndarray, drop: int) -> np.ndarray:
    """Float32 ``x`` rounded to ``23 - drop`` fraction bits, to nearest even, as float32 values,
    on the bit patterns; infinities and NaNs kept. With ``drop`` 16 this is bfloat16 exactly
    (its exponent is float32's, and float32's subnormals round as bfloat16's); fp16 also needs
    :func:`round_fp16`'s range."""
    return _keep_nans(*_rounded_bits(x, drop)).reshape(np.shape(x))


def round_fp16(x: np.ndarray) -> np.ndarray:
    """Float32 ``x`` rounded to fp16 (nearest even, subnormals, overflow to infinity), as
    float32: the values of ``x.astype(np.float16).astype(np.float32)`` (tested on every class
    of input), a few times faster (NumPy's cast measured 1.04 ms per 250,000 values here, the
    fast path's largest cost on N1)."""
    bits, rounded = _rounded_bits(x, 13)
    magnitude = bits & ~_SIGN
    # Below 2^-14 but not zero (zeros, common after a ReLU, are right already): the wrap of
    # 0 - 1 keeps them out.
    small = magnitude - np.uint32(1) < _FP16_MIN_NORMAL_BITS - np.uint32(1)
    if small.any():
        tiny = bits[small].view(np.float32)
        rounded[small] = ((tiny + _FP16_SUBNORMAL_SHIFT) - _FP16_SUBNORMAL_SHIFT).view(
            np.uint32) & ~_SIGN | bits[small] & _SIGN
    big = (rounded & ~_SIGN) > _FP16_MAX_BITS
    if big.any():
        rounded[big] = bits[big] & _SIGN | _INF_BITS
    return _keep_nans(bits, rounded, magnitude).reshape(np.shape(x))


def _round_bf16(x: np.ndarray) -> np.ndarray:
    return round_mantissa(x, 16)


def _copy_fp32(x: np.ndarray) -> np.ndarray:
    # A new array, as the other roundings return: a caller may change it in place.
    return np.array(x, dtype=np.float32)


#: Operand format -> its rounding of float32 values (nearest even, subnormals), as a new
#: float32 array.
ROUNDING = {"fp32": _copy_fp32, "fp16": round_fp16, "bf16": _round_bf16}


class FastTrainer(GoldenTrainer):
    """A :class:`GoldenTrainer` whose arithmetic is float32 with stored values rounded to the
    operand format. Takes the same parameters (``weights`` as bit patterns)."""

    def __init__(self, sizes, loss, nr, fmt, acc, weights, **kwargs):
        super().__init__(sizes, loss, nr, fmt, acc, weights, **kwargs)
        self._rounding = ROUNDING[fmt.name]
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

    def output_gradient(self, h, target, s) -> np.ndarray:
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

