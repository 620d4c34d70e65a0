"""The configuration object: presets, validation messages, derived widths, JSON round trip."""

import dataclasses

import pytest

from caterpillar.contract.config import PRESETS, CaterpillarConfig, ConfigError, preset
from caterpillar.golden.numerics import BF16, FP16, FP32


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_are_valid_and_round_trip_through_json(name):
    cfg = preset(name)
    assert cfg.name == name
    assert CaterpillarConfig.from_json(cfg.to_json()) == cfg


def test_preset_shapes():
    assert (preset("tiny").nr, preset("small").nr) == (2, 4)
    n1, n3 = preset("paper-n1"), preset("paper-n3")
    assert (n1.nr, n1.cores, n1.total_pes) == (4, 32, 512)
    assert (n3.nr, n3.cores, n3.total_pes) == (16, 8, 2048)
    # 16 KB per PE in fp16 words, split 12 KB MemA / 4 KB MemB; 512 KB SPAD.
    assert (n1.mema_words + n1.memb_words) * n1.word_width // 8 == 16 * 1024
    assert n1.spad_words * n1.word_width // 8 == 512 * 1024
    assert (n1.operand, n1.acc) == (FP16, FP16)


def test_derived_widths():
    cfg = CaterpillarConfig(nr=8, mema_words=1000, memb_words=512, spad_words=4096,
                            imem_words=256, operand_format="bf16")
    assert cfg.mema_addr_width == 10 and cfg.memb_addr_width == 9
    assert cfg.spad_addr_width == 12 and cfg.imem_addr_width == 8
    assert (cfg.operand, cfg.acc, cfg.word_width, cfg.acc_width) == (BF16, FP32, 16, 32)
    assert cfg.mac_latency == cfg.mul_latency + cfg.add_latency
    assert cfg.ring_link_words == 8 and cfg.replace(link_words=2).ring_link_words == 2
    assert cfg.pes_per_core == 64


@pytest.mark.parametrize("field,value,message", [
    ("nr", 3, r"^nr must be one of 2, 4, 8, 16, not 3$"),
    ("cores", 0, r"^cores must be in 1\.\.64, not 0$"),
    ("cores", 2.5, r"^cores must be an integer in 1\.\.64, not 2\.5$"),
    ("cores", True, r"^cores must be an integer in 1\.\.64, not True$"),
    ("operand_format", "fp8", r"^operand_format must be one of fp32, bf16, fp16, not 'fp8'$"),
    ("acc_format", "bf16", r"^acc_format must be one of fp32, fp16, not 'bf16'$"),
    ("mul_latency", 0, r"^mul_latency must be in 1\.\.8, not 0$"),
    ("add_latency", 9, r"^add_latency must be in 1\.\.8, not 9$"),
    ("mema_words", 8, r"^mema_words must be in 16\.\.65536, not 8$"),
    ("memb_words", 1 << 17, r"^memb_words must be in 16\.\.65536, not 131072$"),
    ("regfile_words", 1, r"^regfile_words must be in 2\.\.16, not 1$"),
    ("spad_words", 4098, r"^spad_words must be a multiple of nr=4 \(the SPAD port is nr words "
                         r"wide\), not 4098$"),
    ("imem_words", 4, r"^imem_words must be in 16\.\.65536, not 4$"),
    ("link_words", 5, r"^link_words must be in 1\.\.4 \(at most nr\), not 5$"),
    ("name", "", r"^name must be a non-empty string, not ''$"),
    ("cpass", 1, r"^cpass must be true or false, not 1$"),
])
def test_validation_names_field_value_and_range(field, value, message):
    with pytest.raises(ConfigError, match=message):
        CaterpillarConfig(**{field: value})


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        preset("small").nr = 8


def test_json_errors_are_clear():
    with pytest.raises(ConfigError,
                       match=r"^unknown config field\(s\) 'bogus'; the fields are name, nr"):
        CaterpillarConfig.from_json('{"bogus": 1}')
    with pytest.raises(ConfigError, match=r"^config is not valid JSON"):
        CaterpillarConfig.from_json("{nr: 4")
    with pytest.raises(ConfigError, match=r"^a config must be a JSON object, not list$"):
        CaterpillarConfig.from_json("[4]")
    with pytest.raises(ConfigError, match=r"^unknown config preset 'huge'; choose one of tiny, "
                                          r"small, ulx3s, paper-n1, paper-n3$"):
        preset("huge")
