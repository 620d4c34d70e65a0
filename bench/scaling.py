"""``caterpillar bench scaling``: the ring of cores, from one to eight.

* Training steps of 784-512-512-10 with minibatch GD (batch 64, the bucket algorithm), SGD
  (batch 1), direct feedback alignment (batch 1 and 64) and continuous propagation (a
  steady-state pipeline step; on a ring every layer on its own cores, or the output layer on
  those of the layer below) on 1, 2, 4
  and 8 nr = 4 cores:
  cycles per step, parallel efficiency ``T(1) / (C T(C))`` against the one-core program
  (:func:`compile_training`), utilization (model MACs over PEs x cycles) and the share of the
  step the core with the most local work spends in ring instructions and waiting. Cycles come
  from the ring timing model, which equals the RTL (checked in the tests); ``--rtl-steps``
  steps also run on the Verilated 4-core ring, whose every core's cycle counter must equal the
  prediction, and give its simulation speed.
* ``--paper-n1-steps N``: N SGD steps (``--paper-n1-batch B`` > 1: MBGD steps of B samples)
  of the paper's N1 (784-500-500-500-10) on the Verilated ``paper-n1`` machine itself, 32
  fp16 cores, against the ring simulator: every core's cycles and event counters equal to the
  compiler's prediction, every parameter equal bit for bit afterwards (SGD about 10 minutes:
  loading 0.9 M words over the simulated host bus takes most of it; an MBGD step of 50 about
  5 minutes more). With ``--paper-n1-cp`` the steps are one epoch of N groups of continuous
  propagation (``B`` > 1: MBCP) through its fill, steady state and drain, ``N + 7`` pipeline
  steps on the compiler's placement.
* Achieved link bandwidth of every collective: payload words per link per cycle of the
  collective, against the link's ``nr`` words per cycle, on 2, 4 and 8 cores (ring
  simulator; the Verilated ring when it is built for ``--rtl-steps``).
* Small-block collectives, where latency rules: a reduce-scatter and an all-gather of blocks of
  ``nr`` rows per core (N1's 500-word layers on the 32 ``paper-n1`` cores are 3 or 4 rows a
  block) on 8, 16 and 32 ``paper-n1`` cores, bucket (a ``RING`` per step) against piped (one
  ``RING`` per core), ring simulator.
"""

from __future__ import annotations

import time

import numpy as np

from caterpillar.contract.config import preset
from caterpillar.golden.trainer import to_bits
from caterpillar.sim.backends.verilator import VerilatorDevice
from caterpillar.sim.cases.collectives import CollectiveCase, run_collective
from caterpillar.software.compiler.training import compile_training
from caterpillar.software.graph.model import Optimizer, TrainingGraph
from caterpillar.software.isasim.device import RingIsaDevice
from caterpillar.software.storage import check_output, write_json
from caterpillar.software.training.datasets import load_dataset
from caterpillar.software.training.session import default_weights, feedback_matrices
from caterpillar.software.training.trainer import Trainer

__all__ = ["add_arguments", "run", "SCALING_SIZES", "CASES", "scaling_config", "rtl_config"]

SCALING_SIZES = (784, 512, 512, 10)
CORE_COUNTS = (1, 2, 4, 8)


def scaling_config(cores: int = 1):
    """``small`` (nr = 4, fp32) with memories for 784-512-512-10 on one core."""
    return preset("small").replace(name="bench-scaling", cores=cores, spad_words=1 << 21,
                                   mema_words=65536, memb_words=8192, imem_words=8192)


def rtl_config():
    """The Verilated 4-core ring: smaller memories than :func:`scaling_config` (which one core
    needs), the same programs and cycles for 4 cores (the benchmark checks)."""
    return scaling_config(4).replace(name="bench-scaling-rtl", spad_words=1 << 20,
                                     mema_words=16384)


def add_arguments(p) -> None:
    """Options of ``bench scaling``."""
    p.add_argument("--json", default=None, metavar="FILE", help="write the results")
    p.add_argument("--rtl-steps", type=int, default=1,
                   help="steps of each algorithm on the Verilated 4-core ring (0: model only)")
    p.add_argument("--paper-n1-steps", type=int, default=0,
                   help="SGD steps of N1 on the Verilated 32-core paper-n1 ring, checked "
                        "against the ring simulator (default 0: not run; ~10 minutes)")
    p.add_argument("--paper-n1-batch", type=int, default=1,
                   help="samples per step of those N1 steps: 1 is SGD, more is MBGD "
                        "(default 1)")
    p.add_argument("--paper-n1-cp", action="store_true",
                   help="those N1 steps are one epoch of continuous propagation (MBCP with "
                        "a batch), through fill and drain")
    p.add_argument("--collective-words", type=int, default=16384,
                   help="vector length of the bandwidth runs")


#: The benchmark's steps: name -> (algorithm, batch).
CASES = {"mbgd": ("mbgd", 64), "sgd": ("sgd", 1), "dfa": ("dfa", 1),
         "dfa-batch64": ("dfa", 64), "cp": ("cp", 1), "mbcp-batch4": ("mbcp", 4)}


def _graph(name):
    algorithm, batch = CASES[name]
    return TrainingGraph(SCALING_SIZES, algorithm=algorithm, batch=batch,
                         optimizer=Optimizer(lr=0.01, momentum=0.0))


def _scaling(name) -> dict:

    graph = _graph(name)
    one = compile_training(graph, scaling_config(1))
    base = one.step_cycles
    macs = sum(v["macs"] for v in one.phase_report().values())
    rows = {}
    for cores in CORE_COUNTS:
        started = time.monotonic()
        if graph.pipelined and 1 < cores < len(graph.layers) - 1:
            # cp on a ring gives every layer cores of its own, but the output layer may
            # share the layer below's
            rows[cores] = None
            continue
        compiled = one if cores == 1 else compile_training(graph, scaling_config(cores))
        cycles = compiled.step_cycles
        phases = compiled.phase_report()
        rows[cores] = {
            "step_cycles": cycles, "speedup": base / cycles,
            "parallel_efficiency": base / (cores * cycles),
            "utilization": macs / (16 * cores * cycles),
            "ring_share": phases["ring"]["cycles"] / cycles,
            "phases": {p: v["cycles"] for p, v in phases.items()},
            "model_seconds": time.monotonic() - started,
        }
    return {"graph": graph.to_dict(), "model_macs": macs, "cores": rows}


def _print_scaling(name, table):
    print(f"{name}: {table['model_macs']:,} model MACs per step")
    print("    cores   cycles/step   speedup  efficiency  utilization  ring share")
    for cores, r in table["cores"].items():
        if r is None:
            print(f"    {cores:>5}  (fewer cores than layers but the output layer)")
            continue
        print(f"    {cores:>5}  {r['step_cycles']:>12,}  {r['speedup']:>7.2f}  "
              f"{100 * r['parallel_efficiency']:>9.1f}%  {100 * r['utilization']:>10.1f}%  "
              f"{100 * r['ring_share']:>9.1f}%")


def _bandwidth(device_for, cores_list, words) -> dict:
    out = {}
    for cores in cores_list:
        device = device_for(cores)
        nr = device.cfg.nr
        segment = tuple(range(cores))
        rows = {}
        for kind in ("broadcast", "chain_reduce", "all_gather", "reduce_scatter",
                     "all_reduce", "barrier"):
            case = CollectiveCase(kind, segment, words)
            _, _, run = run_collective(device, case)
            cycles = max(run.ring_cycles)
            # Payload words each link carries: a chain moves the whole vector over c - 1
            # links; a bucket step moves one block per link, c - 1 steps.
            per_link = {"broadcast": words, "chain_reduce": words,
                        "all_gather": words * (cores - 1) / cores,
                        "reduce_scatter": words * (cores - 1) / cores,
                        "all_reduce": 2 * words * (cores - 1) / cores, "barrier": 0}[kind]
            rows[kind] = {"cycles": cycles, "words_per_link": per_link,
                          "words_per_cycle": per_link / cycles,
                          "of_peak": per_link / cycles / nr}
        out[cores] = rows
    return out


def _small_blocks(cores_list, rows: int = 4) -> dict:
    """Cycles of a reduce-scatter and an all-gather of ``rows`` rows per core, bucket and
    piped, on ``paper-n1`` cores (the longest ring time of any core)."""
    out = {}
    for cores in cores_list:
        cfg = preset("paper-n1").replace(cores=cores)
        words = rows * cfg.nr * cores
        row = {"words": words}
        for kind in ("reduce_scatter", "all_gather"):
            for style in ("", "piped_"):
                case = CollectiveCase(style + kind, tuple(range(cores)), words)
                _, _, run = run_collective(RingIsaDevice(cfg), case)
                row[style + kind] = max(run.ring_cycles)
        out[cores] = row
    return out


def _print_small_blocks(table):
    print("small-block collectives (4 rows of nr per core, paper-n1 cores, ring simulator; "
          "cycles, bucket -> piped):")
    for cores, row in table.items():
        print(f"    {cores:2d} cores, {row['words']:,} words: reduce-scatter "
              f"{row['reduce_scatter']:,} -> {row['piped_reduce_scatter']:,}, all-gather "
              f"{row['all_gather']:,} -> {row['piped_all_gather']:,}")


def _print_bandwidth(where, table, nr):
    print(f"collective bandwidth ({where}; link peak {nr} words/cycle):")
    for cores, rows in table.items():
        text = ", ".join(f"{kind} {r['words_per_cycle']:.2f} w/c ({100 * r['of_peak']:.0f}%)"
                         if r["words_per_link"] else f"{kind} {r['cycles']} cycles"
                         for kind, r in rows.items())
        print(f"    {cores} cores: {text}")


def _rtl_steps(algorithm, steps, rng) -> dict:
    """Steps of ``algorithm`` on the Verilated 4-core ring; cycles must equal the model's."""

    cfg = rtl_config()
    graph = _graph(algorithm)
    compiled = compile_training(graph, cfg)
    data = load_dataset("mnist")
    fmt = cfg.operand
    with VerilatorDevice(cfg, ring=True) as device:
        hw = Trainer(compiled, device)
        hw.load_parameters([(to_bits(w, fmt), to_bits(b, fmt))
                            for w, b in default_weights(graph.sizes, 0)])
        if graph.algorithm == "dfa":
            hw.load_feedback([to_bits(f, fmt) for f in feedback_matrices(graph.sizes, 0)])
        hw.set_lr(graph.optimizer.lr)
        cycles, started = 0, time.monotonic()
        for _ in range(steps):
            idx = rng.choice(len(data.x_train), graph.batch, replace=False)
            x = to_bits(data.x_train[idx], fmt)
            if graph.pipelined:                 # a steady-state pipeline step
                _, run = hw.pipeline_step(2 * len(graph.layers) - 1, x, data.y_train[idx])
            else:
                _, run = hw.step(x, data.y_train[idx])
            cycles += run.makespan              # the step raised if any core's cycles differ
        seconds = time.monotonic() - started
    return {"steps": steps, "cycles": cycles, "seconds": seconds,
            "cycles_per_second": cycles / seconds, "cores": 4}


def _paper_n1_steps(steps, rng, batch: int = 1, pipelined: bool = False) -> dict:
    """``steps`` SGD steps (``batch`` > 1: MBGD steps) of N1 on the Verilated ``paper-n1``
    ring and on the ring simulator from the same weights and samples; raises unless the
    parameters agree bit for bit (each step raises unless every core's cycles and events are
    the prediction). ``pipelined``: an epoch of ``steps`` groups of CP (MBCP), fill and drain
    included, and the logits of every group must agree too."""
    cfg = preset("paper-n1")
    algorithm = ("cp" if batch == 1 else "mbcp") if pipelined else \
        ("sgd" if batch == 1 else "mbgd")
    graph = TrainingGraph((784, 500, 500, 500, 10), algorithm=algorithm, batch=batch,
                          optimizer=Optimizer(lr=0.01, momentum=0.0))
    # cp: the default placement (chosen on steady-state steps), its image for this epoch.
    compiled = compile_training(graph, cfg, groups=steps if pipelined else None)
    data = load_dataset("mnist")
    batches = [rng.choice(len(data.x_train), batch, replace=False) for _ in range(steps)]
    layers = len(graph.layers)
    initial = [(to_bits(w, cfg.operand), to_bits(b, cfg.operand))
               for w, b in default_weights(graph.sizes, 0)]
    results = {}
    for name, make in (("model", lambda: RingIsaDevice(cfg)),
                       ("rtl", lambda: VerilatorDevice(cfg, ring=True))):
        with make() as device:
            hw = Trainer(compiled, device)
            hw.load_parameters(initial)
            hw.set_lr(graph.optimizer.lr)
            cycles, started, logits = 0, time.monotonic(), []
            if pipelined:
                for t in range(steps + 2 * layers - 1):
                    x = to_bits(data.x_train[batches[t]], cfg.operand) if t < steps else None
                    out = t - layers + 1
                    target = data.y_train[batches[out]] if 0 <= out < steps else None
                    got, run = hw.pipeline_step(t, x, target)
                    cycles += run.makespan
                    logits += [] if got is None else [got]
            else:
                for idx in batches:
                    cycles += hw.step(to_bits(data.x_train[idx], cfg.operand),
                                      data.y_train[idx])[1].makespan
            seconds = time.monotonic() - started
            results[name] = {"cycles": cycles, "seconds": seconds, "logits": logits,
                             "weights": hw.read_parameters()[0]}
    for k, (a, b) in enumerate(zip(results["model"]["logits"], results["rtl"]["logits"],
                                   strict=True)):
        if not np.array_equal(a, b):
            raise AssertionError(f"N1 on the Verilated paper-n1 ring: group {k}'s logits "
                                 "differ from the ring simulator's")
    for layer, ((w, b), (w_rtl, b_rtl)) in enumerate(zip(results["model"]["weights"],
                                                         results["rtl"]["weights"])):
        if not (np.array_equal(w, w_rtl) and np.array_equal(b, b_rtl)):
            raise AssertionError(f"N1 on the Verilated paper-n1 ring: layer {layer}'s "
                                 "parameters differ from the ring simulator's")
    rtl = results["rtl"]
    return {"algorithm": graph.algorithm, "batch": batch,
            "steps": steps + 2 * layers - 1 if pipelined else steps,
            "placement": "/".join(str(len(s)) for s in dict.fromkeys(compiled.segments)),
            "step_cycles": compiled.step_cycles,
            "cycles": rtl["cycles"], "seconds": rtl["seconds"],
            "cycles_per_second": rtl["cycles"] / rtl["seconds"], "cores": cfg.cores,
            "words": sum(w.size + b.size for w, b in rtl.pop("weights"))}


def run(args) -> int:
    """Entry point of ``caterpillar bench scaling``."""
    for option, value in (("--rtl-steps", args.rtl_steps),
                          ("--paper-n1-steps", args.paper_n1_steps)):
        if value < 0:
            raise ValueError(f"{option} {value}: the number of steps must be >= 0 (0 skips "
                             "them)")
    if args.paper_n1_batch < 1:
        raise ValueError(f"--paper-n1-batch {args.paper_n1_batch}: a step takes at least 1 "
                         "sample (1 is SGD, more is MBGD)")
    out = check_output(args.json, "--json") if args.json else None
    rng = np.random.default_rng(0)
    results = {"config": scaling_config(1).to_dict(), "training": {}}
    for name, (algorithm, batch) in CASES.items():
        table = _scaling(name)
        results["training"][name] = table
        _print_scaling(f"784-512-512-10 {algorithm} batch {batch} (nr=4 cores)", table)
    nr = scaling_config().nr
    results["bandwidth_model"] = _bandwidth(
        lambda c: RingIsaDevice(scaling_config(c).replace(spad_words=1 << 16)), (2, 4, 8),
        args.collective_words)
    _print_bandwidth("ring simulator", results["bandwidth_model"], nr)
    results["small_blocks"] = _small_blocks((8, 16, 32))
    _print_small_blocks(results["small_blocks"])
    if args.rtl_steps:

        with VerilatorDevice(rtl_config(), ring=True) as device:
            rtl = _bandwidth(lambda c: device, (4,), args.collective_words)
        results["bandwidth_rtl"] = rtl
        _print_bandwidth("Verilated 4-core ring", rtl, nr)
        for kind, r in rtl[4].items():
            model = results["bandwidth_model"][4][kind]["cycles"]
            if r["cycles"] != model:
                raise AssertionError(f"{kind}: RTL {r['cycles']} cycles, model {model}")
        for algorithm in CASES:
            row = _rtl_steps(algorithm, args.rtl_steps, rng)
            results["training"][algorithm]["rtl"] = row
            table = results["training"][algorithm]["cores"][4]["step_cycles"]
            if row["cycles"] != table * row["steps"]:
                raise AssertionError(f"{algorithm}: the RTL config's steps took {row['cycles']} "
                                     f"cycles, the table's 4-core row predicts {table} each")
            print(f"RTL {algorithm}: {row['steps']} step(s) on 4 cores, {row['cycles']:,} "
                  f"cycles (= prediction on every core), {row['cycles_per_second']:,.0f} "
                  f"cycles/s on Verilator ({row['seconds']:.1f} s)")
    if args.paper_n1_steps:
        row = _paper_n1_steps(args.paper_n1_steps, rng, args.paper_n1_batch,
                              args.paper_n1_cp)
        results["paper_n1_rtl"] = row
        what = row["algorithm"].upper() + ("" if row["batch"] == 1 else f" b = {row['batch']}")
        if row["algorithm"] in ("cp", "mbcp"):
            what += (f" (an epoch of {args.paper_n1_steps} groups with fill and drain, "
                     f"segments of {row['placement']} cores, {row['step_cycles']:,} cycles "
                     "per steady-state step)")
        print(f"RTL N1 {what} on the 32-core paper-n1 ring: {row['steps']} step(s), "
              f"{row['cycles']:,} cycles (= prediction on every core), {row['words']:,} "
              f"parameter words equal to the ring simulator's, {row['cycles_per_second']:,.0f} "
              f"cycles/s on Verilator ({row['seconds']:.1f} s)")
    if out is not None:
        write_json(out, results)
    return 0
