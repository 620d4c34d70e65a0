"""Report outputs: paths checked (and folders created) before any work, figure suffixes
refused by name, strict JSON and the figure written by ``Outputs.write``."""

import json

import pytest

from caterpillar.app.reports import Outputs, check_outputs
from caterpillar.software.storage import OutputPathError
from tests.app.test_plots import small_report


def test_nothing_asked_nothing_written(tmp_path):
    outputs = check_outputs()
    assert outputs == Outputs(None, None)
    outputs.write(small_report())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["fig.jpg", "fig", "fig.png.txt", "fig.json"])
def test_plot_suffix_outside_figure_suffixes_is_refused_before_anything(name, tmp_path):
    plot = tmp_path / "plots" / name
    with pytest.raises(OutputPathError) as info:
        check_outputs(json=tmp_path / "reports" / "r.json", plot=plot)
    assert str(info.value) == f"--plot {plot}: a figure is written as one of .png, .pdf, .svg"
    assert list(tmp_path.iterdir()) == []                   # no folder made for either


@pytest.mark.parametrize("name", ["f.png", "f.pdf", "f.svg", "F.PNG"])
def test_figure_suffixes_are_accepted_in_any_case(name, tmp_path):
    outputs = check_outputs(plot=str(tmp_path / name))
    assert outputs.plot == tmp_path / name and outputs.json is None


def test_missing_folders_are_created(tmp_path):
    outputs = check_outputs(json=tmp_path / "a" / "b" / "r.json",
                            plot=tmp_path / "c" / "f.svg", npz=tmp_path / "d" / "w.npz")
    assert outputs.json == tmp_path / "a" / "b" / "r.json"
    assert outputs.plot == tmp_path / "c" / "f.svg"
    assert all((tmp_path / d).is_dir() for d in ("a/b", "c", "d"))
    assert not outputs.json.exists() and not outputs.plot.exists()      # nothing written yet


def test_npz_output_is_checked_under_its_own_flag(tmp_path):
    with pytest.raises(OutputPathError, match=r"^-o .*w\.zip: the file must end in \.npz"):
        check_outputs(npz=tmp_path / "w.zip", npz_flag="-o")
    with pytest.raises(OutputPathError, match=r"^--save "):
        check_outputs(npz=tmp_path / "w.txt")
    assert check_outputs(npz=tmp_path / "w.npz") == Outputs(None, None)


def test_a_folder_is_not_an_output(tmp_path):
    with pytest.raises(OutputPathError, match=r"^--json .*: is a folder; give a file name$"):
        check_outputs(json=tmp_path)
    with pytest.raises(OutputPathError, match=r"^--plot .*: is a folder; give a file name$"):
        (tmp_path / "fig.png").mkdir()
        check_outputs(plot=tmp_path / "fig.png")


def test_write_gives_strict_json_and_the_figure(tmp_path):
    outputs = check_outputs(json=tmp_path / "out" / "r.json", plot=tmp_path / "out" / "f.png")
    report = small_report()
    report["epochs"][0]["loss"] = float("nan")
    report["epochs"][1]["loss"] = float("inf")
    outputs.write(report)
    text = outputs.json.read_text()
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text)
    assert [e["loss"] for e in data["epochs"]] == [None, None]
    assert data["non_finite"] == ["epochs[0].loss", "epochs[1].loss"]
    assert data["graph"] == report["graph"] and data["dataset"] == "digits"
    assert outputs.plot.read_bytes()[:4] == b"\x89PNG"


def test_write_only_what_was_asked(tmp_path):
    Outputs(json=tmp_path / "r.json").write(small_report())
    assert json.loads((tmp_path / "r.json").read_text())["backend"] == "isa"
    Outputs(plot=tmp_path / "f.pdf").write(small_report())
    assert (tmp_path / "f.pdf").read_bytes()[:4] == b"%PDF"
    check_outputs(plot=tmp_path / "F.PNG").write(small_report())      # suffix in capitals
    assert (tmp_path / "F.PNG").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["F.PNG", "f.pdf", "r.json"]
