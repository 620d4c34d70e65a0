"""The ``caterpillar`` command line.

Subcommands that touch the hardware import the simulation layer lazily, so ``caterpillar
--help`` and the pure-software commands start fast. A user mistake (bad option value, bad file)
ends with one ``caterpillar: error: ...`` line and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["main"]


def _cmd_fpu(args) -> int:
    from caterpillar.sim import fpu_tool

    return fpu_tool.run(args)


def _add_fpu(sub):
    from caterpillar.sim import fpu_tool  # noqa: F401  (argparse needs only the options)

    p = sub.add_parser("fpu", help="TestFloat-style filter: hex operand lines in, hex results "
                                   "out, on the golden model, Amaranth simulator or Verilator",
                       description=fpu_tool.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    fpu_tool.add_arguments(p)
    p.set_defaults(func=_cmd_fpu)


def _cmd_fpu_selfcheck(args) -> int:
    from caterpillar.rtl.config import preset
    from caterpillar.sim.fpu_selfcheck import format_report, selfcheck

    cfg = preset(args.config)
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
    if args.json:
        Path(args.json).write_text(json.dumps([r.to_dict() for r in results], indent=2))
    return 0 if all(r.passed for r in results) else 1


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
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    p.set_defaults(func=_cmd_fpu_selfcheck)


def _cmd_verilog(args) -> int:
    from caterpillar.rtl.config import preset
    from caterpillar.rtl.fp.mac import FPMac
    from caterpillar.rtl.fp.mac_array import MacArray
    from caterpillar.sim.verilog import convert

    cfg = preset(args.config)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    lat = {"mul_latency": cfg.mul_latency, "add_latency": cfg.add_latency}
    tag = f"{cfg.operand_format}_{cfg.acc_format}"
    designs = {
        f"mac_{tag}": FPMac(cfg.operand, cfg.acc, **lat),
        f"mac_array16_{tag}": MacArray(cfg.operand, cfg.acc, count=16, **lat),
    }
    for name, component in designs.items():
        path = out / f"{name}.v"
        path.write_text(convert(component, name))
        print(f"wrote {path}")
    return 0


def _add_verilog(sub):
    p = sub.add_parser("verilog", help="write Verilog of the MAC unit and a 16-MAC array")
    p.add_argument("--config", default="small", help="config preset (formats and latencies)")
    p.add_argument("-o", "--output", default="build/verilog", help="output directory")
    p.set_defaults(func=_cmd_verilog)


def _cmd_synth(args) -> int:
    from caterpillar.rtl.config import preset
    from caterpillar.sim.synthesis import estimate_mac_cells, format_cell_table

    cfg = preset(args.config)
    rows = estimate_mac_cells(formats=tuple(args.formats), acc=cfg.acc_format,
                              mul_latency=cfg.mul_latency, add_latency=cfg.add_latency)
    print(format_cell_table(rows))
    return 0


def _add_synth(sub):
    p = sub.add_parser("synth", help="yosys synth_ecp5 cell counts of the MAC unit")
    p.add_argument("--estimate", action="store_true", required=True,
                   help="synthesise only (no place and route): print cell counts")
    p.add_argument("--formats", nargs="+", default=["fp32", "bf16"],
                   choices=["fp32", "bf16", "fp16"], help="operand formats (default fp32 bf16)")
    p.add_argument("--config", default="small", help="preset giving accumulator and latencies")
    p.set_defaults(func=_cmd_synth)


def _cmd_asm(args) -> int:
    from caterpillar.rtl.config import preset

    from .asm import assemble, to_bytes

    source = Path(args.file)
    try:
        text = source.read_text()
    except OSError as e:
        raise ValueError(f"cannot read {args.file!r}: {e.strerror}") from None
    words = assemble(text, preset(args.config))
    output = Path(args.output or source.with_suffix(".bin"))
    output.write_bytes(to_bytes(words))
    print(f"wrote {output} ({len(words)} instructions)")
    return 0


def _cmd_disasm(args) -> int:
    from .asm import disassemble, from_bytes

    try:
        data = Path(args.file).read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read {args.file!r}: {e.strerror}") from None
    sys.stdout.write(disassemble(from_bytes(data)))
    return 0


def _add_asm(sub):
    p = sub.add_parser("asm", help="assemble a program (.s) into a binary image (.bin)")
    p.add_argument("file")
    p.add_argument("-o", "--output", help="output file (default: FILE with .bin)")
    p.add_argument("--config", default="small", help="preset whose operand format encodes "
                                                     "real-number immediates")
    p.set_defaults(func=_cmd_asm)
    p = sub.add_parser("disasm", help="print the assembly of a binary image")
    p.add_argument("file")
    p.set_defaults(func=_cmd_disasm)


def _cmd_docs(args) -> int:
    from caterpillar.rtl.config import preset
    from caterpillar.rtl.isa import isa_markdown
    from caterpillar.rtl.regmap import registers_markdown

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "isa.md").write_text(isa_markdown())
    (out / "registers.md").write_text(registers_markdown(preset("small")))
    print(f"wrote {out / 'isa.md'} and {out / 'registers.md'}")
    return 0


def _add_docs(sub):
    p = sub.add_parser("docs", help="regenerate docs/isa.md and docs/registers.md")
    p.add_argument("-o", "--output", default="docs")
    p.set_defaults(func=_cmd_docs)


def _cmd_bench(args) -> int:
    from caterpillar.sim import bench_kernels

    return bench_kernels.run(args)


def _add_bench(sub):
    from caterpillar.sim import bench_kernels

    p = sub.add_parser("bench", help="benchmarks (cycles, utilization, simulation speed)")
    what = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    kernels = what.add_parser("kernels", help="every kernel and shape on the RTL, nr = 2, 4, 8")
    bench_kernels.add_arguments(kernels)
    kernels.set_defaults(func=_cmd_bench)
    from caterpillar.sim import bench_training

    training = what.add_parser("training", help="utilization per phase of whole training "
                                                "steps (784-256-256-10), digits epoch times")
    bench_training.add_arguments(training)
    training.set_defaults(func=lambda args: bench_training.run(args))
    from caterpillar.sim import bench_scaling

    scaling = what.add_parser("scaling", help="the ring: training on 1, 2, 4, 8 cores "
                                              "(784-512-512-10), collective bandwidth")
    bench_scaling.add_arguments(scaling)
    scaling.set_defaults(func=lambda args: bench_scaling.run(args))


def _cmd_train(args) -> int:
    from caterpillar.sim.devices import run_training_on

    from . import train_cli

    return train_cli.run(args, run_training_on)


def _add_train(sub):
    from . import train_cli

    p = sub.add_parser("train", help="train an MLP on the simulated core (digits/MNIST), "
                                     "checked against the golden trainer on request",
                       description=train_cli.__doc__)
    train_cli.add_arguments(p)
    p.set_defaults(func=_cmd_train)


def _add_compile(sub):
    from . import train_cli

    p = sub.add_parser("compile", help="compile a training graph: instructions, cycles and "
                                       "utilization per phase, optionally saved")
    train_cli.add_compile_arguments(p)
    p.set_defaults(func=lambda args: train_cli.run_compile(args))


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the ``caterpillar`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="caterpillar",
        description="CATERPILLAR DNN-training accelerator: RTL, golden model and tools.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_fpu, _add_fpu_selfcheck, _add_verilog, _add_synth, _add_asm, _add_docs,
                _add_bench, _add_train, _add_compile):
        add(sub)
    return parser


def main(argv=None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as e:
        parser.exit(2, f"caterpillar: error: {e}\n")
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
