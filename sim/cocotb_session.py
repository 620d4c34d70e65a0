"""Run a driver-level session (e.g. a training run) inside a cocotb simulation of the core.

Icarus (and cocotb's Verilator) own the simulation loop, so the session cannot construct its
device itself: :func:`run_in_cocotb` builds the core's Verilog, starts the simulator on the
cocotb test module :mod:`caterpillar.sim.cocotb_session_top`, which resets the core, wraps it
in a :class:`~caterpillar.sim.cocotb_device.CocotbDevice` and calls ``target(device,
options)`` in a bridged thread; the JSON-able result comes back through a file.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

__all__ = ["run_in_cocotb", "SESSION_ENV"]

#: Environment variable carrying the session description to the cocotb test module.
SESSION_ENV = "CATERPILLAR_SESSION"


def run_in_cocotb(sim: str, cfg, target: str, options: dict):
    """Run ``target`` (``"module:function"``, called as ``function(device, options)``) on the
    core of ``cfg`` simulated by ``sim``; return what it returns. Exceptions in the session
    come back as :class:`RuntimeError` (or :class:`ValueError` for user mistakes) carrying the
    original message."""
    from caterpillar.rtl.core import Core

    from .cocotb_runner import run_cocotb
    from .verilog import cached_verilog

    verilog = cached_verilog(f"Core|{cfg.to_json()}", lambda: Core(cfg), "core")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        session = {"config": cfg.to_json(), "target": target, "options": options,
                   "result": str(out)}
        try:
            run_cocotb(sim, verilog, "core", "caterpillar.sim.cocotb_session_top",
                       name=f"session-{cfg.name}", extra_env={SESSION_ENV: json.dumps(session)})
        except Exception:
            if not out.exists():
                raise
        if not out.exists():
            raise RuntimeError(f"the {sim} session wrote no result")
        result = json.loads(out.read_text())
    if "error" in result:
        kind = ValueError if result["error_kind"] == "value" else RuntimeError
        raise kind(result["error"])
    return result["value"]
