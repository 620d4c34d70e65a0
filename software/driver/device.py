"""The abstract device: a core reached through its host bus. Every backend implements it."""

from __future__ import annotations

from abc import ABC, abstractmethod

__all__ = ["Device", "DeviceTimeout"]


class DeviceTimeout(RuntimeError):
    """A wait on the device exceeded its cycle budget (the watchdog fired)."""


class Device(ABC):
    """A CATERPILLAR core behind its host bus (32-bit word addresses and data).

    Backends: the instruction-level simulator, the Amaranth simulator, Verilator and Icarus (via
    cocotb). The driver uses nothing else, so it runs unchanged on each.
    """

    @abstractmethod
    def register_map(self) -> dict:
        """Return the hardware's register map (:meth:`RegisterMap.to_dict`)."""

    @abstractmethod
    def write(self, addr: int, words) -> None:
        """Write ``words`` to consecutive word addresses from ``addr``."""

    @abstractmethod
    def read(self, addr: int, count: int = 1) -> list[int]:
        """Return ``count`` words read from consecutive addresses from ``addr``."""

    @abstractmethod
    def poll(self, addr: int, mask: int, timeout_cycles: int) -> tuple[int, int]:
        """Read ``addr`` until a bit of ``mask`` is set; return ``(value, cycles waited)``.

        Raises :class:`DeviceTimeout` after ``timeout_cycles`` cycles.
        """

    def close(self) -> None:
        """Release the backend (processes, simulators). Idempotent."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
