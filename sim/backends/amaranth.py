"""A :class:`~caterpillar.software.driver.device.Device` running the core (or the ring) in
Amaranth's simulator."""

from __future__ import annotations

from collections import deque

from amaranth.sim import Simulator

from caterpillar.rtl.core import Core
from caterpillar.rtl.ring import Ring
from caterpillar.software.driver.device import Device, DeviceTimeout

__all__ = ["AmaranthDevice"]


class AmaranthDevice(Device):
    """The core's RTL in the Amaranth simulator, driven through its host bus.

    One background testbench serves the device calls in order; each call advances the
    simulation until its bus transactions are done (one cycle per word written or read), so
    the state persists between calls. Slow (pure Python): meant for small configs and programs.

    Parameters
    ----------
    cfg : CaterpillarConfig
    vcd_path : str, optional
        Write a waveform of the whole session (closed by :meth:`close`).
    ring : bool
        Simulate the ring of ``cfg.cores`` cores (:class:`~caterpillar.rtl.ring.Ring`, ring
        address map) instead of one core.
    """

    def __init__(self, cfg, vcd_path=None, ring=False):
        self.cfg = cfg
        if ring:

            self.core = Ring(cfg)
        else:
            self.core = Core(cfg)
        self._queue = deque()
        self.sim = Simulator(self.core)
        self.sim.add_clock(1e-8)
        self.sim.add_testbench(self._server, background=True)
        self._vcd = self.sim.write_vcd(vcd_path) if vcd_path else None
        if self._vcd:
            self._vcd.__enter__()
        self.cycles = 0

    def register_map(self) -> dict:
        return self.core.register_map.to_dict()

    async def _server(self, ctx):
        while True:
            if self._queue:
                job, box = self._queue.popleft()
                try:
                    box["result"] = await job(ctx)
                except Exception as exc:  # handed to the caller, who re-raises it
                    box["error"] = exc
            else:
                await ctx.tick()
                self.cycles += 1

    def _call(self, job):
        box = {}
        self._queue.append((job, box))
        while not box:
            self.sim.advance()
        if "error" in box:
            raise box["error"]
        return box["result"]

    async def _tick(self, ctx):
        await ctx.tick()
        self.cycles += 1

    def write(self, addr: int, words) -> None:
        bus = self.core.bus
        words = [int(w) for w in words]

        async def job(ctx):
            for offset, value in enumerate(words):
                ctx.set(bus.addr, addr + offset)
                ctx.set(bus.wdata, value)
                ctx.set(bus.we, 1)
                await self._tick(ctx)
            ctx.set(bus.we, 0)

        self._call(job)

    async def _read_one(self, ctx, addr):
        bus = self.core.bus
        ctx.set(bus.addr, addr)
        ctx.set(bus.re, 1)
        await self._tick(ctx)
        ctx.set(bus.re, 0)
        return ctx.get(bus.rdata)

    def read(self, addr: int, count: int = 1) -> list[int]:
        async def job(ctx):
            return [await self._read_one(ctx, addr + offset) for offset in range(count)]

        return self._call(job)

    def poll(self, addr: int, mask: int, timeout_cycles: int) -> tuple[int, int]:
        async def job(ctx):
            start = self.cycles
            while self.cycles - start < timeout_cycles:
                value = await self._read_one(ctx, addr)
                if value & mask:
                    return value, self.cycles - start
            raise DeviceTimeout(f"register {addr:#x} did not match {mask:#x} within "
                                f"{timeout_cycles} cycles")

        return self._call(job)

    def close(self) -> None:
        if self._vcd is not None:
            self._vcd.__exit__(None, None, None)
            self._vcd = None
