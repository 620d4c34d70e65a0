"""Logic depth of synthesised netlists: arrival times by the delay model, the path's cells and
names, one path per register, loops refused, and depth beyond Python's recursion limit."""

import pytest

from caterpillar.sim.flow.logic_depth import (
    CELL_DELAY_NS,
    CLOCK_TO_OUT_NS,
    delay_model,
    format_paths,
    longest_paths,
)

FF, LUT, MULT = CLOCK_TO_OUT_NS["TRELLIS_FF"], CELL_DELAY_NS["LUT4"], CELL_DELAY_NS["MULT18X18D"]


class Netlist:
    """A hand-made Yosys JSON netlist of module ``top``."""

    def __init__(self):
        self.cells, self.nets, self.next_bit = {}, {}, 2

    def net(self, name, width=1):
        bits = list(range(self.next_bit, self.next_bit + width))
        self.next_bit += width
        self.nets[name] = {"bits": bits, "hide_name": 0}
        return bits

    def cell(self, kind, inputs, outputs):
        ports = {**{p: "input" for p in inputs}, **{p: "output" for p in outputs}}
        self.cells[f"c{len(self.cells)}"] = {
            "type": kind, "port_directions": ports,
            "connections": {**{p: list(b) for p, b in inputs.items()},
                            **{p: list(b) for p, b in outputs.items()}}}

    def ff(self, d, q):
        self.cell("TRELLIS_FF", {"CLK": [0], "DI": d}, {"Q": q})

    def lut(self, inputs, z):
        self.cell("LUT4", dict(zip("ABCD", ([b] for b in inputs))), {"Z": z})

    def json(self):
        return {"modules": {"top": {"cells": self.cells, "netnames": self.nets}}}


def test_arrival_is_the_sum_of_cell_delays_along_the_deepest_input():
    n = Netlist()
    a, b, c, t1, t2 = (n.net(x) for x in ("a", "b", "c", "t1", "t2"))
    n.ff(c, a)                     # a: a register (fed back from c)
    n.lut([a[0]], t1)
    n.lut([t1[0], a[0]], t2)       # two LUTs deep from a (the direct input is shallower)
    n.ff(t2, b)
    n.ff(a, c)                     # a straight register-to-register wire
    paths = longest_paths(n.json(), "top")
    assert [(p.start, p.end, p.delay_ns) for p in paths] == [
        ("a", "b", FF + 2 * LUT), ("c", "a", FF), ("a", "c", FF)]
    assert paths[0].cells == {"LUT4": 2} and paths[0].through == ("t1", "t2")


def test_carry_chains_multipliers_and_block_ram_outputs():
    n = Netlist()
    start, s, c1, c2, o = n.net("start"), n.net("s", 2), n.net("c1"), n.net("c2"), n.net("o")
    n.ff(o, start)
    n.cell("CCU2C", {"A0": start}, {"COUT": c1})
    n.cell("CCU2C", {"CIN": c1}, {"COUT": c2})
    n.cell("CCU2C", {"CIN": c2}, {"S0": s[:1]})   # 1 ns in, 0.1 ns along, 0.4 ns out
    n.ff(s[:1], o)
    ram_out, prod, r = n.net("ram_out"), n.net("prod"), n.net("r")
    n.cell("DP16KD", {"CLKA": [0], "ADA0": r}, {"DOA0": ram_out})
    n.cell("MULT18X18D", {"A0": ram_out}, {"P0": prod})
    n.ff(prod, r)
    paths = {p.end: p for p in longest_paths(n.json(), "top")}
    assert paths["o"].delay_ns == pytest.approx(FF + 1.0 + 0.1 + 0.4)
    assert paths["o"].cells == {"CCU2C": 3}
    assert paths["r"].delay_ns == pytest.approx(CLOCK_TO_OUT_NS["DP16KD"] + MULT)
    assert paths["r"].start == "ram_out"


def test_a_register_of_many_bits_is_one_path_its_deepest_bit():
    n = Netlist()
    src, t, reg = n.net("src"), n.net("t"), n.net("reg", 2)
    n.ff(reg[:1], src)
    n.lut([src[0]], t)
    n.ff(t, reg[:1])               # reg[0] one LUT deep
    n.ff(src, reg[1:])             # reg[1] a wire
    paths = [p for p in longest_paths(n.json(), "top") if p.end.startswith("reg")]
    assert len(paths) == 1 and paths[0].delay_ns == FF + LUT


def test_generated_names_are_traced_back_to_the_design_signal():
    n = Netlist()
    a, t, b = n.net("core.count"), n.net("core.count_LUT4_Z_B_CCU2C_S0"), n.net("core.done")
    n.ff(b, a)
    n.lut([a[0]], t)
    n.ff(t, b)
    [path] = [p for p in longest_paths(n.json(), "top") if p.end == "core.done"]
    assert path.through == ("core.count",)
    assert format_paths([path]).startswith("   1.5 ns  core.count -> core.done  (1 LUT4)")


def test_a_combinational_loop_is_refused():
    n = Netlist()
    x, y, q = n.net("x"), n.net("y"), n.net("q")
    n.lut([y[0]], x)
    n.lut([x[0]], y)
    n.ff(x, q)
    with pytest.raises(ValueError, match="combinational loop through"):
        longest_paths(n.json(), "top")


def test_a_shared_input_is_not_a_loop():
    n = Netlist()
    a, b, x, y, q = n.net("a"), n.net("b"), n.net("x"), n.net("y"), n.net("q")
    n.ff(q, a)
    n.lut([a[0]], b)
    n.lut([b[0], a[0]], x)         # b reached twice: from x and from y
    n.lut([x[0], b[0]], y)
    n.ff(y, q)
    [path] = [p for p in longest_paths(n.json(), "top") if p.end == "q"]
    assert path.delay_ns == FF + 3 * LUT


def test_paths_deeper_than_the_recursion_limit():
    n = Netlist()
    first = previous = n.net("first")
    for i in range(5000):
        current = n.net(f"t{i}")
        n.lut([previous[0]], current)
        previous = current
    last = n.net("last")
    n.ff(previous, last)
    n.ff(last, first)
    assert longest_paths(n.json(), "top", 1)[0].delay_ns == pytest.approx(FF + 5000 * LUT)


def test_an_unknown_module_is_named():
    with pytest.raises(ValueError, match="'core' is not in the netlist"):
        longest_paths({"modules": {}}, "core")


def test_the_delay_model_line_names_every_cell_delay():
    text = delay_model()
    assert all(f"{kind} {ns:g} ns" in text for kind, ns in CELL_DELAY_NS.items())
    assert "0.1 ns a bit along a carry chain" in text
