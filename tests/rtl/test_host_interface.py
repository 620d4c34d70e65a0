"""The host interface: CSRs decoded from the register map's fields, and host writes into IMEM
or the SPAD, and SPAD reads, refused while the core runs (a sticky ``HOST_ACCESS`` error, memory
unchanged, the read 0)."""

import pytest
from amaranth.sim import Simulator

from caterpillar.contract.config import preset
from caterpillar.contract.isa import ErrorCause, Layout, Opcode, encode
from caterpillar.contract.registers import CONFIG, CTRL, STATUS, RegisterMap
from caterpillar.rtl.host_interface import HostInterface, register_layout
from caterpillar.sim.backends.amaranth import AmaranthDevice
from caterpillar.software.driver.core import Driver

TINY = preset("tiny")
REGS = RegisterMap(TINY)


def test_register_layout_places_every_field():
    layout = register_layout(STATUS)
    assert layout.size == 32
    for f in STATUS.fields:
        assert layout.members[f.name] == f.width
    offsets = {name: field.offset for name, field in layout}
    assert offsets["busy"] == 0 and offsets["done"] == 1 and offsets["error"] == 2
    assert {name: field.offset for name, field in register_layout(CONFIG)}["add_latency"] == 16


def test_ctrl_bits_become_pulses_and_windows_route_by_address():
    host = HostInterface(TINY)
    seen = {}

    async def bench(ctx):
        ctx.set(host.bus.addr, REGS["CTRL"])
        ctx.set(host.bus.wdata, CTRL.pack(start=1, clear_counters=1))
        ctx.set(host.bus.we, 1)
        seen["ctrl"] = (ctx.get(host.seq.start), ctx.get(host.seq.clear),
                        ctx.get(host.seq.clear_counters))
        ctx.set(host.bus.addr, REGS.spad_base + 9)
        seen["spad"] = (ctx.get(host.spad.we), ctx.get(host.spad.addr), ctx.get(host.imem.we))
        ctx.set(host.bus.addr, REGS.imem_base + 17)
        seen["imem"] = (ctx.get(host.imem.we), ctx.get(host.imem.addr), ctx.get(host.spad.we))
        ctx.set(host.seq.busy, 1)
        seen["refused"] = (ctx.get(host.imem.we), ctx.get(host.seq.host_refused))
        ctx.set(host.bus.we, 0)
        ctx.set(host.bus.re, 1)
        ctx.set(host.bus.addr, REGS.spad_base + 9)
        seen["spad read refused"] = (ctx.get(host.spad.re), ctx.get(host.seq.host_refused))
        ctx.set(host.bus.addr, REGS.imem_base + 17)
        seen["imem read"] = (ctx.get(host.imem.re), ctx.get(host.seq.host_refused))
        ctx.set(host.bus.re, 1)
        ctx.set(host.bus.addr, REGS["CONFIG"])
        await ctx.tick()
        seen["config"] = ctx.get(host.bus.rdata)

    sim = Simulator(host)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen["ctrl"] == (1, 0, 1)
    assert seen["spad"] == (1, 9, 0) and seen["imem"] == (1, 17, 0)
    assert seen["refused"] == (0, 1)
    assert seen["spad read refused"] == (0, 1) and seen["imem read"] == (1, 0)
    assert seen["config"] == REGS.config_word


@pytest.mark.integration
def test_a_host_access_while_busy_stops_the_core_and_changes_nothing():
    device = AmaranthDevice(TINY)
    driver = Driver(device)
    # A long program: many vector loads, then HALT.
    program = [encode(Opcode.LDV, spad=0, memb=0, len=64, layout=Layout.DIAG)] * 40
    driver.load_program(program + [encode(Opcode.HALT)])
    driver.write_spad(8, [0x11, 0x22])
    for window, value in ((REGS.spad_base + 8, 0x99), (REGS.imem_base, 0xFFFFFFFF),
                          (REGS.spad_base + 8, None)):
        device.write(REGS["START_PC"], [0])
        device.write(REGS["CTRL"], [CTRL.pack(start=1, clear_counters=1)])
        if value is None:                                # refused: the core is busy
            assert device.read(window) == [0]
        else:
            device.write(window, [value])
        status = STATUS.unpack(device.read(REGS["STATUS"])[0])
        assert status == {"busy": 0, "done": 0, "error": 1}
        assert device.read(REGS["ERROR_CAUSE"]) == [ErrorCause.HOST_ACCESS.value]
        assert driver.read_spad(8, 2).tolist() == [0x11, 0x22]
        assert driver.read_program(1) == program[:1]
        device.write(REGS["CTRL"], [CTRL.pack(clear=1)])
    # Cleared, the core runs the unchanged program to the end.
    assert driver.run().instret == len(program) + 1


@pytest.mark.integration
def test_host_words_count_the_windows_words_across_runs_until_their_own_clear():
    from caterpillar.contract.isa import INSTR_WORDS, Counter
    from caterpillar.software.isasim.device import IsaDevice

    program = [encode(Opcode.LDV, spad=0, memb=0, len=8, layout=Layout.DIAG),
               encode(Opcode.HALT)]
    counts = []
    for device in (AmaranthDevice(TINY), IsaDevice(TINY)):
        driver = Driver(device)
        driver.load_program(program)                     # IMEM words
        driver.write_spad(3, list(range(10)))
        driver.read_spad(0, 7)
        driver.set_scalar(1, 5)                          # a CSR: not a window word
        before = driver.counter(Counter.HOST_WORDS)
        driver.run()                                     # start + clear_counters
        after = driver.counter(Counter.HOST_WORDS)
        device.write(REGS["CTRL"], [CTRL.pack(clear_host_words=1)])
        cleared = driver.counter(Counter.HOST_WORDS)
        counts.append((before, after, cleared, driver.counter(Counter.INSTRET)))
    want = len(program) * INSTR_WORDS + 10 + 7
    assert counts[0] == counts[1] == (want, want, 0, 2), counts
