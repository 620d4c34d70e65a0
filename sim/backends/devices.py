"""Devices by backend name, for the command line and the benchmarks.

``isa`` (the instruction-level simulators), ``amaranth`` (Amaranth's simulator) and
``verilator`` (the free-running Verilated design) are devices built here, for one core or for
the ring; ``icarus`` owns its simulation loop, so a training session runs inside it
(:func:`~caterpillar.sim.backends.cocotb_session.run_in_cocotb`, one core). ``uart`` is a
board on a serial port (``port``), ``uart-sim`` the Verilated board top behind its UART pins;
both speak the host link (``docs/host-link.md``) through the same driver and always hold the
ring top (any core count).
"""

from __future__ import annotations

from caterpillar.sim.backends.amaranth import AmaranthDevice
from caterpillar.sim.backends.cocotb_session import run_in_cocotb
from caterpillar.sim.backends.uart_sim import SimulatorLink, open_uart_sim
from caterpillar.sim.backends.verilator import VerilatorDevice
from caterpillar.software.driver.uart import UartDevice, open_serial
from caterpillar.software.isasim.device import IsaDevice, RingIsaDevice
from caterpillar.software.training.run import RunPlan, run_session

__all__ = ["BACKENDS", "RING_BACKENDS", "open_device", "run_training_on", "check_backend",
           "check_port", "uart_sim_line"]

#: Every backend, by name.
BACKENDS = ("isa", "amaranth", "verilator", "icarus", "uart-sim", "uart")
#: Backends that simulate a ring of cores.
RING_BACKENDS = ("isa", "amaranth", "verilator", "uart-sim", "uart")


def check_backend(backend: str, cfg) -> None:
    """Raise ``ValueError`` unless ``backend`` can simulate ``cfg`` (one core or a ring)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if cfg.cores > 1 and backend not in RING_BACKENDS:
        raise ValueError(f"--backend {backend} simulates one core; a ring of {cfg.cores} "
                         f"cores runs on {', '.join(RING_BACKENDS)}")


def check_port(backend: str, port: str | None, *, probe: bool = True) -> None:
    """Raise ``ValueError`` unless ``port`` goes with ``backend`` (``uart`` needs one, no
    other takes one); with ``probe``, ``OSError`` if the ``uart`` backend's port cannot be
    opened."""
    if backend == "uart":
        if not port:
            raise ValueError("--backend uart needs --port DEVICE, the board's serial port "
                             "(e.g. /dev/ttyUSB0)")
        if probe:
            open_serial(port).close()
    elif port:
        raise ValueError(f"--port is for --backend uart (a board); --backend {backend} has no "
                         "port: drop --port")


def open_device(backend: str, cfg, *, port: str | None = None):
    """A device of ``backend`` (``isa``, ``amaranth``, ``verilator``, ``uart-sim``, or
    ``uart`` on ``port``) for ``cfg``: the ring when the config has several cores (always for
    the board top of ``uart`` and ``uart-sim``)."""
    check_backend(backend, cfg)
    check_port(backend, port, probe=False)
    ring = cfg.cores > 1
    if backend == "isa":
        return RingIsaDevice(cfg) if ring else IsaDevice(cfg)
    if backend == "amaranth":
        return AmaranthDevice(cfg, ring=ring)
    if backend == "verilator":
        return VerilatorDevice(cfg, ring=ring)
    if backend == "uart-sim":
        return open_uart_sim(cfg)
    if backend == "uart":
        return UartDevice(open_serial(port), cfg)
    raise ValueError(f"backend {backend!r} has no standalone device; choose one of isa, "
                     "amaranth, verilator, uart-sim, uart")


def run_training_on(backend: str, plan: RunPlan, opts: dict, *, progress=None) -> dict:
    """Run ``caterpillar train``'s session (``opts``, checked as ``plan``) on ``backend``
    (``opts["port"]`` for ``uart``); return its report."""
    check_backend(backend, plan.config)
    if backend == "icarus":
        return run_in_cocotb("icarus", plan.config, opts)
    with open_device(backend, plan.config, port=opts.get("port")) as device:
        report = run_session(device, opts, plan=plan, progress=progress)
    link = getattr(device, "transport", None)
    if isinstance(link, SimulatorLink) and link.cycles is not None:
        report["uart_sim"] = {"cycles": link.cycles, "seconds": link.seconds,
                              "cycles_per_second": link.cycles_per_second,
                              "framing_errors": link.framing_errors}
    return report


def uart_sim_line(report: dict) -> str | None:
    """The line ``caterpillar train --backend uart-sim`` ends with: the board's simulated
    cycles (UART frames included), the wall time the harness ran the clock, the speed and
    the framing errors; ``None`` for other backends."""
    stats = report.get("uart_sim")
    if stats is None:
        return None
    speed = stats["cycles_per_second"]
    rate = f"{speed / 1e6:.2f} M cycles/s" if speed else "no clock time measured"
    return (f"uart-sim: {stats['cycles']:,} board cycles (UART frames included) in "
            f"{stats['seconds']:.1f} s of running clock ({rate}), {stats['framing_errors']} "
            "framing errors")
