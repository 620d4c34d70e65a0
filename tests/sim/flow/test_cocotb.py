"""The cocotb runner wrapper: ``WAVES`` parsing, build directories, simulator arguments and the
waveform copy, with a stand-in runner (no simulator runs here)."""

import cocotb_tools.runner
import pytest

from caterpillar.sim.flow import cocotb as cocotb_build


@pytest.mark.parametrize("value", ["", "0", "false", "no", "False", "NO", "off", " Off "])
def test_waves_off_values(value, monkeypatch):
    monkeypatch.setenv("WAVES", value)
    assert cocotb_build.waves_requested() is False


def test_waves_off_when_unset(monkeypatch):
    monkeypatch.delenv("WAVES", raising=False)
    assert cocotb_build.waves_requested() is False


@pytest.mark.parametrize("value", ["1", "yes", "true", "TRUE", "on"])
def test_waves_on_values(value, monkeypatch):
    monkeypatch.setenv("WAVES", value)
    assert cocotb_build.waves_requested() is True


@pytest.mark.parametrize("value", ["2", "maybe"])
def test_other_waves_values_are_a_clear_error(value, monkeypatch):
    monkeypatch.setenv("WAVES", value)
    with pytest.raises(ValueError, match=f"WAVES='{value}': use WAVES=1"):
        cocotb_build.waves_requested()


class FakeRunner:
    """Records build and test calls; ``test`` leaves a waveform in the build directory."""

    def __init__(self, sim):
        self.sim = sim
        self.builds, self.tests = [], []

    def build(self, **kwargs):
        self.builds.append(kwargs)

    def test(self, **kwargs):
        self.tests.append(kwargs)
        build_dir = kwargs["build_dir"]
        build_dir.mkdir(parents=True, exist_ok=True)
        if kwargs["waves"]:
            (build_dir / "dump.fst").write_bytes(b"fst-" + self.sim.encode())
        return build_dir / "results.xml"


@pytest.fixture
def runners(monkeypatch, tmp_path):
    """``get_runner`` replaced by one that hands out :class:`FakeRunner` s; builds go to a
    temporary ``CATERPILLAR_BUILD_DIR``."""
    made = []

    def get_runner(sim):
        made.append(FakeRunner(sim))
        return made[-1]

    monkeypatch.setattr(cocotb_tools.runner, "get_runner", get_runner)
    monkeypatch.setenv("CATERPILLAR_BUILD_DIR", str(tmp_path / "build"))
    return made


def test_icarus_build_and_test_arguments(runners, tmp_path, monkeypatch):
    monkeypatch.delenv("WAVES", raising=False)
    verilog = tmp_path / "fpu_bank-1234.v"
    results = cocotb_build.run_cocotb("icarus", verilog, "fpu_bank", "tests.mod", name="bank",
                                      extra_env={"OP": "3"}, seed=7)
    (runner,) = runners
    build_dir = tmp_path / "build" / "cocotb" / "bank-icarus-fpu_bank-1234"
    assert runner.sim == "icarus"
    assert runner.builds == [dict(sources=[verilog], hdl_toplevel="fpu_bank",
                                  build_dir=build_dir, build_args=[],
                                  timescale=("1ns", "1ps"), waves=False, always=False)]
    assert runner.tests == [dict(hdl_toplevel="fpu_bank", test_module="tests.mod",
                                 build_dir=build_dir, extra_env={"OP": "3"}, seed=7,
                                 waves=False)]
    assert results == build_dir / "results.xml"
    assert not (tmp_path / "build" / "waves").exists()


def test_verilator_warnings_are_not_fatal_and_the_model_is_optimised(runners, tmp_path,
                                                                     monkeypatch):
    monkeypatch.setenv("WAVES", "0")
    cocotb_build.run_cocotb("verilator", tmp_path / "core.v", "core", "m", name="core")
    (runner,) = runners
    args = runner.builds[0]["build_args"]
    assert "-Wno-fatal" in args and "-O3" in args
    assert all(isinstance(a, str) and a.startswith("-") for a in args)
    assert runner.tests[0]["extra_env"] == {} and runner.tests[0]["seed"] is None


def test_waves_use_their_own_build_and_are_copied(runners, tmp_path, monkeypatch):
    monkeypatch.setenv("WAVES", "1")
    cocotb_build.run_cocotb("verilator", tmp_path / "core.v", "core", "m", name="core")
    (runner,) = runners
    build_dir = tmp_path / "build" / "cocotb" / "core-verilator-core-waves"
    assert runner.builds[0]["build_dir"] == build_dir and runner.builds[0]["waves"] is True
    assert runner.tests[0]["waves"] is True
    copied = tmp_path / "build" / "waves" / "core-verilator.fst"
    assert copied.read_bytes() == b"fst-verilator"


def test_designs_and_simulators_never_share_a_build(runners, tmp_path, monkeypatch):
    monkeypatch.delenv("WAVES", raising=False)
    for sim, stem, name in (("icarus", "a", "x"), ("verilator", "a", "x"), ("icarus", "b", "x"),
                            ("icarus", "a", "y")):
        cocotb_build.run_cocotb(sim, tmp_path / f"{stem}.v", "top", "m", name=name)
    dirs = [r.builds[0]["build_dir"] for r in runners]
    assert len(set(dirs)) == 4
