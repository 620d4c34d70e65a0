"""``caterpillar fpu``: a TestFloat-style filter over the floating-point units.

Reads one case per line (hexadecimal operand bit patterns separated by spaces), computes every
well-formed case on the chosen backend and prints one hexadecimal result per case, in order.
Malformed lines are reported on stderr with their line number; they produce no result and do
not stop the others. Blank lines and ``#`` comments are ignored.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np

from caterpillar.contract.config import preset
from caterpillar.golden.numerics import format_by_name
from caterpillar.sim.fpverify.runner import BACKENDS, find_op, run_cases

__all__ = ["parse_cases", "add_arguments", "run"]

_OPERAND_NAMES = {"add": "a b", "mul": "a b", "max": "a b", "mac": "a b acc", "convert": "x",
                  "scale": "x n"}


@dataclass
class ParsedCases:
    """Operand columns of the well-formed lines, and one message per malformed line."""

    columns: list = field(default_factory=list)
    errors: list = field(default_factory=list)

    @property
    def count(self) -> int:
        """Number of well-formed cases."""
        return len(self.columns[0]) if self.columns else 0


def parse_cases(lines, op) -> ParsedCases:
    """Parse case lines for bank operation ``op``.

    Each operand is a hexadecimal bit pattern (an optional ``0x`` prefix is accepted) that must
    fit its format; ``scale``'s ``n`` is a 32-bit two's-complement integer in hexadecimal.
    """
    widths = [op.in_fmt.width] * op.arity
    formats = [op.in_fmt.name] * op.arity
    if op.op == "mac":
        widths[2], formats[2] = op.out_fmt.width, op.out_fmt.name
    if op.op == "scale":
        widths[1], formats[1] = 32, "a 32-bit integer"
    rows, errors = [], []
    for number, raw in enumerate(lines, 1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        tokens = text.split()
        if len(tokens) != op.arity:
            errors.append(f"line {number}: expected {op.arity} hexadecimal operand"
                          f"{'s' if op.arity > 1 else ''} ({_OPERAND_NAMES[op.op]}) for "
                          f"{op.key}, got {len(tokens)}: {text!r}")
            continue
        values = []
        for position, (token, width, fmt_name) in enumerate(zip(tokens, widths, formats), 1):
            digits = token[2:] if token.lower().startswith("0x") else token
            try:
                value = int(digits, 16)
                if digits.startswith(("+", "-")) or "_" in digits:
                    raise ValueError
            except ValueError:
                errors.append(f"line {number}: operand {position} ({token!r}) is not a "
                              f"hexadecimal bit pattern")
                break
            if value >> width:
                errors.append(f"line {number}: operand {position} ({token!r}) does not fit "
                              f"{fmt_name} ({width} bits)")
                break
            if op.op == "scale" and position == 2 and value >> 31:
                value -= 1 << 32
            values.append(value)
        else:
            rows.append(values)
    columns = [np.array([r[i] for r in rows], dtype=np.int64) for i in range(op.arity)]
    return ParsedCases(columns if rows else [], errors)


def add_arguments(parser) -> None:
    """Add the ``fpu`` options to an argparse parser."""
    parser.add_argument("--op", required=True, choices=list(_OPERAND_NAMES),
                        help="operation; mac reads 'a b acc', scale reads 'x n' (x * 2**n)")
    parser.add_argument("--format", required=True, choices=["fp32", "bf16", "fp16"],
                        help="operand format")
    parser.add_argument("--acc-format", choices=["fp32", "fp16"], default=None,
                        help="accumulator format of mac (default fp32)")
    parser.add_argument("--to", choices=["fp32", "bf16", "fp16"],
                        help="destination format of convert")
    parser.add_argument("--backend", choices=BACKENDS, default="verilator",
                        help="where to compute (default verilator)")
    parser.add_argument("--config", default="small",
                        help="config preset whose multiplier/adder latencies the simulated "
                             "units use (default small)")
    parser.add_argument("--input", metavar="FILE", help="read cases from FILE, not stdin")


def run(args) -> int:
    """Run the ``fpu`` command; return the exit status (1 if any line was malformed)."""
    cfg = preset(args.config)
    fmt = format_by_name(args.format)
    if args.op != "mac" and args.acc_format is not None:
        raise ValueError(f"--acc-format applies to --op mac only, not {args.op}")
    if (args.to is not None) != (args.op == "convert"):
        raise ValueError("--to is required with --op convert and only allowed there")
    index, op = find_op(args.op, fmt, acc=format_by_name(args.acc_format or "fp32"),
                        to=format_by_name(args.to) if args.to else None)
    if args.input:
        try:
            with open(args.input, encoding="utf-8") as f:
                lines = f.readlines()
        except OSError as e:
            raise ValueError(f"cannot read --input {args.input!r}: {e.strerror}") from None
        except UnicodeDecodeError as e:
            raise ValueError(f"--input {args.input!r} is not text (bad byte at offset "
                             f"{e.start})") from None
    else:
        lines = sys.stdin.readlines()
    parsed = parse_cases(lines, op)
    for message in parsed.errors:
        print(f"caterpillar fpu: {message}", file=sys.stderr)
    if parsed.count:
        results = run_cases(index, op, parsed.columns, args.backend,
                            mul_latency=cfg.mul_latency, add_latency=cfg.add_latency).results
        digits = (op.out_fmt.width + 3) // 4
        sys.stdout.write("".join(f"{int(r):0{digits}x}\n" for r in results))
    return 1 if parsed.errors else 0
