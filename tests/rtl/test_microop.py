"""The micro-op layouts: every field wide enough for what the config lets it address, and the
enumerations within their shapes."""

import pytest
from amaranth.hdl import Shape

from caterpillar.contract.config import preset
from caterpillar.rtl.microop import (
    NO_LIMIT,
    ASrc,
    BSrc,
    BusSrc,
    Chain,
    CSrc,
    Drive,
    Dst,
    FuOp,
    KDim,
    Select,
    XferKind,
    compute_layout,
    transfer_layout,
)


@pytest.mark.parametrize("name", ["tiny", "small", "paper-n3"])
def test_fields_cover_the_configs_memories(name):
    cfg = preset(name)
    compute, transfer = compute_layout(cfg), transfer_layout(cfg)
    widths = {n: Shape.cast(f.shape) for n, f in compute}
    assert widths["mema"].width >= (cfg.mema_words - 1).bit_length()
    for port in ("memb_rd", "memb_rd2", "memb_wr"):
        assert widths[port].width >= (cfg.memb_words - 1).bit_length()
    for slot in ("acc_op", "acc_rd", "acc_wr"):
        assert 1 << widths[slot].width >= cfg.acc_slots
    assert widths["scalar"].width == cfg.word_width
    assert widths["sel_row"].width >= (cfg.nr - 1).bit_length()
    xfer = {n: Shape.cast(f.shape) for n, f in transfer}
    assert 1 << xfer["spad_row"].width >= cfg.spad_rows
    assert xfer["lanes"].width == cfg.nr
    assert 1 << xfer["addr"].width >= max(cfg.mema_words, cfg.memb_words)
    assert NO_LIMIT == (1 << widths["row_lim"].width) - 1


@pytest.mark.parametrize("kind", [FuOp, ASrc, BSrc, CSrc, Dst, BusSrc, Select, Drive, Chain,
                                  KDim, XferKind], ids=lambda k: k.__name__)
def test_enumerations_fit_their_shapes(kind):
    width = kind.as_shape().width
    assert all(0 <= member.value < 1 << width for member in kind)
    assert len({member.value for member in kind}) == len(kind)
