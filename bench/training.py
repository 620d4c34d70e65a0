"""``caterpillar bench training``: utilization of whole training steps, per phase, and speeds.

* 784-256-256-10 on one nr = 4 core: minibatch GD with batch 32, SGD with batch 1, direct
  feedback alignment with batch 1 (GEMV kernels) and 8 (GEMM kernels), and continuous
  propagation (a steady-state pipeline step: one fused pass per layer). The phase table is
  the compiler's per-instruction cycle prediction; ``--rtl-steps`` steps (MNIST samples) also
  run on the Verilated core, whose cycle counter must equal the prediction. The config is
  ``small`` with memories large enough for the network (``BENCH_CONFIG``).
* Wall time of one digits epoch (64-32-10, SGD, ``small``) on Verilator, and on the
  instruction-level simulator, whose speed is reported in simulated cycles per second.

Utilization is model MACs (forward, backward and weight gradient: one per weight per sample
each) over PEs x cycles.
"""

from __future__ import annotations

import time

import numpy as np

from caterpillar.contract.config import preset
from caterpillar.golden.trainer import to_bits
from caterpillar.sim.backends.devices import open_device
from caterpillar.sim.backends.verilator import VerilatorDevice
from caterpillar.software.compiler.cp import cp_weight_accesses
from caterpillar.software.compiler.program import with_utilization
from caterpillar.software.compiler.training import compile_training
from caterpillar.software.graph.model import Optimizer, TrainingGraph
from caterpillar.software.isasim.device import IsaDevice
from caterpillar.software.storage import check_output, write_json
from caterpillar.software.training.datasets import load_dataset
from caterpillar.software.training.session import Session, default_weights, feedback_matrices
from caterpillar.software.training.trainer import Trainer

__all__ = ["add_arguments", "run", "BENCH_SIZES", "CASES"]

BENCH_SIZES = (784, 256, 256, 10)
#: The benchmark's steps: name, algorithm, batch.
CASES = (("mbgd-batch32", "mbgd", 32), ("sgd-batch1", "sgd", 1), ("dfa-batch1", "dfa", 1),
         ("dfa-batch8", "dfa", 8), ("cp-batch1", "cp", 1), ("mbcp-batch4", "mbcp", 4))


def bench_config():
    """``small`` with the memories the 784-256-256-10 benchmark needs."""
    return preset("small").replace(name="bench-784", spad_words=1 << 19, mema_words=32768,
                                   memb_words=4096, imem_words=4096)


def add_arguments(p) -> None:
    """Options of ``bench training``."""
    p.add_argument("--json", default=None, metavar="FILE", help="write the results")
    p.add_argument("--rtl-steps", type=int, default=1,
                   help="steps of each 784-256-256-10 case run on Verilator (0: prediction "
                        "only)")
    p.add_argument("--no-digits", action="store_true", help="skip the digits epochs")


def _phase_table(compiled) -> dict:
    cfg = compiled.config
    pes = cfg.nr * cfg.nr
    rep = compiled.phase_report()
    macs = sum(v["macs"] for v in rep.values())
    graph = compiled.graph
    accesses = cp_weight_accesses(graph, graph.algorithm) \
        if graph.algorithm in ("sgd", "cp", "mbcp") else None
    return {"instructions": compiled.instructions, "step_cycles": compiled.step_cycles,
            "model_macs": macs, "utilization": macs / (pes * compiled.step_cycles),
            "weight_accesses": accesses,
            "phases": {p: {**v, "share": v["cycles"] / compiled.step_cycles}
                       for p, v in with_utilization(rep, cfg.nr).items()}}


def _print_case(name, row):
    print(f"{name}: {row['instructions']} instructions, {row['step_cycles']:,} cycles/step, "
          f"utilization {100 * row['utilization']:.1f}%")
    if row["weight_accesses"] is not None:
        print(f"    MemA weight accesses per step: {row['weight_accesses']:,}")
    for p, v in row["phases"].items():
        print(f"    {p:<9s} {v['cycles']:>10,} cycles ({100 * v['share']:5.1f}%)  "
              f"utilization {100 * v['utilization']:5.1f}%")
    i = row["isa"]
    print(f"    instruction-level simulator: one step in {i['seconds']:.2f} s = "
          f"{i['cycles_per_second']:,.0f} simulated cycles/s")
    if "rtl" in row:
        r = row["rtl"]
        print(f"    RTL: {r['steps']} step(s), {r['cycles']:,} cycles (= prediction), "
              f"{r['cycles_per_second']:,.0f} cycles/s on Verilator")


def _trainer(compiled, device):
    """A hardware trainer on ``device`` with PyTorch-default weights and the graph's lr."""
    fmt, graph = compiled.config.operand, compiled.graph
    hw = Trainer(compiled, device)
    hw.load_parameters([(to_bits(w, fmt), to_bits(b, fmt))
                        for w, b in default_weights(graph.sizes, 0)])
    if graph.algorithm == "dfa":
        hw.load_feedback([to_bits(f, fmt) for f in feedback_matrices(graph.sizes, 0)])
    hw.set_lr(graph.optimizer.lr)
    return hw


def _step(hw, x, labels):
    """One step of ``hw``: for ``cp`` and ``mbcp`` a steady-state pipeline step (the first)."""
    if hw.graph.pipelined:
        return hw.pipeline_step(2 * len(hw.graph.layers) - 1, x, labels)
    return hw.step(x, labels)


def _isa_step(compiled, rng):
    """One step on the instruction-level simulator: its speed in simulated cycles/s."""

    graph = compiled.graph
    hw = _trainer(compiled, IsaDevice(compiled.config))
    x = to_bits(rng.random((graph.batch, graph.sizes[0])), compiled.config.operand)
    started = time.monotonic()
    _, stats = _step(hw, x, rng.integers(0, graph.sizes[-1], graph.batch))
    seconds = time.monotonic() - started
    return {"cycles": stats.busy, "seconds": seconds, "cycles_per_second": stats.busy / seconds}


def _rtl_steps(compiled, steps, rng):
    cfg, graph = compiled.config, compiled.graph
    data = load_dataset("mnist")
    with VerilatorDevice(cfg) as device:
        hw = _trainer(compiled, device)
        cycles, started = 0, time.monotonic()
        for _ in range(steps):
            idx = rng.choice(len(data.x_train), graph.batch, replace=False)
            _, stats = _step(hw, to_bits(data.x_train[idx], cfg.operand), data.y_train[idx])
            cycles += stats.busy
        seconds = time.monotonic() - started
    return {"steps": steps, "cycles": cycles, "seconds": seconds,
            "cycles_per_second": cycles / seconds}


def _digits_epoch(backend):

    cfg = preset("small")
    data = load_dataset("digits")
    compiled = compile_training(TrainingGraph((64, 32, 10)), cfg)
    with open_device(backend, cfg) as device:
        started = time.monotonic()
        session = Session(compiled, data, device, seed=0)
        report = session.train_epoch()
        seconds = time.monotonic() - started
    return {"backend": backend, "steps": report["steps"], "cycles": report["cycles"],
            "seconds": seconds, "cycles_per_second": report["cycles"] / seconds,
            "test_accuracy": report["test_accuracy"]}


def run(args) -> int:
    """Entry point of ``caterpillar bench training``."""

    out = check_output(args.json, "--json") if args.json else None
    cfg = bench_config()
    rng = np.random.default_rng(0)
    results = {"config": cfg.to_dict(), "cases": {}}
    for name, algorithm, batch in CASES:
        graph = TrainingGraph(BENCH_SIZES, algorithm=algorithm, batch=batch,
                              optimizer=Optimizer(lr=0.01))
        compiled = compile_training(graph, cfg)
        row = _phase_table(compiled)
        row["isa"] = _isa_step(compiled, rng)
        if args.rtl_steps:
            row["rtl"] = _rtl_steps(compiled, args.rtl_steps, rng)
        results["cases"][name] = row
        _print_case(f"784-256-256-10 {name} (nr={cfg.nr})", row)
    if not args.no_digits:
        for backend in ("isa", "verilator"):
            row = _digits_epoch(backend)
            results[f"digits_epoch_{backend}"] = row
            print(f"digits epoch (64-32-10 sgd, small) on {backend}: {row['steps']} steps, "
                  f"{row['cycles']:,} cycles in {row['seconds']:.1f} s = "
                  f"{row['cycles_per_second']:,.0f} simulated cycles/s, test accuracy "
                  f"{100 * row['test_accuracy']:.1f}%")
    if out is not None:
        write_json(out, results)
    return 0
