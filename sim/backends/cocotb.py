"""A :class:`~caterpillar.software.driver.device.Device` on a cocotb-simulated core (Icarus,
Verilator).

The driver is ordinary blocking code; inside a cocotb test it runs in a thread started with
``cocotb.task.bridge`` and each device call hands its bus transactions back to the simulator
with ``cocotb.task.resume``. Inputs change and outputs are sampled on falling clock edges.
"""

from __future__ import annotations

from cocotb.task import resume
from cocotb.triggers import FallingEdge

from caterpillar.software.driver.device import Device, DeviceTimeout

__all__ = ["CocotbDevice"]


class CocotbDevice(Device):
    """The core behind ``dut``'s host-bus ports (``bus__addr``, ``bus__wdata``, ...).

    Parameters
    ----------
    dut : cocotb handle of the ``core`` top level (clock already running, out of reset)
    register_map : dict
        :meth:`RegisterMap.to_dict` of the core's config.
    """

    def __init__(self, dut, register_map: dict):
        self.dut = dut
        self._map = register_map
        self.cycles = 0

    def register_map(self) -> dict:
        return self._map

    async def _edge(self):
        await FallingEdge(self.dut.clk)
        self.cycles += 1

    async def _write(self, addr, words):
        dut = self.dut
        for offset, value in enumerate(words):
            dut.bus__addr.value = addr + offset
            dut.bus__wdata.value = int(value) & 0xFFFFFFFF
            dut.bus__we.value = 1
            await self._edge()
        dut.bus__we.value = 0

    async def _read_one(self, addr):
        dut = self.dut
        dut.bus__addr.value = addr
        dut.bus__re.value = 1
        await self._edge()
        dut.bus__re.value = 0
        value = dut.bus__rdata.value
        if not value.is_resolvable:
            raise RuntimeError(f"host read of {addr:#x} returned unknown bits {value} (X/Z)")
        return int(value)

    async def _read(self, addr, count):
        return [await self._read_one(addr + offset) for offset in range(count)]

    async def _poll(self, addr, mask, timeout_cycles):
        start = self.cycles
        while self.cycles - start < timeout_cycles:
            value = await self._read_one(addr)
            if value & mask:
                return value, self.cycles - start
        raise DeviceTimeout(f"register {addr:#x} did not match {mask:#x} within "
                            f"{timeout_cycles} cycles")

    def write(self, addr: int, words) -> None:
        resume(self._write)(addr, list(words))

    def read(self, addr: int, count: int = 1) -> list[int]:
        return resume(self._read)(addr, count)

    def poll(self, addr: int, mask: int, timeout_cycles: int) -> tuple[int, int]:
        return resume(self._poll)(addr, mask, timeout_cycles)
