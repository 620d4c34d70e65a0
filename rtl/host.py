"""The host bus the core is reached through (its address map is :mod:`.regmap`)."""

from __future__ import annotations

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .regmap import HOST_ADDR_BITS

__all__ = ["HostBus"]


class HostBus(wiring.Signature):
    """A single-cycle host bus, from the host's side (the core has ``In(HostBus())``).

    A request is one cycle with ``we`` (write ``wdata`` to ``addr``) or ``re`` (read ``addr``);
    read data is on ``rdata`` in the next cycle. Every request completes: there is no wait
    state. Addresses are word addresses of ``addr_bits`` bits (a core decodes 26, the ring 32).
    """

    def __init__(self, addr_bits: int = HOST_ADDR_BITS):
        super().__init__({"addr": Out(addr_bits), "wdata": Out(32), "we": Out(1),
                          "re": Out(1), "rdata": In(32)})
