"""Devices by backend name, for the command line and the benchmarks.

``isa`` (the instruction-level simulator), ``amaranth`` (Amaranth's simulator), ``verilator``
(the free-running Verilated core) are constructed here; ``icarus`` owns its simulation loop, so
a session runs inside it (:func:`caterpillar.sim.cocotb_session.run_in_cocotb`).
"""

from __future__ import annotations

from caterpillar.software.train_cli import BACKENDS

__all__ = ["BACKENDS", "open_device", "run_training_on"]


def open_device(backend: str, cfg):
    """A device of ``backend`` for ``cfg`` (``isa``, ``amaranth`` or ``verilator``); a
    config with several cores gets the ring (``isa`` or ``verilator``)."""
    if cfg.cores > 1:
        if backend == "isa":
            from caterpillar.software.ring_sim import RingIsaDevice

            return RingIsaDevice(cfg)
        if backend == "verilator":
            from .verilator_device import VerilatorDevice

            return VerilatorDevice(cfg, ring=True)
        raise ValueError(f"backend {backend!r} simulates one core; a ring of {cfg.cores} "
                         "cores runs on isa or verilator")
    if backend == "isa":
        from caterpillar.software.isasim import IsaDevice

        return IsaDevice(cfg)
    if backend == "amaranth":
        from .amaranth_device import AmaranthDevice

        return AmaranthDevice(cfg)
    if backend == "verilator":
        from .verilator_device import VerilatorDevice

        return VerilatorDevice(cfg)
    raise ValueError(f"backend {backend!r} has no standalone device; choose one of isa, "
                     f"amaranth, verilator")


def run_training_on(backend: str, cfg, opts: dict) -> dict:
    """Run ``caterpillar train``'s session (``opts``) on ``backend``; return its report."""
    target = "caterpillar.software.train_cli:run_session"
    if backend == "icarus":
        from .cocotb_session import run_in_cocotb

        return run_in_cocotb("icarus", cfg, target, opts)
    from caterpillar.software.train_cli import run_session

    with open_device(backend, cfg) as device:
        return run_session(device, opts)
