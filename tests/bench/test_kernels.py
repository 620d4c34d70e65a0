"""The kernel benchmark's pieces: its configs, the table, and whole runs on the
instruction-level backend with small shapes (the benchmark itself is `make bench-kernels`)."""

import json

import numpy as np
import pytest

from caterpillar.app.cli import main
from caterpillar.bench import kernels as bench_kernels
from caterpillar.bench.kernels import BenchRow
from caterpillar.contract.config import preset
from caterpillar.contract.geometry import INSTRUCTION_OVERHEAD, RUN_START_CYCLES
from caterpillar.contract.isa import Opcode, decode, encode
from caterpillar.sim.cases import kernels as kc
from caterpillar.software.driver.core import Driver
from caterpillar.software.isasim.device import IsaDevice


@pytest.fixture
def small_shapes(monkeypatch):
    """Shrink the benchmark's shape lists to one small size each."""
    monkeypatch.setattr(bench_kernels, "GEMV_SIZES", (12,))
    monkeypatch.setattr(bench_kernels, "GEMM_SIZES", (8,))


@pytest.mark.parametrize("nr", [2, 4, 8, 16])
def test_bench_config_holds_the_largest_shapes(nr):
    cfg = bench_kernels.bench_config(nr)
    base = preset("small")
    assert cfg.name == f"bench-nr{nr}" and cfg.nr == nr
    assert (cfg.mul_latency, cfg.add_latency) == (base.mul_latency, base.add_latency)
    largest = max(bench_kernels.GEMV_SIZES)
    assert cfg.mema_words * nr * nr >= largest * largest        # the matrix spread over MemA
    assert cfg.memb_words >= 1024 and cfg.spad_words == 1 << 20
    assert cfg.mema_words >= base.mema_words


def test_bench_config_keeps_the_base_presets_parameters():
    cfg = bench_kernels.bench_config(2, base="tiny")
    tiny = preset("tiny")
    assert (cfg.mul_latency, cfg.add_latency, cfg.imem_words) == \
        (tiny.mul_latency, tiny.add_latency, tiny.imem_words)
    assert cfg.mema_words == 512 * 512 // 4


def test_split_isolates_the_kernel_instruction(rng):
    case = kc.ger_case(preset("tiny"), 4, 6, rng, use_mom=True)
    setup, kernel, teardown = bench_kernels._split(case)
    assert [decode(w).op for w in kernel] == [Opcode.GER, Opcode.HALT]
    assert decode(setup[-1]).op == Opcode.HALT and decode(teardown[-1]).op == Opcode.HALT
    assert setup[:-1] + kernel[:1] + teardown == case.program
    assert all(decode(w).op in (Opcode.LDA, Opcode.LDV, Opcode.BCAST) for w in setup[:-1])
    assert all(decode(w).op == Opcode.STA for w in teardown[:-1])


def test_isa_run_measures_every_kernel(small_shapes):
    progress = []
    rows = bench_kernels.run_kernel_bench(nrs=(2, 4), backend="isa",
                                          progress=progress.append)
    assert progress == rows
    assert [(r.nr, r.kernel, r.shape) for r in rows] == [
        (nr, kernel, shape) for nr in (2, 4)
        for kernel, shape in (("gemv", "12x12"), ("gemvt", "12x12"), ("ger", "12x12"),
                              ("cpass", "12x12"), ("gemm", "8^3"))]
    for r in rows:
        assert r.bit_exact, r
        assert r.cycles == r.predicted_cycles > 0
        assert r.macs == {"gemv": 144, "gemvt": 144, "ger": 144, "cpass": 3 * 144,
                          "gemm": 512}[r.kernel]
        assert r.utilization == pytest.approx(r.macs / (r.nr * r.nr * r.cycles))
        assert 0 < r.utilization <= 1


def test_cycles_are_the_kernel_without_the_halt(small_shapes):
    (row,) = bench_kernels.run_kernel_bench(nrs=(2,), backend="isa", kernels=("gemv",), seed=5)
    cfg = bench_kernels.bench_config(2)
    case = kc.gemv_case(cfg, 12, 12, np.random.default_rng(5))
    setup, kernel, _ = bench_kernels._split(case)
    driver = Driver(IsaDevice(cfg))
    for addr, values in case.spad.items():
        driver.write_spad(addr, values)
    driver.load_program(setup)
    driver.run()
    driver.load_program([encode(Opcode.HALT)])
    halt = driver.run().busy
    driver.load_program(kernel)
    stats = driver.run()
    assert halt == RUN_START_CYCLES + INSTRUCTION_OVERHEAD      # its fetch, decode, check
    assert row.cycles == stats.busy - halt and row.macs == stats.macs == 144


def test_a_wrong_result_is_reported_as_not_bit_exact(small_shapes, monkeypatch, capsys):
    real = kc.gemv_case

    def corrupted(*args, **kwargs):
        case = real(*args, **kwargs)
        case.expected[0] = case.expected[0] ^ 1
        return case

    monkeypatch.setattr(kc, "gemv_case", corrupted)
    assert main(["bench", "kernels", "--backend", "isa", "--nr", "2", "--kernels", "gemv",
                 "gemvt"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["nr=2", "gemv", "12x12:"]
    assert lines[0].endswith("NOT BIT-EXACT")
    assert lines[1].split()[:2] == ["nr=2", "gemvt"] and "BIT-EXACT" not in lines[1]
    table = [line.split() for line in lines if line.startswith(" 2 ")]
    assert [(r[1], r[7]) for r in table] == [("gemv", "NO"), ("gemvt", "yes")]


def test_command_prints_the_table_and_writes_json(small_shapes, tmp_path, capsys):
    path = tmp_path / "rows.json"
    assert main(["bench", "kernels", "--backend", "isa", "--nr", "2", "--kernels", "gemv",
                 "gemm", "--config", "tiny", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "nr=2 gemv       12x12: " in out and "GEMV forward + backward:" in out
    rows = json.loads(path.read_text())
    assert [r["kernel"] for r in rows] == ["gemv", "gemm"]
    assert set(rows[0]) == {"nr", "kernel", "shape", "cycles", "predicted_cycles", "macs",
                            "utilization", "bit_exact", "seconds"}
    assert all(r["bit_exact"] for r in rows)


def test_unknown_backend_and_preset_are_refused(capsys):
    with pytest.raises(ValueError, match=r"^unknown backend 'spice'; choose verilator or isa$"):
        bench_kernels.run_kernel_bench(nrs=(2,), backend="spice")
    with pytest.raises(SystemExit) as info:
        main(["bench", "kernels", "--backend", "isa", "--config", "huge"])
    assert info.value.code == 2
    assert capsys.readouterr().err.startswith("caterpillar: error: unknown config preset 'huge'")


def _row(nr, kernel, shape, cycles, macs, exact=True, seconds=0.5):
    return BenchRow(nr, kernel, shape, cycles, cycles + 1, macs, macs / (nr * nr * cycles),
                    exact, seconds)


def test_format_table_rows_and_combined_gemv():
    rows = [_row(2, "gemv", "64x64", 1000, 3800), _row(2, "gemvt", "64x64", 1100, 4000),
            _row(2, "gemm", "16^3", 1200, 4096, exact=False, seconds=0)]
    lines = bench_kernels.format_table(rows).splitlines()
    assert lines[0].split() == ["nr", "kernel", "shape", "cycles", "predicted", "MACs", "util",
                                "exact", "cycles/s"]
    assert set(lines[1]) == {"-"} and len(lines[1]) == len(lines[0])
    assert lines[2].split() == ["2", "gemv", "64x64", "1000", "1001", "3800", "95.0%", "yes",
                                "2000"]
    assert lines[4].split()[-2:] == ["NO", "0"]                 # no time measured: 0 cycles/s
    assert lines[-2:] == ["GEMV forward + backward:", f"  nr=2 {'64x64':>9}: "
                          f"{7800 / (2100 * 4):.1%}"]


def test_format_table_without_gemv_has_no_combined_section():
    text = bench_kernels.format_table([_row(4, "ger", "64x64", 5000, 8192)])
    assert "GEMV forward" not in text and len(text.splitlines()) == 3


def test_format_table_compares_sgds_three_passes_with_cpass():
    rows = [_row(4, "gemv", "64x64", 1000, 4096), _row(4, "gemvt", "64x64", 1000, 4096),
            _row(4, "ger", "64x64", 2000, 4096), _row(4, "cpass", "64x64", 3000, 12288),
            _row(4, "gemv", "128x128", 4000, 16384)]
    lines = bench_kernels.format_table(rows).splitlines()
    assert lines[-2:] == ["SGD's three passes (gemv + gemvt + ger) against one cpass:",
                          f"  nr=4 {'64x64':>9}: 4000 -> 3000 cycles (1.33x)"]
    without = bench_kernels.format_table(rows[:3])
    assert "cpass" not in without
