"""Generated documentation is up to date with the definitions it is generated from."""

from pathlib import Path

from caterpillar.contract.config import preset
from caterpillar.contract.isa import isa_markdown
from caterpillar.contract.registers import registers_markdown
from caterpillar.rtl.board import host_link_document
from caterpillar.sim.flow.tops import ports_markdown

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_isa_table_is_generated_from_rtl_isa():
    assert (DOCS / "isa.md").read_text() == isa_markdown(), "run: caterpillar docs"


def test_register_table_is_generated_from_the_register_map():
    assert (DOCS / "registers.md").read_text() == registers_markdown(preset("small")), \
        "run: caterpillar docs"


def test_port_table_is_generated_from_the_tops_signatures():
    assert (DOCS / "verilog.md").read_text() == ports_markdown(preset("small")), \
        "run: caterpillar docs"


def test_host_link_document_is_generated_from_the_protocol_and_the_board():
    assert (DOCS / "host-link.md").read_text() == host_link_document(), "run: caterpillar docs"
