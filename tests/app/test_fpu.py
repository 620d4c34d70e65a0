"""Parsing of ``caterpillar fpu`` case lines."""

import numpy as np

from caterpillar.app.fpu import parse_cases
from caterpillar.golden.numerics import FP16, FP32
from caterpillar.sim.fpverify.runner import find_op


def test_well_formed_lines_comments_and_blanks():
    _, op = find_op("mac", FP16)
    parsed = parse_cases(["3c00 0x3C00 3f800000  # one plus one\n", "\n", "# only a comment\n",
                          "0 8000 80000000\n"], op)
    assert parsed.errors == [] and parsed.count == 2
    np.testing.assert_array_equal(parsed.columns[2], [0x3F800000, 0x80000000])


def test_each_malformed_line_is_reported_by_number_and_skipped():
    _, op = find_op("add", FP16)
    parsed = parse_cases(["3c00 3c00", "3c00", "3c00 zz", "10000 1", "-1 1", "3c00 4000"], op)
    assert parsed.errors == [
        "line 2: expected 2 hexadecimal operands (a b) for add, got 1: '3c00'",
        "line 3: operand 2 ('zz') is not a hexadecimal bit pattern",
        "line 4: operand 1 ('10000') does not fit fp16 (16 bits)",
        "line 5: operand 1 ('-1') is not a hexadecimal bit pattern",
    ]
    assert parsed.count == 2
    np.testing.assert_array_equal(parsed.columns[1], [0x3C00, 0x4000])


def test_scale_exponent_is_twos_complement():
    _, op = find_op("scale", FP32)
    parsed = parse_cases(["3f800000 fffffffe", "3f800000 7fffffff"], op)
    np.testing.assert_array_equal(parsed.columns[1], [-2, (1 << 31) - 1])
    assert parse_cases(["3f800000 100000000"], op).errors == [
        "line 1: operand 2 ('100000000') does not fit a 32-bit integer (32 bits)"]
