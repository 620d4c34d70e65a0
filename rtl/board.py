"""The board top: the ring of cores behind the UART host bridge, for the ULX3S-85F or for
simulation.

On the board (``pll=True``, built with amaranth-boards' ``ULX3S_85F_Platform``) the ECP5 PLL
makes the system clock from the 25 MHz oscillator, the reset is held while the PLL is not
locked or the reset button is pressed (released synchronously), the bridge sits on the FTDI
FT231X's UART pins and eight LEDs show the state. Without the PLL (``pll=False``) the same
logic has plain ports and runs on the ``sync`` domain's ``clk`` and ``rst``, so it converts to
Verilog and Verilates (``sim/cpp/uart_host.cpp``).
"""

from __future__ import annotations

from amaranth.hdl import ClockDomain, Instance, Module, Signal
from amaranth.lib import io, wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import In, Out

from caterpillar.contract.host_link import (
    BAUD,
    BOARD_CLOCK_HZ,
    clocks_per_bit,
    host_link_markdown,
    interbyte_timeout_cycles,
)
from caterpillar.contract.registers import RingRegisterMap
from caterpillar.rtl.host_bridge import HostBridge
from caterpillar.rtl.ring import Ring, check_ring_config

__all__ = ["Board", "LEDS", "pll_parameters", "OSCILLATOR_HZ", "RESET_BUTTON",
           "board_markdown", "host_link_document"]

#: The ULX3S's oscillator.
OSCILLATOR_HZ = 25_000_000
#: The button that resets the design (the ULX3S's ``PWR`` button, BTN0, active low on the
#: board; amaranth-boards inverts it).
RESET_BUTTON = "button_pwr"
#: What each LED shows, by index (LED 0 is the ULX3S's D0).
LEDS = {
    0: ("running", "some core is busy (ring `STATUS.busy`)"),
    1: ("done", "every core is done (ring `STATUS.done`)"),
    2: ("error", "some core stopped with an error (ring `STATUS.error`)"),
    3: ("link", "a byte is being received or sent (stretched to 20 ms)"),
    4: ("link fault", "a framing error or an error reply (stretched to 20 ms)"),
    7: ("heartbeat", f"toggles every "
                     f"{2 ** (BOARD_CLOCK_HZ.bit_length() - 1) / BOARD_CLOCK_HZ:.2f} s at "
                     f"{BOARD_CLOCK_HZ / 1e6:g} MHz: the PLL runs"),
}
LED_COUNT = 8

# The ECP5 PLL (EHXPLLL, Lattice TN1263): phase-detector and VCO ranges, divider ranges.
_PFD_HZ = (3_125_000, 400_000_000)
_VCO_HZ = (400_000_000, 800_000_000)
_VCO_TARGET_HZ = 600_000_000


def pll_parameters(input_hz: int, output_hz: int) -> dict:
    """Return the EHXPLLL dividers that make exactly ``output_hz`` from ``input_hz``
    (feedback from CLKOP): ``CLKI_DIV``, ``CLKFB_DIV``, ``CLKOP_DIV``, ``CLKOP_CPHASE``.

    The smallest input divider that gives the frequency exactly, and the output divider that
    puts the VCO nearest 600 MHz (Project Trellis' ``ecppll`` makes the same choice). Raises
    ``ValueError`` when no setting is exact.
    """
    for refdiv in range(1, 129):
        pfd = input_hz / refdiv
        if not _PFD_HZ[0] <= pfd <= _PFD_HZ[1]:
            continue
        fbdiv, rest = divmod(output_hz * refdiv, input_hz)
        if rest or not 1 <= fbdiv <= 80:
            continue
        dividers = [d for d in range(1, 129) if _VCO_HZ[0] <= output_hz * d <= _VCO_HZ[1]]
        if not dividers:
            continue
        opdiv = min(dividers, key=lambda d: abs(output_hz * d - _VCO_TARGET_HZ))
        return {"CLKI_DIV": refdiv, "CLKFB_DIV": fbdiv, "CLKOP_DIV": opdiv,
                "CLKOP_CPHASE": (opdiv - 1) // 2}
    raise ValueError(f"the ECP5 PLL cannot make exactly {output_hz} Hz from {input_hz} Hz")


class Board(wiring.Component):
    """:class:`~caterpillar.rtl.ring.Ring` ``(cfg)`` behind a
    :class:`~caterpillar.rtl.host_bridge.HostBridge`, with status LEDs.

    Contract: the host reaches the ring's whole host bus (``RING_ADDR_BITS``-bit word
    addresses) through the link of ``docs/host-link.md`` at ``baud`` (``clock_hz / baud``
    clocks per bit, which must be a whole number); the inter-byte timeout is
    :data:`~caterpillar.contract.host_link.INTERBYTE_TIMEOUT_S`. LEDs: :data:`LEDS`. Reset:
    the ring and the bridge reset together.

    With ``pll=True`` the component has no ports: :meth:`elaborate` requests ``clk25``, the
    UART, the LEDs and :data:`RESET_BUTTON` from the platform, makes the ``sync`` domain at
    ``clock_hz`` with the PLL and holds it in reset while the PLL is unlocked or the button is
    pressed. With ``pll=False`` it has the members below and uses the ``sync`` domain it is
    given.

    Parameters
    ----------
    cfg : CaterpillarConfig
    pll : bool
    clock_hz : int
        The system clock (exactly reachable by the PLL from 25 MHz when ``pll``).
    baud : int

    Members
    -------
    uart_rx : In(1)
        From the host, idle high.
    uart_tx : Out(1)
        To the host, idle high.
    leds : Out(8)
    link_idle : Out(1)
        The bridge waits for a request and sends nothing (a simulation harness stops the
        clock only then).
    """

    def __init__(self, cfg, *, pll: bool = True, clock_hz: int = BOARD_CLOCK_HZ,
                 baud: int = BAUD):
        self.cfg = cfg
        self.pll = pll
        self.clock_hz = clock_hz
        self.baud = baud
        self.clocks_per_bit = clocks_per_bit(clock_hz, baud)
        self.timeout_cycles = interbyte_timeout_cycles(clock_hz)
        self.pll_parameters = pll_parameters(OSCILLATOR_HZ, clock_hz) if pll else None
        check_ring_config(cfg)
        self.register_map = RingRegisterMap(cfg)
        ports = {} if pll else {"uart_rx": In(1, init=1), "uart_tx": Out(1, init=1),
                                "leds": Out(LED_COUNT), "link_idle": Out(1)}
        super().__init__(ports)

    def elaborate(self, platform):
        if self.pll and platform is None:
            raise ValueError("Board(cfg) with its PLL is built for amaranth-boards' "
                             "ULX3S_85F_Platform; pass pll=False to simulate it")
        m = Module()
        m.submodules.ring = ring = Ring(self.cfg)
        m.submodules.bridge = bridge = HostBridge(
            clocks_per_bit=self.clocks_per_bit, timeout_cycles=self.timeout_cycles,
            clock_hz=self.clock_hz)
        wiring.connect(m, bridge.bus, ring.bus)

        stretch = self.clock_hz // 50
        leds = Signal(LED_COUNT)
        heartbeat = Signal(max(self.clock_hz, 2).bit_length())
        m.d.sync += heartbeat.eq(heartbeat + 1)
        for index, pulse in ((3, bridge.activity), (4, bridge.fault)):
            left = Signal(range(stretch + 1), name=f"led{index}_left")
            with m.If(pulse):
                m.d.sync += left.eq(stretch)
            with m.Elif(left != 0):
                m.d.sync += left.eq(left - 1)
            m.d.comb += leds[index].eq(left != 0)
        m.d.comb += [leds[0].eq(ring.status.busy), leds[1].eq(ring.status.done),
                     leds[2].eq(ring.status.error), leds[7].eq(heartbeat[-1])]

        if not self.pll:
            m.d.comb += [bridge.rx.eq(self.uart_rx), self.uart_tx.eq(bridge.tx),
                         self.leds.eq(leds), self.link_idle.eq(bridge.idle)]
            return m

        m.domains.sync = sync = ClockDomain("sync")
        m.submodules.clk25 = clk25 = io.Buffer("i", platform.request("clk25", 0, dir="-"))
        # A kept net of its own: the timing constraint names it, and Yosys would otherwise
        # keep only some submodule's alias of the clock.
        pll_clk = Signal(name="pll_clk", attrs={"keep": 1})
        m.d.comb += sync.clk.eq(pll_clk)
        locked = Signal()
        params = {f"p_{k}": v for k, v in self.pll_parameters.items()}
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=str(OSCILLATOR_HZ / 1e6),
            a_FREQUENCY_PIN_CLKOP=str(self.clock_hz / 1e6),
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
            p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP", **params,
            i_RST=0, i_STDBY=0, i_CLKI=clk25.i, o_CLKOP=pll_clk, i_CLKFB=pll_clk,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
            i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=locked)
        platform.add_clock_constraint(pll_clk, self.clock_hz)
        m.submodules.button = button = io.Buffer("i", platform.request(RESET_BUTTON, 0,
                                                                       dir="-"))
        m.submodules.reset = ResetSynchronizer(~locked | button.i, domain="sync")

        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [bridge.rx.eq(rx.i), tx.o.eq(bridge.tx)]
        for k in range(LED_COUNT):
            m.submodules[f"led_{k}"] = led = io.Buffer("o", platform.request("led", k, dir="-"))
            m.d.comb += led.o.eq(leds[k])
        return m


def board_markdown() -> str:
    """Return the board part of ``docs/host-link.md`` (``caterpillar docs``)."""
    pll = pll_parameters(OSCILLATOR_HZ, BOARD_CLOCK_HZ)
    vco = BOARD_CLOCK_HZ * pll["CLKOP_DIV"]
    lines = [
        "## Board top (`rtl/board.py`)", "",
        "`Board(cfg)` is `Ring(cfg)` (any number of cores) behind the host bridge. On the "
        "ULX3S-85F (amaranth-boards' `ULX3S_85F_Platform`) it requests the 25 MHz oscillator, "
        "the FTDI FT231X's UART pins (FPGA rx `M1`, tx `L4`), the eight LEDs and the `PWR` "
        "button. `Board(cfg, pll=False)` is the same logic with plain ports on the `sync` "
        "domain: what `uart-sim` Verilates and `tests/sim/flow/test_lint.py` lints.", "",
        "| port (`pll=False`) | direction | meaning |", "|---|---|---|",
        "| `clk`, `rst` | in | the `sync` domain |",
        "| `uart_rx` | in | from the host, idle high |",
        "| `uart_tx` | out | to the host, idle high |",
        f"| `leds` | out | {LED_COUNT} LEDs, below |",
        "| `link_idle` | out | the bridge waits for a request and sends nothing (the "
        "simulation harness stops the clock only then) |", "",
        "| LED | shows | meaning |", "|---|---|---|"]
    lines += [f"| {k} | {name} | {doc} |" for k, (name, doc) in LEDS.items()]
    lines += [
        "",
        f"**Clock and baud rate.** The FT231X runs at 3,000,000 / n baud (n = 1, 1.5, 2, "
        f"...); the link runs at {BAUD:,} baud and the system clock is a whole multiple of "
        f"it: {BOARD_CLOCK_HZ / 1e6:g} MHz, {clocks_per_bit()} clocks per bit, exact. The "
        "clock is below what the `ulx3s` board top meets after place and route "
        "(`docs/fpga.md`); a clock for 3 Mbaud must be a multiple of 3 MHz made exactly from "
        "25 MHz, and the next one is 30 MHz, above the design's Fmax. The "
        f"EHXPLLL makes {BOARD_CLOCK_HZ / 1e6:g} MHz as 25 MHz x {pll['CLKFB_DIV']} / "
        f"{pll['CLKI_DIV']} (`CLKI_DIV` {pll['CLKI_DIV']}, `CLKFB_DIV` {pll['CLKFB_DIV']}, "
        f"`CLKOP_DIV` {pll['CLKOP_DIV']}, VCO {vco / 1e6:g} MHz; the values Project Trellis' "
        "`ecppll` picks), with a timing constraint on its output. Another clock that is a "
        "multiple of the baud rate is a parameter away (`Board(cfg, clock_hz=...)`).", "",
        "**Reset.** The `sync` domain is held in reset while the PLL is not locked or the "
        f"`PWR` button (`{RESET_BUTTON}`) is pressed, and released synchronously "
        "(`ResetSynchronizer`).", "",
        "**Building a bitstream** (with `make setup-fpga`; the yowasp tools are found through "
        "the `YOSYS`, `NEXTPNR_ECP5` and `ECPPACK` variables, see `bench/fpga.py`):", "",
        "```python",
        "from amaranth_boards.ulx3s import ULX3S_85F_Platform",
        "from caterpillar.contract.config import preset",
        "from caterpillar.rtl.board import Board",
        "ULX3S_85F_Platform().build(Board(preset(\"tiny\")), name=\"board\", "
        "do_program=False)",
        "```", "",
        "then `caterpillar train --backend uart --port /dev/ttyUSB0 --config tiny ...`.", ""]
    return "\n".join(lines)


def host_link_document() -> str:
    """Return ``docs/host-link.md``: the protocol, then the board top."""
    return host_link_markdown() + "\n" + board_markdown()
