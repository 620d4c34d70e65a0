"""The driver: loads programs and data into a core and runs them, on any :class:`Device`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from caterpillar.contract.isa import EVENT_COUNTERS, INSTR_WORDS, Counter, ErrorCause
from caterpillar.contract.registers import RegisterView
from caterpillar.golden.numerics import FORMATS
from caterpillar.software.driver.device import Device

__all__ = ["Driver", "CoreError", "RunStats"]


class CoreError(RuntimeError):
    """The core stopped with an error; ``cause`` (an :class:`ErrorCause`) and ``pc`` say why."""

    def __init__(self, cause: ErrorCause, pc: int):
        self.cause, self.pc = cause, pc
        super().__init__(f"core stopped at instruction {pc}: {cause.name.lower()}")


@dataclass
class RunStats:
    """Counters of one run (cleared at its start)."""

    cycles: int
    busy: int
    instret: int
    macs: int
    stalls: int
    wait_cycles: int
    counters: dict = field(default_factory=dict)   # every Counter after the run

    def counted(self) -> dict:
        """Every counter but ``CYCLES`` (which also counts the host's cycles around the run),
        by name: what a run of one program gives on every backend."""
        return {c.name.lower(): v for c, v in self.counters.items() if c != Counter.CYCLES}

    @property
    def events(self) -> dict:
        """The event counters (``OPS`` on: :data:`EVENT_COUNTERS`) by name, lower case."""
        return {c.name.lower(): self.counters[c] for c in EVENT_COUNTERS}

    def utilization(self, pes: int) -> float:
        """MACs per PE per busy cycle."""
        return self.macs / (pes * self.busy) if self.busy else 0.0


class Driver:
    """Program, load, run and read back one core through ``device``.

    The register addresses and fields come from the device's own map
    (:meth:`~caterpillar.software.driver.device.Device.register_map`).

    Parameters
    ----------
    device : Device
        A device with a core's register map.
    """

    def __init__(self, device: Device):
        self.device = device
        regmap = device.register_map()
        self.regs = RegisterView(regmap)
        self.imem_base = regmap["imem_base"]
        self.spad_base = regmap["spad_base"]
        self.config = regmap["config"]
        self.word_mask = (1 << FORMATS[self.config["operand_format"]].width) - 1

    def load_program(self, words, base: int = 0) -> None:
        """Write 256-bit instruction words into IMEM from instruction ``base``."""
        flat = [(int(w) >> (32 * k)) & 0xFFFFFFFF for w in words for k in range(INSTR_WORDS)]
        self.device.write(self.imem_base + INSTR_WORDS * base, flat)

    def read_program(self, count: int, base: int = 0) -> list[int]:
        """Read ``count`` instruction words back from IMEM."""
        flat = self.device.read(self.imem_base + INSTR_WORDS * base, INSTR_WORDS * count)
        return [sum(flat[i * INSTR_WORDS + k] << (32 * k) for k in range(INSTR_WORDS))
                for i in range(count)]

    def write_spad(self, addr: int, values) -> None:
        """Write bit patterns to SPAD words from ``addr``."""
        values = np.asarray(values, dtype=np.uint64).ravel() & np.uint64(self.word_mask)
        self.device.write(self.spad_base + addr, [int(v) for v in values])

    def read_spad(self, addr: int, count: int) -> np.ndarray:
        """Return ``count`` SPAD words from ``addr`` (uint64 bit patterns)."""
        return np.array(self.device.read(self.spad_base + addr, count), dtype=np.uint64)

    def set_scalar(self, index: int, bits: int) -> None:
        """Write scalar register ``index``."""
        self.device.write(self.regs[f"S{index}"], [int(bits) & self.word_mask])

    def read(self, name: str) -> int:
        """Return the value of CSR ``name``."""
        return self.device.read(self.regs[name])[0]

    def counter(self, counter: Counter) -> int:
        """Return the 64-bit value of a performance counter."""
        return self.counters((counter,))[counter]

    def counters(self, which) -> dict:
        """Return the 64-bit values of the performance counters ``which``, read in one burst
        from the lowest one's ``_LO`` to the highest one's ``_HI`` (every counter between them
        too: over a UART each request costs a frame, and a step's 14 counters were 14)."""
        low = {c: self.regs[f"{c.name}_LO"] for c in which}
        base = min(low.values())
        words = self.device.read(base, max(low.values()) - base + 2)
        return {c: words[a - base] | words[a - base + 1] << 32 for c, a in low.items()}

    def error(self) -> CoreError:
        """The core's error (it is in error), after clearing it so the core can start again."""
        cause = ErrorCause(self.regs.unpack("ERROR_CAUSE", self.read("ERROR_CAUSE"))["cause"])
        error = CoreError(cause, self.read("ERROR_PC"))
        self.device.write(self.regs["CTRL"], [self.regs.pack("CTRL", clear=1)])
        return error

    def clear_host_words(self) -> None:
        """Zero ``HOST_WORDS`` (a run's ``clear_counters`` leaves it: it counts the words the
        host moves around runs)."""
        self.device.write(self.regs["CTRL"], [self.regs.pack("CTRL", clear_host_words=1)])

    def run(self, start_pc: int = 0, timeout_cycles: int = 50_000_000) -> RunStats:
        """Start at ``start_pc``, wait for HALT, return the counters.

        Raises :class:`CoreError` if the core stops with an error, and
        :class:`~caterpillar.software.driver.device.DeviceTimeout` if it is still busy after
        ``timeout_cycles``.
        """
        regs = self.regs
        self.device.write(regs["START_PC"], [start_pc])
        self.device.write(regs["CTRL"], [regs.pack("CTRL", start=1, clear_counters=1)])
        status, waited = self.device.poll(regs["STATUS"], regs.pack("STATUS", done=1, error=1),
                                          timeout_cycles)
        if regs.unpack("STATUS", status)["error"]:
            raise self.error()
        counters = self.counters(Counter)
        return RunStats(counters[Counter.CYCLES], counters[Counter.BUSY],
                        counters[Counter.INSTRET], counters[Counter.MACS],
                        counters[Counter.STALLS], waited, counters)
