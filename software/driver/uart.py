"""A :class:`~caterpillar.software.driver.device.Device` over the host link
(``docs/host-link.md``): a board's UART, or anything else that carries bytes.

:class:`UartDevice` speaks the protocol of :mod:`caterpillar.contract.host_link` over a
:class:`Transport`: :class:`SerialTransport` (pyserial) for a real port, or the simulation's
pipes (the ``uart-sim`` backend), which run the same code. Opening checks that a
CATERPILLAR board answers and that its ring is the config asked for, before any long work.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

import serial

from caterpillar.contract.host_link import (
    BAUD,
    BOARD_CLOCK_HZ,
    CRC_BYTES,
    INFO_WORDS,
    INTERBYTE_TIMEOUT_S,
    LINK_VERSION,
    POLL_REPLY_WORDS,
    REPLY_HEADER_BYTES,
    Command,
    FrameError,
    LinkInfo,
    PollResult,
    Status,
    clocks_per_bit,
    decode_reply,
    encode_info,
    encode_poll,
    encode_read,
    encode_write,
)
from caterpillar.contract.registers import (
    CORE_ID,
    RING_ID,
    RegisterMap,
    RingRegisterMap,
    core_address,
)
from caterpillar.software.driver.device import Device, DeviceTimeout

__all__ = ["Transport", "SerialTransport", "UartDevice", "LinkError", "LinkTimeout",
           "open_serial"]


class LinkError(RuntimeError):
    """The link failed: the far end refused a request, or its reply was malformed."""


class LinkTimeout(LinkError):
    """No (complete) reply came in time."""


class Transport(ABC):
    """A byte stream to a host bridge."""

    #: Name for messages (a port name, "the simulator").
    name: str = "the link"

    @abstractmethod
    def write(self, data: bytes) -> None:
        """Send ``data`` (a whole frame, in one piece)."""

    @abstractmethod
    def read(self, count: int, timeout: float) -> bytes:
        """Return exactly ``count`` bytes; raise :class:`LinkTimeout` if they do not come
        within ``timeout`` seconds."""

    def discard(self) -> None:
        """Drop bytes received and not read (before a fresh start)."""

    def close(self) -> None:
        """Release the stream. Idempotent."""


class SerialTransport(Transport):
    """A serial port, 8N1 at ``baud``: a device path or any pyserial URL (``socket://host:
    port`` for a board on another machine, ``loop://`` for a loopback)."""

    def __init__(self, port: str, baud: int = BAUD):
        self.name = port
        try:
            self._port = serial.serial_for_url(port, baud, timeout=1.0, write_timeout=10.0)
        except (serial.SerialException, ValueError) as e:
            raise OSError(f"cannot open --port {port}: {e}") from None

    def write(self, data: bytes) -> None:
        try:
            self._port.write(data)
            self._port.flush()
        except serial.SerialException as e:
            raise LinkError(f"writing to {self.name} failed: {e}") from None

    def read(self, count: int, timeout: float) -> bytes:
        self._port.timeout = timeout
        try:
            data = self._port.read(count)
        except serial.SerialException as e:
            raise LinkError(f"reading from {self.name} failed: {e}") from None
        if len(data) != count:
            raise LinkTimeout(f"{self.name}: {len(data)} of {count} bytes within {timeout:.2f} s")
        return data

    def discard(self) -> None:
        self._port.reset_input_buffer()

    def close(self) -> None:
        if self._port.is_open:
            self._port.close()


def open_serial(port: str) -> SerialTransport:
    """Open ``port`` at the board's baud rate; an ``OSError`` says why it cannot be opened."""
    return SerialTransport(port)


class UartDevice(Device):
    """A ring of cores (:class:`~caterpillar.contract.registers.RingRegisterMap`) reached
    through a host bridge over ``transport``.

    Bursts longer than the bridge's limit are split; ``poll`` is one POLL request, so its
    cycles are counted by the hardware, exactly as on the other backends. A refused request
    or a malformed reply raises :class:`LinkError`.

    Parameters
    ----------
    transport : Transport
    cfg : CaterpillarConfig
        The config the board must have been built for: checked on opening (the ring's ID and
        core count, each core's ``CONFIG`` and memory sizes); a mismatch raises ``ValueError``.
    reply_timeout : float
        Seconds to wait for a reply beyond its transfer time (a simulator's wall time per
        simulated cycle is far longer than a board's: its transport ignores this).
    """

    def __init__(self, transport: Transport, cfg, *, reply_timeout: float = 1.0):
        self.transport = transport
        self.cfg = cfg
        self.reply_timeout = reply_timeout
        self._map = RingRegisterMap(cfg)
        self.requests = 0
        self.info: LinkInfo | None = None
        try:
            self.info = self._hello()
            self._check_board()
        except BaseException:
            transport.close()
            raise

    # -- the link ----------------------------------------------------------------------------

    def _seconds(self, cycles: int, reply_words: int, sent: int) -> float:
        """Time for ``sent`` bytes out, ``cycles`` of execution and the reply to come back."""
        info = self.info
        clock, cpb = (info.clock_hz, info.clocks_per_bit) if info else (BOARD_CLOCK_HZ,
                                                                        clocks_per_bit())
        bytes_on_line = sent + REPLY_HEADER_BYTES + 4 * reply_words + CRC_BYTES
        return self.reply_timeout + (cycles + 10 * cpb * bytes_on_line) / max(clock, 1)

    def _request(self, frame: bytes, reply_words: int, cycles: int = 0) -> tuple:
        command = Command(frame[1])
        self.transport.write(frame)
        self.requests += 1
        timeout = self._seconds(cycles, reply_words, len(frame))
        try:
            reply = decode_reply(lambda n: self.transport.read(n, timeout))
        except FrameError as e:
            raise LinkError(f"{self.transport.name}: bad reply to {command.name}: {e}") from None
        if reply.command != command.value:
            raise LinkError(f"{self.transport.name}: a reply to command {reply.command:#04x} "
                            f"came for {command.name} (the link lost a frame)")
        if reply.status is not Status.OK:
            raise LinkError(f"{self.transport.name}: the board refused {command.name}: "
                            f"{reply.status.name} ({reply.status.doc()})")
        if len(reply.words) != reply_words:
            raise LinkError(f"{self.transport.name}: {command.name} answered {len(reply.words)} "
                            f"words, not {reply_words}")
        return reply.words

    def _hello(self) -> LinkInfo:
        # A frame a crashed host left half sent ends with the bridge's inter-byte timeout:
        # wait it out and for its error reply to cross USB (an FT231X holds a short reply
        # for its latency timer, 16 ms by default), drop that reply, then ask who is there.
        time.sleep(2 * INTERBYTE_TIMEOUT_S + 0.032)
        self.transport.discard()
        try:
            words = self._request(encode_info(), INFO_WORDS)
        except LinkError as e:
            raise OSError(f"no CATERPILLAR host bridge answered on {self.transport.name} at "
                          f"{BAUD} baud (is the board's bitstream loaded?): {e}") from None
        info = LinkInfo(*words)
        if info.version != LINK_VERSION:
            raise OSError(f"{self.transport.name} speaks host-link version {info.version:#x}, "
                          f"this driver {LINK_VERSION:#x}; rebuild the bitstream or update")
        return info

    def _check_board(self) -> None:
        cfg = self.cfg
        ring_id, cores = self.read(self._map.address("RING_ID"), 2)
        want = RegisterMap(cfg)
        problems = []
        if ring_id != RING_ID:
            problems.append(f"its ID is {ring_id:#010x}, not the ring's {RING_ID:#010x}")
        elif cores != cfg.cores:
            problems.append(f"it has {cores} cores, the config {cfg.cores}")
        else:
            names = list(want.constants())
            first = min(want[n] for n in names)
            for k in range(cfg.cores):
                values = self.read(core_address(k, first), max(want[n] for n in names) - first
                                   + 1)
                got = {n: values[want[n] - first] for n in names}
                if got != want.constants():
                    bad = [f"{n} {got[n]:#x} (config: {want.constants()[n]:#x})"
                           for n in names if got[n] != want.constants()[n]]
                    problems.append(f"core {k} has {', '.join(bad)}")
                    break
        if problems:
            raise ValueError(f"the board on {self.transport.name} was not built for config "
                             f"{cfg.name}: {'; '.join(problems)}; pass the board's --config "
                             f"or rebuild the bitstream for this one (core ID {CORE_ID:#x})")

    # -- Device ------------------------------------------------------------------------------

    def register_map(self) -> dict:
        return self._map.to_dict()

    def write(self, addr: int, words) -> None:
        words = [int(w) & 0xFFFF_FFFF for w in words]
        step = self.info.max_burst
        for start in range(0, len(words), step):
            chunk = words[start:start + step]
            self._request(encode_write(addr + start, chunk), 0, cycles=len(chunk))

    def read(self, addr: int, count: int = 1) -> list[int]:
        step = self.info.max_burst
        out = []
        for start in range(0, count, step):
            n = min(step, count - start)
            out += self._request(encode_read(addr + start, n), n, cycles=n)
        return out

    def poll(self, addr: int, mask: int, timeout_cycles: int) -> tuple[int, int]:
        words = self._request(encode_poll(addr, mask, timeout_cycles), POLL_REPLY_WORDS,
                              cycles=timeout_cycles)
        result = PollResult.from_words(words)
        if result.timed_out:
            raise DeviceTimeout(f"register {addr:#x} did not match {mask:#x} within "
                                f"{timeout_cycles} cycles")
        return result.value, result.waited

    def close(self) -> None:
        self.transport.close()
