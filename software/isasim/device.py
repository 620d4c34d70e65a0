"""The instruction-level simulators as :class:`~caterpillar.software.driver.device.Device` s.

:class:`IsaDevice` is one core behind its host bus, :class:`RingIsaDevice` the ring behind the
ring's. Both decode host accesses with the register map and its fields
(:mod:`caterpillar.contract.registers`), as the RTL does. A start runs the whole program at
once, so the next status read sees it finished, and the counters hold the cycles the hardware
would have taken.
"""

from __future__ import annotations

import numpy as np

from caterpillar.contract.isa import INSTR_WORDS, Counter
from caterpillar.contract.registers import (
    CTRL,
    ERROR_CAUSE,
    HOST_ADDR_BITS,
    RING_ID,
    RING_SLOT,
    RING_STATUS,
    SCALAR_REGISTERS,
    STALL,
    STATUS,
    RegisterMap,
    RingRegisterMap,
)
from caterpillar.software.driver.device import Device, DeviceTimeout
from caterpillar.software.isasim.core import IsaSim, RunResult
from caterpillar.software.isasim.ring import RingSim

__all__ = ["IsaDevice", "RingIsaDevice"]


class IsaDevice(Device):
    """One core's host bus on the instruction-level simulator ``sim`` (a new one by default).

    Parameters
    ----------
    cfg : CaterpillarConfig
    sim : IsaSim, optional
        The core to serve (a ring's core, for :class:`RingIsaDevice`).
    """

    def __init__(self, cfg, sim: IsaSim | None = None):
        self.cfg = cfg
        self.sim = sim if sim is not None else IsaSim(cfg)
        self._map = RegisterMap(cfg)
        self._start_pc = 0
        self._result = None
        self._status = {"busy": 0, "done": 0, "error": 0}

    def register_map(self) -> dict:
        return self._map.to_dict()

    @property
    def start_pc(self) -> int:
        """The ``START_PC`` register."""
        return self._start_pc

    @property
    def status(self) -> dict:
        """The fields of ``STATUS``."""
        return dict(self._status)

    def finish(self, result: RunResult) -> None:
        """Take ``result`` as the outcome of a run started elsewhere (a ring's start)."""
        self._result = result
        self._status.update(done=int(result.ok), error=int(not result.ok))

    def control(self, value: int) -> bool:
        """A write of ``value`` to ``CTRL``, except that ``start`` only clears ``done`` (the
        caller runs the program). Returns whether ``start`` was asked and taken: as in the
        sequencer, a core in error ignores it, even together with ``clear``."""
        ctrl = CTRL.unpack(value)
        started = bool(ctrl["start"]) and not self._status["error"]
        if ctrl["clear"]:
            self._status.update(done=0, error=0)
        if ctrl["clear_counters"]:
            self.sim.reset_counters()
        if ctrl["clear_host_words"]:
            self.sim.counters[Counter.HOST_WORDS] = 0
        if started:
            self._status["done"] = 0
        return started

    def _count_host_words(self, addr: int, count: int) -> None:
        """``HOST_WORDS``: every word of a request in the IMEM or SPAD window (they are the
        last two windows of the map, whatever the word's address inside)."""
        self.sim.counters[Counter.HOST_WORDS] += max(0, min(count, addr + count
                                                            - self._map.imem_base))

    def write(self, addr: int, words) -> None:
        m = self._map
        words = list(words)
        self._count_host_words(addr, len(words))
        start = addr - m.spad_base
        if start >= 0:                                # bulk SPAD data
            values = np.asarray([int(w) for w in words], dtype=np.uint64)
            if start + len(values) <= self.cfg.spad_words:
                mask = np.uint64((1 << self.cfg.word_width) - 1)
                self.sim.spad[start:start + len(values)] = values & mask
                return
        for offset, value in enumerate(words):
            self._write_word(addr + offset, int(value))

    def read(self, addr: int, count: int = 1) -> list[int]:
        self._count_host_words(addr, count)
        start = addr - self._map.spad_base
        if start >= 0 and start + count <= self.cfg.spad_words:
            return self.sim.spad[start:start + count].tolist()
        return [self._read_word(addr + offset) for offset in range(count)]

    def poll(self, addr: int, mask: int, timeout_cycles: int) -> tuple[int, int]:
        value = self._read_word(addr)
        if not value & mask:
            raise DeviceTimeout(f"register {addr:#x} never matched {mask:#x}")
        busy = self._result.busy_cycles if self._result else 0
        if busy > timeout_cycles:
            raise DeviceTimeout(f"program needs {busy} cycles, more than {timeout_cycles}")
        return value, busy

    def _write_word(self, addr: int, value: int):
        m, sim = self._map, self.sim
        word_mask = (1 << self.cfg.word_width) - 1
        if addr >= m.spad_base:
            if addr - m.spad_base < self.cfg.spad_words:
                sim.spad[addr - m.spad_base] = value & word_mask
        elif addr >= m.imem_base:
            instr, word = divmod(addr - m.imem_base, INSTR_WORDS)
            if instr < self.cfg.imem_words:
                mask = 0xFFFFFFFF << (32 * word)
                sim.imem[instr] = (sim.imem[instr] & ~mask) | (value << (32 * word))
        elif addr == m["START_PC"]:
            self._start_pc = value & ((1 << self.cfg.imem_addr_width) - 1)
        elif m["S0"] <= addr < m["S0"] + SCALAR_REGISTERS:
            sim.sregs[addr - m["S0"]] = value & word_mask
        elif addr == m["CTRL"] and self.control(value):
            self.finish(sim.run(self._start_pc))

    def _read_word(self, addr: int) -> int:
        m, sim = self._map, self.sim
        if addr >= m.spad_base:
            offset = addr - m.spad_base
            return int(sim.spad[offset]) if offset < self.cfg.spad_words else 0
        if addr >= m.imem_base:
            offset = addr - m.imem_base
            return sim.imem_word(offset) if offset < self.cfg.imem_words * INSTR_WORDS else 0
        if m["S0"] <= addr < m["S0"] + SCALAR_REGISTERS:
            return sim.sregs[addr - m["S0"]]
        counters = {f"{c.name}_{half}": (v >> (32 * (half == "HI"))) & 0xFFFFFFFF
                    for c, v in sim.counters.items() for half in ("LO", "HI")}
        result = self._result
        values = {
            **m.constants(), **counters, "START_PC": self._start_pc,
            "STATUS": STATUS.pack(**self._status),
            "ERROR_CAUSE": ERROR_CAUSE.pack(cause=result.error.value if result else 0),
            "ERROR_PC": result.error_pc if result else 0,
            "PC": result.error_pc if result else 0,
        }
        for name, value in values.items():
            if addr == m[name]:
                return value
        return 0


class RingIsaDevice(Device):
    """The whole ring's host bus (ring address map) on :class:`RingSim`."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.sim = RingSim(cfg)
        self._map = RingRegisterMap(cfg)
        self._cores = [IsaDevice(cfg, sim=core) for core in self.sim.cores]
        self._results = None
        self._stall = 0

    def register_map(self) -> dict:
        return self._map.to_dict()

    def _split(self, addr: int):
        return addr >> HOST_ADDR_BITS, addr & ((1 << HOST_ADDR_BITS) - 1)

    def write(self, addr: int, words) -> None:
        slot, local = self._split(addr)
        if slot < self.cfg.cores:
            self._cores[slot].write(local, words)
        elif slot == RING_SLOT:
            for offset, value in enumerate(words):
                self._ring_write(local + offset, int(value))

    def _ring_write(self, local: int, value: int):
        regs = self._map
        if local == regs["CTRL"]:
            # Every core sees the write in the same cycle; a start runs them together.
            started = [core.control(value) for core in self._cores]
            if all(started) and started:
                self._results = self.sim.run([core.start_pc for core in self._cores])
                for core, result in zip(self._cores, self._results):
                    core.finish(result)
        elif local == regs["STALL"]:
            fields = STALL.unpack(value)
            self._stall = STALL.pack(**fields)
        else:
            for k in range(self.cfg.cores):
                if local == regs[f"SRC{k}"]:
                    self.sim.src[k] = value % self.cfg.cores

    def read(self, addr: int, count: int = 1) -> list[int]:
        slot, local = self._split(addr)
        if slot < self.cfg.cores:
            return self._cores[slot].read(local, count)
        if slot == RING_SLOT:
            return [self._ring_read(local + i) for i in range(count)]
        return [0] * count

    def _ring_read(self, local: int) -> int:
        regs = self._map
        statuses = [core.status for core in self._cores]
        done = sum(s["done"] << k for k, s in enumerate(statuses))
        error = sum(s["error"] << k for k, s in enumerate(statuses))
        status = RING_STATUS.pack(busy=int(any(s["busy"] for s in statuses)),
                                  done=int(done == (1 << self.cfg.cores) - 1),
                                  error=int(error != 0))
        values = {"RING_ID": RING_ID, "CORES": self.cfg.cores, "STATUS": status,
                  "DONE_MASK": done, "ERROR_MASK": error, "STALL": self._stall}
        values.update({f"SRC{k}": s for k, s in enumerate(self.sim.src)})
        for name, value in values.items():
            if local == regs[name]:
                return value
        return 0

    def poll(self, addr: int, mask: int, timeout_cycles: int) -> tuple[int, int]:
        slot, local = self._split(addr)
        if slot != RING_SLOT:
            return self._cores[slot].poll(local, mask, timeout_cycles)
        value = self._ring_read(local)
        if not value & mask:
            raise DeviceTimeout(f"ring register {local:#x} never matched {mask:#x}")
        busy = max((r.busy_cycles for r in self._results or []), default=0)
        if busy > timeout_cycles:
            raise DeviceTimeout(f"programs need {busy} cycles, more than {timeout_cycles}")
        return value, busy
