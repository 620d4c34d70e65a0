"""Golden collectives: block split and the order of the sums."""

import numpy as np
import pytest

from caterpillar.golden import collectives as gc
from caterpillar.golden.numerics import FORMATS, from_float, to_float64

FP32 = FORMATS["fp32"]


@pytest.mark.parametrize("n,parts,nr", [(1, 4, 2), (7, 3, 2), (64, 4, 4), (13, 8, 4),
                                        (100, 5, 8)])
def test_blocks_cover_the_vector_on_row_boundaries(n, parts, nr):
    blocks = gc.ring_blocks(n, parts, nr)
    assert len(blocks) == parts and blocks[0][0] == 0 and blocks[-1][1] == n
    for (a, b), (c, _) in zip(blocks, blocks[1:]):
        assert a <= b == c and a % nr == 0
    sizes = [b - a for a, b in blocks]
    assert max(sizes) - min(sizes) <= nr * 2


def test_sums_run_round_the_ring_in_order():
    # 1e8 + 1 - 1e8 depends on the order in fp32: the chain to root 0 starts at position 1.
    vectors = [from_float([x], FP32) for x in (-1e8, 1e8, 1.0)]
    assert to_float64(gc.chain_reduce(vectors, FP32, root=0), FP32)[0] == 0.0  # (1e8+1)-1e8
    assert to_float64(gc.chain_reduce(vectors, FP32, root=2), FP32)[0] == 1.0  # (-1e8+1e8)+1
    # One word is block 2 of 3, so its sum starts at position 0, as the chain to root 2.
    assert to_float64(gc.all_reduce(vectors, 1, FP32), FP32)[0] == 1.0


def test_segments_sum_first_and_the_running_total_gathers_their_sums():
    # 1e8 - 1e8 + 1 depends on the order in fp32: which positions sum first.
    vectors = [from_float([x], FP32) for x in (1e8, -1e8, 1.0)]
    one = lambda lengths: to_float64(gc.segmented_chain_reduce(vectors, FP32, lengths),  # noqa
                                     FP32)[0]
    assert one((2, 1)) == 1.0                       # (1e8 + -1e8) first, then + 1
    assert one((1, 2)) == 0.0                       # (-1e8 + 1) = -1e8 first, then + 1e8
    assert one((3,)) == 1.0 == to_float64(gc.chain_reduce(vectors, FP32, root=2), FP32)[0]
    for lengths in [(2, 2), (0, 3), (4,)]:
        with pytest.raises(ValueError, match="do not cover 3 positions"):
            gc.segmented_chain_reduce(vectors, FP32, lengths)


def test_all_gather_and_reduce_scatter_agree_with_numpy(rng):
    vectors = [from_float(rng.integers(-8, 8, 11), FP32) for _ in range(3)]
    np.testing.assert_array_equal(gc.all_reduce(vectors, 2, FP32),
                                  from_float(sum(to_float64(v, FP32) for v in vectors), FP32))
    gathered = gc.all_gather(vectors, 2)
    for i, (a, b) in enumerate(gc.ring_blocks(11, 3, 2)):
        np.testing.assert_array_equal(gathered[a:b], vectors[i][a:b])
