"""``uart-sim``: the board top (no PLL) Verilated, reached through its UART pins by the same
protocol code that drives a real board.

The board top (:class:`~caterpillar.rtl.board.Board` with ``pll=False``) is converted to
Verilog and compiled with the C++ harness ``cpp/uart_host.cpp`` once per config (cached). The
harness bit-bangs the bytes it reads on stdin into ``uart_rx`` at the board's clocks per bit
and decodes ``uart_tx`` to stdout, free-running; :class:`SimulatorLink` is the
:class:`~caterpillar.software.driver.uart.Transport` over those pipes, and
:class:`~caterpillar.software.driver.uart.UartDevice` does the rest, as for ``--backend uart``.
"""

from __future__ import annotations

import os
import re
import subprocess
from importlib import resources
from pathlib import Path

from caterpillar.contract.host_link import BAUD, BOARD_CLOCK_HZ, clocks_per_bit
from caterpillar.sim.flow.tops import board_top
from caterpillar.sim.flow.verilator import build_executable
from caterpillar.software.driver.uart import LinkError, Transport, UartDevice

__all__ = ["board_executable", "SimulatorLink", "open_uart_sim"]

_STATS = re.compile(r"uart_host: cycles (\d+) simulated_seconds ([\d.]+) framing_errors (\d+)")


def board_executable(cfg) -> Path:
    """Return the free-running UART harness executable for ``cfg``'s board top (built once)."""
    harness = resources.files("caterpillar.sim") / "cpp" / "uart_host.cpp"
    with resources.as_file(harness) as path:
        return build_executable(board_top(cfg).verilog(), "board", Path(path), "uart_host",
                                label=f"the {cfg.name} board top")


class SimulatorLink(Transport):
    """The harness process's stdin and stdout as a byte stream.

    Reads block until the simulated board answers (simulated time runs far slower than a
    board's, so wall-clock timeouts do not apply); the process ending early is a
    :class:`~caterpillar.software.driver.uart.LinkError`. After :meth:`close`, ``cycles``,
    ``seconds`` (wall time the harness spent running the clock) and ``framing_errors`` hold
    the harness's counts.
    """

    name = "the simulated board"

    def __init__(self, binary: Path, clocks_per_bit: int):
        self._proc = subprocess.Popen([str(binary), str(clocks_per_bit)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE)
        self.cycles = self.seconds = self.framing_errors = None

    def write(self, data: bytes) -> None:
        try:
            self._proc.stdin.write(data)
            self._proc.stdin.flush()
        except BrokenPipeError:
            raise LinkError(f"the uart-sim process ended (exit {self._proc.poll()})") from None

    def read(self, count: int, timeout: float) -> bytes:
        data = b""
        while len(data) < count:
            chunk = os.read(self._proc.stdout.fileno(), count - len(data))
            if not chunk:
                raise LinkError(f"the uart-sim process ended (exit {self._proc.poll()}) "
                                f"after {len(data)} of {count} bytes")
            data += chunk
        return data

    def close(self) -> None:
        if self._proc.returncode is not None:
            return
        try:
            _, err = self._proc.communicate(timeout=60)      # closes stdin: end of input
        except subprocess.TimeoutExpired:
            self._proc.kill()
            _, err = self._proc.communicate()
        match = _STATS.search(err.decode(errors="replace"))
        if match:
            self.cycles, self.seconds = int(match[1]), float(match[2])
            self.framing_errors = int(match[3])

    @property
    def cycles_per_second(self) -> float | None:
        """Simulated cycles per wall second while the clock ran (after :meth:`close`)."""
        return self.cycles / self.seconds if self.cycles and self.seconds else None


def open_uart_sim(cfg) -> UartDevice:
    """Build (once) and start the simulated board for ``cfg``; return its device."""
    binary = board_executable(cfg)
    return UartDevice(SimulatorLink(binary, clocks_per_bit(BOARD_CLOCK_HZ, BAUD)), cfg)
