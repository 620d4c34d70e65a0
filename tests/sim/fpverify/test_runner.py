# amaranth: UnusedElaboratable=no
"""The three backends compute the same bits; operation lookup errors are clear."""

import numpy as np
import pytest

from caterpillar.golden.numerics import BF16, FP16, FP32
from caterpillar.sim.fpverify.bank import FPUBank, bank_ops
from caterpillar.sim.fpverify.cases import random_cases
from caterpillar.sim.fpverify.runner import find_op, run_cases
from tests.helpers import requires_verilator

#: Whole cores or rings in a simulator, or Verilator builds: `make test`, not test-fast.
pytestmark = pytest.mark.integration


def test_find_op_choices_and_errors():
    assert find_op("mac", FP16)[1].key == "mac.fp32"
    assert find_op("mac", FP16, acc=FP16)[1].key == "mac.fp16"
    assert find_op("convert", FP32, to=BF16)[1].key == "convert.bf16"
    with pytest.raises(ValueError, match=r"^convert needs a destination format \(--to\)$"):
        find_op("convert", FP32)
    with pytest.raises(ValueError, match=r"^convert needs a destination format different "
                                         r"from fp32$"):
        find_op("convert", FP32, to=FP32)
    with pytest.raises(ValueError, match=r"^no operation 'div' for fp32; available: add, mul"):
        find_op("div", FP32)


def test_bank_latencies():
    bank = FPUBank(FP32, mul_latency=2, add_latency=3, misc_latency=1)
    assert [bank.latency_of(o.key) for o in bank.ops] == [3, 2, 5, 5, 1, 1, 1, 1]


@requires_verilator
@pytest.mark.parametrize("fmt", [FP16, FP32], ids=str)
def test_golden_amaranth_and_verilator_agree(fmt, rng):
    for index, op in enumerate(bank_ops(fmt)):
        cols = random_cases(op, 64, rng)
        golden = run_cases(index, op, cols, "golden").results
        amaranth = run_cases(index, op, cols, "amaranth", mul_latency=1, add_latency=1)
        verilator = run_cases(index, op, cols, "verilator")
        np.testing.assert_array_equal(amaranth.results, golden, err_msg=op.key)
        np.testing.assert_array_equal(verilator.results, golden, err_msg=op.key)
        assert verilator.cycles >= len(cols[0]) and verilator.results_per_second > 0


def test_unknown_backend():
    index, op = find_op("add", FP16)
    with pytest.raises(ValueError, match=r"^unknown backend 'spice'; choose one of golden, "
                                         r"amaranth, verilator$"):
        run_cases(index, op, [np.zeros(1), np.zeros(1)], "spice")
