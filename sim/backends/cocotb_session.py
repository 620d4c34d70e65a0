"""Run a training session inside a cocotb simulation of the core (Icarus or Verilator).

Icarus (and cocotb's Verilator) own the simulation loop, so the session cannot construct its
device itself: :func:`run_in_cocotb` builds the core's Verilog and starts the simulator on the
cocotb test module :mod:`caterpillar.sim.backends.cocotb_session_top`, which resets the core,
wraps it in a :class:`~caterpillar.sim.backends.cocotb.CocotbDevice` and calls
:func:`~caterpillar.software.training.run.run_session` with the options in a bridged thread;
the JSON-able report comes back through a file.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from caterpillar.sim.flow.cocotb import run_cocotb
from caterpillar.sim.flow.tops import core_top

__all__ = ["run_in_cocotb", "SESSION_ENV"]

#: Environment variable carrying the session description to the cocotb test module.
SESSION_ENV = "CATERPILLAR_SESSION"


def run_in_cocotb(sim: str, cfg, options: dict) -> dict:
    """Run the training session ``options`` on the core of ``cfg`` simulated by ``sim``;
    return its report. Exceptions in the session come back as :class:`RuntimeError` (or
    :class:`ValueError` for user mistakes) carrying the original message."""
    verilog = core_top(cfg).verilog()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        session = {"config": cfg.to_json(), "options": options, "result": str(out)}
        try:
            run_cocotb(sim, verilog, "core", "caterpillar.sim.backends.cocotb_session_top",
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
