"""Fuzzing the command line with damaged files: bit flips, truncations and zeroed bytes in
checkpoints, saved programs, initial weights and program images; malformed graph, config and
assembly files. Every case must end either in the usage-error status with one line and no
traceback, or, when the damage left a file that still loads, in a normal run. Seeds are fixed;
the failing case's seed and file are in the assertion message."""

import json
import random

import numpy as np
import pytest
import yaml

from caterpillar.app.cli import main
from caterpillar.contract.config import CaterpillarConfig, preset
from caterpillar.software.compiler.asm import from_bytes
from caterpillar.software.compiler.program import load_compiled
from caterpillar.software.graph.files import load_graph
from caterpillar.software.training import session
from caterpillar.software.training.checkpoint import load_checkpoint, load_weights
from caterpillar.software.training.session import default_weights

#: Cases per kind of file (a few hundred in all).
CASES = {"checkpoint": 60, "program": 50, "init": 40, "image": 30, "graph": 60, "config": 60,
         "assembly": 30}
#: What a quick run adds, so that a file that still loads trains only a few steps.
QUICK = ["--backend", "isa", "--quiet", "--limit", "4"]


def run(capsys, argv):
    """``(exit status, stdout, stderr)`` of the command line."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def check(capsys, argv, still_valid, what):
    valid = still_valid()
    capsys.readouterr()
    code, out, err = run(capsys, argv)
    assert "Traceback" not in err, f"{what}: traceback\n{err}"
    if valid:
        assert code == 0, f"{what}: a file that still loads failed: {err}"
        return "valid"
    assert code == 2, f"{what}: exit {code}, stderr {err!r}"
    assert err.startswith("caterpillar") and err.count("\n") == 1, f"{what}: {err!r}"
    return "refused"


def loads(loader, *args):
    def still_valid():
        try:
            loader(*args)
        except ValueError:
            return False
        return True
    return still_valid


def damage(data: bytes, rng: random.Random) -> bytes:
    """Flip bits, truncate, or zero a stretch of ``data``."""
    data = bytearray(data)
    kind = rng.choice(("flip", "flip", "truncate", "zero"))
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        del data[rng.randrange(len(data)):]
    else:
        i = rng.randrange(len(data))
        data[i:i + rng.randint(1, 64)] = bytes(min(64, len(data) - i))
    return bytes(data)


class _StoppedClock:
    """Stands in for the ``time`` module of the training session: no time passes."""

    @staticmethod
    def monotonic() -> float:
        return 0.0


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """A checkpoint, a saved program and an initial-weights file of 64-12-10 on digits."""
    folder = tmp_path_factory.mktemp("fuzz")
    files = {"checkpoint": folder / "ck.npz", "program": folder / "p.npz",
             "init": folder / "w.npz"}
    with pytest.MonkeyPatch.context() as patch:
        # The checkpoint's history holds each epoch's wall time; a stopped clock makes its
        # bytes, and so what each seeded damage hits, the same in every run.
        patch.setattr(session, "time", _StoppedClock)
        assert main(["train", *QUICK, "--model", "64-12-10", "--epochs", "1", "--save",
                     str(files["checkpoint"]), "--save-program", str(files["program"])]) == 0
    np.savez(files["init"], **{f"{k}{i}": v for i, (w, b) in
                               enumerate(default_weights((64, 12, 10), 3))
                               for k, v in (("W", w), ("b", b))})
    return {k: v.read_bytes() for k, v in files.items()}


@pytest.mark.parametrize("kind", ["checkpoint", "program", "init"])
def test_damaged_binary_files(kind, originals, tmp_path, capsys):
    outcomes = []
    for seed in range(CASES[kind]):
        rng = random.Random(f"{kind}-{seed}")
        path = tmp_path / f"{kind}-{seed}.npz"
        path.write_bytes(damage(originals[kind], rng))
        what = f"{kind} case {seed} ({path})"
        if kind == "checkpoint":
            argv = ["train", *QUICK, "--resume", str(path), "--epochs", "2"]
            valid = loads(load_checkpoint, path)
        elif kind == "program":
            argv = ["train", *QUICK, "--program", str(path), "--epochs", "1"]
            valid = loads(load_compiled, path)
        else:
            argv = ["train", *QUICK, "--model", "64-12-10", "--init", str(path),
                    "--epochs", "1"]
            valid = loads(load_weights, path, (64, 12, 10), preset("small").operand)
        outcomes.append(check(capsys, argv, valid, what))
    assert outcomes.count("refused") >= len(outcomes) // 2, outcomes


def test_damaged_program_images(tmp_path, capsys):
    source = tmp_path / "p.s"
    source.write_text("ldv spad=0 memb=0 len=8 layout=diag\nnop\nhalt\n")
    assert main(["asm", str(source), "-o", str(tmp_path / "p.bin")]) == 0
    capsys.readouterr()
    image = (tmp_path / "p.bin").read_bytes()
    outcomes = []
    for seed in range(CASES["image"]):
        rng = random.Random(f"image-{seed}")
        path = tmp_path / f"i{seed}.bin"
        path.write_bytes(damage(image, rng))

        def still_valid(path=path):
            try:
                from_bytes(path.read_bytes())
                return main(["disasm", str(path)]) == 0
            except (ValueError, SystemExit):
                return False

        outcomes.append(check(capsys, ["disasm", str(path)], still_valid,
                              f"image case {seed}"))
    assert outcomes.count("refused") >= len(outcomes) // 2, outcomes


def random_value(rng: random.Random, depth=0):
    choices = [lambda: rng.randint(-5, 70000), lambda: rng.random() * 10 - 2,
               lambda: rng.choice(["", "x", "sgd", "mbgd", "mse", "fp32", "1e-3", "64-32"]),
               lambda: rng.choice([None, True, False, float("nan"), float("inf")])]
    if depth < 2:
        choices += [lambda: [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))],
                    lambda: {rng.choice(["lr", "sizes", "a", "nr", "step"]):
                             random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}]
    return rng.choice(choices)()


def mutate_mapping(base: dict, keys, rng: random.Random) -> dict:
    data = json.loads(json.dumps(base))
    for _ in range(rng.randint(1, 3)):
        action = rng.choice(("set", "set", "drop", "add"))
        if action == "set":
            data[rng.choice(keys)] = random_value(rng)
        elif action == "drop" and data:
            data.pop(rng.choice(list(data)))
        else:
            data[rng.choice(["bogus", "Sizes", "optimiser", "nr "])] = random_value(rng)
    return data


def write_text_case(path, data, rng: random.Random) -> None:
    """Write ``data`` as JSON or YAML, or as damaged text, or as bytes that are not text."""
    style = rng.choice(("json", "json", "yaml", "garbage", "binary"))
    if style == "json":
        path.write_text(json.dumps(data))
    elif style == "yaml" and path.suffix in (".yaml", ".yml"):
        path.write_text(yaml.safe_dump(data))
    elif style == "binary":
        path.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randint(0, 40))))
    else:
        text = json.dumps(data)
        cut = rng.randrange(len(text) + 1)
        path.write_text(text[:cut] + rng.choice(["", "}", "{[", ":::", "\t- -"]))


def test_malformed_graph_files(tmp_path, capsys):
    base = {"sizes": [64, 16, 10], "loss": "softmax_ce", "algorithm": "mbgd", "batch": 4,
            "optimizer": {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.0,
                          "schedule": "step", "step": 2, "gamma": 0.5}}
    keys = [*base, "optimizer"]
    outcomes = []
    for seed in range(CASES["graph"]):
        rng = random.Random(f"graph-{seed}")
        data = mutate_mapping(base, keys, rng)
        if rng.random() < 0.3 and isinstance(data.get("optimizer"), dict):
            data["optimizer"] = mutate_mapping(base["optimizer"], list(base["optimizer"]), rng)
        path = tmp_path / f"g{seed}.{rng.choice(['json', 'yaml', 'yml'])}"
        write_text_case(path, data, rng)

        def still_valid(path=path):
            try:
                graph = load_graph(path)
            except ValueError:
                return False
            return graph.sizes[0] == 64 and graph.sizes[-1] == 10

        outcomes.append(check(capsys, ["compile", "--graph", str(path)], still_valid,
                              f"graph case {seed}"))
    assert outcomes.count("refused") >= len(outcomes) // 2, outcomes


def test_malformed_config_files(tmp_path, capsys):
    base = preset("tiny").to_dict()
    keys = list(base)
    outcomes = []
    for seed in range(CASES["config"]):
        rng = random.Random(f"config-{seed}")
        path = tmp_path / f"c{seed}.json"
        write_text_case(path, mutate_mapping(base, keys, rng), rng)

        def compiles(path=path):
            try:
                CaterpillarConfig.from_json(path.read_text())
                return main(["compile", "--config", str(path), "--model", "64-8-10"]) == 0
            except (ValueError, UnicodeDecodeError, SystemExit):
                return False

        outcomes.append(check(capsys, ["compile", "--config", str(path), "--model", "64-8-10"],
                              compiles, f"config case {seed}"))
    assert outcomes.count("refused") >= len(outcomes) // 2, outcomes


def test_malformed_assembly(tmp_path, capsys):
    lines = ["ldv spad=0 memb=0 len=8 layout=diag", "gemv y=0 x=8 w=0 psum=16 rows=4 cols=4 "
             "ldw=2", "vop fn=axpy layout=diag z=0 x=0 y=0 len=4 alpha=1", "halt"]
    outcomes = []
    for seed in range(CASES["assembly"]):
        rng = random.Random(f"assembly-{seed}")
        text = "\n".join(lines)
        chars = list(text)
        for _ in range(rng.randint(1, 5)):
            i = rng.randrange(len(chars))
            chars[i] = rng.choice("=xq0 9\n#;-")
        source = tmp_path / f"a{seed}.s"
        source.write_text("".join(chars))
        out = tmp_path / f"a{seed}.bin"

        def still_valid(source=source, out=out):
            try:
                return main(["asm", str(source), "-o", str(out), "--config", "tiny"]) == 0
            except SystemExit:
                return False

        outcomes.append(check(capsys, ["asm", str(source), "-o", str(out), "--config", "tiny"],
                              still_valid, f"assembly case {seed}"))
    assert outcomes.count("refused") >= len(outcomes) // 2, outcomes
