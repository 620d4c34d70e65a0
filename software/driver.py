"""The driver: loads programs and data into a core and runs them, on any :class:`Device`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from caterpillar.rtl.isa import INSTR_WORDS, Counter, ErrorCause

from .device import Device

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

    def utilization(self, pes: int) -> float:
        """MACs per PE per busy cycle."""
        return self.macs / (pes * self.busy) if self.busy else 0.0


class Driver:
    """Program, load, run and read back one core through ``device``.

    Parameters
    ----------
    device : Device
    """

    def __init__(self, device: Device):
        self.device = device
        regmap = device.register_map()
        self.regs = {c["name"]: c["addr"] for c in regmap["csrs"]}
        self.imem_base = regmap["imem_base"]
        self.spad_base = regmap["spad_base"]
        self.config = regmap["config"]
        self.word_mask = (1 << {"fp32": 32, "bf16": 16, "fp16": 16}[
            self.config["operand_format"]]) - 1

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

    def run(self, start_pc: int = 0, timeout_cycles: int = 50_000_000) -> RunStats:
        """Start at ``start_pc``, wait for HALT, return the counters.

        Raises :class:`CoreError` if the core stops with an error, and
        :class:`~caterpillar.software.device.DeviceTimeout` if it is still busy after
        ``timeout_cycles``.
        """
        self.device.write(self.regs["START_PC"], [start_pc])
        self.device.write(self.regs["CTRL"], [0b101])  # clear counters and start, together
        status, waited = self.device.poll(self.regs["STATUS"], 0b110, timeout_cycles)
        if status & 0b100:
            cause = ErrorCause(self.device.read(self.regs["ERROR_CAUSE"])[0])
            pc = self.device.read(self.regs["ERROR_PC"])[0]
            self.device.write(self.regs["CTRL"], [0b010])
            raise CoreError(cause, pc)
        counters = {}
        for counter in Counter:
            lo, hi = self.device.read(self.regs[f"{counter.name}_LO"], 2)
            counters[counter] = lo | hi << 32
        return RunStats(counters[Counter.CYCLES], counters[Counter.BUSY],
                        counters[Counter.INSTRET], counters[Counter.MACS],
                        counters[Counter.STALLS], waited)
