"""The ``caterpillar`` command line: fpu filter, self-check, errors without tracebacks (the
Verilog, synthesis and FPGA commands: tests/app/test_fpga.py)."""

import subprocess
import sys

import pytest

from caterpillar.app.cli import main
from tests.helpers import requires_verilator

CASES = "3f800000 3f800000\n# a comment\n\n7f800000 ff800000\n3f80 1\nzz 1\n1 2 3\n"
WANT = ["40000000", "7fc00000", "00003f81"]


@pytest.mark.parametrize("backend", ["golden", "amaranth",
                                     pytest.param("verilator", marks=requires_verilator)])
def test_fpu_filter_prints_one_result_per_good_line(backend, tmp_path, capsys):
    cases = tmp_path / "cases.txt"
    cases.write_text(CASES)
    status = main(["fpu", "--op", "add", "--format", "fp32", "--backend", backend,
                   "--input", str(cases)])
    out, err = capsys.readouterr()
    assert out.split() == WANT
    assert status == 1
    # A cold cache adds the one-time build notices ("caterpillar: converting ...").
    assert [line for line in err.splitlines() if not line.startswith("caterpillar: ")] == [
        "caterpillar fpu: line 6: operand 1 ('zz') is not a hexadecimal bit pattern",
        "caterpillar fpu: line 7: expected 2 hexadecimal operands (a b) for add, got 3: "
        "'1 2 3'",
    ]


def test_fpu_reads_stdin_and_formats_16_bit_results(monkeypatch, capsys):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("3c00 3c00 3f800000\n0000 8000 80000000\n"))
    assert main(["fpu", "--op", "mac", "--format", "fp16", "--backend", "golden"]) == 0
    assert capsys.readouterr().out.split() == ["40000000", "80000000"]
    monkeypatch.setattr(sys, "stdin", io.StringIO("3f800001\n"))
    assert main(["fpu", "--op", "convert", "--format", "fp32", "--to", "bf16",
                 "--backend", "golden"]) == 0
    assert capsys.readouterr().out.split() == ["3f80"]


@pytest.mark.parametrize("argv,message", [
    (["--op", "convert", "--format", "fp32"],
     "--to is required with --op convert and only allowed there"),
    (["--op", "add", "--format", "fp32", "--to", "fp16"],
     "--to is required with --op convert and only allowed there"),
    (["--op", "add", "--format", "fp32", "--acc-format", "fp16"],
     "--acc-format applies to --op mac only, not add"),
    (["--op", "add", "--format", "fp32", "--input", "/nonexistent/cases"],
     "cannot read --input '/nonexistent/cases': No such file or directory"),
    (["--op", "add", "--format", "fp32", "--config", "huge"],
     "unknown config preset 'huge'; choose one of tiny, small, ulx3s, paper-n1, paper-n3"),
])
def test_fpu_user_errors_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fpu", "--backend", "golden", *argv])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"caterpillar: error: {message}\n"


def test_bad_choice_is_rejected_by_argparse(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fpu", "--op", "div", "--format", "fp32"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'div'" in capsys.readouterr().err


def test_console_script_runs_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "caterpillar.app.cli", "fpu", "--op",
                           "mul", "--format", "bf16", "--backend", "golden"],
                          input="4000 4040\n", capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout == "40c0\n" and proc.stderr == ""


def test_a_reader_that_leaves_early_stops_the_command_quietly():
    # `caterpillar compile ... --asm | head -1`: 92 kB of listing, more than a pipe holds.
    proc = subprocess.Popen([sys.executable, "-m", "caterpillar.app.cli", "compile", "--config",
                             "paper-n1", "--cores", "4", "--model", "64-32-32-10",
                             "--algorithm", "cp", "--asm"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("; core 0")
    proc.stdout.close()
    assert proc.wait(timeout=120) == 141
    with proc.stderr:
        assert proc.stderr.read() == ""


@requires_verilator
def test_fpu_selfcheck_reports_and_writes_json(tmp_path, capsys):
    import json

    report = tmp_path / "check.json"
    status = main(["fpu-selfcheck", "--formats", "fp16", "--random", "2000", "--softfloat",
                   "500", "--json", str(report)])
    out = capsys.readouterr().out
    assert status == 0
    assert "all match" in out and "results/s" in out
    rows = json.loads(report.read_text())
    assert {r["op"] for r in rows} == {"add", "mul", "mac.fp32", "mac.fp16", "convert.fp32",
                                       "convert.bf16", "max", "scale"}
    assert all(r["golden_mismatches"] == 0 and r["softfloat_cases"] == 500 for r in rows)
