"""The deepest register-to-register paths of a synthesised ECP5 netlist, in minutes.

nextpnr names a design's critical path only after routing, which takes an hour or more for a
board top; this reads the JSON netlist Yosys writes after ``synth_ecp5`` and ranks the paths
by a rough delay model (:data:`CELL_DELAY_NS`, routing folded into each cell), so that a
change to the RTL can be judged before the long run. The numbers are estimates: they rank
paths and show what lies on them; nextpnr's report after routing is the measurement. On the
``ulx3s`` board top the estimate of the worst path (53.7 ns) was 11 % below nextpnr's
post-placement estimate (60.6 ns).

A path starts at a flip-flop's or block RAM's output (after its clock-to-output time) and ends
at any input of a flip-flop, block RAM or I/O cell. ``MULT18X18D`` cells are combinational as
``synth_ecp5`` maps them (no pipeline registers), so paths run through them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["CELL_DELAY_NS", "CLOCK_TO_OUT_NS", "LogicPath", "longest_paths", "format_paths",
           "delay_model"]

#: Delay of a combinational cell from any input to any output, nanoseconds, routing to the next
#: cell included (ECP5 speed grade 6, rounded). ``CCU2C``: see :func:`_cell_delay`.
CELL_DELAY_NS = {"LUT4": 1.0, "PFUMX": 0.3, "L6MUX21": 0.3, "CCU2C": 1.0, "MULT18X18D": 5.0}

#: Clock-to-output time of the cells where paths start, nanoseconds.
CLOCK_TO_OUT_NS = {"TRELLIS_FF": 0.5, "DP16KD": 4.5, "TRELLIS_IO": 0.0, "EHXPLLL": 0.0}

#: Cells a path ends at (and, through their outputs, starts from).
_SEQUENTIAL = frozenset(CLOCK_TO_OUT_NS)

#: Yosys' generated suffixes of net names (``..._TRELLIS_FF_Q_DI``): the name before them is
#: the signal of the design that the net was made from.
_GENERATED = re.compile(r"_(TRELLIS_FF|LUT4|CCU2C|PFUMX|L6MUX21|MULT18X18D|DP16KD)_.*$")


@dataclass(frozen=True)
class LogicPath:
    """One register-to-register path.

    Attributes
    ----------
    delay_ns : float
        Estimated arrival time at the end point.
    start, end : str
        The signals the path starts and ends at.
    cells : dict
        Cell type to how many lie on the path (``{"LUT4": 12, "MULT18X18D": 1, ...}``).
    through : tuple of str
        The design's signals the path passes, in order, each once.
    """

    delay_ns: float
    start: str
    end: str
    cells: dict
    through: tuple


def _cell_delay(cell_type: str, in_port: str, out_port: str) -> float:
    if cell_type == "CCU2C" and in_port == "CIN":
        return 0.1 if out_port == "COUT" else 0.4          # along the carry chain
    return CELL_DELAY_NS.get(cell_type, 1.0)


def _bit_names(netnames: dict) -> dict:
    """Each net bit's most readable name: a public name before a generated one, then the
    shortest."""
    names = {}
    for name, net in netnames.items():
        bits = net["bits"]
        for index, bit in enumerate(bits):
            if not isinstance(bit, int):
                continue
            label = name if len(bits) == 1 else f"{name}[{index}]"
            rank = (name.startswith("$") or bool(net.get("hide_name")), len(label))
            if bit not in names or rank < names[bit][0]:
                names[bit] = (rank, label)
    return {bit: label for bit, (_, label) in names.items()}


def _origin(name: str) -> str:
    """The design signal a (possibly generated) net name comes from."""
    return _GENERATED.sub("", name)


def _inputs(cell) -> list[tuple[str, int]]:
    return [(port, bit) for port, bits in cell["connections"].items()
            if cell["port_directions"].get(port) == "input" for bit in bits
            if isinstance(bit, int)]


def longest_paths(netlist: dict, top: str, count: int = 10) -> list[LogicPath]:
    """Return the ``count`` deepest paths of module ``top`` of a Yosys JSON netlist, one per
    end signal (a bus's bits count once), deepest first.

    Raises
    ------
    ValueError
        If ``top`` is not in the netlist or a combinational loop is found.
    """
    if top not in netlist.get("modules", {}):
        raise ValueError(f"module {top!r} is not in the netlist")
    module = netlist["modules"][top]
    cells = module["cells"]
    names = _bit_names(module["netnames"])
    driver = {}
    for cell_name, cell in cells.items():
        for port, bits in cell["connections"].items():
            if cell["port_directions"].get(port) == "output":
                for bit in bits:
                    if isinstance(bit, int):
                        driver[bit] = (cell_name, port)

    arrival, previous = {}, {}

    def settle(root):
        """Arrival time of ``root`` (iterative depth-first search: paths are thousands deep)."""
        stack, open_bits = [(root, False)], set()
        while stack:
            bit, inputs_settled = stack.pop()
            cell_name, out_port = driver.get(bit, (None, None))
            if inputs_settled:
                cell = cells[cell_name]
                best, best_bit = 0.0, None
                for port, b in _inputs(cell):
                    t = arrival[b] + _cell_delay(cell["type"], port, out_port)
                    if t > best:
                        best, best_bit = t, b
                arrival[bit], previous[bit] = best, best_bit
                open_bits.discard(bit)
                continue
            if bit in arrival:
                continue
            if bit in open_bits:
                raise ValueError(f"combinational loop through {names.get(bit, bit)} in {top}")
            kind = cells[cell_name]["type"] if cell_name else None
            if kind is None or kind in _SEQUENTIAL or kind.startswith("$"):
                # A port, a constant or a clocked cell's output: a path starts here.
                arrival[bit], previous[bit] = CLOCK_TO_OUT_NS.get(kind, 0.0), None
                continue
            open_bits.add(bit)
            stack.append((bit, True))
            stack.extend((b, False) for _, b in _inputs(cells[cell_name]) if b not in arrival)

    ends = []
    for cell_name, cell in cells.items():
        if cell["type"] not in _SEQUENTIAL:
            continue
        # A flip-flop's end is the register it writes; another cell's, the cell's port.
        q = [b for b in cell["connections"].get("Q", []) if isinstance(b, int)]
        for port, bits in cell["connections"].items():
            if cell["port_directions"].get(port) != "input" or port.startswith("CLK"):
                continue
            for bit in bits:
                if isinstance(bit, int):
                    settle(bit)
                    label = names.get(q[0], cell_name) if q else f"{cell_name}.{port}"
                    ends.append((arrival[bit], label, bit))
    ends.sort(key=lambda end: -end[0])

    paths, seen = [], set()
    for delay, label, bit in ends:
        end = _origin(label).split("[")[0]
        if end in seen:
            continue
        seen.add(end)
        chain, b = [], bit
        while b is not None:
            chain.append(b)
            b = previous[b]
        chain.reverse()
        kinds, through = {}, []
        for b in chain[1:]:
            kind = cells[driver[b][0]]["type"]
            kinds[kind] = kinds.get(kind, 0) + 1
            origin = _origin(names.get(b, str(b)))
            if origin not in through:
                through.append(origin)
        paths.append(LogicPath(round(delay, 1), names.get(chain[0], str(chain[0])), end,
                               dict(sorted(kinds.items())), tuple(through)))
        if len(paths) == count:
            break
    return paths


def delay_model() -> str:
    """The delay model in a line: ``LUT4 1 ns, ..., carry 0.1 ns a bit, routing folded in``."""
    cells = ", ".join(f"{kind} {ns:g} ns" for kind, ns in CELL_DELAY_NS.items())
    along = _cell_delay("CCU2C", "CIN", "COUT")
    return f"{cells} ({along:g} ns a bit along a carry chain), routing folded in"


def format_paths(paths: list[LogicPath], *, through: int = 6) -> str:
    """The paths as text: delay, start -> end, the cells on it and the first ``through``
    signals it passes."""
    lines = []
    for path in paths:
        cells = ", ".join(f"{n} {kind}" for kind, n in path.cells.items())
        lines.append(f"{path.delay_ns:6.1f} ns  {path.start} -> {path.end}  ({cells})")
        shown = [name for name in path.through if name not in (path.start, path.end)]
        if shown:
            more = f", ... {len(shown) - through} more" if len(shown) > through else ""
            lines.append(" " * 12 + "through " + ", ".join(shown[:through]) + more)
    return "\n".join(lines)
