"""The energy of counted events (:mod:`caterpillar.software.energy.energy`): the arithmetic of
both readings of the FPU's energy per operation, word widths, the report of a step."""

import pytest

from caterpillar.contract.config import preset
from caterpillar.software.energy.energy import COMPONENTS, events_energy, step_energy
from caterpillar.software.energy.technology import load_technology

TECH = load_technology()
FP16 = preset("paper-n1")
FP32 = preset("small")


def events(**values):
    base = dict.fromkeys(["macs", "ops", "mema_reads", "mema_writes", "memb_reads",
                          "memb_writes", "spad_reads", "spad_writes", "link_words",
                          "ring_adds"], 0)
    return {**base, **values}


def test_each_event_costs_its_blocks_energy_in_the_papers_technology():
    core = events(macs=100, ops=130, ring_adds=4, mema_reads=10, mema_writes=5, memb_reads=7,
                  memb_writes=3, spad_reads=16, spad_writes=8, link_words=12)
    fma = events_energy([core], FP16, TECH, "fma")
    assert fma["fpu"] == pytest.approx((130 + 4) * 2.63)
    assert fma["local_sram"] == pytest.approx(25 * 3.5)        # fp16: one 2-byte access
    assert fma["spad"] == pytest.approx(24 * 16.0)
    assert fma["links"] == 0.0                                  # the paper counts none
    assert fma["total"] == pytest.approx(sum(fma[c] for c in COMPONENTS))
    flop = events_energy([core], FP16, TECH, "flop")
    assert flop["fpu"] == pytest.approx((130 + 4 + 100) * 2.63)  # a MAC is two FLOPs
    assert {c: flop[c] for c in COMPONENTS if c != "fpu"} == \
        {c: fma[c] for c in COMPONENTS if c != "fpu"}


def test_cores_add_up_and_fp32_words_take_two_accesses():
    a, b = events(mema_reads=3, spad_writes=2), events(memb_writes=5, spad_reads=4)
    one = events_energy([events(mema_reads=3, memb_writes=5, spad_reads=4, spad_writes=2)],
                        FP16, TECH)
    assert events_energy([a, b], FP16, TECH) == one
    wide = events_energy([a, b], FP32, TECH)
    assert wide["local_sram"] == pytest.approx(2 * one["local_sram"])
    assert wide["spad"] == pytest.approx(2 * one["spad"])


def test_links_cost_what_the_technology_says():
    from dataclasses import replace

    tech = replace(TECH, link_pj_per_word_hop=1.5)
    assert events_energy([events(link_words=40)], FP16, tech)["links"] == pytest.approx(60.0)


def test_host_words_cost_what_the_technology_says():
    from dataclasses import replace

    # The paper prices no host traffic; a user's technology may, and older event dicts
    # without host words cost nothing for it.
    assert events_energy([events(host_words=50)], FP16, TECH)["host"] == 0.0
    tech = replace(TECH, host_pj_per_word=20.0)
    energy = events_energy([events(host_words=50), events()], FP16, tech)
    assert energy["host"] == pytest.approx(1000.0) and energy["total"] == pytest.approx(1000.0)


def test_a_step_reports_gflops_per_watt_and_power_in_both_readings():
    core = events(macs=1000, ops=1000, mema_reads=1000, memb_reads=1000)
    report = step_energy([core], 1000, 250, FP16, TECH)
    joules = (1000 * 2.63 + 2000 * 3.5) * 1e-12
    assert report["fma"]["gflops_per_w"] == pytest.approx(2000 / joules / 1e9)
    # 250 cycles at 1 GHz: 250 ns.
    assert report["fma"]["power_mw"] == pytest.approx(joules / 250e-9 * 1e3)
    assert report["flop"]["gflops_per_w"] < report["fma"]["gflops_per_w"]


def test_an_unknown_reading_is_refused():
    with pytest.raises(ValueError, match="reading must be one of fma, flop"):
        events_energy([events()], FP16, TECH, "per-byte")
