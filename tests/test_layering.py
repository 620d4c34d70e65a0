"""Dependencies point one way: golden <- rtl <- sim, software uses only rtl.config/isa."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imports_of(path: Path, *, module_level_only=False) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in (tree.body if module_level_only else ast.walk(tree)):
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
def test_interface_definitions_import_no_amaranth_themselves(name):
    # isa_geometry builds Amaranth expressions only when handed Amaranth values (a local
    # import); with ints it runs without it.
    imports = imports_of(ROOT / "rtl" / name, module_level_only=True)
    assert not {n for n in imports if n.startswith("amaranth")}


@pytest.mark.parametrize("path", [p for p in module_files("software") if p.name != "cli.py"],
                         ids=lambda p: p.name)
def test_software_uses_only_config_and_isa_from_rtl(path):
    for name in imports_of(path):
        if name.startswith("caterpillar.rtl"):
            assert name in ("caterpillar.rtl.config", "caterpillar.rtl.isa",
                            "caterpillar.rtl.isa_geometry", "caterpillar.rtl.regmap"), \
                f"{path.name} imports {name}"
        assert not name.startswith(("caterpillar.sim", "amaranth")), f"{path.name} imports {name}"
