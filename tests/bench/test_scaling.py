"""The scaling benchmark's pieces on small inputs (the benchmark itself is `make bench-scaling`)."""

import pytest

from caterpillar.app.cli import main
from caterpillar.bench import scaling as bench_scaling
from caterpillar.contract.config import preset
from caterpillar.software.compiler.training import compile_training
from caterpillar.software.isasim.device import RingIsaDevice


def test_collective_bandwidth_is_near_the_link_limit():
    table = bench_scaling._bandwidth(
        lambda cores: RingIsaDevice(preset("tiny").replace(cores=cores)), (2, 3), 512)
    for cores, rows in table.items():
        assert rows["barrier"]["cycles"] == 4 * (cores - 1)
        for kind, row in rows.items():
            if kind != "barrier":
                assert 0.8 < row["of_peak"] <= 1.0, (cores, kind, row)


def test_piped_collectives_beat_the_bucket_steps_on_small_blocks():
    table = bench_scaling._small_blocks((4, 8))
    for cores, row in table.items():
        assert row["words"] == 4 * 4 * cores
        for kind in ("reduce_scatter", "all_gather"):
            # c - 1 blocks of 4 beats: the piped stream is within a few cycles a hop of it.
            assert 4 * (cores - 1) <= row["piped_" + kind] < row[kind], (cores, kind, row)


def test_rtl_config_runs_the_same_four_core_programs():
    for name in bench_scaling.CASES:
        graph = bench_scaling._graph(name)
        assert compile_training(graph, bench_scaling.rtl_config()).predicted_cycles() == \
            compile_training(graph, bench_scaling.scaling_config(4)).predicted_cycles(), name


def test_cp_rows_skip_rings_with_fewer_cores_than_layers(monkeypatch, capsys):
    monkeypatch.setattr(bench_scaling, "SCALING_SIZES", (32, 16, 8, 6, 4))
    table = bench_scaling._scaling("cp")
    assert table["cores"][2] is None
    assert table["cores"][1]["parallel_efficiency"] == 1.0
    for cores in (4, 8):
        row = table["cores"][cores]
        assert row["step_cycles"] > 0 and 0 < row["ring_share"] < 1
    bench_scaling._print_scaling("cp", table)
    lines = capsys.readouterr().out.splitlines()
    assert lines[3] == "        2  (fewer cores than layers but the output layer)"


def test_every_case_compiles_on_every_core_count_it_reports():
    """The benchmark's memories hold every case on one core and on each ring it measures
    (MBCP b = 4 once needed 4,148 MemB words of the 4,096 the one-core config had)."""
    for name in bench_scaling.CASES:
        graph = bench_scaling._graph(name)
        for cores in bench_scaling.CORE_COUNTS:
            if graph.pipelined and 1 < cores < len(graph.layers) - 1:
                continue
            compiled = compile_training(graph, bench_scaling.scaling_config(cores))
            assert len(compiled.working_cores) == cores, (name, cores)


@pytest.mark.parametrize("option", ["--rtl-steps", "--paper-n1-steps"])
def test_a_negative_step_count_is_one_line_before_any_work(option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "scaling", option, "-1"])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and f"{option} -1" in err and ">= 0" in err


def test_an_empty_n1_batch_is_one_line_before_any_work(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "scaling", "--paper-n1-steps", "1", "--paper-n1-batch", "0"])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "--paper-n1-batch 0" in err and "1 is SGD" in err
