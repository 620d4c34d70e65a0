"""The million-case check of every FP unit on Verilator against NumPy, golden and SoftFloat."""

import pytest

from caterpillar.golden.numerics import FORMATS
from caterpillar.sim.fpverify.bank import bank_ops
from caterpillar.sim.fpverify.selfcheck import check_op, format_report
from tests.helpers import requires_verilator

ALL_OPS = [(name, index, op) for name in FORMATS
           for index, op in enumerate(bank_ops(FORMATS[name]))]


@requires_verilator
@pytest.mark.slow
@pytest.mark.parametrize("name,index,op", ALL_OPS, ids=[f"{n}-{o.key}" for n, _, o in ALL_OPS])
def test_million_random_cases_match_every_reference(name, index, op, seed):
    result = check_op(index, op, random=1_000_000, softfloat=100_000, seed=seed)
    print(format_report([result]))
    assert result.cases >= 1_000_000
    assert result.softfloat_cases == 100_000
    assert result.golden_mismatches == 0, result.examples
    assert result.numpy_mismatches == 0, result.examples
    assert result.softfloat_mismatches == 0, result.examples


@requires_verilator
def test_selfcheck_detects_a_wrong_reference(monkeypatch):
    """The comparison can fail: corrupt the golden model and the check must report it."""
    import caterpillar.sim.fpverify.selfcheck as selfcheck_module

    index, op = next((i, o) for i, o in enumerate(bank_ops(FORMATS["fp16"])) if o.op == "add")
    real = selfcheck_module.golden_op
    monkeypatch.setattr(selfcheck_module, "golden_op",
                        lambda op, *cols: real(op, *cols) ^ 1)
    result = check_op(index, op, random=1000, softfloat=100, seed=1)
    assert not result.passed
    assert result.golden_mismatches == result.cases
    assert result.numpy_mismatches == 0 and result.examples
