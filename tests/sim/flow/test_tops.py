# amaranth: UnusedElaboratable=no
"""The Verilog tops: their cache keys and files, and the port table generated from their
signatures, checked against the ports of the Verilog itself."""

import enum
import re

import pytest
from amaranth.lib import data

from caterpillar.contract.config import ConfigError, preset
from caterpillar.sim.flow import tops
from caterpillar.sim.flow.tops import (
    CLOCK_PORTS,
    board_top,
    core_top,
    documented_tops,
    mac_array_top,
    mac_top,
    port_rows,
    ports_markdown,
    ring_top,
)

_DECLARATION = re.compile(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?(\w+);", re.MULTILINE)


def verilog_ports(path, module: str) -> dict[str, tuple[str, int]]:
    """The ports of ``module`` in a Verilog file: name to (direction, width)."""
    text = path.read_text()
    start = text.index(f"module {module}(")
    header = text[start:text.index(");", start)]
    names = [name.strip() for name in header[header.index("(") + 1:].split(",")]
    body = text[start:text.index("endmodule", start)]
    declared = {name: (direction, int(msb) + 1 if msb else 1)
                for direction, msb, name in _DECLARATION.findall(body)}
    return {name: declared[name] for name in names}


def rows_as_ports(component) -> dict[str, tuple[str, int]]:
    return {row["port"]: (row["direction"], row["bits"]) for row in port_rows(component)}


@pytest.mark.parametrize("make_top", [mac_top, mac_array_top])
def test_the_port_table_of_the_mac_tops_is_their_verilog(make_top, tmp_path, monkeypatch):
    monkeypatch.setenv("CATERPILLAR_BUILD_DIR", str(tmp_path))
    top = make_top(preset("tiny"))
    path = top.verilog()
    assert path.name.startswith(top.name) and path.is_relative_to(tmp_path)
    assert rows_as_ports(top.make()) == verilog_ports(path, top.name)


@pytest.mark.integration
@pytest.mark.parametrize("make_top", [core_top, lambda cfg: ring_top(cfg.replace(cores=2)),
                                      board_top], ids=["core", "ring", "board"])
def test_the_port_table_of_the_core_ring_and_board_is_their_verilog(make_top):
    top = make_top(preset("tiny"))
    assert rows_as_ports(top.make()) == verilog_ports(top.verilog(), top.name)


@pytest.mark.integration
def test_the_ring_verilog_holds_one_core_module_instantiated_per_core():
    cfg = preset("tiny").replace(cores=3)
    core = core_top(cfg.replace(cores=1)).verilog()
    text = ring_top(cfg).verilog().read_text()
    assert text.startswith(core.read_text())
    assert len(re.findall(r"^module core\(", text, re.MULTILINE)) == 1
    assert len(re.findall(r"^\s+core core \(", text, re.MULTILINE)) == 3
    assert "module \\ring.core_0.array" not in text and "module \\core.array " in text


def test_rows_name_member_interface_and_shape():
    rows = {row["port"]: row for row in port_rows(core_top(preset("tiny")).make())}
    assert list(rows)[:2] == list(CLOCK_PORTS) == ["clk", "rst"]
    addr = rows["bus__addr"]
    assert (addr["direction"], addr["bits"], addr["member"]) == ("input", 26, "bus.addr")
    assert type(addr["interface"]).__name__ == "HostBus" and addr["shape"] == "unsigned(26)"
    assert rows["bus__rdata"]["direction"] == "output"
    payload = rows["ring__tx__payload"]
    assert payload["bits"] == 64 and payload["shape"] == "2 x unsigned(32)"
    assert type(payload["interface"]).__module__ == "amaranth.lib.stream"
    assert rows["ring__rx__valid"]["direction"] == "input"         # a flipped member
    assert rows["status"]["shape"].startswith("struct: busy [0], done [1], error [2]")
    assert rows["status"]["interface"] is None


def test_describe_shape():
    class Colour(enum.Enum):
        RED = 0

    assert tops._describe_shape(data.StructLayout({"a": 4, "b": 1})) == "struct: a [3:0], b [4]"
    assert tops._describe_shape(data.ArrayLayout(8, 3)) == "3 x unsigned(8)"
    assert tops._describe_shape(Colour) == "enum Colour"
    assert tops._describe_shape(range(-4, 4)) == "signed(3)"


def test_a_ring_the_top_cannot_take_is_refused_when_named():
    with pytest.raises(ConfigError, match="at most 62 cores, not 63"):
        ring_top(preset("tiny").replace(cores=63))


def test_the_documented_tops_and_their_table():
    cfg = preset("small")
    documented = documented_tops(cfg)
    assert [top.name for top, _ in documented] == ["core", "ring", "board", "mac_fp32_fp32",
                                                   "mac_array16_fp32_fp32"]
    assert [command for _, command in documented] == [
        "caterpillar verilog --config small", "caterpillar verilog --config small --cores 4",
        "caterpillar verilog --config small --board ulx3s",
        "caterpillar verilog --config small --mac", "caterpillar verilog --config small --mac"]
    text = ports_markdown(cfg)
    assert text.startswith("# Verilog tops and their ports\n")
    for top, command in documented:
        assert f"## `{top.name}` ({top.label})" in text
        for row in port_rows(top.make()):
            assert f"| `{row['port']}` | {row['direction']} | {row['bits']} |" in text
    assert "* `HostBus`: A single-cycle host bus" in text
    assert "* `stream.Signature`: a data stream" in text
    assert ":class:" not in text and "``" not in text               # reST made Markdown
