"""A :class:`~caterpillar.software.driver.device.Device` running the Verilated core (or ring)
in its own process.

The core is converted to Verilog and compiled with the C++ host harness ``cpp/core_host.cpp``
once per config (cached); the harness executes batches of host-bus commands (writes, reads,
polls with a cycle budget) in C++, so long runs are free-running: Python only sends commands
and reads answers.
"""

from __future__ import annotations

import struct
import subprocess
import time
from importlib import resources
from pathlib import Path

from caterpillar.contract.registers import RegisterMap, RingRegisterMap
from caterpillar.sim.flow.tops import core_top, ring_top
from caterpillar.sim.flow.verilator import build_executable
from caterpillar.software.driver.device import Device, DeviceTimeout

__all__ = ["VerilatorDevice", "core_executable", "ring_executable"]

_WRITE, _READ, _POLL, _CYCLES, _QUIT = 1, 2, 3, 4, 5


def core_executable(cfg) -> Path:
    """Return the free-running host executable for ``cfg``'s core (built once)."""
    top = core_top(cfg)
    label = top.label
    verilog = top.verilog()
    harness = resources.files("caterpillar.sim") / "cpp" / "core_host.cpp"
    with resources.as_file(harness) as path:
        return build_executable(verilog, "core", Path(path), "core_host", label=label)


def ring_executable(cfg) -> Path:
    """Return the free-running host executable for ``cfg``'s ring of cores (built once)."""
    top = ring_top(cfg)
    label = top.label
    verilog = top.verilog()
    harness = resources.files("caterpillar.sim") / "cpp" / "core_host.cpp"
    with resources.as_file(harness) as path:
        return build_executable(verilog, "ring", Path(path), "ring_host", label=label,
                                defines=("CATERPILLAR_RING",), blocks=(top.parts[0].name,))


class VerilatorDevice(Device):
    """The Verilated core behind its host bus, in a child process.

    Parameters
    ----------
    cfg : CaterpillarConfig
    ring : bool
        The multicore top (:class:`~caterpillar.rtl.ring.Ring`, ``cfg.cores`` cores, ring
        address map) instead of one core.
    """

    def __init__(self, cfg, ring: bool = False):
        self.cfg = cfg
        if ring:

            self._map = RingRegisterMap(cfg)
            binary = ring_executable(cfg)
        else:
            self._map = RegisterMap(cfg)
            binary = core_executable(cfg)
        self._proc = subprocess.Popen([str(binary)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE)
        self.sim_seconds = 0.0

    def register_map(self) -> dict:
        return self._map.to_dict()

    def _send(self, *words, payload=()):
        data = struct.pack(f"<{len(words)}I", *words)
        if payload:
            data += struct.pack(f"<{len(payload)}I", *payload)
        self._proc.stdin.write(data)
        self._proc.stdin.flush()

    def _receive(self, count: int) -> tuple:
        data = self._proc.stdout.read(4 * count)
        if len(data) != 4 * count:
            raise RuntimeError(f"Verilator core process ended (exit {self._proc.poll()})")
        return struct.unpack(f"<{count}I", data)

    def write(self, addr: int, words) -> None:
        words = [int(w) & 0xFFFFFFFF for w in words]
        for start in range(0, len(words), 1 << 16):
            chunk = words[start:start + (1 << 16)]
            self._send(_WRITE, addr + start, len(chunk), payload=chunk)

    def read(self, addr: int, count: int = 1) -> list[int]:
        self._send(_READ, addr, count)
        return list(self._receive(count))

    def poll(self, addr: int, mask: int, timeout_cycles: int) -> tuple[int, int]:
        start = time.perf_counter()
        self._send(_POLL, addr, mask, timeout_cycles & 0xFFFFFFFF, timeout_cycles >> 32)
        value, lo, hi, timed_out = self._receive(4)
        self.sim_seconds += time.perf_counter() - start
        if timed_out:
            raise DeviceTimeout(f"register {addr:#x} did not match {mask:#x} within "
                                f"{timeout_cycles} cycles")
        return value, lo | hi << 32

    def cycles(self) -> int:
        """Return the cycles simulated since the process started."""
        self._send(_CYCLES)
        lo, hi = self._receive(2)
        return lo | hi << 32

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._send(_QUIT)
                self._proc.stdin.close()
            except BrokenPipeError:
                pass
            self._proc.wait(timeout=10)
        for stream in (self._proc.stdin, self._proc.stdout):
            if not stream.closed:
                try:
                    stream.close()
                except BrokenPipeError:
                    pass
