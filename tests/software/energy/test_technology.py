"""Technology files and machine areas: the paper's Table 1 rebuilds its two machines' totals,
and every bad file is refused with one line naming the key."""

import pytest
import yaml

from caterpillar.contract.config import preset
from caterpillar.software.energy.technology import (
    DEFAULT_TECHNOLOGY,
    TechnologyError,
    load_technology,
    machine_area,
)

#: The paper's totals (abstract, section 4.1) and the densities they imply at 1 GHz.
PAPER_AREA = {"paper-n1": 103.2, "paper-n3": 178.9}
PAPER_PEAK_DENSITY = {"paper-n1": 9.92, "paper-n3": 22.9}


@pytest.mark.parametrize("name", list(PAPER_AREA))
def test_the_paper_presets_rebuild_the_papers_areas(name):
    tech = load_technology()
    area = machine_area(preset(name), tech)
    assert area["local_sram_bytes"] == tech.local_sram.bytes      # 16 KB per PE, exactly
    assert area["spad_bytes"] == tech.spad_sram.bytes               # 512 KB per core
    assert area["total_mm2"] == pytest.approx(PAPER_AREA[name], rel=1e-3)
    assert area["peak_gflops_per_mm2"] == pytest.approx(PAPER_PEAK_DENSITY[name], rel=2e-3)
    blocks = ("fpu_mm2", "local_sram_mm2", "pe_overhead_mm2", "spad_mm2")
    assert sum(area[k] for k in blocks) == pytest.approx(area["total_mm2"])


def test_the_pe_overhead_is_what_the_papers_two_totals_leave():
    tech = load_technology()
    pe = tech.fpu_area_mm2 + tech.local_sram.area_mm2
    for (pes, cores), total in [((512, 32), 103.2), ((2048, 8), 178.9)]:
        implied = (total - cores * tech.spad_sram.area_mm2) / pes - pe
        assert implied == pytest.approx(tech.pe_overhead_mm2, abs=1e-4)


def test_sram_areas_scale_with_the_configs_capacity():
    tech = load_technology()
    small = preset("small")              # fp32: (2048 + 512) x 4 bytes per PE, 256 KB SPAD
    area = machine_area(small, tech)
    assert area["local_sram_bytes"] == 10240 and area["spad_bytes"] == 262144
    assert area["local_sram_mm2"] == pytest.approx(16 * 0.0617 * 10240 / 16384)
    assert area["spad_mm2"] == pytest.approx(1.948 * small.spad_words * 4 / 524288)


def _write(tmp_path, data):
    path = tmp_path / "tech.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def _default():
    return yaml.safe_load(DEFAULT_TECHNOLOGY.read_text())


def test_a_users_technology_replaces_the_papers(tmp_path):
    data = _default()
    data["name"], data["local_sram"]["area_mm2"] = "mine", 2 * data["local_sram"]["area_mm2"]
    area = machine_area(preset("paper-n1"), load_technology(_write(tmp_path, data)))
    paper = machine_area(preset("paper-n1"), load_technology())
    assert area["technology"] == "mine"
    assert area["local_sram_mm2"] == pytest.approx(2 * paper["local_sram_mm2"])


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.pop("clock_ghz"), "key 'clock_ghz' is missing"),
    (lambda d: d["fpu"].pop("area_mm2"), "key 'fpu.area_mm2' is missing"),
    (lambda d: d.update(clock_ghz=0), "key 'clock_ghz' must be a positive number, not 0"),
    (lambda d: d["spad_sram"].update(energy_pj_per_access=-1),
     "key 'spad_sram.energy_pj_per_access' must be a number >= 0, not -1"),
    (lambda d: d.update(local_sram="big"), "key 'local_sram' must be a mapping"),
    (lambda d: d.update(name=""), "key 'name' must be a non-empty string"),
    (lambda d: d.update(link_pj_per_word_hop=True), "must be a number >= 0, not True"),
])
def test_a_bad_technology_file_is_refused_with_one_line(tmp_path, edit, message):
    data = _default()
    edit(data)
    with pytest.raises(TechnologyError, match=message) as info:
        load_technology(_write(tmp_path, data))
    assert "\n" not in str(info.value) and "tech.yaml" in str(info.value)


@pytest.mark.parametrize("text, message", [
    ("- 1\n- 2\n", "must be a mapping of keys"),
    ("fpu: [\n", "is not YAML"),
])
def test_a_file_that_is_not_a_technology_is_refused(tmp_path, text, message):
    with pytest.raises(TechnologyError, match=message):
        load_technology(_write(tmp_path, text))
    with pytest.raises(TechnologyError, match="cannot read technology file"):
        load_technology(tmp_path / "missing.yaml")
