"""``caterpillar paper`` (:mod:`caterpillar.bench.paper`): a case's numbers are the compiler's,
the tables put ours beside the paper's values, and the command runs its cases on a local Ray,
caches them and writes Markdown, CSV, JSON and figures."""

import json

import pytest

from caterpillar.app.cli import main
from caterpillar.app.train import compile_report
from caterpillar.bench import convergence, paper
from caterpillar.contract.config import preset
from caterpillar.software.compiler.training import compile_training
from caterpillar.software.energy.technology import load_technology
from caterpillar.software.graph.model import Optimizer, TrainingGraph


def test_a_case_is_what_compile_reports():
    result = paper.evaluate_case({"network": "N1", "algorithm": "sgd", "batch": 1})
    assert result["status"] == "ok"
    graph = TrainingGraph((784, 500, 500, 500, 10), loss="softmax_ce", algorithm="sgd",
                          optimizer=Optimizer(lr=0.01, momentum=0.0))
    report = compile_report(compile_training(graph, preset("paper-n1")), load_technology())
    assert result["cycles"] == report["step_cycles"] == result["step_cycles"]
    assert result["utilization"] == pytest.approx(report["utilization"])
    assert result["phases"] == report["phases"]
    assert result["bounds"] == report["bounds"]
    assert result["utilization"] < result["bounds"]["kernels"] < result["bounds"]["mac_steps"]
    assert result["events"] == report["events"]
    assert result["energy"]["fma"]["gflops_per_w"] == \
        pytest.approx(report["energy"]["fma"]["gflops_per_w"])


def test_cases_that_cannot_run_say_why():
    # N3's weights exceed the SPADs (they would fit the PEs' local SRAM, as the paper keeps
    # them, but mbgd keeps them in the SPAD).
    mbgd = paper.evaluate_case({"network": "N3", "algorithm": "mbgd", "batch": 50})
    assert mbgd["status"] == "does not compile"
    assert mbgd["reason"].startswith("the SPAD needs ") and "262144" in mbgd["reason"]
    # Its fit table measures every memory: only the SPAD is short; the paper's criterion
    # (the network in the PEs' local SRAM) holds.
    fit = {m["memory"]: m for m in mbgd["fit"]["memories"]}
    assert not fit["SPAD"]["fits"] and fit["SPAD"]["needed"] > 262144
    assert fit["MemA"]["fits"] and fit["MemB"]["fits"] and fit["IMEM"]["fits"]
    assert mbgd["fit"]["paper"][0]["fits"] and not mbgd["fit"]["fits"]


def test_mbcp_is_priced_per_sample_of_a_steady_state_period():
    mbcp = paper.evaluate_case({"network": "N1", "algorithm": "mbcp", "batch": 4})
    assert mbcp["status"] == "ok" and mbcp["fit"]["fits"]
    # A period of the pipeline: 2L = 8 steps of 4 samples each.
    assert mbcp["samples"] == 8 * 4
    assert mbcp["macs"] == 4 * 8 * (3 * 897_000 - 784 * 500)
    assert 0.3 < mbcp["utilization"] < mbcp["bounds"]["mac_steps"] < 1
    # The bound of the period: its MACs over the PEs' cycles of each step's MAC steps.
    assert paper.report_tables([mbcp])["cases"][0]["mac_step_bound"] == \
        mbcp["bounds"]["mac_steps"]


def test_table2_puts_ours_beside_the_papers():
    results = [paper.evaluate_case({"network": "N1", "algorithm": "sgd", "batch": 1}),
               paper.evaluate_case({"network": "N1", "algorithm": "mbgd", "batch": 50})]
    tables = paper.report_tables(results)
    rows = {(r["network"], r["algorithm"]): r for r in tables["table2"]}
    sgd = rows[("N1", "sgd")]
    assert sgd["paper"] == 177
    assert sgd["ratio_fma"] == pytest.approx(sgd["ours_fma"] / 177)
    assert sgd["ours_flop"] < sgd["ours_fma"]
    # N1's 10 outputs leave 22 of its 32 cores without rows in the last layer.
    mbgd = rows[("N1", "mbgd")]
    assert mbgd["status"] == "ok" and mbgd["ratio_fma"] == pytest.approx(
        mbgd["ours_fma"] / mbgd["paper"])
    assert rows[("N3", "cp")]["status"] == "not run"
    # Phase by phase: the shares of a step's cycles add up to the step.
    phases = {r["case"]: r for r in tables["phases"]}
    assert set(phases) == {"N1 sgd", "N1 mbgd-50"}
    for r in phases.values():
        shares = [v for k, v in r.items() if k.endswith("_share")]
        assert sum(shares) == pytest.approx(1.0) and r["forward_utilization"] > 0.5
    assert {r["machine"] for r in tables["area"]} == {"paper-n1", "paper-n3"}
    assert all(abs(r["ratio"] - 1) < 0.01 for r in tables["area"])


def test_every_case_of_the_paper_is_listed():
    # SGD, MBGD (2, 4, 8, 50, 100), CP, MBCP (2, 4, 8), DFA (2, 4, 8, 50, 100) on N1-N3.
    assert len(paper.CASES) == 3 * 16 == len(set(paper.CASES))
    assert {c.network for c in paper.CASES} == {"N1", "N2", "N3"}
    assert {c.algorithm for c in paper.CASES} == {"sgd", "mbgd", "cp", "mbcp", "dfa"}
    assert set(paper.QUICK_CASES) <= set(paper.CASES)
    # Every training run is a convergence case, priced by the compiled case of its name.
    assert set(paper.FIG5_CASES) <= set(convergence.CASES)
    assert set(paper.FIG5_CASES) <= {c.label for c in paper.CASES if c.network == "N1"}


@pytest.mark.integration
def test_paper_quick_on_a_local_ray(tmp_path, capsys):
    out, cache = tmp_path / "out", tmp_path / "cache"
    argv = ["paper", "--quick", "--out", str(out), "--cache", str(cache), "--workers", "2"]
    assert main(argv) == 0
    first = json.loads((out / "paper.json").read_text())
    runs = len(paper.FIG5_CASES)             # --quick: one short epoch of each on the fast path
    assert first["facts"]["computed"] == len(paper.QUICK_CASES) + runs
    assert first["facts"]["ray_cpus"] >= 1
    assert {p.name for p in out.iterdir()} == {"paper.md", "paper.csv", "fit.csv",
                                               "paper.json", "table2.png", "fig10.png",
                                               "fig5-6.png"}
    text = (out / "paper.md").read_text()
    assert "| N1 | sgd |" in text and "| 177 |" in text
    curves = {r["case"]: r for r in first["tables"]["curves"]}
    assert len(curves) == runs and all(len(r["test_accuracy"]) == 1 for r in curves.values())
    # The compiled cases price their training runs: energy and time per sample x samples.
    sgd = next(r for r in first["results"] if r["name"] == "N1 sgd")
    per_sample = sgd["energy"]["fma"]["energy_pj"]["total"] * 1e-12 / sgd["samples"]
    assert curves["N1 sgd"]["energy_j"] == pytest.approx(per_sample * 64)
    assert curves["N1 sgd"]["time_s"] == pytest.approx(sgd["cycles"] * 64 / 1e9)
    assert curves["N1 mbgd-50"]["energy_j"] > 0
    assert curves["N1 dfa-8"]["energy_j"] is None        # not among the quick cases
    assert len((out / "paper.csv").read_text().splitlines()) == len(paper.QUICK_CASES) + 1
    # The fit table: every case tried, N1 fits the paper's criterion.
    fit = {r["case"]: r for r in first["tables"]["fit"]}
    assert set(fit) == {c.name for c in paper.QUICK_CASES}
    assert all(r["paper_fits"] for r in fit.values())
    assert fit["N1 sgd"]["fits"] and fit["N1 mbgd-100"]["fits"]
    assert "## Fit table" in text and "| N1 mbgd-100 | 1,785 / 8,192 (fits) |" in text
    assert "## Utilization per phase" in text and "| N1 sgd | " in text
    assert len((out / "fit.csv").read_text().splitlines()) == len(fit) + 1
    # A second run takes every case from the cache, with the same results.
    assert main(argv) == 0
    second = json.loads((out / "paper.json").read_text())
    assert second["facts"]["computed"] == 0
    assert second["results"] == first["results"] and second["curves"] == first["curves"]


def test_a_bad_technology_file_is_refused_before_any_case(tmp_path, capsys):
    bad = tmp_path / "tech.yaml"
    bad.write_text("name: x\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["paper", "--quick", "--technology", str(bad), "--out", str(tmp_path / "o")])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tech.yaml" in err[0]


def test_training_runs_are_priced_per_sample_to_the_best_and_to_90_percent():
    sgd = paper.evaluate_case({"network": "N1", "algorithm": "sgd", "batch": 1})
    run = {"name": "sgd", "network": "N1", "lr": 0.05, "test_accuracy": [0.5, 0.92, 0.95],
           "samples_per_epoch": 1000, "wall_seconds": 1.0}
    row = paper.report_tables([sgd], curves=[run])["curves"][0]
    joules = sgd["energy"]["fma"]["energy_pj"]["total"] * 1e-12      # one sample a step
    assert (row["best_epoch"], row["target_epoch"]) == (3, 2)
    assert row["energy_j"] == pytest.approx(3000 * joules)
    assert row["energy_to_target_j"] == pytest.approx(2000 * joules)
    assert row["time_to_target_s"] == pytest.approx(2000 * sgd["cycles"] / 1e9)
    never = paper.report_tables([sgd], curves=[{**run, "test_accuracy": [0.3, 0.5]}])
    assert never["curves"][0]["energy_to_target_j"] is None
