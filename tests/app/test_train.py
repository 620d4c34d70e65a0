"""``caterpillar train`` and ``caterpillar compile`` through the command line: end to end on the
instruction-level simulator, and every bad option refused with one line before any work."""

import json

import numpy as np
import pytest

from caterpillar.app.cli import main
from caterpillar.contract.config import preset
from caterpillar.golden.trainer import GoldenTrainer, to_bits, to_float
from caterpillar.software.training.datasets import load_dataset
from caterpillar.software.training.session import default_weights


def cli(capsys, *argv):
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--model", "64-x"], "--model must be"),
    (["--model", "10-5-10"], "has 64 features"),
    (["--model", "64-5-3"], "needs 10 outputs, not 3"),
    (["--dataset", "cifar"], "invalid choice: 'cifar'"),
    (["--epochs", "0"], "expected a positive integer, not '0'"),
    (["--config", "huge"], "unknown config preset"),
    (["--set", "nr=3"], "nr must be one of"),
    (["--set", "colour=1"], "unknown config field(s) 'colour'; the fields are name, nr,"),
    (["--set", "nr=4.0"], "nr must be one of 2, 4, 8, 16, not 4.0"),
    (["--set", "spad_words=true"], "spad_words must be an integer"),
    (["--init", "nothing.npz"], "no such file"),
    (["--resume", "nothing.npz"], "no such file"),
    (["--algorithm", "sgd", "--batch", "8"], "batch 1"),
    (["--backend", "uart"], "--backend uart needs --port DEVICE"),
    (["--port", "/dev/ttyUSB0"], "--port is for --backend uart (a board); --backend isa"),
    (["--backend", "uart", "--port", "/dev/caterpillar-no-such-port"],
     "cannot open --port /dev/caterpillar-no-such-port"),
])
def test_train_command_rejects_bad_options(capsys, argv, message):
    code, err = cli(capsys, "train", "--backend", "isa", "--quiet", *argv)
    assert code == 2
    assert err.startswith("caterpillar") and ": error: " in err and message in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_train_command_end_to_end(tmp_path, capsys):
    """check-golden, JSON report, figure, checkpoint and resume through the command line."""
    base = ["train", "--backend", "isa", "--quiet", "--limit", "40", "--model", "64-12-10",
            "--check-golden", "--save", str(tmp_path / "ck.npz")]
    assert main(base + ["--epochs", "1"]) == 0
    resume = ["train", "--backend", "isa", "--quiet", "--limit", "40", "--check-golden",
              "--save", str(tmp_path / "ck.npz"), "--resume", str(tmp_path / "ck.npz")]
    assert main(resume + ["--epochs", "2", "--json", str(tmp_path / "r.json"), "--plot",
                          str(tmp_path / "r.png")]) == 0
    out = capsys.readouterr().out
    assert "golden check: 80 steps" in out and "epoch 1:" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert [e["epoch"] for e in report["epochs"]] == [0, 1]
    assert report["epochs"][1]["phases"]["forward"]["cycles"] > 0
    assert (tmp_path / "r.png").stat().st_size > 10_000


def test_compile_command_saves_a_program_that_train_reruns(tmp_path, capsys):
    prog = tmp_path / "p.npz"
    assert main(["compile", "--model", "64-12-10", "--algorithm", "mbgd", "--batch", "4",
                 "--asm", "-o", str(prog)]) == 0
    out = capsys.readouterr().out
    assert "gemm " in out and "instructions" in out and f"wrote {prog}" in out
    assert main(["train", "--backend", "isa", "--program", str(prog), "--epochs", "1",
                 "--limit", "12", "--check-golden", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "64-12-10 (softmax_ce, mbgd, batch 4" in out and "golden check: 3 steps" in out
    code, err = cli(capsys, "train", "--backend", "isa", "--program", str(tmp_path / "x.npz"))
    assert code == 2 and "no such file" in err


def test_init_file_sets_the_starting_weights(tmp_path, capsys):
    sizes = (64, 12, 10)
    weights = default_weights(sizes, 99)
    np.savez(tmp_path / "init.npz", **{f"{k}{i}": v for i, (w, b) in enumerate(weights)
                                       for k, v in (("W", w), ("b", b))})
    json_path = tmp_path / "r.json"
    assert main(["train", "--backend", "isa", "--quiet", "--model", "64-12-10", "--init",
                 str(tmp_path / "init.npz"), "--epochs", "1", "--limit", "1", "--lr", "1e-30",
                 "--momentum", "0", "--json", str(json_path), "--no-shuffle"]) == 0
    # A negligible step leaves the loaded weights: the first logits are those of the file's.
    data = load_dataset("digits")
    fmt = preset("small").operand
    gold = GoldenTrainer(sizes, "softmax_ce", 4, fmt, fmt,
                         [(to_bits(w, fmt), to_bits(b, fmt)) for w, b in weights])
    logits = to_float(gold.predict(to_bits(data.x_train[:1], fmt)), fmt)
    z = logits[0] - logits[0].max()
    expected = float(np.log(np.exp(z).sum()) - z[data.y_train[0]])
    report = json.loads(json_path.read_text())
    assert report["epochs"][0]["loss"] == pytest.approx(expected, rel=1e-6)
    np.savez(tmp_path / "bad.npz", W0=np.zeros((3, 3)), b0=np.zeros(3), W1=np.zeros(1),
             b1=np.zeros(1))
    code, err = cli(capsys, "train", "--backend", "isa", "--model", "64-12-10", "--init",
                    str(tmp_path / "bad.npz"))
    assert code == 2 and "W0 has shape (3, 3); the model 64-12-10 needs (12, 64)" in err


def test_batch_larger_than_the_epoch_is_rejected(capsys):
    code, err = cli(capsys, "train", "--backend", "isa", "--quiet", "--algorithm", "mbgd",
                    "--batch", "16", "--limit", "10")
    assert code == 2 and "holds no full batch of 16" in err


def test_train_command_on_a_segment_of_the_ring(tmp_path, capsys):
    """--cores and --segments through the command line: golden check, report, resume."""
    base = ["train", "--backend", "isa", "--quiet", "--limit", "24", "--model", "64-12-10",
            "--cores", "4", "--segments", "2,0,1", "--algorithm", "mbgd", "--batch", "4",
            "--check-golden", "--save", str(tmp_path / "ck.npz")]
    assert main(base + ["--epochs", "1"]) == 0
    resume = ["train", "--backend", "isa", "--quiet", "--limit", "24", "--check-golden",
              "--resume", str(tmp_path / "ck.npz")]
    assert main(resume + ["--epochs", "2", "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "3 cores 2,0,1 (rows split, the output layer by columns)" in out
    assert "golden check: 12 steps" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["cores"] == [2, 0, 1] and report["epochs"][1]["phases"]["ring"]["cycles"] > 0


def test_train_command_with_a_segment_per_layer(capsys):
    assert main(["train", "--backend", "isa", "--quiet", "--limit", "16", "--epochs", "1",
                 "--model", "64-12-10", "--cores", "4", "--segments", "3,0/1-2",
                 "--algorithm", "mbgd", "--batch", "4", "--check-golden"]) == 0
    out = capsys.readouterr().out
    assert "4 cores 3,0/1,2 (rows split)" in out and "golden check: 4 steps" in out


@pytest.mark.parametrize("argv, message", [
    (["--cores", "2", "--backend", "icarus"], "runs on isa, amaranth, verilator"),
    (["--segments", "0-1"], "is not a range of cores 0..0"),
    (["--cores", "2", "--segments", "0-2"], "is not a range of cores 0..1"),
    (["--cores", "2", "--segments", "0-999999999999"], "is not a range of cores 0..1"),
    (["--cores", "2", "--segments", "1,1"], "names a core twice"),
    (["--cores", "2", "--segments", "a"], "use core numbers"),
    (["--cores", "4", "--segments", "0-1/1-2", "--algorithm", "mbgd"], "share core 1"),
    (["--cores", "8", "--model", "64-6-10"], "too few to give each of 8"),
])
def test_ring_options_are_checked(capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        main(["train", "--backend", "isa", "--quiet", "--epochs", "1", *argv])
    err = capsys.readouterr().err
    assert info.value.code == 2 and message in err and "Traceback" not in err


def test_cp_through_the_command_line(tmp_path, capsys):
    """``--algorithm cp`` defaults to plain SGD and compiles its pipeline for the epoch; a
    saved image trains golden-checked on a shorter epoch (recompiled for it); momentum is
    refused with one line."""
    assert main(["compile", "--model", "64-12-12-10", "--algorithm", "cp",
                 "--json", str(tmp_path / "plan.json"), "-o", str(tmp_path / "cp.npz")]) == 0
    out = capsys.readouterr().out
    assert "64-12-12-10 cp batch 1" in out and "fused" in out
    assert "an epoch of 1438 samples takes 1443 steps" in out       # digits' training set
    assert "MemA weight accesses per steady-state step: 2,064 (sgd: 3,360)" in out
    plan = json.loads((tmp_path / "plan.json").read_text())["pipeline"]
    assert plan["steps_per_epoch"] == 1443 and len(plan["programs"]) == 6 * 3 - 2
    ck = str(tmp_path / "ck.npz")
    assert main(["train", "--backend", "isa", "--program", str(tmp_path / "cp.npz"), "--limit",
                 "20", "--epochs", "1", "--check-golden", "--quiet", "--save", ck]) == 0
    out = capsys.readouterr().out
    assert "(softmax_ce, cp, batch 1, lr 0.05, momentum 0.0" in out
    assert "golden check: 25 steps" in out
    assert main(["train", "--backend", "isa", "--resume", ck, "--limit", "20", "--epochs", "2",
                 "--check-golden", "--quiet"]) == 0
    assert "golden check: 50 steps" in capsys.readouterr().out
    code, err = cli(capsys, "train", "--backend", "isa", "--algorithm", "cp", "--momentum",
                    "0.9")
    assert code == 2 and "takes plain SGD: use --momentum 0" in err and err.count("\n") == 1
    code, err = cli(capsys, "compile", "--algorithm", "cp", "--momentum", "0", "--set",
                    "cpass=false")
    assert code == 2 and err.count("\n") == 1
    assert "has no fused pass (cpass=false), which cp runs on; use --algorithm mbcp" in err


def test_mbcp_through_the_command_line(tmp_path, capsys):
    """``--algorithm mbcp`` pipelines groups (4 samples by default) and trains golden-checked;
    one sample per group is refused with one line that names the way out."""
    assert main(["compile", "--model", "64-12-12-10", "--algorithm", "mbcp", "--batch", "2",
                 "--json", str(tmp_path / "plan.json")]) == 0
    out = capsys.readouterr().out
    assert "64-12-12-10 mbcp batch 2" in out
    assert "an epoch of 719 groups of 2 samples takes 724 steps" in out
    # One gemv, gemvt (not for layer 0) and ger per weight and sample, as sgd.
    assert "MemA weight accesses per steady-state step: 6,720 (sgd: 6,720)" in out
    assert "events per steady-state period (6 steps, 12 samples)" in out
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["pipeline"]["steps_per_epoch"] == 724 and plan["energy"]["samples"] == 12
    assert main(["train", "--backend", "isa", "--algorithm", "mbcp", "--model", "64-12-12-10",
                 "--limit", "20", "--epochs", "1", "--check-golden", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "(softmax_ce, mbcp, batch 4, lr 0.1, momentum 0.0" in out
    assert "golden check: 10 steps" in out          # 5 groups + 2 x 3 - 1
    code, err = cli(capsys, "train", "--backend", "isa", "--algorithm", "mbcp", "--batch", "1")
    assert code == 2 and "use --batch 2" in err and err.count("\n") == 1


def test_cp_on_a_ring_through_the_command_line(capsys):
    assert main(["train", "--backend", "isa", "--algorithm", "cp", "--cores", "4", "--model",
                 "64-32-24-10", "--segments", "0/1-2/3", "--limit", "12", "--epochs", "1",
                 "--check-golden", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "4 cores 0/1,2/3 (columns split)" in out and "golden check: 17 steps" in out
    # Four layers on two cores: they share the two segments, two by two.
    assert main(["train", "--backend", "isa", "--algorithm", "cp", "--cores", "2", "--model",
                 "64-32-24-16-10", "--limit", "12", "--epochs", "1", "--check-golden",
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "2 cores 0/1 (columns split, layers 0,1 on cores 0, layers 2,3 on cores 1)" in out
    assert "golden check: 19 steps" in out


def compile_paper_step(tmp_path, capsys, *options):
    """``caterpillar compile`` of 64-12-10 on one ``paper-n1`` core: its output and plan."""
    path = tmp_path / "plan.json"
    assert main(["compile", "--config", "paper-n1", "--set", "cores=1", "--model", "64-12-10",
                 "--momentum", "0", "--json", str(path), *options]) == 0
    return capsys.readouterr().out, json.loads(path.read_text())


def test_compile_prices_the_machine_with_a_technology_file(tmp_path, capsys):
    out, plan = compile_paper_step(tmp_path, capsys)
    assert "area (paper-45nm): 3.22 mm^2: 16 PEs" in out and "GFLOPS/mm^2" in out
    area = plan["area"]
    assert area["pes"] == 16 and area["peak_gflops"] == 32
    assert area["step_gflops"] == pytest.approx(2 * plan["utilization"] * 16, rel=1e-9)
    code, err = cli(capsys, "compile", "--technology", str(tmp_path / "none.yaml"))
    assert code == 2 and err.count("\n") == 1 and "cannot read technology file" in err


@pytest.mark.parametrize("algorithm", ["sgd", "mbgd", "cp"])
def test_compile_bounds_the_step_by_its_mac_kernels(tmp_path, capsys, algorithm):
    out, plan = compile_paper_step(tmp_path, capsys, "--algorithm", algorithm,
                                   *(["--batch", "6"] if algorithm == "mbgd" else []))
    bounds = plan["bounds"]
    assert plan["utilization"] < bounds["kernels"] < bounds["mac_steps"] <= 1
    assert (f"bounds: the MAC kernels alone {100 * bounds['kernels']:.1f}% (the slowest core's "
            f"kernel cycles), their MAC steps alone {100 * bounds['mac_steps']:.1f}%") in out


def test_compile_reports_the_steps_events_and_energy(tmp_path, capsys):
    """The events are the ring timing model's (the RTL's counters equal them), the energy is
    theirs in the technology; cp's are a steady-state period of 2L pipeline steps."""
    from caterpillar.software.energy.energy import events_energy
    from caterpillar.software.energy.technology import load_technology

    out, plan = compile_paper_step(tmp_path, capsys)
    assert "events per step:" in out and "GFLOPS/W" in out and "uJ per sample" in out
    events, energy = plan["events"], plan["energy"]
    assert events["macs"] >= plan["macs"] > 0 and events["mema_reads"] > 0
    assert energy["samples"] == 1 and energy["cycles"] == plan["step_cycles"]
    fma = events_energy([events], preset("paper-n1"), load_technology(), "fma")
    assert energy["fma"]["energy_pj"]["total"] == pytest.approx(fma["total"])
    assert energy["flop"]["gflops_per_w"] < energy["fma"]["gflops_per_w"]
    out, plan = compile_paper_step(tmp_path, capsys, "--algorithm", "cp")
    assert "events per steady-state period (4 steps)" in out
    assert plan["energy"]["samples"] == 4
    energy = plan["energy"]
    assert plan["area"]["step_gflops"] == pytest.approx(2 * energy["macs"] / energy["cycles"])


@pytest.mark.parametrize("spad_words, layout", [
    (8192, []),
    (7168, ["layer 0's update loading [x; 1] into MemA"]),
    (6144, ["layer 0's update loading [x; 1] into MemA", "the inputs above layer 0 taking "
            "turns in two SPAD buffers, [a0; 1] kept in MemA for its update and the others "
            "gathered again"]),
])
def test_compile_says_how_a_small_spad_changed_the_mbgd_layout(tmp_path, capsys, spad_words,
                                                                layout):
    # 64-32-32-16-10 at batch 16 on 4 tiny cores: the usual layout needs less than 8,192
    # SPAD words; with 7,168 the host's batch-major input no longer fits, with 6,144 neither
    # do all the gathered inputs (MemA keeps the first hidden layer's from the forward).
    path = tmp_path / "plan.json"
    assert main(["compile", "--cores", "4", "--model", "64-32-32-16-10", "--algorithm", "mbgd",
                 "--batch", "16", "--set", f"spad_words={spad_words}", "--set",
                 "imem_words=1024", "--json", str(path)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert json.loads(path.read_text())["spad_layout"] == layout
    assert "(rows split, the output layer by columns" + "".join(f", {n}" for n in layout) + \
        "))" in first, first


def test_compile_reports_a_faster_placement_it_passed_over_for_imem(tmp_path, capsys):
    """A cp step whose fastest placement needs more IMEM for its steady-state programs (344
    instructions on 8 tiny cores) than the 340 given: the plan and the JSON name it with its
    cycles beside the slower one chosen. With IMEM for the whole image it is chosen; with
    IMEM for its steady state but not its whole image, in overlays."""
    path = tmp_path / "plan.json"
    args = ["compile", "--config", "tiny", "--cores", "8", "--model", "64-16-16-16-10",
            "--algorithm", "cp", "--set", "spad_words=8192", "--json", str(path)]
    assert main(args + ["--set", "imem_words=4096"]) == 0
    best = json.loads(path.read_text())
    assert best["over_imem"] == [] and best["pipeline"]["overlays"] is None
    assert main(args + ["--set", "imem_words=352"]) == 0
    overlaid = json.loads(path.read_text())
    assert overlaid["step_cycles"] == best["step_cycles"]
    assert overlaid["pipeline"]["overlays"]["image"] == best["instructions"] > 352
    capsys.readouterr()
    assert main(args + ["--set", "imem_words=340"]) == 0
    out, plan = capsys.readouterr().out, json.loads(path.read_text())
    assert plan["step_cycles"] > best["step_cycles"]
    [other] = plan["over_imem"]
    assert (other["segments"], other["step_cycles"], other["utilization"]) == \
        (best["segments"], best["step_cycles"], best["utilization"])
    line = next(x for x in out.splitlines() if "passed over" in x)
    assert (f"({other['instructions']} instructions on a core, IMEM holds 340): 8 cores"
            in line and other["instructions"] > 340), line
    assert f": {best['step_cycles']:,} cycles per step, utilization " in line, line
    assert "IMEM overlays: " in out


@pytest.mark.parametrize("batch, chosen, other", [(2, "gemv", "gemm"), (4, "gemm", "gemv")])
def test_compile_names_the_kernels_it_chose_over_the_others(tmp_path, capsys, batch, chosen,
                                                             other):
    """mbgd with a small batch and no momentum on a ring: the plan names the kernels the cycle
    model chose and gives the other kernels' cycles beside them (or why they do not
    compile)."""
    path = tmp_path / "plan.json"
    base = ["compile", "--config", "small", "--cores", "2", "--model", "64-32-10",
            "--algorithm", "mbgd", "--batch", str(batch), "--momentum", "0"]
    assert main(base + ["--json", str(path)]) == 0
    out, plan = capsys.readouterr().out, json.loads(path.read_text())
    assert plan["graph"]["kernels"] == chosen
    assert f"mbgd batch {batch} on the {chosen.upper()} kernels on small" in out.splitlines()[0]
    assert main(base + ["--kernels", other, "--json", str(tmp_path / "other.json")]) == 0
    named = json.loads((tmp_path / "other.json").read_text())
    assert plan["other_kernels"] == {"kernels": other, "step_cycles": named["step_cycles"],
                                     "utilization": named["utilization"]}
    assert named["step_cycles"] > plan["step_cycles"] and "other_kernels" not in named
    line = next(x for x in out.splitlines() if "chosen over" in x)
    assert line.strip() == (f"chosen over the {other.upper()} kernels (kernels auto): "
                            f"{named['step_cycles']:,} cycles per step, utilization "
                            f"{100 * named['utilization']:.1f}%")


def test_compile_says_why_the_other_kernels_do_not_compile(tmp_path, capsys):
    path = tmp_path / "plan.json"
    assert main(["compile", "--config", "small", "--cores", "2", "--model", "64-64-64-10",
                 "--algorithm", "mbgd", "--batch", "8", "--momentum", "0", "--json",
                 str(path)]) == 0
    other = json.loads(path.read_text())["other_kernels"]
    assert other["kernels"] == "gemv" and other["error"].startswith("MemB needs ")
    assert "chosen over the GEMV kernels (kernels auto): they do not compile: MemB needs " in \
        capsys.readouterr().out


def test_compile_prints_where_a_cores_cycles_go(tmp_path, capsys):
    """``--timeline``: one line per instruction of the core that finishes last (or the one
    named), and a sum that is the step's cycles; a core off the ring is one line, before any
    plan is printed."""
    path = tmp_path / "plan.json"
    assert main(["compile", "--cores", "4", "--model", "64-32-16-10", "--json", str(path),
                 "--timeline"]) == 0
    out, plan = capsys.readouterr().out, json.loads(path.read_text())
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if "timeline of core" in line)
    core = int(lines[head].split()[3])
    assert "(finishes last)" in lines[head]
    assert plan["cycles_per_core"][core] == plan["step_cycles"]
    # The placement: how each layer is split, where its bias is (program.bias_columns).
    assert plan["splits"][0] == "rows" and len(plan["bias_columns"]) == len(plan["splits"])
    folded = [str(k) for k, where in enumerate(plan["bias_columns"]) if where is not None]
    assert folded and f"the biases of layers {','.join(folded)} as columns of W" in lines[0]
    # Which layers' sums and gathers are piped (compiler/collectives.py), one RING per core.
    assert plan["piped_layers"] == [1] and "layer 1 summed and gathered by piped" in lines[0]
    body = lines[head + 1:]
    end = next(i for i, line in enumerate(body) if line.startswith(f"  core {core}: "))
    assert body[end - 1].split()[-1] == "halt" and body[0].split()[0] == "0"
    assert f"  core {core}: {plan['step_cycles']:,} cycles = 2 to start + " in body[end]
    assert f" in {end} instructions + " in body[end]
    assert int(body[end].split(" + ")[-1].split()[0].replace(",", "")) > 0   # ring waits
    timeline = plan["timeline"]
    assert timeline["core"] == core and timeline["cycles"] == plan["step_cycles"]
    rows = timeline["instructions"]
    assert len(rows) == end and rows[-1]["instruction"] == "halt"
    assert timeline["start_cycles"] + sum(r["wait"] + r["cycles"] for r in rows) == \
        plan["step_cycles"]
    assert main(["compile", "--cores", "4", "--timeline", "2"]) == 0
    assert "timeline of core 2" in capsys.readouterr().out
    code, err = cli(capsys, "compile", "--cores", "4", "--timeline", "4")
    assert code == 2 and err.count("\n") == 1
    assert "core 4 is not on the ring of small, whose cores are 0-3" in err


def test_compile_prints_and_writes_the_fit_table(tmp_path, capsys):
    out, plan = compile_paper_step(tmp_path, capsys)
    assert "fit (the paper's criteria" in out and "fit (this compile, the fullest core)" in out
    fit = plan["fit"]
    assert fit["fits"] and fit["paper"][0]["fits"] and fit["word_bits"] == 16
    assert [m["memory"] for m in fit["memories"]] == ["MemA", "MemB", "SPAD", "IMEM"]
    assert fit["memories"][3]["needed"] == plan["instructions"]
    # A step that does not compile: the table of every memory, then the one-line error.
    path = tmp_path / "failed.json"
    code, err = cli(capsys, "compile", "--config", "tiny", "--model", "64-40-10", "--json",
                    str(path))
    assert code == 2 and err.count("\n") == 1 and "MemA needs 1480 words" in err
    plan = json.loads(path.read_text())
    assert plan["compiles"] is False and plan["error"].startswith("MemA needs 1480")
    rows = {m["memory"]: m for m in plan["fit"]["memories"]}
    assert not rows["MemA"]["fits"] and not rows["MemB"]["fits"] and rows["SPAD"]["fits"]
