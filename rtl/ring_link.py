"""The link between neighbouring cores on the ring, and a stall injector for verification."""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ring_link", "LinkStall"]


def ring_link(cfg) -> stream.Signature:
    """Return the signature of one ring link (the sender's side): ``nr`` words per beat.

    A beat moves when ``valid`` and ``ready`` are both high. Both are driven from registers at
    each end (no combinational path through a core), so a ring of links has no loop.
    """
    return stream.Signature(data.ArrayLayout(cfg.word_width, cfg.nr))


class LinkStall(wiring.Component):
    """Blocks a link in pseudo-random cycles (a verification aid, off after reset).

    Contract: combinational pass-through of ``upstream`` to ``downstream``, except in cycles
    where the 16-bit Galois LFSR's low byte is below ``threshold``: then neither ``valid`` nor
    ``ready`` passes and no beat moves. ``threshold = 0`` never stalls. ``seed`` is loaded
    (nonzero) whenever ``load`` is high.

    Members
    -------
    upstream : In(ring_link(cfg))
    downstream : Out(ring_link(cfg))
    threshold : In(8)
    seed : In(16)
    load : In(1)
    """

    def __init__(self, cfg):
        super().__init__({"upstream": In(ring_link(cfg)), "downstream": Out(ring_link(cfg)),
                          "threshold": In(8), "seed": In(16), "load": In(1)})

    def elaborate(self, platform):
        m = Module()
        lfsr = Signal(16, init=0xACE1)
        feedback = lfsr[0]
        shifted = lfsr >> 1
        with m.If(self.load):
            m.d.sync += lfsr.eq(self.seed | (self.seed == 0))
        with m.Else():
            m.d.sync += lfsr.eq(shifted ^ (feedback * 0xB400))
        blocked = lfsr[:8] < self.threshold
        up, down = self.upstream, self.downstream
        m.d.comb += [down.payload.eq(up.payload), down.valid.eq(up.valid & ~blocked),
                     up.ready.eq(down.ready & ~blocked)]
        return m
