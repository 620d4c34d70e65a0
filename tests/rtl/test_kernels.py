"""The micro-op generators: one per opcode that issues micro-ops, matched by an executor in the
instruction-level simulator (the tables an added instruction extends)."""

from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from caterpillar.contract.config import preset
from caterpillar.contract.geometry import SEQUENCER_OPCODES
from caterpillar.contract.isa import Opcode
from caterpillar.rtl.kernels import KERNELS, Emitter
from caterpillar.rtl.microop import compute_layout, transfer_layout
from caterpillar.software.isasim.core import EXECUTE

#: Instructions with an engine of their own instead of a generator.
ENGINES = {Opcode.GEMM, Opcode.RING}


def test_every_opcode_is_handled_exactly_once():
    handled = [*SEQUENCER_OPCODES, *KERNELS, *ENGINES]
    assert sorted(handled, key=lambda o: o.value) == sorted(Opcode, key=lambda o: o.value)


def test_the_simulator_executes_what_the_hardware_computes():
    assert set(EXECUTE) == (set(KERNELS) | {Opcode.GEMM})


def test_an_emitter_sets_only_the_fields_it_is_given():
    cfg = preset("tiny")
    m = Module()
    uop, xfer = Signal(compute_layout(cfg)), Signal(transfer_layout(cfg))
    first, mask = Signal(8), Signal(cfg.nr)
    loops = {name: Signal(20, name=f"i_{name}") for name in ("top", "outer", "middle", "inner")}
    e = Emitter(m, cfg, uop, xfer, None, {}, Signal(4), loops, {})
    e.uop(memb_rd=3, acc_wr=1)
    e.xfer(spad_row=2)
    m.d.comb += mask.eq(e.lanes_below(first, 2))
    seen = {}

    async def bench(ctx):
        ctx.set(first, 1)
        seen["uop"] = {k: ctx.get(getattr(uop, k)) for k in ("valid", "memb_rd", "acc_wr",
                                                             "memb_wr", "mema")}
        seen["xfer"] = {k: ctx.get(getattr(xfer, k)) for k in ("valid", "spad_row", "store")}
        seen["mask"] = ctx.get(mask)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert seen["uop"] == {"valid": 1, "memb_rd": 3, "acc_wr": 1, "memb_wr": 0, "mema": 0}
    assert seen["xfer"] == {"valid": 1, "spad_row": 2, "store": 0}
    assert seen["mask"] == 0b01          # element 1 < 2, element 2 is not
    assert e.word(1.0) == 0x3F800000 and e.word(-2.0) == 0xC0000000
