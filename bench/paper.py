"""``caterpillar paper``: the paper's cases regenerated beside the paper's values.

Every case is a network of the paper (N1, N2, N3: ``paper-values.yaml`` beside this module,
with the table or figure each value comes from) trained by one algorithm (SGD, MBGD with
b = 2, 4, 8, 50, 64, 100, CP, MBCP with b = 2, 4, 8, DFA with b = 2, 4, 8, 50, 100) on the
paper's machine (``paper-n1``, ``paper-n3``); b = 64 is not the paper's, but tiles evenly
into ``nr`` columns, beside b = 50, which does not. A case compiles one step as
``caterpillar compile`` does (plain SGD-family updates: no momentum, as the paper's
algorithms) and takes from the ring timing model its cycles and its event counters, which the
RTL's counters equal (docs/energy.md); the energy, GFLOPS/W (both readings of the FPU's pJ per
op), GFLOPS/mm^2 and utilization (model MACs over all the machine's PEs and the step's cycles)
follow. A ``cp`` case
is a period of its steady-state pipeline (``2 L`` steps, one sample each). A case that does not
compile says why (issue 13's cases today), which is the fit table's verdict.

The cases are independent jobs on Ray: a local Ray is started on demand (one machine needs no
set-up), ``--address`` joins an existing cluster. Results are cached (``build/paper-cache``) by
the case, its config and graph, the technology file and the code version (a hash of the
sources the result depends on). Output: Markdown, CSV and JSON tables and two figures.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

import caterpillar.bench
import caterpillar.contract
import caterpillar.golden
import caterpillar.software
from caterpillar.bench.convergence import DFA_LR, case_lr, train_case
from caterpillar.contract.config import preset
from caterpillar.software.compiler.cp import kernel_bounds, priced_period
from caterpillar.software.compiler.fit import capacity_survey, fit_table, tabulate
from caterpillar.software.compiler.training import compile_training
from caterpillar.software.energy.energy import step_energy
from caterpillar.software.energy.technology import (
    DEFAULT_TECHNOLOGY,
    load_technology,
    machine_area,
)
from caterpillar.software.graph.model import Optimizer, TrainingGraph
from caterpillar.software.storage import check_output, write_json
from caterpillar.software.training.datasets import load_dataset

__all__ = ["Case", "CASES", "QUICK_CASES", "PAPER_VALUES", "add_arguments", "run",
           "evaluate_case", "run_cases", "paper_values", "report_tables"]

#: The paper's values (tables, figures, text), each with its source.
PAPER_VALUES = Path(__file__).with_name("paper-values.yaml")
#: Where results are cached between runs.
CACHE_DIR = Path("build") / "paper-cache"


@dataclass(frozen=True)
class Case:
    """One network trained by one algorithm with one batch size."""

    network: str
    algorithm: str
    batch: int = 1

    @property
    def label(self) -> str:
        """``sgd``, ``cp``, or the algorithm and batch (``mbgd-50``)."""
        return self.algorithm if self.algorithm in ("sgd", "cp") else \
            f"{self.algorithm}-{self.batch}"

    @property
    def name(self) -> str:
        return f"{self.network} {self.label}"


def _network_cases(network: str) -> list[Case]:
    return ([Case(network, "sgd")]
            + [Case(network, "mbgd", b) for b in (2, 4, 8, 50, 64, 100)]
            + [Case(network, "cp")]
            + [Case(network, "mbcp", b) for b in (2, 4, 8)]
            + [Case(network, "dfa", b) for b in (2, 4, 8, 50, 100)])


#: Every case the paper ran.
CASES = tuple(c for n in ("N1", "N2", "N3") for c in _network_cases(n))
#: ``--quick``: one case of each kind of step (compiled and, at b = 100, the compact SPAD
#: layout; continuous propagation of one sample and of groups).
QUICK_CASES = (Case("N1", "sgd"), Case("N1", "cp"), Case("N1", "mbgd", 50),
               Case("N1", "mbgd", 100), Case("N1", "mbcp", 4))


def paper_values() -> dict:
    """The paper's values (:data:`PAPER_VALUES`)."""
    return yaml.safe_load(PAPER_VALUES.read_text())


def evaluate_case(case: dict, tech_path: str | None = None) -> dict:
    """One case's results (a Ray job; plain data in and out): ``status`` (``ok``, ``does not
    compile``), ``reason`` when not ``ok``; ``fit``, the fit table
    (:func:`~caterpillar.software.compiler.fit.fit_table`) of a case compiled or tried; for
    an ``ok`` case the cycles, MACs, utilization, events, energy and GFLOPS/mm^2 of one
    step (``cp``: a steady-state period) and ``phases``, the cycles, MACs and utilization of
    each phase of one step (:meth:`~caterpillar.software.compiler.program.Compiled.
    phase_utilization`)."""
    case = Case(**case)
    values = paper_values()
    network = values["networks"][case.network]
    cfg = preset(network["config"])
    out = {"case": asdict(case), "name": case.name, "config": cfg.name,
           "model": network["model"]}
    graph = TrainingGraph(tuple(network["model"]), loss="softmax_ce",
                          algorithm=case.algorithm, batch=case.batch,
                          optimizer=Optimizer(lr=0.01, momentum=0.0))
    with capacity_survey() as survey:
        try:
            compiled = compile_training(graph, cfg)
        except ValueError as e:
            return {**out, "status": "does not compile", "reason": str(e),
                    "fit": fit_table(graph, cfg)}
    out["fit"] = tabulate(survey.records, graph, cfg)
    period = priced_period(compiled)
    cycles, events, macs = period["cycles"], period["events"], period["macs"]
    tech = load_technology(tech_path)
    area = machine_area(cfg, tech)
    gflops = 2 * macs * tech.clock_ghz / cycles
    energy = step_energy(events, macs, cycles, cfg, tech)
    return {**out, "status": "ok", "cycles": cycles, "macs": macs,
            "samples": period["samples"], "step_cycles": compiled.step_cycles,
            "phases": compiled.phase_utilization(), "bounds": kernel_bounds(compiled, period),
            "cores": len(compiled.working_cores), "utilization": macs / (area["pes"] * cycles),
            "events": period["totals"],
            "energy": energy, "gflops": gflops, "area_mm2": area["total_mm2"],
            "gflops_per_mm2": gflops / area["total_mm2"]}


#: Fig. 5's cases (:data:`caterpillar.bench.convergence.CASES`); the compiled case of the same
#: name (:attr:`Case.label`) prices each (Figs. 6 and 9).
FIG5_CASES = ("sgd", "mbgd-8", "mbgd-50", "cp", "mbcp-4", "dfa-8")

#: Fig. 5's rate of one sample on N1 (times sqrt(b) for a batch; DFA has its own,
#: :data:`~caterpillar.bench.convergence.DFA_LR`). At 0.05 CP diverges in the fifth epoch of
#: MNIST-5k with the rate halved every 5 epochs: within about 20 steps the pipeline's delayed
#: updates grow the activations from about 10 to fp16's limit (inf, then NaN; in fp32 too,
#: in the same epoch); SGD at 0.05 swings between epochs (77.8 % after the second). At 0.02
#: and 0.03 both train (10 epochs, best CP / SGD: 95.3 / 96.0 % and 95.9 / 95.9 %).
FIG5_LR = 0.03


def convergence_case(name: str, network: str, epochs: int, limit, lr: float, seed: int,
                     lr_step: int = 2, dfa_lr: float = DFA_LR) -> dict:
    """Test accuracy per epoch of Fig. 5 case ``name`` on MNIST-5k with ``network``'s model
    and operand format, on the fast training path (a Ray job); the rates as
    :func:`~caterpillar.bench.convergence.case_lr` chooses."""
    values = paper_values()["networks"][network]
    started = time.monotonic()
    result = train_case(name, tuple(values["model"]), load_dataset("mnist"),
                        preset(values["config"]), epochs=epochs,
                        lr=case_lr(name, lr, dfa_lr), seed=seed,
                        limit=limit, fast=True, lr_step=lr_step)
    # An epoch's last incomplete batch is dropped.
    samples = limit or len(load_dataset("mnist").x_train)
    return {"name": name, "network": network, **result,
            "samples_per_epoch": samples // result["batch"] * result["batch"],
            "wall_seconds": time.monotonic() - started}


def _code_version() -> str:
    """A hash of the sources a case's result depends on."""
    digest = hashlib.sha256()
    for package in (caterpillar.contract, caterpillar.golden, caterpillar.software,
                    caterpillar.bench):
        root = Path(package.__file__).parent
        for path in sorted(root.rglob("*")):
            if path.suffix in (".py", ".yaml"):
                digest.update(str(path.relative_to(root)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _cache_key(job: dict, tech_text: str, version: str) -> str:
    """The key of a job: what it computes (a case, or a convergence run), its network's
    model and config, the technology file and the code version."""
    network = paper_values()["networks"][job.get("network", "N1")]
    text = json.dumps({"job": job, "network": network,
                       "config": preset(network["config"]).to_dict(), "tech": tech_text,
                       "version": version}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _run_jobs(jobs, *, address=None, cache_dir=CACHE_DIR, use_cache=True, workers=None,
              progress=None) -> tuple[list, dict]:
    """Run ``jobs`` (``(cache key, function, kwargs)``) on Ray, those in the cache from it;
    return their results in order and the run's facts. ``progress(done, total, result)``."""
    started = time.monotonic()
    cache_dir = Path(cache_dir)
    results = {}
    if use_cache:
        for key, _, _ in jobs:
            path = cache_dir / f"{key}.json"
            if path.exists():
                results[key] = json.loads(path.read_text())
    todo = [job for job in jobs if job[0] not in results]
    done = 0
    for key, _, _ in jobs:
        if key in results:
            done += 1
            if progress:
                progress(done, len(jobs), results[key])
    cpus = 0
    if todo:
        import ray

        started_ray = not ray.is_initialized()
        if started_ray:
            ray.init(address=address, num_cpus=workers if address is None else None,
                     include_dashboard=False, log_to_driver=False, logging_level="WARNING")
        cpus = int(ray.cluster_resources().get("CPU", 0))
        pending = {ray.remote(function).remote(**kwargs): key for key, function, kwargs in todo}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                key = pending.pop(ready[0])
                results[key] = ray.get(ready[0])
                cache_dir.mkdir(parents=True, exist_ok=True)
                (cache_dir / f"{key}.json").write_text(json.dumps(results[key]))
                done += 1
                if progress:
                    progress(done, len(jobs), results[key])
        finally:
            if started_ray:
                ray.shutdown()
    facts = {"jobs": len(jobs), "computed": len(todo), "cached": len(jobs) - len(todo),
             "ray_cpus": cpus, "wall_seconds": time.monotonic() - started}
    return [results[key] for key, _, _ in jobs], facts


def run_cases(cases, tech_path=None, *, convergence=None, **options) -> tuple[list, list, dict]:
    """Evaluate ``cases`` (:func:`evaluate_case`) and, with ``convergence`` (a dict of
    :func:`convergence_case`'s arguments but ``name``), Fig. 5's cases, all as jobs of one Ray
    run (:func:`_run_jobs`'s ``options``); return the case results, the convergence results
    and the run's facts (with the code version)."""
    tech_text = Path(tech_path or DEFAULT_TECHNOLOGY).read_text()
    version = _code_version()
    jobs = [(_cache_key(asdict(c), tech_text, version), evaluate_case,
             {"case": asdict(c), "tech_path": None if tech_path is None else str(tech_path)})
            for c in cases]
    curves = []
    if convergence:
        curves = [(_cache_key({"convergence": name, **convergence}, "", version),
                   convergence_case, {"name": name, **convergence}) for name in FIG5_CASES]
    results, facts = _run_jobs(jobs + curves, **options)
    return results[:len(jobs)], results[len(jobs):], {**facts, "cases": len(jobs),
                                                      "curves": len(curves),
                                                      "code_version": version}


def _fmt(value, digits=1, percent=False):
    if value is None:
        return "-"
    return f"{100 * value:.{digits}f} %" if percent else f"{value:,.{digits}f}"


def report_tables(results: list[dict], tech_path=None, curves=None) -> dict:
    """The tables of a run: ``cases`` (every case, ours beside the paper's where it gives a
    value), ``table2`` (GFLOPS/W, Table 2's cells: ours in both readings, the paper's, and
    ours per FMA over the paper's), ``area`` (the two machines) and, with ``curves``
    (:func:`convergence_case` results), ``curves`` (Figs. 5, 6 and 9); as lists of rows."""
    values = paper_values()
    util, density = values["utilization"], values["gflops_per_mm2"]
    by_name = {r["name"]: r for r in results}
    cases = []
    for r in results:
        net, label = r["case"]["network"], Case(**r["case"]).label
        ok = r["status"] == "ok"
        paper_util = util.get(net, {}).get(label, {}).get("value")
        cases.append({
            "case": r["name"], "config": r["config"], "status": r["status"],
            "cycles": r.get("cycles"), "utilization": r.get("utilization"),
            "mac_step_bound": r["bounds"]["mac_steps"] if ok else None,
            "paper_utilization": paper_util,
            "gflops_per_w_fma": r["energy"]["fma"]["gflops_per_w"] if ok else None,
            "gflops_per_w_flop": r["energy"]["flop"]["gflops_per_w"] if ok else None,
            "gflops_per_mm2": r.get("gflops_per_mm2"),
            "paper_gflops_per_mm2": density.get(net, {}).get(label),
            "energy_uj_per_sample": (r["energy"]["fma"]["energy_pj"]["total"] / 1e6
                                     / r["samples"]) if ok else None,
            "reason": r.get("reason", ""),
        })
    table2 = []
    for net in ("N1", "N2", "N3"):
        for label, paper in values["gflops_per_w"][net].items():
            # Table 2's MBGD column names no batch; the paper's large-batch case is b = 50.
            r = by_name.get(f"{net} {'mbgd-50' if label == 'mbgd' else label}")
            ok = r is not None and r["status"] == "ok"
            fma = r["energy"]["fma"]["gflops_per_w"] if ok else None
            table2.append({
                "network": net, "algorithm": label, "paper": paper,
                "ours_fma": fma, "ours_flop": r["energy"]["flop"]["gflops_per_w"] if ok else None,
                "ratio_fma": fma / paper if ok else None,
                "status": "not run" if r is None else r["status"]})
    area = []
    tech = load_technology(tech_path)
    for name, paper in values["area_mm2"].items():
        ours = machine_area(preset(name), tech)["total_mm2"]
        area.append({"machine": name, "ours_mm2": ours, "paper_mm2": paper,
                     "ratio": ours / paper})
    return {"cases": cases, "table2": table2, "area": area, "fit": _fit_rows(results),
            "phases": _phase_rows(results), "curves": _curves(curves or [], by_name)}


def _phase_rows(results: list[dict]) -> list[dict]:
    """Every compiled case's step, phase by phase: the share of the step's cycles and the
    phase's utilization (its model MACs over the working PEs and its cycles)."""
    rows = []
    for r in results:
        if r["status"] != "ok":
            continue
        row = {"case": r["name"], "step_cycles": r["step_cycles"]}
        for phase, v in r["phases"].items():
            row[f"{phase}_share"] = v["cycles"] / r["step_cycles"]
            row[f"{phase}_utilization"] = v["utilization"]
        rows.append(row)
    return rows


def _fit_rows(results: list[dict]) -> list[dict]:
    """The fit table of every case tried: the paper's verdict (the network in the PEs' local
    SRAM, per PE) and this compile's needs of each memory (fullest core) beside the config's."""
    rows = []
    for r in results:
        fit = r.get("fit")
        if fit is None:
            continue
        paper = fit["paper"][0]
        row = {"case": r["name"], "config": r["config"],
               "paper_words_per_pe": paper["needed"], "paper_local_words": paper["available"],
               "paper_fits": paper["fits"]}
        for m in fit["memories"]:
            key = m["memory"].lower()
            row[f"{key}_needed"], row[f"{key}_available"] = m["needed"], m["available"]
        row["fits"] = fit["fits"]
        rows.append(row)
    return rows


#: The accuracy Fig. 6's text compares the algorithms at ("for the same 90 % accuracy").
TARGET_ACCURACY = 0.90


def _curves(curves: list, by_name: dict) -> list:
    """Fig. 5's cases: the best test accuracy and the epoch it came, and the first epoch at
    :data:`TARGET_ACCURACY`; with the compiled case that prices them, the energy (Fig. 6) and
    time at 1 GHz (Fig. 9) to reach each (per sample x the samples trained until then)."""
    rows = []
    for c in curves:
        acc = c["test_accuracy"]
        best = max(range(len(acc)), key=lambda e: acc[e])
        target = next((e for e, a in enumerate(acc) if a >= TARGET_ACCURACY), None)
        priced = by_name.get(f"{c['network']} {c['name']}")
        ok = priced is not None and priced["status"] == "ok"

        def cost(epoch, total, per):
            if not ok or epoch is None:
                return None
            return total / per * c["samples_per_epoch"] * (epoch + 1)

        energy = priced["energy"]["fma"]["energy_pj"]["total"] * 1e-12 if ok else None
        seconds = priced["cycles"] / 1e9 if ok else None
        per = priced["samples"] if ok else None
        rows.append({"case": f"{c['network']} {c['name']}", "lr": c["lr"],
                     "test_accuracy": acc, "best_accuracy": acc[best], "best_epoch": best + 1,
                     "energy_j": cost(best, energy, per), "time_s": cost(best, seconds, per),
                     "target_epoch": None if target is None else target + 1,
                     "energy_to_target_j": cost(target, energy, per),
                     "time_to_target_s": cost(target, seconds, per),
                     "wall_seconds": c["wall_seconds"]})
    return rows


def markdown(tables: dict, facts: dict) -> str:
    """The report as Markdown."""
    lines = ["# The paper's cases, regenerated", "",
             f"{facts['cases']} cases and {facts['curves']} training runs ({facts['computed']} "
             f"jobs computed on Ray with {facts['ray_cpus']} CPUs, {facts['cached']} from the "
             "cache) in "
             f"{facts['wall_seconds']:.1f} s; code version {facts['code_version']}. Ours: the "
             "cycle-exact step of `caterpillar compile`, energy from its event counters in the "
             "paper's Table 1 technology. Paper values from `bench/paper-values.yaml`.", "",
             "## Table 2: GFLOPS/W", "",
             "| network | algorithm | ours (pJ per FMA) | ours (pJ per FLOP) | paper | ours / "
             "paper | status |", "|---|---|---|---|---|---|---|"]
    for r in tables["table2"]:
        lines.append(f"| {r['network']} | {r['algorithm']} | {_fmt(r['ours_fma'])} | "
                     f"{_fmt(r['ours_flop'])} | {r['paper']} | {_fmt(r['ratio_fma'], 2)} | "
                     f"{r['status']} |")
    lines += ["", "## Every case", "",
              "bound: the utilization of the case's MAC steps alone (every PE one MAC per cycle "
              "over the kernels' padded shapes; `caterpillar compile` prints it), which no "
              "overlap of transfers, collectives or waits can beat.", "",
              "| case | status | utilization | bound | paper | GFLOPS/W (FMA) | GFLOPS/mm^2 | "
              "paper | uJ per sample |", "|---|---|---|---|---|---|---|---|---|"]
    for r in tables["cases"]:
        lines.append(f"| {r['case']} | {r['status']} | {_fmt(r['utilization'], 1, True)} | "
                     f"{_fmt(r['mac_step_bound'], 1, True)} | "
                     f"{_fmt(r['paper_utilization'], 0, True)} | "
                     f"{_fmt(r['gflops_per_w_fma'])} | {_fmt(r['gflops_per_mm2'], 2)} | "
                     f"{_fmt(r['paper_gflops_per_mm2'])} | "
                     f"{_fmt(r['energy_uj_per_sample'], 2)} |")
    reasons = [r for r in tables["cases"] if r["reason"]]
    if reasons:
        lines += ["", "## Why a case does not run", ""]
        lines += [f"- {r['case']}: {r['reason']}" for r in reasons]
    if tables["curves"]:
        first = tables["curves"][0]
        lines += ["", "## Figs. 5(a), 6 and 9: N1 on MNIST-5k (the fast training path)", "",
                  f"Test accuracy per epoch ({len(first['test_accuracy'])} epochs, the fast "
                  "training path: the golden steps in float32 with the format's rounding of "
                  "stored values); energy and time at 1 GHz to the best accuracy, priced by "
                  "the compiled case (per sample).", "",
                  f"| case | lr | test accuracy per epoch | best | energy, time to best | "
                  f"energy, time to {100 * TARGET_ACCURACY:.0f} % | wall |",
                  "|---|---|---|---|---|---|---|"]

        def cost(energy, when):
            return "-" if energy is None else f"{energy:.3f} J, {when:.3f} s"

        for r in tables["curves"]:
            curve = " ".join(f"{100 * a:.1f}" for a in r["test_accuracy"])
            lines.append(f"| {r['case']} | {r['lr']:.3g} | {curve} | "
                         f"{100 * r['best_accuracy']:.1f} % (epoch {r['best_epoch']}) | "
                         f"{cost(r['energy_j'], r['time_s'])} | "
                         f"{cost(r['energy_to_target_j'], r['time_to_target_s'])} | "
                         f"{r['wall_seconds']:.0f} s |")
    if tables["phases"]:
        names = [k.removesuffix("_share") for k in tables["phases"][0] if k.endswith("_share")]
        lines += ["", "## Utilization per phase", "",
                  "Each phase's share of a step's cycles (those of the core with the most "
                  "local work; `ring`: the rest of the step, collectives and waiting) and, "
                  "where it does MACs, its utilization (its MACs over the PE cycles every "
                  "working core spent in it). The paper gives utilization per case only.",
                  "",
                  "| case | step cycles | " + " | ".join(names) + " |",
                  "|---|---|" + "---|" * len(names)]
        for r in tables["phases"]:
            cells = []
            for name in names:
                share, util = r[f"{name}_share"], r[f"{name}_utilization"]
                cells.append("-" if not share else f"{100 * share:.1f} %"
                             + (f" ({100 * util:.1f} %)" if util else ""))
            lines.append(f"| {r['case']} | {r['step_cycles']:,} | " + " | ".join(cells) + " |")
    if tables["fit"]:
        lines += ["", "## Fit table", "",
                  "The paper's criterion: the weights and one sample's activations spread over "
                  "every PE's local SRAM (words per PE; notes 4.2 and 6.6). Then what this "
                  "compile needs of each memory on its fullest core, of what the config has "
                  "(MemA and MemB: words per PE; SPAD: words per core; IMEM: instructions).",
                  "", "| case | paper: per PE | MemA | MemB | SPAD | IMEM | compiles |",
                  "|---|---|---|---|---|---|---|"]

        def need(r, key):
            got, have = r[f"{key}_needed"], r[f"{key}_available"]
            if got is None:
                return "-"
            return f"{got:,} / {have:,}" + ("" if got <= have else " **no**")

        for r in tables["fit"]:
            verdict = "fits" if r["paper_fits"] else "does not fit"
            lines.append(f"| {r['case']} | {r['paper_words_per_pe']:,} / "
                         f"{r['paper_local_words']:,} ({verdict}) | {need(r, 'mema')} | "
                         f"{need(r, 'memb')} | {need(r, 'spad')} | {need(r, 'imem')} | "
                         f"{'yes' if r['fits'] else 'no'} |")
    lines += ["", "## Area", "", "| machine | ours | paper | ours / paper |", "|---|---|---|---|"]
    lines += [f"| {r['machine']} | {r['ours_mm2']:.2f} mm^2 | {r['paper_mm2']} mm^2 | "
              f"{r['ratio']:.4f} |" for r in tables["area"]]
    return "\n".join(lines) + "\n"


def _csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _figures(tables: dict, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for key, title, ours_key, paper_key, name in [
        ("table2", "GFLOPS/W (Table 2)", "ours_fma", "paper", "table2.png"),
        ("cases", "GFLOPS/mm^2 (Fig. 10)", "gflops_per_mm2", "paper_gflops_per_mm2",
         "fig10.png"),
    ]:
        rows = [r for r in tables[key] if r.get(paper_key) is not None]
        labels = [f"{r['network']} {r['algorithm']}" if key == "table2" else r["case"]
                  for r in rows]
        fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(rows) + 2), 4))
        x = range(len(rows))
        ax.bar([i - 0.2 for i in x], [r[ours_key] or 0 for r in rows], 0.4, label="ours")
        ax.bar([i + 0.2 for i in x], [r[paper_key] for r in rows], 0.4, label="paper")
        ax.set_xticks(list(x), labels, rotation=45, ha="right")
        ax.set_title(title + " (ours 0: does not compile yet)")
        ax.legend()
        fig.tight_layout()
        path = out_dir / name
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    if tables["curves"]:
        fig, (curve, cost) = plt.subplots(1, 2, figsize=(12, 4.5))
        for r in tables["curves"]:
            acc = r["test_accuracy"]
            curve.plot(range(1, len(acc) + 1), [100 * a for a in acc], marker="o",
                       label=r["case"])
        curve.set(xlabel="epoch", ylabel="test accuracy (%)",
                  title="Fig. 5(a): N1 on MNIST-5k (fast path)")
        curve.legend()
        priced = [r for r in tables["curves"] if r["energy_j"] is not None]
        cost.bar([r["case"] for r in priced], [r["energy_j"] for r in priced])
        cost.set(ylabel="J to the best accuracy", title="Fig. 6 (compiled cases only)")
        fig.tight_layout()
        path = out_dir / "fig5-6.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths


def add_arguments(p) -> None:
    """Options of ``caterpillar paper``."""
    p.add_argument("--quick", action="store_true",
                   help=f"a reduced set of {len(QUICK_CASES)} cases (CI) instead of "
                        f"{len(CASES)}")
    p.add_argument("--out", default="build/paper", metavar="DIR",
                   help="where the tables and figures go (default build/paper)")
    p.add_argument("--address", default=None, metavar="ADDRESS",
                   help="join an existing Ray cluster (default: start a local one)")
    p.add_argument("--workers", type=int, default=None,
                   help="CPUs of the local Ray (default: all)")
    p.add_argument("--technology", default=None, metavar="FILE.yaml",
                   help="technology file (default: the paper's Table 1, 45 nm)")
    p.add_argument("--cache", default=str(CACHE_DIR), metavar="DIR",
                   help=f"results of earlier runs, by case and code version (default "
                        f"{CACHE_DIR})")
    p.add_argument("--no-cache", action="store_true", help="recompute every case")
    p.add_argument("--epochs", type=int, default=None,
                   help="also train Fig. 5's cases on N1 and MNIST-5k for this many epochs on "
                        "the fast path (Figs. 5, 6, 9; default: none, 1 with --quick)")
    p.add_argument("--limit", type=int, default=None,
                   help="samples per epoch of those runs (default all 4000; 64 with --quick)")
    p.add_argument("--lr", type=float, default=FIG5_LR,
                   help=f"their learning rate of one sample (bench convergence's convention; "
                        f"default {FIG5_LR}: at 0.05 CP diverges on N1)")
    p.add_argument("--dfa-lr", type=float, default=DFA_LR,
                   help=f"the DFA run's rate of one sample (default {DFA_LR}: at 0.05 DFA "
                        "overflows N1's fp16)")
    p.add_argument("--lr-step", type=int, default=2,
                   help="halve their rate every N epochs (default 2)")


def _progress(done, total, result):
    status = "" if result.get("status", "ok") == "ok" else f" ({result['status']})"
    sys.stderr.write(f"\r  [{'#' * (30 * done // total):<30s}] {done}/{total} cases: "
                     f"{result['name']}{status}".ljust(100) + ("\n" if done == total else ""))
    sys.stderr.flush()


def run(args) -> int:
    """Entry point of ``caterpillar paper``."""
    out_dir = Path(args.out)
    load_technology(args.technology)  # a bad file is refused before any case runs
    for name in ("paper.md", "paper.csv", "fit.csv", "paper.json"):
        check_output(out_dir / name, "--out")
    cases = QUICK_CASES if args.quick else CASES
    epochs = args.epochs if args.epochs is not None else (1 if args.quick else 0)
    limit = args.limit if args.limit is not None else (64 if args.quick else None)
    if epochs < 0 or (limit is not None and limit < 1) or not args.lr > 0 \
            or not args.dfa_lr > 0 or args.lr_step < 1:
        raise ValueError("--epochs must be >= 0, --limit and --lr-step >= 1 and --lr and "
                         "--dfa-lr > 0")
    convergence = {"network": "N1", "epochs": epochs, "limit": limit, "lr": args.lr,
                   "dfa_lr": args.dfa_lr, "lr_step": args.lr_step, "seed": 0} \
        if epochs else None
    print(f"caterpillar paper: {len(cases)} cases"
          + (f" and Fig. 5's {len(FIG5_CASES)} training runs ({epochs} epochs)"
             if convergence else "")
          + f" on Ray ({'--address ' + args.address if args.address else 'a local Ray'})",
          flush=True)
    results, curves, facts = run_cases(cases, args.technology, convergence=convergence,
                                       address=args.address, workers=args.workers,
                                       cache_dir=args.cache, use_cache=not args.no_cache,
                                       progress=_progress)
    tables = report_tables(results, args.technology, curves)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = markdown(tables, facts)
    (out_dir / "paper.md").write_text(text)
    (out_dir / "paper.csv").write_text(_csv(tables["cases"]))
    if tables["fit"]:
        (out_dir / "fit.csv").write_text(_csv(tables["fit"]))
    write_json(str(out_dir / "paper.json"), {"facts": facts, "tables": tables,
                                             "results": results, "curves": curves})
    figures = _figures(tables, out_dir)
    print(text)
    print(f"wrote {out_dir / 'paper.md'}, paper.csv, fit.csv, paper.json, "
          f"{', '.join(p.name for p in figures)}")
    return 0
