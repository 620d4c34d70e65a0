"""Driving a ring of cores: a per-core view of the ring's host bus, and a ring driver."""

from __future__ import annotations

from dataclasses import dataclass

from caterpillar.rtl.config import CaterpillarConfig
from caterpillar.rtl.isa import Counter, ErrorCause
from caterpillar.rtl.regmap import RegisterMap, core_address

from .device import Device
from .driver import CoreError, Driver

__all__ = ["CoreWindow", "RingDriver", "RingRun", "RingCoreError"]


class CoreWindow(Device):
    """Core ``core`` of a ring device, seen as a one-core :class:`Device` (its own map)."""

    def __init__(self, ring: Device, core: int):
        self.ring, self.core = ring, core
        self.cfg = CaterpillarConfig.from_dict(ring.register_map()["config"])
        self._map = RegisterMap(self.cfg).to_dict()

    def register_map(self) -> dict:
        return self._map

    def write(self, addr: int, words) -> None:
        self.ring.write(core_address(self.core, addr), words)

    def read(self, addr: int, count: int = 1) -> list[int]:
        return self.ring.read(core_address(self.core, addr), count)

    def poll(self, addr: int, mask: int, timeout_cycles: int) -> tuple[int, int]:
        return self.ring.poll(core_address(self.core, addr), mask, timeout_cycles)


class RingCoreError(RuntimeError):
    """Cores of the ring stopped with errors: ``errors`` maps core to :class:`CoreError`."""

    def __init__(self, errors: dict):
        self.errors = errors
        super().__init__("; ".join(f"core {k}: {e}" for k, e in sorted(errors.items())))


@dataclass
class RingRun:
    """Counters of every core after a ring run (lists indexed by core)."""

    cycles: list      # busy cycles of each core's program
    instret: list
    macs: list
    ring_cycles: list
    waited: int

    @property
    def makespan(self) -> int:
        """Cycles until the last core halted."""
        return max(self.cycles)

    @property
    def busy(self) -> int:
        """The step's cycles (:attr:`makespan`), as a one-core run reports them."""
        return self.makespan


class RingDriver:
    """Load, configure, start and read back every core of a ring device.

    Parameters
    ----------
    device : Device
        A device with the ring address map (:class:`~caterpillar.rtl.regmap.RingRegisterMap`).
    """

    def __init__(self, device: Device):
        self.device = device
        regmap = device.register_map()
        self.regs = {c["name"]: regmap["base"] + c["addr"] for c in regmap["csrs"]}
        self.cfg = CaterpillarConfig.from_dict(regmap["config"])
        self.cores = [Driver(CoreWindow(device, k)) for k in range(self.cfg.cores)]

    def set_sources(self, sources) -> None:
        """Write ``SRC{k}`` (the core feeding core ``k``) for every core."""
        for k, s in enumerate(sources):
            self.device.write(self.regs[f"SRC{k}"], [int(s)])

    def set_stalls(self, probability_256: int, seed: int = 1) -> None:
        """Stall every link with probability ``probability_256 / 256`` per cycle (0: off)."""
        self.device.write(self.regs["STALL"], [probability_256 & 0xFF | (seed & 0xFFFF) << 8])

    def run(self, start_pcs=None, timeout_cycles: int = 100_000_000) -> RingRun:
        """Start every core together (each at its ``start_pcs`` entry), wait for all to halt.

        Raises :class:`RingCoreError` when a core stops with an error.
        """
        start_pcs = start_pcs or [0] * self.cfg.cores
        for driver, pc in zip(self.cores, start_pcs):
            driver.device.write(driver.regs["START_PC"], [pc])
        self.device.write(self.regs["CTRL"], [0b101])
        status, waited = self.device.poll(self.regs["STATUS"], 0b011, timeout_cycles)
        if status & 0b010:
            errors = {}
            mask = self.device.read(self.regs["ERROR_MASK"])[0]
            for k, driver in enumerate(self.cores):
                if mask >> k & 1:
                    cause = ErrorCause(driver.device.read(driver.regs["ERROR_CAUSE"])[0])
                    errors[k] = CoreError(cause, driver.device.read(driver.regs["ERROR_PC"])[0])
            self.device.write(self.regs["CTRL"], [0b010])
            raise RingCoreError(errors)
        counters = [self._counters(d) for d in self.cores]
        return RingRun([c[Counter.BUSY] for c in counters],
                       [c[Counter.INSTRET] for c in counters],
                       [c[Counter.MACS] for c in counters],
                       [c[Counter.RING] for c in counters], waited)

    def _counters(self, driver) -> dict:
        values = {}
        for counter in (Counter.BUSY, Counter.INSTRET, Counter.MACS, Counter.RING):
            lo, hi = driver.device.read(driver.regs[f"{counter.name}_LO"], 2)
            values[counter] = lo | hi << 32
        return values
