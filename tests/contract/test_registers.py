"""The register map: every field defined once, the same bit order for a core and the ring, and
the plain-data form a driver reads."""

import pytest

from caterpillar.contract.config import preset
from caterpillar.contract.isa import Counter, ErrorCause
from caterpillar.contract.registers import (
    CONFIG,
    CTRL,
    ERROR_CAUSE,
    FORMAT_CODES,
    RING_STATUS,
    STATUS,
    RegisterMap,
    RegisterView,
    RingRegisterMap,
    core_address,
    registers_markdown,
)

CFG = preset("small")


def every_csr():
    return [*RegisterMap(CFG).csrs, *RingRegisterMap(CFG.replace(cores=4)).csrs]


@pytest.mark.parametrize("csr", [c for c in every_csr() if c.fields], ids=lambda c: c.name)
def test_fields_fit_32_bits_and_do_not_overlap(csr):
    mask = 0
    for f in csr.fields:
        assert f.mask >> 32 == 0 and mask & f.mask == 0, f.name
        mask |= f.mask
        assert 0 <= f.reset < 1 << f.width


def test_addresses_are_unique_in_each_map():
    for regmap in (RegisterMap(CFG), RingRegisterMap(CFG.replace(cores=8))):
        addrs = [c.addr for c in regmap.csrs]
        assert len(addrs) == len(set(addrs))


def test_core_and_ring_share_the_command_and_status_bits():
    ring = RingRegisterMap(CFG.replace(cores=4))
    assert ring.by_name["CTRL"].fields == CTRL.fields
    assert [(f.name, f.lsb, f.width) for f in RING_STATUS.fields] == \
        [(f.name, f.lsb, f.width) for f in STATUS.fields] == \
        [("busy", 0, 1), ("done", 1, 1), ("error", 2, 1)]
    assert ring["CTRL"] == CTRL.addr and ring["STATUS"] == STATUS.addr


def test_pack_and_unpack():
    assert CTRL.pack(start=1, clear_counters=1) == 0b101
    assert STATUS.unpack(0b110) == {"busy": 0, "done": 1, "error": 1}
    assert ERROR_CAUSE.pack(cause=ErrorCause.HOST_ACCESS.value) == ErrorCause.HOST_ACCESS.value
    with pytest.raises(ValueError, match="STATUS.done is 1 bits wide"):
        STATUS.pack(done=2)
    with pytest.raises(KeyError, match="CTRL has no field 'go'"):
        CTRL.pack(go=1)


def test_config_word_describes_the_build():
    word = RegisterMap(CFG).config_word
    assert CONFIG.unpack(word) == {
        "nr": CFG.nr, "operand_format": FORMAT_CODES[CFG.operand_format],
        "acc_format": FORMAT_CODES[CFG.acc_format], "mul_latency": CFG.mul_latency,
        "add_latency": CFG.add_latency}
    constants = RegisterMap(CFG).constants()
    assert constants["CONFIG"] == word and constants["SPAD_WORDS"] == CFG.spad_words


def test_a_driver_reads_the_same_fields_from_plain_data():
    view = RegisterView(RegisterMap(CFG).to_dict())
    assert view["STATUS"] == STATUS.addr
    assert view.pack("CTRL", clear=1) == CTRL.pack(clear=1)
    assert view.unpack("CONFIG", RegisterMap(CFG).config_word)["nr"] == CFG.nr
    ring = RingRegisterMap(CFG.replace(cores=2))
    ring_view = RegisterView(ring.to_dict(), base=ring.base)
    assert ring_view["SRC1"] == ring.address("SRC1") == core_address(63, 0x41)
    assert RingRegisterMap(CFG.replace(cores=3)).by_name["SRC0"].reset == 2


def test_counters_have_two_halves_each():
    regs = RegisterMap(CFG)
    for counter in Counter:
        assert regs[f"{counter.name}_HI"] == regs[f"{counter.name}_LO"] + 1


def test_markdown_documents_every_field():
    text = registers_markdown(CFG)
    for csr in every_csr():
        assert f"`{csr.name}`" in text
        for f in csr.fields:
            assert f"| `{f.name}` |" in text
