"""The training benchmark's pieces: its config, the phase table, the instruction-level step and
a prediction-only run (the benchmark itself is `make bench-training`)."""

import argparse
import json

import numpy as np
import pytest

from caterpillar.app.cli import main
from caterpillar.bench import training as bench_training
from caterpillar.contract.config import preset
from caterpillar.software.compiler.training import compile_training
from caterpillar.software.graph.model import Optimizer, TrainingGraph
from caterpillar.software.storage import OutputPathError

PHASES = ("forward", "loss", "delta", "update", "fused", "transfer", "ring")


@pytest.fixture(scope="module")
def tiny_compiled():
    graph = TrainingGraph((8, 6, 4), algorithm="mbgd", batch=2, optimizer=Optimizer(lr=0.05))
    return compile_training(graph, preset("tiny"))


def _parser():
    parser = argparse.ArgumentParser()
    bench_training.add_arguments(parser)
    return parser


def test_options_and_defaults():
    args = _parser().parse_args([])
    assert (args.json, args.rtl_steps, args.no_digits) == (None, 1, False)
    args = _parser().parse_args(["--rtl-steps", "0", "--no-digits", "--json", "r.json"])
    assert (args.json, args.rtl_steps, args.no_digits) == ("r.json", 0, True)


def test_bench_config_fits_the_benchmark_network():
    cfg = bench_training.bench_config()
    assert cfg.name == "bench-784" and cfg.nr == preset("small").nr == 4
    assert (cfg.spad_words, cfg.mema_words, cfg.memb_words, cfg.imem_words) == \
        (1 << 19, 32768, 4096, 4096)
    assert bench_training.BENCH_SIZES == (784, 256, 256, 10)
    for algorithm, batch in (("mbgd", 32), ("sgd", 1)):
        graph = TrainingGraph(bench_training.BENCH_SIZES, algorithm=algorithm, batch=batch)
        assert compile_training(graph, cfg).step_cycles > 0


def test_phase_table_shares_and_utilization(tiny_compiled):
    row = bench_training._phase_table(tiny_compiled)
    cfg = tiny_compiled.config
    pes = cfg.nr * cfg.nr
    assert row["instructions"] == tiny_compiled.instructions
    assert row["step_cycles"] == tiny_compiled.step_cycles
    assert tuple(row["phases"]) == PHASES
    phases = row["phases"].values()
    assert sum(p["cycles"] for p in phases) == row["step_cycles"]
    assert sum(p["share"] for p in phases) == pytest.approx(1.0)
    assert row["model_macs"] == sum(p["macs"] for p in phases) > 0
    assert row["utilization"] == pytest.approx(row["model_macs"] / (pes * row["step_cycles"]))
    for name, p in row["phases"].items():
        want = p["macs"] / (pes * p["cycles"]) if p["cycles"] else 0.0
        assert p["utilization"] == pytest.approx(want), name
        assert 0 <= p["utilization"] <= 1
    assert row["phases"]["ring"] == {"cycles": 0, "core_cycles": 0, "macs": 0, "share": 0.0,
                                     "utilization": 0.0}


def test_isa_step_takes_the_predicted_cycles(tiny_compiled):
    step = bench_training._isa_step(tiny_compiled, np.random.default_rng(0))
    assert step["cycles"] == tiny_compiled.step_cycles
    assert step["seconds"] > 0
    assert step["cycles_per_second"] == pytest.approx(step["cycles"] / step["seconds"])


def test_print_case_lists_every_phase(tiny_compiled, capsys):
    row = bench_training._phase_table(tiny_compiled)
    row["isa"] = {"cycles": 10, "seconds": 0.5, "cycles_per_second": 20.0}
    bench_training._print_case("tiny", row)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (f"tiny: {row['instructions']} instructions, "
                        f"{row['step_cycles']:,} cycles/step, "
                        f"utilization {100 * row['utilization']:.1f}%")
    assert row["weight_accesses"] is None                      # mbgd: weights in the SPAD
    assert [line.split()[0] for line in lines[1:1 + len(PHASES)]] == list(PHASES)
    assert lines[-1].endswith("one step in 0.50 s = 20 simulated cycles/s")
    row["rtl"] = {"steps": 2, "cycles": 1234, "seconds": 1.0, "cycles_per_second": 1234.0}
    bench_training._print_case("tiny", row)
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == "    RTL: 2 step(s), 1,234 cycles (= prediction), 1,234 cycles/s on Verilator"


def test_prediction_only_run_writes_both_cases(tmp_path, capsys):
    path = tmp_path / "new" / "folder" / "training.json"
    assert main(["bench", "training", "--rtl-steps", "0", "--no-digits",
                 "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "784-256-256-10 mbgd-batch32 (nr=4)" in out and "sgd-batch1" in out
    assert "RTL:" not in out and "digits epoch" not in out
    report = json.loads(path.read_text())
    assert report["config"] == bench_training.bench_config().to_dict()
    assert list(report["cases"]) == ["mbgd-batch32", "sgd-batch1", "dfa-batch1", "dfa-batch8",
                                     "cp-batch1", "mbcp-batch4"]
    assert report["cases"]["cp-batch1"]["weight_accesses"] * 1.6 < \
        report["cases"]["sgd-batch1"]["weight_accesses"]
    # mbcp runs sgd's kernels once per sample: no fewer weight accesses than sgd.
    assert report["cases"]["mbcp-batch4"]["weight_accesses"] == \
        4 * report["cases"]["sgd-batch1"]["weight_accesses"]
    for name, row in report["cases"].items():
        assert "rtl" not in row
        assert row["isa"]["cycles"] == row["step_cycles"], name     # simulator = prediction
        assert 0 < row["utilization"] <= 1
    sgd = report["cases"]["sgd-batch1"]
    # The rank-1 update reads one weight and writes another every cycle (MemA's banks).
    update = sgd["phases"]["update"]
    assert update["macs"] == 256 * 784 + 256 * 256 + 10 * 256
    assert update["cycles"] < 1.05 * update["macs"] / 16
    # DFA's backward is outputs x width per hidden layer, not the layer above's size.
    dfa = report["cases"]["dfa-batch1"]
    assert dfa["phases"]["delta"]["macs"] == 10 * (256 + 256)
    assert sgd["phases"]["delta"]["macs"] == 256 * 256 + 10 * 256
    assert dfa["step_cycles"] < sgd["step_cycles"]


def test_a_bad_json_path_is_refused_before_any_work(tmp_path, monkeypatch):
    def no_work(*args):
        raise AssertionError("the benchmark started")

    monkeypatch.setattr(bench_training, "compile_training", no_work)
    args = _parser().parse_args(["--rtl-steps", "0", "--no-digits", "--json", str(tmp_path)])
    with pytest.raises(OutputPathError, match="is a folder"):
        bench_training.run(args)


def test_print_case_gives_the_weight_accesses_of_gemv_steps(capsys):
    graph = TrainingGraph((8, 6, 4), algorithm="cp", optimizer=Optimizer(lr=0.05))
    row = bench_training._phase_table(compile_training(graph, preset("small")))
    row["isa"] = {"cycles": 10, "seconds": 0.5, "cycles_per_second": 20.0}
    bench_training._print_case("cp", row)
    lines = capsys.readouterr().out.splitlines()
    assert row["weight_accesses"] == 2 * (8 * 6 + 6 * 4)
    assert lines[1] == "    MemA weight accesses per step: 144"
