# amaranth: UnusedElaboratable=no
"""The Verilog tops a user can take elsewhere, each one file, and the table of their ports.

A :class:`VerilogTop` names a design (the core, the ring, the MAC, the MAC array), how to make
it and the key its Verilog is cached under; ``caterpillar verilog`` writes them, the Verilator
and cocotb builds simulate them, ``tests/sim/flow/test_lint.py`` lints them and
:func:`ports_markdown` documents their ports (``docs/verilog.md``) from their signatures, so
all of these are about the same file. (The first line of this module silences Amaranth's
unused-elaboratable warning for the components made here only to read their signatures.)
"""

from __future__ import annotations

import enum
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from amaranth.hdl import ClockSignal, Instance, Module, ResetSignal, Shape
from amaranth.lib import data, wiring

from caterpillar.contract.host_link import BAUD, BOARD_CLOCK_HZ
from caterpillar.rtl.board import Board
from caterpillar.rtl.core import Core
from caterpillar.rtl.fp.mac import FPMac
from caterpillar.rtl.fp.mac_array import MacArray
from caterpillar.rtl.ring import Ring, check_ring_config
from caterpillar.sim.flow.verilog import cached_rtlil, cached_verilog, signature_ports

__all__ = ["VerilogTop", "CoreInstance", "core_top", "ring_top", "board_top", "mac_top",
           "mac_array_top", "port_rows", "documented_tops", "ports_markdown", "CLOCK_PORTS"]

#: The ports :func:`~caterpillar.sim.flow.verilog.convert` adds for the ``sync`` domain.
CLOCK_PORTS = {"clk": "clock of the `sync` domain (every register, rising edge)",
               "rst": "reset of the `sync` domain: synchronous, active high"}


@dataclass(frozen=True)
class VerilogTop:
    """A design written as one Verilog file.

    Attributes
    ----------
    name : str
        Module name and file stem (``core`` -> ``core.v``).
    key : str
        Every parameter of the design (with the design digest, the Verilog cache key).
    make : callable
        Returns a fresh component.
    label : str
        What it is, for messages ("the tiny core").
    shell, parts : callable, tuple of VerilogTop
        For Verilog: ``shell()`` makes the design with some blocks as ``Instance`` s of the
        modules ``parts`` define, which are converted once each and written first (the ring's
        cores are one module, not ``cores`` copies). ``make()`` stays the whole design, for
        RTLIL and synthesis.
    """

    name: str
    key: str
    make: Callable[[], wiring.Component]
    label: str
    shell: Callable[[], wiring.Component] | None = None
    parts: tuple[VerilogTop, ...] = ()

    def verilog(self) -> Path:
        """Return the cached Verilog file of this top (converted on the first request): with
        ``parts``, their modules and then ``shell()``'s, whose ``Instance`` s name them."""
        if not self.parts:
            return cached_verilog(self.key, self.make, self.name, label=self.label)
        parts = tuple(part.verilog() for part in self.parts)
        return cached_verilog(self.key, self.shell, self.name, label=self.label, parts=parts)

    def rtlil(self) -> Path:
        """Return the cached RTLIL file of this top (what synthesis reads)."""
        return cached_rtlil(self.key, self.make, self.name, label=self.label)


def core_top(cfg) -> VerilogTop:
    """One :class:`~caterpillar.rtl.core.Core` of ``cfg`` (``cfg.cores`` is not used)."""
    return VerilogTop("core", f"Core|{cfg.to_json()}", lambda: Core(cfg),
                      f"the {cfg.name} core")


class CoreInstance(wiring.Component):
    """A :class:`~caterpillar.rtl.core.Core`'s interface (signature and register map) whose
    body is an ``Instance`` of the Verilog module ``module`` (:func:`core_top`'s), port for
    port as :func:`~caterpillar.sim.flow.verilog.signature_ports` names them."""

    def __init__(self, cfg, module: str):
        core = Core(cfg)
        self.register_map = core.register_map
        self._module = module
        super().__init__(core.signature)

    def elaborate(self, platform):
        m = Module()
        ports = {("i_" if member.flow == wiring.In else "o_") + name: value
                 for name, (_, member, value) in signature_ports(self).items()}
        m.submodules.core = Instance(self._module, i_clk=ClockSignal(), i_rst=ResetSignal(),
                                     **ports)
        return m


def ring_top(cfg) -> VerilogTop:
    """The :class:`~caterpillar.rtl.ring.Ring` of ``cfg.cores`` cores; a config the ring
    cannot be built for raises :class:`~caterpillar.contract.config.ConfigError` here. Its
    Verilog holds one core module (:func:`core_top`'s, shared with the lone core's cache
    entry) instantiated ``cfg.cores`` times, so a ring converts in the time of one core (the
    ``bench scaling`` ring: 291 s, against 1,144 s with a converted copy per core)."""
    check_ring_config(cfg)
    core = core_top(cfg.replace(cores=1))
    return VerilogTop("ring", f"Ring|{cfg.to_json()}", lambda: Ring(cfg),
                      f"the {cfg.cores}-core {cfg.name} ring",
                      shell=lambda: Ring(cfg, make_core=lambda c: CoreInstance(c, core.name)),
                      parts=(core,))


def board_top(cfg) -> VerilogTop:
    """The :class:`~caterpillar.rtl.board.Board` of ``cfg`` without its PLL and pins (UART,
    LEDs and ``link_idle`` as ports on the ``sync`` clock): what ``uart-sim`` Verilates and
    what another board wraps in its own clocking. ``caterpillar fpga build`` adds the ULX3S's
    PLL, reset button and pins."""
    check_ring_config(cfg)
    return VerilogTop("board", f"Board|{cfg.to_json()}|{BOARD_CLOCK_HZ}|{BAUD}",
                      lambda: Board(cfg, pll=False), f"the {cfg.name} board top")


def _formats(cfg) -> tuple[str, dict]:
    return (f"{cfg.operand_format}_{cfg.acc_format}",
            {"mul_latency": cfg.mul_latency, "add_latency": cfg.add_latency})


def mac_top(cfg) -> VerilogTop:
    """One :class:`~caterpillar.rtl.fp.mac.FPMac` of ``cfg``'s formats and latencies."""
    tag, lat = _formats(cfg)
    return VerilogTop(f"mac_{tag}", f"FPMac|{tag}|{sorted(lat.items())}",
                      lambda: FPMac(cfg.operand, cfg.acc, **lat), f"the {tag} MAC")


def mac_array_top(cfg, count: int = 16) -> VerilogTop:
    """A :class:`~caterpillar.rtl.fp.mac_array.MacArray` of ``count`` MACs of ``cfg``."""
    tag, lat = _formats(cfg)
    return VerilogTop(f"mac_array{count}_{tag}", f"MacArray|{count}|{tag}|{sorted(lat.items())}",
                      lambda: MacArray(cfg.operand, cfg.acc, count=count, **lat),
                      f"the {count}-MAC {tag} array")


def _describe_shape(shape) -> str:
    if isinstance(shape, data.StructLayout):
        fields = sorted(shape, key=lambda item: item[1].offset)
        return "struct: " + ", ".join(
            f"{name} [{f.offset}]" if f.width == 1 else
            f"{name} [{f.offset + f.width - 1}:{f.offset}]" for name, f in fields)
    if isinstance(shape, data.ArrayLayout):
        return f"{shape.length} x {_describe_shape(shape.elem_shape)}"
    if isinstance(shape, type) and issubclass(shape, enum.Enum):
        return f"enum {shape.__name__}"
    if isinstance(shape, data.Layout):
        return f"{shape.size} bits"
    shape = Shape.cast(shape)
    return f"{'signed' if shape.signed else 'unsigned'}({shape.width})"


def _interface(signature, path) -> wiring.Signature | None:
    """The innermost signature along ``path`` (the interface the port belongs to)."""
    inner = None
    for step in path[:-1]:
        if isinstance(step, int):
            continue
        member = signature.members[step]
        if not member.is_signature:
            break
        signature = inner = member.signature
    if isinstance(inner, wiring.FlippedSignature):
        inner = inner.flip()
    return inner


_NUMPYDOC_SECTION = re.compile(r"^\s*\w[\w ]*\n\s*-{3,}\s*$", re.MULTILINE)


def _markdown(text: str) -> str:
    """reST roles and literals of a docstring as Markdown code spans, on one line."""
    text = re.sub(r":\w+:`~?(?:[\w.]+\.)?(\w+)`( s\b)?", lambda m: f"`{m[1]}`"
                  + ("s" if m[2] else ""), text)
    return " ".join(text.replace("``", "`").split())


#: What Amaranth's own interfaces mean for a user of the Verilog (their docstrings are about
#: Python).
_LIBRARY_INTERFACES = {
    "stream.Signature": "a data stream: `payload` moves in a cycle where `valid` and `ready` "
                        "are both high; an always-ready stream has no `ready` port",
}


def _paragraphs(cls) -> list[str]:
    """The paragraphs of the docstring of ``cls`` before its first numpydoc section, as
    Markdown."""
    doc = _NUMPYDOC_SECTION.split(inspect.getdoc(cls) or "")[0]
    return [_markdown(p) for p in doc.split("\n\n") if p.strip()]


def port_rows(component) -> list[dict]:
    """Return one row per Verilog port of ``component``: ``port``, ``direction``
    (``input``/``output``), ``bits``, ``member`` (the signature path, ``bus.addr``),
    ``interface`` (the signature class the member belongs to, or ``None``) and ``shape``.
    The ``clk`` and ``rst`` rows come first."""
    rows = [{"port": port, "direction": "input", "bits": 1, "member": None, "interface": None,
             "shape": text} for port, text in CLOCK_PORTS.items()]
    for port, (path, member, value) in signature_ports(component).items():
        interface = _interface(component.signature, path)
        rows.append({
            "port": port,
            "direction": "input" if member.flow == wiring.In else "output",
            "bits": len(value),
            "member": ".".join(map(str, path)),
            "interface": interface,
            "shape": _describe_shape(member.shape),
        })
    return rows


def _interface_name(signature) -> str:
    cls = type(signature)
    module = cls.__module__
    if module.startswith("amaranth.lib."):
        return f"{module.rsplit('.', 1)[1]}.{cls.__name__}"
    return cls.__name__


#: Cores of the ring in the port table (the ring's ports do not change with it).
DOCUMENTED_RING_CORES = 4


def documented_tops(cfg) -> list[tuple[VerilogTop, str]]:
    """The tops ``docs/verilog.md`` documents for ``cfg``, each with the command that writes
    it."""
    command = f"caterpillar verilog --config {cfg.name}"
    ring_cfg = cfg.replace(cores=DOCUMENTED_RING_CORES)
    return [(core_top(cfg), command),
            (ring_top(ring_cfg), f"{command} --cores {DOCUMENTED_RING_CORES}"),
            (board_top(cfg), f"{command} --board ulx3s"),
            (mac_top(cfg), f"{command} --mac"),
            (mac_array_top(cfg), f"{command} --mac")]


def ports_markdown(cfg) -> str:
    """Return ``docs/verilog.md``: for each of :func:`documented_tops`, the command that writes
    it, what it is and a table of its ports generated from its signature; then what each
    interface means."""
    out = ["# Verilog tops and their ports", "",
           f"Generated from the components' signatures for the `{cfg.name}` config by "
           "`caterpillar docs`; do not edit. Widths follow the config (word and address "
           "widths, `nr` lanes). Every top is one self-contained Verilog file, lint-clean "
           "under Verilator `-Wall` with the named waivers of `sim/flow/lint.py`.", ""]
    interfaces = {}
    for top, command in documented_tops(cfg):
        component = top.make()
        out += [f"## `{top.name}` ({top.label})", "",
                f"`{command}` writes `{top.name}.v`.", "",
                *(line for p in _paragraphs(type(component)) for line in (p, "")),
                "| port | direction | bits | member | interface | shape |",
                "|---|---|---|---|---|---|"]
        for row in port_rows(component):
            interface = row["interface"]
            name = "" if interface is None else _interface_name(interface)
            if interface is not None:
                interfaces.setdefault(name, _LIBRARY_INTERFACES.get(name) or " ".join(
                    _paragraphs(type(interface))))
            member = "" if row["member"] is None else f"`{row['member']}`"
            out.append(f"| `{row['port']}` | {row['direction']} | {row['bits']} | {member} | "
                       f"{name} | {row['shape']} |")
        out.append("")
    out += ["## Interfaces", ""]
    out += [f"* `{name}`: {text}" for name, text in sorted(interfaces.items())]
    return "\n".join(out) + "\n"
