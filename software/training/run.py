"""A training run described by options: every option checked before any work, then trained.

:func:`plan_run` turns the options of ``caterpillar train`` (a JSON-able dict, the form the
command line and the cocotb session both pass) into a :class:`RunPlan`: the config, the
dataset, the graph, the compiled step, the initial weights or the checkpoint to resume. Every
user mistake raises a ``ValueError`` subclass whose message is one line naming the option, the
value and the fix; nothing is silently ignored: options that a checkpoint (``resume``) or a
saved program (``program``) fixes are refused when given. :func:`run_session` trains the plan on
a device and returns the report.

Options (keys of the dict; ``None`` or absent means "not given"): ``dataset``, ``model``,
``graph``, ``loss``, ``algorithm``, ``batch``, ``lr``, ``momentum``, ``weight_decay``,
``schedule``, ``lr_step``, ``lr_gamma``, ``config``, ``set`` (list of ``FIELD=VALUE``),
``cores``, ``segments``, ``epochs``, ``seed``, ``init``, ``resume``, ``program``,
``no_shuffle``, ``limit``, ``check_golden``, ``save``, ``save_program``, ``backend`` (a label
for the report).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

from caterpillar.contract.config import CaterpillarConfig, ConfigError, preset
from caterpillar.software.compiler.fit import fit_table
from caterpillar.software.compiler.program import Compiled, load_compiled
from caterpillar.software.compiler.training import compile_training, layer_segments
from caterpillar.software.energy.energy import step_energy
from caterpillar.software.energy.technology import load_technology
from caterpillar.software.graph.files import load_graph
from caterpillar.software.graph.model import Optimizer, TrainingGraph, parse_model
from caterpillar.software.storage import check_output
from caterpillar.software.training.checkpoint import (
    Checkpoint,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from caterpillar.software.training.datasets import Dataset, load_dataset
from caterpillar.software.training.session import Session, check_fits

__all__ = ["UsageError", "RunPlan", "plan_run", "run_session", "parse_segments",
           "config_from_options", "graph_from_options", "DEFAULT_OPTIMIZER", "GRAPH_OPTIONS",
           "DEFAULTS"]

#: The optimiser when neither a graph file nor options say otherwise.
DEFAULT_OPTIMIZER = {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.0, "schedule": "step",
                     "step": 2, "gamma": 0.5}
#: ``cp``'s default learning rate (its default optimiser has no momentum; ``mbcp``'s is this
#: times the square root of its batch).
CP_LR = 0.05
#: ``mbcp``'s default samples per group (the paper ran 2, 4 and 8).
MBCP_BATCH = 4
#: Values of options that are not given.
DEFAULTS = {"dataset": "digits", "config": "small", "seed": 0, "epochs": 5}
#: Options that describe the graph (what a checkpoint or a saved program fixes).
GRAPH_OPTIONS = ("model", "graph", "loss", "algorithm", "batch", "kernels", "lr", "momentum",
                 "weight_decay", "schedule", "lr_step", "lr_gamma")
#: Options that describe the machine.
CONFIG_OPTIONS = ("config", "set", "cores", "segments")
#: How the command line spells each option.
_FLAG = {name: "--" + name.replace("_", "-") for name in (
    *GRAPH_OPTIONS, *CONFIG_OPTIONS, "dataset", "seed", "init", "program", "no_shuffle",
    "resume", "epochs", "limit")}


class UsageError(ValueError):
    """A user mistake in the options; printed as one line."""


def _given(opts: dict, name: str) -> bool:
    value = opts.get(name)
    return value is not None and value != [] and value is not False


def _option(opts: dict, name: str):
    return opts[name] if _given(opts, name) else DEFAULTS.get(name)


def _positive(opts: dict, name: str) -> None:
    value = opts.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or value < 1):
        raise UsageError(f"{_FLAG.get(name, name)} must be a positive integer, not {value!r}")


def parse_segments(text: str, cores: int) -> list:
    """Parse ``--segments``: segments (``0-3``, ``0,1,6,7``, ``2-3,0``: cores in ring order)
    separated by ``/``, one for all layers or one per layer. Every number is checked against
    ``cores`` before any range is expanded."""
    return [_parse_segment(part, text, cores) for part in str(text).split("/")]


def _parse_segment(part_text: str, text: str, cores: int) -> tuple:
    out = []
    for part in part_text.split(","):
        lo, sep, hi = part.strip().partition("-")
        try:
            first, last = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise UsageError(f"--segments {text!r}: use core numbers and ranges such as "
                             "0-3 or 0,1,6,7") from None
        if not 0 <= first <= last < cores:
            raise UsageError(f"--segments {text!r}: {part.strip()!r} is not a range of cores "
                             f"0..{cores - 1} (the config has {cores}; use --cores to change "
                             "it)")
        out += range(first, last + 1)
    if len(set(out)) != len(out):
        raise UsageError(f"--segments {text!r}: a segment names a core twice")
    return tuple(out)


def _config_file(name: str) -> CaterpillarConfig:
    path = Path(name)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--config {name}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--config {name}: cannot read it ({e})") from None
    try:
        return CaterpillarConfig.from_json(text)
    except ConfigError as e:
        raise ConfigError(f"--config {name}: {e}") from None


def config_from_options(opts: dict) -> CaterpillarConfig:
    """The config a run uses: the preset or JSON file, ``--set`` changes and ``--cores``."""
    name = str(_option(opts, "config"))
    cfg = _config_file(name) if name.endswith(".json") else preset(name)
    changes = {}
    for item in opts.get("set") or []:
        field, sep, value = str(item).partition("=")
        if not sep or not field:
            raise UsageError(f"--set needs FIELD=VALUE, not {item!r}")
        try:
            changes[field] = json.loads(value)
        except json.JSONDecodeError:
            changes[field] = value
    if _given(opts, "cores"):
        _positive(opts, "cores")
        changes["cores"] = opts["cores"]
    try:
        return cfg.replace(**changes) if changes else cfg
    except ConfigError as e:
        raise ConfigError(f"--set: {e}") from None


def graph_from_options(opts: dict, dataset: Dataset) -> TrainingGraph:
    """The graph a run trains: a graph file and/or the options, over the defaults."""
    _positive(opts, "batch")
    base = load_graph(opts["graph"]) if _given(opts, "graph") else None
    sizes = parse_model(opts["model"]) if _given(opts, "model") else (
        base.sizes if base else (dataset.features, 32, dataset.classes))
    algorithm = opts["algorithm"] if _given(opts, "algorithm") else (
        base.algorithm if base else "sgd")
    if _given(opts, "batch"):
        batch = opts["batch"]
    elif base and base.algorithm == algorithm:
        batch = base.batch
    else:
        batch = {"sgd": 1, "dfa": 1, "cp": 1, "mbcp": MBCP_BATCH}.get(algorithm, 32)
    opt = base.optimizer.__dict__ if base else DEFAULT_OPTIMIZER
    if algorithm in ("cp", "mbcp") and not base:
        # cp's fused pass and mbcp's per-sample ger update with plain SGD (and stale weights
        # mix badly with momentum); a group's step is lr / b, so the rate grows as sqrt(b)
        # (bench/convergence.py's rule).
        opt = {**opt, "momentum": 0.0, "lr": CP_LR * math.sqrt(batch)}
    changes = {k: opts[o] for k, o in (("lr", "lr"), ("momentum", "momentum"),
                                       ("weight_decay", "weight_decay"),
                                       ("schedule", "schedule"), ("step", "lr_step"),
                                       ("gamma", "lr_gamma")) if _given(opts, o)}
    optimizer = Optimizer(**{**opt, **changes})
    loss = opts["loss"] if _given(opts, "loss") else (base.loss if base else "softmax_ce")
    kernels = opts["kernels"] if _given(opts, "kernels") else (
        base.kernels if base and base.algorithm == algorithm else "auto")
    return TrainingGraph(sizes, loss=loss, optimizer=optimizer, algorithm=algorithm,
                         batch=batch, kernels=kernels)


def _refuse(opts: dict, names, because: str) -> None:
    given = [_FLAG.get(n, n) for n in names if _given(opts, n)]
    if given:
        raise UsageError(f"{because}: drop {', '.join(given)}")


@dataclass
class RunPlan:
    """Everything a run needs, checked."""

    config: CaterpillarConfig
    dataset: Dataset
    graph: TrainingGraph
    compiled: Compiled
    weights: list | None
    checkpoint: Checkpoint | None
    seed: int
    shuffle: bool
    epochs: int


def _step_from_options(opts: dict, dataset: Dataset) -> tuple:
    """The config, graph and segments (or None) the options describe."""
    cfg = config_from_options(opts)
    graph = graph_from_options(opts, dataset)
    segments = parse_segments(opts["segments"], cfg.cores) if _given(opts, "segments") \
        else None
    return cfg, graph, segments


def _samples(opts: dict, dataset: Dataset) -> int:
    """Training samples of an epoch: the data set's, or ``--limit`` of them."""
    return len(dataset.x_train) if opts.get("limit") is None else \
        min(opts["limit"], len(dataset.x_train))


def plan_fit(opts: dict) -> dict:
    """The fit table (:func:`~caterpillar.software.compiler.fit.fit_table`) of the step the
    options describe, measured also when it does not compile (``caterpillar compile``)."""
    dataset = load_dataset(_option(opts, "dataset"))
    cfg, graph, segments = _step_from_options(opts, dataset)
    return fit_table(graph, cfg, segments, groups=_samples(opts, dataset) // graph.batch
                     if graph.pipelined else None)


def plan_run(opts: dict) -> RunPlan:
    """Check every option (and the files they name) and compile: see the module docstring."""
    for name in ("epochs", "limit"):
        _positive(opts, name)
    seed = _option(opts, "seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, not {seed!r}")
    epochs = _option(opts, "epochs")
    for key in ("save", "save_program"):
        if _given(opts, key):
            check_output(opts[key], _FLAG.get(key, "--" + key.replace("_", "-")),
                         suffix=".npz")
    checkpoint = None
    if _given(opts, "resume"):
        path = opts["resume"]
        checkpoint = load_checkpoint(path)
        _refuse(opts, (*GRAPH_OPTIONS, "init", "seed", "no_shuffle"),
                f"--resume continues {path} with its own graph, optimiser, weights and data "
                "order")
        meta = checkpoint.meta
        if meta["epoch"] >= epochs:
            raise UsageError(f"{path} has already trained {meta['epoch']} epochs; ask for "
                             f"more with --epochs N (N > {meta['epoch']})")
        if _given(opts, "dataset") and opts["dataset"] != meta["dataset"]:
            raise UsageError(f"{path} was trained on {meta['dataset']}, not "
                             f"{opts['dataset']}; drop --dataset")
        dataset = load_dataset(meta["dataset"])
        cfg = checkpoint.config
        if any(_given(opts, n) for n in ("config", "set", "cores")) \
                and config_from_options(opts) != cfg:
            raise UsageError(f"{path} was trained with config {cfg.name} ({cfg.to_json()}); "
                             "drop --config/--set/--cores or give the same")
        graph = checkpoint.graph
        seed, shuffle = meta["seed"], meta["shuffle"]
        segments = meta["segments"]
        if _given(opts, "segments") and layer_segments(
                graph, cfg, parse_segments(opts["segments"], cfg.cores)) != segments:
            raise UsageError(f"{path} was trained with segments {segments}; drop --segments")
    else:
        dataset = load_dataset(_option(opts, "dataset"))
        shuffle = not opts.get("no_shuffle")
        graph = cfg = None
    if _given(opts, "program"):
        path = opts["program"]
        compiled = load_compiled(path)
        _refuse(opts, (*GRAPH_OPTIONS, *CONFIG_OPTIONS),
                f"--program runs {path} with its own graph, config and placement")
        if checkpoint is not None and (compiled.graph != graph or compiled.config != cfg
                                       or list(compiled.segments) != list(segments)):
            raise UsageError(f"{path} was compiled for another graph, config or placement than "
                             f"{opts['resume']} was trained with")
        graph, cfg = compiled.graph, compiled.config
    else:
        if graph is None:
            cfg, graph, segments = _step_from_options(opts, dataset)
    samples = _samples(opts, dataset)
    if not _given(opts, "program"):
        # cp's image holds the fill and drain steps of an epoch of this many samples.
        compiled = compile_training(graph, cfg, segments,
                                    groups=samples // graph.batch if graph.pipelined else None)
    check_fits(graph, dataset)
    if samples < graph.batch:
        raise UsageError(f"an epoch of {samples} samples holds no full batch of {graph.batch}; "
                         "use a smaller --batch or a larger --limit")
    weights = load_weights(opts["init"], graph.sizes, cfg.operand) \
        if _given(opts, "init") else None
    return RunPlan(cfg, dataset, graph, compiled, weights, checkpoint, seed, shuffle, epochs)


def _say(text) -> None:
    print(text, flush=True)


def describe(plan: RunPlan, backend: str) -> str:
    """One line: what is trained where, and what a step costs."""
    graph, cfg, compiled, dataset = plan.graph, plan.config, plan.compiled, plan.dataset
    ring = compiled.placement_text()
    return (f"training {'-'.join(map(str, graph.sizes))} ({graph.loss}, {graph.algorithm}, "
            f"batch {graph.batch}{compiled.graph.kernels_text}, lr {graph.optimizer.lr}, "
            "momentum "
            f"{graph.optimizer.momentum}, weight decay {graph.optimizer.weight_decay}) on "
            f"{dataset.name} ({len(dataset.x_train)} train / {len(dataset.x_test)} test), "
            f"config {cfg.name} (nr={cfg.nr}, {cfg.operand_format}{ring}), backend {backend}: "
            f"{compiled.instructions} instructions, {compiled.step_cycles:,} cycles per step")


def epoch_line(r: dict) -> str:
    """One line per epoch: loss, accuracies, cycles and utilization per phase, and (with
    ``energy``) the epoch's energy and GFLOPS/W with the FPU's energy per FMA."""
    util = " ".join(f"{p} {v['utilization'] * 100:.1f}%" for p, v in r["phases"].items()
                    if v["cycles"])
    energy = ""
    if "energy" in r:
        fma = r["energy"]["fma"]
        energy = (f" energy {fma['energy_pj']['total'] / 1e9:,.3f} mJ "
                  f"{fma['gflops_per_w']:.1f} GFLOPS/W")
    return (f"epoch {r['epoch']}: loss {r['loss']:.4f} train acc {r['train_accuracy'] * 100:.2f}%"
            f" test acc {r['test_accuracy'] * 100:.2f}% cycles {r['cycles']:,} util "
            f"{r['utilization'] * 100:.1f}% ({util}){energy} wall {r['wall_seconds']:.1f}s")


def epoch_energy(report: dict, cfg, tech) -> dict:
    """The energy of an epoch's counted events (:func:`~caterpillar.software.energy.energy.
    step_energy` over the epoch: its model MACs and cycles), in technology ``tech``."""
    macs = sum(v["macs"] for v in report["phases"].values())
    return {"technology": tech.name,
            **step_energy([report["events"]], macs, report["cycles"], cfg, tech)}


def run_session(device, opts: dict, *, plan: RunPlan | None = None, out=_say,
                progress=None) -> dict:
    """Train as ``opts`` (or the already checked ``plan`` of them) says on ``device``; return
    the report (a JSON-able dict). ``out`` takes each line of text; ``progress(epoch, step,
    steps)`` is called after every step."""
    plan = plan or plan_run(opts)
    compiled = plan.compiled
    if _given(opts, "save_program"):
        compiled.save(opts["save_program"])
    session = Session(compiled, plan.dataset, device, seed=plan.seed, shuffle=plan.shuffle,
                      weights=plan.weights, check_golden=bool(opts.get("check_golden")),
                      limit=opts.get("limit"), progress=progress)
    if plan.checkpoint is not None:
        session.restore(plan.checkpoint)
    backend = opts.get("backend") or "device"
    out(describe(plan, backend))
    started = time.monotonic()
    tech = load_technology(opts.get("technology"))
    while session.epoch < plan.epochs:
        report = session.train_epoch()
        report["energy"] = epoch_energy(report, plan.config, tech)
        out(epoch_line(report))
        if _given(opts, "save"):
            save_checkpoint(opts["save"], session)
    result = {"graph": plan.graph.to_dict(), "config": plan.config.to_dict(),
              "dataset": plan.dataset.name, "backend": backend, "seed": plan.seed,
              "shuffle": plan.shuffle, "instructions": compiled.instructions,
              "step_cycles": compiled.step_cycles, "cores": list(compiled.working_cores),
              "segments": [list(s) for s in compiled.segments], "epochs": session.history,
              "wall_seconds": time.monotonic() - started,
              "golden_checked_steps": session.steps if session.check_golden else 0}
    if session.check_golden:
        out(f"golden check: {session.steps} steps, every weight, bias, momentum and logit "
            f"bit-identical")
    return result
