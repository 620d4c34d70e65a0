"""The training figure: written from a small report in every figure format, at the documented
size, and the report it reads is left unchanged."""

import copy

import pytest
from matplotlib import image

from caterpillar.app.plots import FIGURE_SUFFIXES, training_figure

PHASES = ("forward", "loss", "delta", "update", "fused", "transfer", "ring")


def small_report(epochs=2):
    """A report with the fields ``caterpillar train --json`` writes that the figure reads."""
    rows = []
    for e in range(1, epochs + 1):
        cycles = {"forward": 400, "loss": 50, "delta": 100, "update": 450, "transfer": 0,
                  "ring": 0}
        rows.append({
            "epoch": e, "loss": 1.0 / e, "train_accuracy": 0.5 + 0.1 * e,
            "test_accuracy": 0.45 + 0.1 * e, "cycles": sum(cycles.values()),
            "utilization": 0.4,
            "phases": {p: {"cycles": c, "macs": c // 2, "utilization": 0.5 if c else 0.0}
                       for p, c in cycles.items()},
        })
    return {"graph": {"sizes": [64, 32, 10], "algorithm": "sgd"}, "dataset": "digits",
            "config": {"name": "tiny"}, "backend": "isa", "epochs": rows}


def test_figure_suffixes():
    assert FIGURE_SUFFIXES == (".png", ".pdf", ".svg")


def test_png_has_the_documented_size(tmp_path):
    path = tmp_path / "train.png"
    training_figure(small_report(), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = image.imread(path)
    assert pixels.shape[:2] == (400, 1400)                   # 14 x 4 inches at 100 dpi
    assert pixels.std() > 0                                  # something was drawn


@pytest.mark.parametrize("suffix,magic", [(".pdf", b"%PDF"), (".svg", b"<?xml")])
def test_other_formats_follow_the_suffix(suffix, magic, tmp_path):
    path = tmp_path / f"train{suffix}"
    training_figure(small_report(), str(path))
    assert path.read_bytes().startswith(magic)


def test_svg_shows_the_title_and_only_phases_that_ran(tmp_path):
    path = tmp_path / "train.svg"
    report = small_report(3)
    report["epochs"][-1]["phases"]["ring"]["cycles"] = 7       # only the last epoch counts
    report["epochs"][-1]["phases"]["ring"]["utilization"] = 0.0
    training_figure(report, path)
    text = path.read_text()
    assert "64-32-10 sgd on digits, config tiny, backend isa" in text
    assert "per phase (total 40.0%)" in text
    for phase in ("forward", "loss", "delta", "update", "ring"):
        assert f"<!-- {phase} -->" in text, phase
    assert "<!-- transfer -->" not in text


def test_report_is_not_modified(tmp_path):
    report = small_report()
    before = copy.deepcopy(report)
    training_figure(report, tmp_path / "f.png")
    assert report == before


def test_one_epoch_and_zero_cycles_still_draw(tmp_path):
    report = small_report(1)
    for phase in report["epochs"][0]["phases"].values():
        phase["cycles"] = 0
    report["epochs"][0]["cycles"] = 0
    training_figure(report, tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 1000
