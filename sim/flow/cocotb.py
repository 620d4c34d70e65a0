"""Run cocotb test modules on generated Verilog with Icarus or Verilator (cocotb 2.x runner)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from caterpillar.sim.flow.lint import waiver_flags
from caterpillar.sim.flow.toolchain import build_root, prepare_environment

__all__ = ["run_cocotb", "waves_requested"]


def waves_requested() -> bool:
    """Return whether ``WAVES`` asks for waveforms (``1``, ``yes``, ``true``, ``on``; ``0``,
    ``no``, ``false``, ``off`` or unset do not, in any case)."""
    value = os.environ.get("WAVES", "0").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"WAVES={os.environ['WAVES']!r}: use WAVES=1 (waveforms) or WAVES=0")


def run_cocotb(sim: str, verilog: Path, toplevel: str, test_module: str, *, name: str,
               extra_env: dict | None = None, seed: int | None = None) -> Path:
    """Build ``verilog`` for ``sim`` (once per design) and run ``test_module`` on it.

    The build directory is ``build/cocotb/<name>-<sim>-<verilog file stem>`` so different
    designs and simulators never share one. With ``WAVES=1`` the waveform is copied to
    ``build/waves/<name>-<sim>.<ext>``. Raises if any cocotb test fails (the runner's
    results are checked by cocotb itself). Returns the results XML path.
    """
    prepare_environment()
    from cocotb_tools.runner import get_runner

    waves = waves_requested()
    suffix = "-waves" if waves else ""
    build_dir = build_root() / "cocotb" / f"{name}-{sim}-{verilog.stem}{suffix}"
    runner = get_runner(sim)
    # The named lint waivers of every Verilator build (caterpillar.sim.flow.lint).
    build_args = [*waiver_flags(), "-Wno-fatal", "-O3"] if sim == "verilator" else []
    runner.build(sources=[verilog], hdl_toplevel=toplevel, build_dir=build_dir,
                 build_args=build_args, timescale=("1ns", "1ps"), waves=waves, always=False)
    results = runner.test(hdl_toplevel=toplevel, test_module=test_module, build_dir=build_dir,
                          extra_env=extra_env or {}, seed=seed, waves=waves)
    if waves:
        out = build_root() / "waves"
        out.mkdir(parents=True, exist_ok=True)
        for pattern in ("*.fst", "*.vcd"):
            for wave in build_dir.glob(pattern):
                shutil.copy(wave, out / f"{name}-{sim}{wave.suffix}")
    return results
