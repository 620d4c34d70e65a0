"""Verilog generation: ports from the signature, constants dropped, cache reuse."""

from caterpillar.golden.numerics import FP16
from caterpillar.rtl.fp.convert import FPConvert
from caterpillar.sim.build import verilog


def test_ports_come_from_the_signature_without_constant_ready():
    text = verilog.convert(FPConvert(FP16, FP16, latency=1), "cvt")
    header = text[text.index("module cvt("):text.index(");")]
    for port in ("clk", "rst", "operands__payload", "operands__valid", "result__payload",
                 "result__valid"):
        assert port in header
    assert "ready" not in header


def test_cached_verilog_is_generated_once(tmp_path, monkeypatch):
    monkeypatch.setenv("CATERPILLAR_BUILD_DIR", str(tmp_path))
    calls = []

    def make():
        calls.append(1)
        return FPConvert(FP16, FP16, latency=0)

    first = verilog.cached_verilog("test-key", make, "cvt")
    second = verilog.cached_verilog("test-key", make, "cvt")
    assert first == second and first.exists() and len(calls) == 1
    assert first.is_relative_to(tmp_path)
