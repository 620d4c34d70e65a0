# amaranth: UnusedElaboratable=no
"""The signatures between a core's blocks: every block's port connects to its partner's, and a
miswire is refused when the design is built, not found in simulation."""

import pytest
from amaranth.hdl import Module, Shape
from amaranth.lib import wiring

from caterpillar.contract.config import preset
from caterpillar.contract.registers import HOST_ADDR_BITS, RING_ADDR_BITS
from caterpillar.rtl.host_interface import HostInterface
from caterpillar.rtl.pe_array import PEArray
from caterpillar.rtl.ports import (
    HostBus,
    HostWindow,
    MicroOps,
    RingPort,
    RingSpadPort,
    SequencerPort,
    SpadEdge,
)
from caterpillar.rtl.ring_engine import RingEngine
from caterpillar.rtl.sequencer import Sequencer
from caterpillar.rtl.spad import Spad

CFG = preset("tiny")


def test_every_pair_of_partners_connects():
    m = Module()
    host, seq = HostInterface(CFG), Sequencer(CFG)
    array, spad, ring = PEArray(CFG), Spad(CFG), RingEngine(CFG)
    wiring.connect(m, host.seq, seq.host)
    wiring.connect(m, host.imem, seq.imem)
    wiring.connect(m, host.spad, spad.host)
    wiring.connect(m, seq.issue, array.issue, spad.issue)
    wiring.connect(m, array.status, seq.array)
    wiring.connect(m, spad.edge, array.spad)
    wiring.connect(m, seq.ring, ring.command)
    wiring.connect(m, ring.spad, spad.ring)
    assert ring.port.signature.members == RingPort(CFG).members


@pytest.mark.parametrize("source, sink", [
    (lambda: HostInterface(CFG).spad, lambda: Sequencer(CFG).imem),        # wrong window
    (lambda: HostInterface(CFG).seq, lambda: Spad(CFG).host),
    (lambda: Sequencer(CFG).issue, lambda: Spad(CFG).edge),
    (lambda: RingEngine(CFG).spad, lambda: Sequencer(CFG).ring),
], ids=["spad-window-to-imem", "seq-to-spad", "microops-to-edge", "ring-spad-to-command"])
def test_a_miswire_is_refused_at_elaboration(source, sink):
    with pytest.raises(wiring.ConnectionError):
        wiring.connect(Module(), source(), sink())


def test_signatures_follow_the_config():
    small = preset("small")
    def width(signature, name):
        return Shape.cast(signature.members[name].shape).width

    assert width(HostBus(), "addr") == HOST_ADDR_BITS
    assert width(HostBus(RING_ADDR_BITS), "addr") == RING_ADDR_BITS
    assert width(HostWindow(12, 16), "wdata") == 16
    assert width(SequencerPort(small), "sreg_wdata") == small.word_width
    assert SpadEdge(small).members["data"].shape.length == small.nr
    assert width(RingSpadPort(small), "wr_lanes") == small.nr
    assert MicroOps(small).members != MicroOps(CFG).members
