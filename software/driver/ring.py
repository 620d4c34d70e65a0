"""Driving a ring of cores (one core is a ring of one): per-core windows and the ring driver."""

from __future__ import annotations

from dataclasses import dataclass, field

from caterpillar.contract.config import CaterpillarConfig
from caterpillar.contract.isa import EVENT_COUNTERS, Counter
from caterpillar.contract.registers import RegisterMap, RegisterView, core_address
from caterpillar.software.driver.core import CoreError, Driver
from caterpillar.software.driver.device import Device

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
    events: list = field(default_factory=list)   # each core's event counters, by name

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

    A device with a core's register map is a ring of one: its own ``CTRL`` and ``STATUS``
    (the same fields as the ring's) start and watch it.

    Parameters
    ----------
    device : Device
        A device with the ring address map (:class:`~caterpillar.contract.registers.
        RingRegisterMap`) or a core's.
    """

    def __init__(self, device: Device):
        self.device = device
        regmap = device.register_map()
        self.cfg = CaterpillarConfig.from_dict(regmap["config"])
        if regmap["kind"] == "ring":
            self.regs = RegisterView(regmap, base=regmap["base"])
            self.cores = [Driver(CoreWindow(device, k)) for k in range(self.cfg.cores)]
        else:
            self.regs = None
            self.cores = [Driver(device)]

    @property
    def control(self) -> RegisterView:
        """The registers that start and watch every core (the ring's, or the lone core's)."""
        return self.regs if self.regs is not None else self.cores[0].regs

    def set_sources(self, sources) -> None:
        """Write ``SRC{k}`` (the core feeding core ``k``) for every core."""
        if self.regs is None:
            if list(sources) != [0]:
                raise ValueError(f"a lone core can only feed itself, not {list(sources)}")
            return
        for k, s in enumerate(sources):
            self.device.write(self.regs[f"SRC{k}"], [int(s)])

    def set_stalls(self, probability_256: int, seed: int = 1) -> None:
        """Stall every link with probability ``probability_256 / 256`` per cycle (0: off)."""
        self.device.write(self.regs["STALL"], [self.regs.pack(
            "STALL", threshold=probability_256 & 0xFF, seed=seed & 0xFFFF)])

    def run(self, start_pcs=None, timeout_cycles: int = 100_000_000) -> RingRun:
        """Start every core together (each at its ``start_pcs`` entry), wait for all to halt.

        Raises :class:`RingCoreError` when a core stops with an error.
        """
        start_pcs = start_pcs or [0] * len(self.cores)
        for driver, pc in zip(self.cores, start_pcs):
            driver.device.write(driver.regs["START_PC"], [pc])
        ctrl = self.control
        self.device.write(ctrl["CTRL"], [ctrl.pack("CTRL", start=1, clear_counters=1)])
        status, waited = self.device.poll(ctrl["STATUS"], ctrl.pack("STATUS", done=1, error=1),
                                          timeout_cycles)
        if ctrl.unpack("STATUS", status)["error"]:
            raise RingCoreError(self._errors())
        wanted = (Counter.BUSY, Counter.INSTRET, Counter.RING, *EVENT_COUNTERS)
        counters = [d.counters(wanted) for d in self.cores]
        return RingRun([c[Counter.BUSY] for c in counters],
                       [c[Counter.INSTRET] for c in counters],
                       [c[Counter.MACS] for c in counters],
                       [c[Counter.RING] for c in counters], waited,
                       [{e.name.lower(): c[e] for e in EVENT_COUNTERS} for c in counters])

    def clear_host_words(self) -> None:
        """Zero every core's ``HOST_WORDS`` counter (one ``CTRL`` write)."""
        ctrl = self.control
        self.device.write(ctrl["CTRL"], [ctrl.pack("CTRL", clear_host_words=1)])

    def host_words(self) -> list[int]:
        """Every core's ``HOST_WORDS``: SPAD and IMEM words the host moved since the clear."""
        return [d.counter(Counter.HOST_WORDS) for d in self.cores]

    def _errors(self) -> dict[int, CoreError]:
        if self.regs is None:
            return {0: self.cores[0].error()}
        mask = self.device.read(self.regs["ERROR_MASK"])[0]
        errors = {k: d.error() for k, d in enumerate(self.cores) if mask >> k & 1}
        return errors
