"""The ``caterpillar`` command line.

A user mistake (bad option value, bad file, unwritable output) ends with one ``caterpillar:
error: ...`` line and exit status 2, never a traceback, and is found before any long work
starts: every command checks its options and output paths first.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

from caterpillar.app import fpga, fpu
from caterpillar.app import train as train_command
from caterpillar.bench import convergence as bench_convergence
from caterpillar.bench import kernels as bench_kernels
from caterpillar.bench import paper as bench_paper
from caterpillar.bench import scaling as bench_scaling
from caterpillar.bench import training as bench_training
from caterpillar.contract.config import preset, preset_names
from caterpillar.contract.isa import isa_markdown
from caterpillar.contract.registers import registers_markdown
from caterpillar.rtl.board import host_link_document
from caterpillar.sim.flow.synthesis import ToolError
from caterpillar.sim.flow.tops import ports_markdown
from caterpillar.sim.fpverify.selfcheck import format_report, selfcheck
from caterpillar.software.compiler.asm import assemble, disassemble, from_bytes, to_bytes
from caterpillar.software.storage import (
    atomic_write_bytes,
    check_output,
    write_json,
)

__all__ = ["main", "build_parser"]

_positive_int = train_command.positive_int


def _cmd_fpu_selfcheck(args) -> int:
    cfg = preset(args.config)
    out = check_output(args.json, "--json") if args.json else None
    print(f"FP-unit self-check: {args.random} targeted random cases per (format, op) plus "
          f"directed corner cases, on {args.backend}; multiplier/adder latency "
          f"{cfg.mul_latency}/{cfg.add_latency} ({cfg.name}); seed {args.seed}", flush=True)

    def progress(r):
        state = "ok" if r.passed else "MISMATCH"
        print(f"  {r.format:5} {r.op:14} {r.cases:9d} cases  {state}", flush=True)

    results = selfcheck(formats=args.formats, random=args.random, softfloat=args.softfloat,
                        seed=args.seed, backend=args.backend, progress=progress,
                        mul_latency=cfg.mul_latency, add_latency=cfg.add_latency)
    print()
    print(format_report(results))
    for r in results:
        for example in r.examples:
            print(f"mismatch {r.format} {r.op}: {example}")
    if out is not None:
        write_json(out, [r.to_dict() for r in results])
    return 0 if all(r.passed for r in results) else 1


def _read(path: str, what: str, binary: bool = False):
    try:
        return Path(path).read_bytes() if binary else Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ValueError(f"cannot read {what} {path!r}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{what} {path!r} is not text (bad byte at offset {e.start}); "
                         "assembly is UTF-8 text") from None


def _cmd_asm(args) -> int:
    source = Path(args.file)
    output = Path(args.output) if args.output else source.with_suffix(".bin")
    if output.resolve() == source.resolve():
        raise ValueError(f"the output {output} would overwrite the source; pass -o OUT.bin")
    check_output(output, "-o")
    cfg = preset(args.config)
    words = assemble(_read(args.file, "assembly file"), cfg, check=True)
    atomic_write_bytes(output, to_bytes(words))
    print(f"wrote {output} ({len(words)} instructions, checked against config {cfg.name})")
    return 0


def _cmd_disasm(args) -> int:
    words = from_bytes(_read(args.file, "program image", binary=True))
    sys.stdout.write(disassemble(words))
    return 0


def _cmd_docs(args) -> int:
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "isa.md").write_text(isa_markdown())
    (out / "registers.md").write_text(registers_markdown(preset("small")))
    (out / "verilog.md").write_text(ports_markdown(preset("small")))
    (out / "host-link.md").write_text(host_link_document())
    print(f"wrote {out / 'isa.md'}, {out / 'registers.md'}, {out / 'verilog.md'} and "
          f"{out / 'host-link.md'}")
    return 0


def _add_module_command(sub, name: str, help: str, module) -> None:
    """A command whose options and entry point live in ``module`` (``add_arguments``/``run``
    or the ``name``-specific pair) and whose ``--help`` shows the module's docstring."""
    p = sub.add_parser(name, help=help, description=module.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add, run = _MODULE_COMMANDS.get(name, ("add_arguments", "run"))
    getattr(module, add)(p)
    p.set_defaults(func=getattr(module, run))


#: Entry points of the commands that share a module: command -> (options, run).
_MODULE_COMMANDS = {"verilog": ("add_verilog_arguments", "run_verilog"),
                    "synth": ("add_synth_arguments", "run_synth"),
                    "build": ("add_fpga_arguments", "run_fpga_build")}


def _add_fpu(sub):
    _add_module_command(sub, "fpu", "TestFloat-style filter: hex operand lines in, hex results "
                                    "out, on the golden model, Amaranth simulator or Verilator",
                        fpu)


def _add_fpu_selfcheck(sub):
    p = sub.add_parser("fpu-selfcheck", help="check every FP unit of every format against the "
                                             "golden model, NumPy and SoftFloat")
    p.add_argument("--formats", nargs="+", choices=["fp32", "bf16", "fp16"],
                   help="formats to check (default all)")
    p.add_argument("--random", type=_positive_int, default=200_000,
                   help="targeted random cases per (format, op) (default 200000)")
    p.add_argument("--softfloat", type=_positive_int, default=20_000,
                   help="cases per (format, op) also checked against SoftFloat (default 20000)")
    p.add_argument("--backend", choices=["verilator", "amaranth", "golden"],
                   default="verilator")
    p.add_argument("--config", default="small", help="preset giving the latencies")
    p.add_argument("--seed", type=train_command.nonnegative_int, default=1)
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    p.set_defaults(func=_cmd_fpu_selfcheck)


def _add_verilog(sub):
    _add_module_command(sub, "verilog", "write Verilog of the core, a ring, the board top or "
                                        "the MAC units, one file per top", fpga)


def _add_synth(sub):
    _add_module_command(sub, "synth", "yosys synth_ecp5 of the core, one PE or the MAC units: "
                                      "cells, memory mapping, time", fpga)


def _add_fpga(sub):
    p = sub.add_parser("fpga", help="FPGA bitstreams, built offline")
    what = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    _add_module_command(what, "build", "a bitstream for a board: Fmax, resources, size", fpga)


def _add_asm(sub):
    p = sub.add_parser("asm", help="assemble a program (.s) into a binary image (.bin)")
    p.add_argument("file")
    p.add_argument("-o", "--output", help="output file (default: FILE with .bin)")
    p.add_argument("--config", default="small", help="preset whose operand format encodes "
                   "real-number immediates and whose memory sizes every address is checked "
                   "against")
    p.set_defaults(func=_cmd_asm)
    p = sub.add_parser("disasm", help="print the assembly of a binary image")
    p.add_argument("file")
    p.set_defaults(func=_cmd_disasm)


def _add_docs(sub):
    p = sub.add_parser("docs", help="regenerate docs/isa.md, docs/registers.md and "
                                    "docs/verilog.md, docs/host-link.md")
    p.add_argument("-o", "--output", default="docs")
    p.set_defaults(func=_cmd_docs)


def _add_bench(sub):
    p = sub.add_parser("bench", help="benchmarks (cycles, utilization, simulation speed)")
    what = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    kernels = what.add_parser("kernels", help="every kernel and shape on the RTL, nr = 2, 4, 8")
    bench_kernels.add_arguments(kernels)
    kernels.set_defaults(func=bench_kernels.run)
    training = what.add_parser("training", help="utilization per phase of whole training "
                                                "steps (784-256-256-10), digits epoch times")
    bench_training.add_arguments(training)
    training.set_defaults(func=bench_training.run)
    scaling = what.add_parser("scaling", help="the ring: training on 1, 2, 4, 8 cores "
                                              "(784-512-512-10), collective bandwidth")
    bench_scaling.add_arguments(scaling)
    scaling.set_defaults(func=bench_scaling.run)
    convergence = what.add_parser("convergence", help="test accuracy per epoch of SGD, MBGD, "
                                                      "CP, MBCP and DFA (the paper's Fig. 5)")
    bench_convergence.add_arguments(convergence)
    convergence.set_defaults(func=bench_convergence.run)


def _add_paper(sub):
    p = sub.add_parser("paper", help="the paper's cases (N1, N2, N3 x every algorithm) on Ray: "
                                     "Table 2, utilization, GFLOPS/mm^2, area, beside the "
                                     "paper's values")
    bench_paper.add_arguments(p)
    p.set_defaults(func=bench_paper.run)


def _add_train(sub):
    p = sub.add_parser("train", help="train an MLP on the simulated hardware (digits/MNIST), "
                                     "checked against the golden trainer on request",
                       description=train_command.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    train_command.add_arguments(p)
    p.set_defaults(func=train_command.run)


def _add_compile(sub):
    p = sub.add_parser("compile", help="compile a training graph: instructions, cycles and "
                                       "utilization per phase, optionally saved")
    train_command.add_compile_arguments(p)
    p.set_defaults(func=train_command.run_compile)


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (no usage dump)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    """Return the ``caterpillar`` argument parser."""
    parser = OneLineParser(
        prog="caterpillar",
        description="CATERPILLAR DNN-training accelerator: RTL, golden model and tools. "
                    f"Config presets: {', '.join(preset_names())}.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_fpu, _add_fpu_selfcheck, _add_verilog, _add_synth, _add_fpga, _add_asm,
                _add_docs, _add_bench, _add_paper, _add_train, _add_compile):
        add(sub)
    return parser


def main(argv=None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:
        # The reader left (`caterpillar compile ... | head`): stop quietly, as `head`'s
        # writers do, without the interpreter's flush error on the closed pipe at exit.
        _silence_stdout()
        return 141
    except (ValueError, OSError) as e:
        parser.exit(2, f"caterpillar: error: {_one_line(e)}\n")
    except ToolError as e:                  # a tool is missing or failed: not a usage error
        parser.exit(1, f"caterpillar: error: {e}\n")
    except KeyboardInterrupt:
        return 130


def _silence_stdout() -> None:
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass                                # not a file descriptor (a captured stream)


def _one_line(error: Exception) -> str:
    text = str(error) or type(error).__name__
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())

