"""Verilog generation: ports from the signature, constants dropped, cache reuse."""

import re

from caterpillar.golden.numerics import FP16
from caterpillar.rtl.fp.convert import FPConvert
from caterpillar.sim.flow import verilog


def test_ports_come_from_the_signature_without_constant_ready():
    text = verilog.convert(FPConvert(FP16, FP16, latency=1), "cvt")
    header = text[text.index("module cvt("):text.index(");")]
    for port in ("clk", "rst", "operands__payload", "operands__valid", "result__payload",
                 "result__valid"):
        assert port in header
    assert "ready" not in header


def _counted_maker():
    """A component factory and the list it appends to on every call."""
    calls = []

    def make():
        calls.append(1)
        return FPConvert(FP16, FP16, latency=0)

    return calls, make


def test_cached_verilog_is_generated_once(tmp_path, monkeypatch):
    monkeypatch.setenv("CATERPILLAR_BUILD_DIR", str(tmp_path))
    calls, make = _counted_maker()
    first = verilog.cached_verilog("test-key", make, "cvt")
    second = verilog.cached_verilog("test-key", make, "cvt")
    assert first == second and first.exists() and len(calls) == 1
    assert first.is_relative_to(tmp_path)


def test_rtlil_has_the_same_ports_and_is_cached_beside_the_verilog(tmp_path, monkeypatch):
    monkeypatch.setenv("CATERPILLAR_BUILD_DIR", str(tmp_path))
    component = FPConvert(FP16, FP16, latency=1)
    text = verilog.convert_rtlil(component, "cvt")
    assert "module \\cvt" in text
    ports = set(verilog.signature_ports(component)) | {"clk", "rst"}
    assert set(re.findall(r"^\s*wire width \d+ (?:input|output) \d+\s+\\(\w+)$", text,
                          re.MULTILINE)) == ports
    calls, make = _counted_maker()
    il = verilog.cached_rtlil("test-key", make, "cvt")
    v = verilog.cached_verilog("test-key", make, "cvt")
    assert il.suffix == ".il" and v.suffix == ".v" and il.stem == v.stem
    assert verilog.cached_rtlil("test-key", make, "cvt") == il and len(calls) == 2
