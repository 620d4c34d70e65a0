"""Devices by backend name, for the command line and the benchmarks.

``isa`` (the instruction-level simulators), ``amaranth`` (Amaranth's simulator) and
``verilator`` (the free-running Verilated design) are devices built here, for one core or for
the ring; ``icarus`` owns its simulation loop, so a training session runs inside it
(:func:`~caterpillar.sim.backends.cocotb_session.run_in_cocotb`, one core).
"""

from __future__ import annotations

from caterpillar.sim.backends.amaranth import AmaranthDevice
from caterpillar.sim.backends.cocotb_session import run_in_cocotb
from caterpillar.sim.backends.verilator import VerilatorDevice
from caterpillar.software.isasim.device import IsaDevice, RingIsaDevice
from caterpillar.software.training.run import RunPlan, run_session

__all__ = ["BACKENDS", "RING_BACKENDS", "open_device", "run_training_on", "check_backend"]

#: Every backend, by name.
BACKENDS = ("isa", "amaranth", "verilator", "icarus")
#: Backends that simulate a ring of cores.
RING_BACKENDS = ("isa", "amaranth", "verilator")


def check_backend(backend: str, cfg) -> None:
    """Raise ``ValueError`` unless ``backend`` can simulate ``cfg`` (one core or a ring)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if cfg.cores > 1 and backend not in RING_BACKENDS:
        raise ValueError(f"--backend {backend} simulates one core; a ring of {cfg.cores} "
                         f"cores runs on {', '.join(RING_BACKENDS)}")


def open_device(backend: str, cfg):
    """A device of ``backend`` (``isa``, ``amaranth`` or ``verilator``) for ``cfg``: the ring
    when the config has several cores."""
    check_backend(backend, cfg)
    ring = cfg.cores > 1
    if backend == "isa":
        return RingIsaDevice(cfg) if ring else IsaDevice(cfg)
    if backend == "amaranth":
        return AmaranthDevice(cfg, ring=ring)
    if backend == "verilator":
        return VerilatorDevice(cfg, ring=ring)
    raise ValueError(f"backend {backend!r} has no standalone device; choose one of isa, "
                     "amaranth, verilator")


def run_training_on(backend: str, plan: RunPlan, opts: dict, *, progress=None) -> dict:
    """Run ``caterpillar train``'s session (``opts``, checked as ``plan``) on ``backend``;
    return its report."""
    check_backend(backend, plan.config)
    if backend == "icarus":
        return run_in_cocotb("icarus", plan.config, opts)
    with open_device(backend, plan.config) as device:
        return run_session(device, opts, plan=plan, progress=progress)
