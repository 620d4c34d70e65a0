"""Dependencies point one way: golden <- rtl <- sim, software uses only rtl.config/isa."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def module_files(folder: str):
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", module_files("golden"), ids=lambda p: p.name)
def test_golden_imports_only_numpy_and_itself(path):
    for name in imports_of(path):
        top = name.split(".")[0]
        assert top in ("numpy", "__future__", "dataclasses", "functools", "math", "typing") \
            or name.startswith("caterpillar.golden"), f"{path.name} imports {name}"


@pytest.mark.parametrize("path", module_files("rtl"), ids=lambda p: p.name)
def test_rtl_never_imports_software_or_sim(path):
    for name in imports_of(path):
        assert not name.startswith(("caterpillar.software", "caterpillar.sim")), \
            f"{path.name} imports {name}"


@pytest.mark.parametrize("name", ["config.py", "regmap.py", "isa_geometry.py"])
def test_interface_definitions_need_no_amaranth(name):
    assert not {n for n in imports_of(ROOT / "rtl" / name) if n.startswith("amaranth")}


@pytest.mark.parametrize("path", [p for p in module_files("software") if p.name != "cli.py"],
                         ids=lambda p: p.name)
def test_software_uses_only_config_and_isa_from_rtl(path):
    for name in imports_of(path):
        if name.startswith("caterpillar.rtl"):
            assert name in ("caterpillar.rtl.config", "caterpillar.rtl.isa",
                            "caterpillar.rtl.isa_geometry", "caterpillar.rtl.regmap"), \
                f"{path.name} imports {name}"
        assert not name.startswith(("caterpillar.sim", "amaranth")), f"{path.name} imports {name}"
