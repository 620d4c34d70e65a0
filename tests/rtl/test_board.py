# amaranth: UnusedElaboratable=no
"""The board top: the PLL dividers are Project Trellis' ``ecppll`` choices and exact, the link
runs at a whole number of clocks per bit, the simulation top has plain ports and answers on
its UART pins with the status LEDs following the ring and the link, and the PLL top builds for
the ULX3S-85F with the FTDI pins, the button and the PLL clock's constraint."""

import pytest
from amaranth.sim import Simulator

from caterpillar.contract.config import preset
from caterpillar.contract.host_link import (
    BOARD_CLOCK_HZ,
    LinkInfo,
    Status,
    decode_reply,
    encode_info,
    encode_write,
)
from caterpillar.contract.isa import Opcode, encode
from caterpillar.contract.registers import CTRL, IMEM_BASE, RingRegisterMap, core_address
from caterpillar.rtl.board import LEDS, OSCILLATOR_HZ, Board, board_markdown, pll_parameters

CFG = preset("tiny")


@pytest.mark.parametrize("mhz, expected", [
    # Project Trellis' ecppll -i 25 -o MHZ (CLKI_DIV, CLKFB_DIV, CLKOP_DIV, CLKOP_CPHASE).
    (45, (5, 9, 13, 6)), (60, (5, 12, 10, 4)), (30, (5, 6, 20, 9)), (50, (1, 2, 12, 5)),
])
def test_pll_dividers_are_ecpplls(mhz, expected):
    p = pll_parameters(OSCILLATOR_HZ, mhz * 1_000_000)
    assert (p["CLKI_DIV"], p["CLKFB_DIV"], p["CLKOP_DIV"], p["CLKOP_CPHASE"]) == expected
    assert OSCILLATOR_HZ * p["CLKFB_DIV"] == mhz * 1_000_000 * p["CLKI_DIV"]   # exact
    assert 400e6 <= mhz * 1e6 * p["CLKOP_DIV"] <= 800e6                         # VCO range


def test_48_mhz_is_not_reachable_exactly():
    with pytest.raises(ValueError, match="cannot make exactly 48000000 Hz from 25000000 Hz"):
        pll_parameters(OSCILLATOR_HZ, 48_000_000)


def test_the_board_runs_the_link_at_5_clocks_per_bit():
    board = Board(CFG)
    assert (board.clock_hz, board.baud, board.clocks_per_bit) == (15_000_000, 3_000_000, 5)
    assert board.timeout_cycles == 75_000                      # 5 ms
    assert dict(board.signature.members) == {}                # the platform gives the pins
    with pytest.raises(ValueError, match="pass pll=False to simulate"):
        board.elaborate(None)
    with pytest.raises(ValueError, match="no whole number"):
        Board(CFG, pll=False, clock_hz=10_000_000)


def test_the_simulation_top_answers_and_its_leds_follow():
    board = Board(CFG, pll=False, clock_hz=8_000_000, baud=2_000_000)      # 4 clocks per bit
    assert set(board.signature.members) == {"uart_rx", "uart_tx", "leds", "link_idle"}
    cpb = board.clocks_per_bit
    replies, leds_seen, marks = [], [], {}

    async def send(ctx, data):
        for byte in data:
            for bit in [0, *[(byte >> k) & 1 for k in range(8)], 1]:
                ctx.set(board.uart_rx, bit)
                await ctx.tick().repeat(cpb)
                leds_seen.append(ctx.get(board.leds))

    async def receive(ctx):
        data = bytearray()
        for _ in range(40 * cpb * 20):                          # watchdog
            if ctx.get(board.link_idle) and len(data) >= 7:
                break
            if not ctx.get(board.uart_tx):
                await ctx.tick().repeat(cpb // 2)
                value = 0
                for k in range(8):
                    await ctx.tick().repeat(cpb)
                    value |= ctx.get(board.uart_tx) << k
                await ctx.tick().repeat(cpb)
                data.append(value)
            else:
                await ctx.tick()
        else:
            raise AssertionError("no reply within the watchdog")
        buffer = bytes(data)
        offset = [0]

        def read(n):
            offset[0] += n
            return buffer[offset[0] - n:offset[0]]
        replies.append(decode_reply(read))
        leds_seen.append(ctx.get(board.leds))

    async def bench(ctx):
        ctx.set(board.uart_rx, 1)
        await ctx.tick().repeat(5)
        assert ctx.get(board.leds) & 0b111 == 0                  # not running, done or error
        assert ctx.get(board.link_idle)
        await send(ctx, encode_info())
        await receive(ctx)
        marks["info"] = ctx.get(board.leds)
        await send(ctx, encode_write(0xFC00_0000, [1])[:-1] + b"\x00")   # bad CRC
        await receive(ctx)
        marks["refused"] = ctx.get(board.leds)
        halt = encode(Opcode.HALT)
        await send(ctx, encode_write(core_address(0, IMEM_BASE),
                                     [(halt >> (32 * w)) & 0xFFFF_FFFF for w in range(8)]))
        await receive(ctx)
        ring = RingRegisterMap(CFG)
        await send(ctx, encode_write(ring.address("CTRL"), [CTRL.pack(start=1)]))
        await receive(ctx)
        await ctx.tick().repeat(20)
        leds_seen.append(ctx.get(board.leds))

    sim = Simulator(board)
    sim.add_clock(1 / 12e6)
    sim.add_testbench(bench)
    sim.run()
    info, refused, loaded, started = replies
    assert LinkInfo(*info.words).clocks_per_bit == cpb
    assert refused.status is Status.BAD_CRC
    assert loaded.status is started.status is Status.OK
    assert all(seen & (1 << 3) for seen in leds_seen[12:])      # link activity, stretched
    assert not marks["info"] & (1 << 4) and marks["refused"] & (1 << 4)    # link fault
    assert leds_seen[-1] & (1 << 4)                             # stretched
    assert marks["info"] & 0b111 == 0 and leds_seen[-1] & 0b111 == 0b010   # halted: done


def test_the_led_table_names_every_led():
    text = board_markdown()
    for k, (name, _) in LEDS.items():
        assert f"| {k} | {name} |" in text


@pytest.mark.integration
def test_the_pll_top_builds_for_the_ulx3s(tmp_path):
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    plan = ULX3S_85F_Platform().build(Board(CFG), name="board", build_dir=str(tmp_path),
                                      do_build=False)
    files = {name: plan.files[name] for name in plan.files}
    rtlil = files["board.il"]
    rtlil = rtlil if isinstance(rtlil, str) else rtlil.decode()
    assert "EHXPLLL" in rtlil
    for param, value in pll_parameters(OSCILLATOR_HZ, BOARD_CLOCK_HZ).items():
        assert f"parameter \\{param} {value}" in rtlil, param
    lpf = files["board.lpf"]
    lpf = lpf if isinstance(lpf, str) else lpf.decode()
    for site in ("M1", "L4", "D6", "G2", "B2", "H3"):          # UART rx/tx, PWR, clock, LEDs
        assert f'SITE "{site}"' in lpf, site
    assert f'FREQUENCY NET "pll_clk" {float(BOARD_CLOCK_HZ)} HZ' in lpf    # the PLL's output
