"""Golden collectives of the ring: the result every core must hold, and its summation order.

Cores are given in segment order (data move from position ``i`` to ``i + 1``, and from the last
to the first on a sub-ring). Vectors are bit patterns of ``fmt``. A vector of ``n`` words is
split into one block per core on whole units of ``unit`` words (:func:`ring_blocks`); sums are
formed along the ring, each core adding its own value to the running sum it receives
(``own + received``), which is the order the ring engine uses.
"""

from __future__ import annotations

import numpy as np

from caterpillar.golden.numerics import FloatFormat, add

__all__ = ["ring_blocks", "broadcast", "chain_reduce", "segmented_chain_reduce",
           "reduce_scatter", "all_gather", "all_reduce"]


def ring_blocks(n: int, parts: int, unit: int) -> list[tuple[int, int]]:
    """Return ``parts`` word ranges ``(start, stop)`` covering ``0..n``, split on units.

    A unit is ``unit`` words (``nr`` for a vector, the leading dimension for the rows of a
    matrix). Block ``j`` holds units ``floor(j R / parts) .. floor((j + 1) R / parts)`` of the
    ``R = ceil(n / unit)`` units; blocks may be empty when ``R < parts``.
    """
    rows = -(-n // unit)
    cuts = [j * rows // parts for j in range(parts + 1)]
    return [(min(cuts[j] * unit, n), min(cuts[j + 1] * unit, n)) for j in range(parts)]


def sample_rows(batch: int, cores: int, nr: int) -> list[int]:
    """The PE row whose ``smxce`` forms each sample's output gradient in a GEMM step: core
    ``k`` of ``cores`` forms its samples ``ring_blocks(batch, cores, 1)[k]``, ``nr`` at once
    (``smxce`` with ``rows``), sample ``lo + j`` in row ``j mod nr``; the row sets the order of
    the softmax's chains (:func:`~caterpillar.golden.kernels.smxce`)."""
    return [(sample - lo) % nr for lo, hi in ring_blocks(batch, cores, 1)
            for sample in range(lo, hi)]


def _sum_along(values: list[np.ndarray], first: int, fmt: FloatFormat) -> np.ndarray:
    """Sum ``values`` from position ``first`` round the ring, ``own + received`` at each hop."""
    c = len(values)
    total = values[first % c].copy()
    for t in range(1, c):
        total = add(values[(first + t) % c], total, fmt)
    return total


def broadcast(vectors: list[np.ndarray], root: int = 0) -> list[np.ndarray]:
    """Every core holds the root's vector."""
    return [vectors[root].copy() for _ in vectors]


def chain_reduce(vectors: list[np.ndarray], fmt: FloatFormat, root: int = 0) -> np.ndarray:
    """The sum the root holds: the chain runs from position ``root + 1`` round to ``root``."""
    return _sum_along(vectors, root + 1, fmt)


def segmented_chain_reduce(vectors: list[np.ndarray], fmt: FloatFormat,
                           lengths) -> np.ndarray:
    """The sum the last position holds after a chain reduce in segments of ``lengths``.

    The positions split, in order, into consecutive segments of ``lengths`` (summing to the
    number of vectors). Each segment sums its vectors along itself, from its first position
    to its last; then the running total, starting with the first segment's sum, passes each
    later segment's last position, which adds its segment's sum (``own + received``). One
    segment is :func:`chain_reduce` to the last position.
    """
    if sum(lengths) != len(vectors) or min(lengths, default=0) < 1:
        raise ValueError(f"segment lengths {tuple(lengths)} do not cover {len(vectors)} "
                         "positions")
    total, start = None, 0
    for length in lengths:
        part = _sum_along(vectors[start:start + length], 0, fmt)
        total = part if total is None else add(part, total, fmt)
        start += length
    return total


def reduce_scatter(vectors: list[np.ndarray], unit: int, fmt: FloatFormat) -> list[np.ndarray]:
    """Block ``i`` of the sum, for each core ``i`` (its sum starts at core ``i + 1``)."""
    blocks = ring_blocks(len(vectors[0]), len(vectors), unit)
    out = []
    for i, (a, b) in enumerate(blocks):
        out.append(_sum_along([v[a:b] for v in vectors], i + 1, fmt))
    return out


def all_gather(vectors: list[np.ndarray], unit: int) -> np.ndarray:
    """The vector every core holds: block ``i`` from core ``i``."""
    blocks = ring_blocks(len(vectors[0]), len(vectors), unit)
    return np.concatenate([vectors[i][a:b] for i, (a, b) in enumerate(blocks)])


def all_reduce(vectors: list[np.ndarray], unit: int, fmt: FloatFormat) -> np.ndarray:
    """The sum every core holds: reduce-scatter, then all-gather."""
    return np.concatenate(reduce_scatter(vectors, unit, fmt))
