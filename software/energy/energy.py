"""Energy of counted hardware events in a technology (``docs/energy.md``).

Energy = events x energy per event. The events are the cores' event counters
(:data:`~caterpillar.contract.isa.EVENT_COUNTERS`): read from the hardware after a run, or
predicted exactly for a compiled step by the ring timing model
(:meth:`~caterpillar.software.compiler.program.Compiled.predicted_events`). The energies come
from a :class:`~caterpillar.software.energy.technology.Technology`.

The paper's "pJ per op" for the FPU has two readings, both reported: per FMA (every operation
the FPU executes costs ``energy_pj_per_op``: the ``OPS`` counter, plus the ring engine's
additions) and per FLOP (a MAC with a real product is two FLOPs, so it costs twice). A memory
access moves ``word bytes / access_bytes`` of the macro's accesses (an fp32 word is two 16-bit
accesses); the per-access energy is the macro's, not rescaled for other capacities. Link words
cost ``link_pj_per_word_hop`` each (one hop per word sent), the words the host moves
(``host_words``: the ``HOST_WORDS`` counter, or the plan's
:meth:`~caterpillar.software.compiler.program.Compiled.host_words`) ``host_pj_per_word``.
Leakage is not modelled (the paper reports dynamic energy at 1 GHz).
"""

from __future__ import annotations

__all__ = ["READINGS", "COMPONENTS", "events_energy", "step_energy"]

#: The two readings of the FPU's energy per operation.
READINGS = ("fma", "flop")
#: What the energy is split into.
COMPONENTS = ("fpu", "local_sram", "spad", "links", "host")


def _total(events_per_core, name) -> int:
    return sum(int(e.get(name, 0)) for e in events_per_core)


def events_energy(events_per_core, cfg, tech, reading: str = "fma") -> dict:
    """Energy in pJ of the events of every core (``[{counter name: events}, ...]``, the
    names of :data:`~caterpillar.contract.isa.EVENT_COUNTERS` lower case; ``macs`` is needed
    for the ``flop`` reading; ``host_words``, when given, the host's words) by component
    (:data:`COMPONENTS`), and ``total``."""
    if reading not in READINGS:
        raise ValueError(f"reading must be one of {', '.join(READINGS)}, not {reading!r}")
    events = {name: _total(events_per_core, name)
              for name in ("macs", "ops", "mema_reads", "mema_writes", "memb_reads",
                           "memb_writes", "spad_reads", "spad_writes", "link_words",
                           "ring_adds", "host_words")}
    word_bytes = cfg.word_width // 8
    fpu_ops = events["ops"] + events["ring_adds"]
    if reading == "flop":
        fpu_ops += events["macs"]
    local = sum(events[k] for k in ("mema_reads", "mema_writes", "memb_reads", "memb_writes"))
    spad = events["spad_reads"] + events["spad_writes"]
    local_sram, spad_sram = tech.local_sram, tech.spad_sram
    energy = {
        "fpu": fpu_ops * tech.fpu_energy_pj_per_op,
        "local_sram": local * local_sram.energy_pj_per_access * word_bytes
        / local_sram.access_bytes,
        "spad": spad * spad_sram.energy_pj_per_access * word_bytes / spad_sram.access_bytes,
        "links": events["link_words"] * tech.link_pj_per_word_hop,
        "host": events["host_words"] * tech.host_pj_per_word,
    }
    energy["total"] = sum(energy.values())
    return energy


def step_energy(events_per_core, macs: int, cycles: int, cfg, tech) -> dict:
    """A step's energy report: for each reading (:data:`READINGS`), the energy in pJ by
    component and ``total``, ``gflops_per_w`` (two FLOPs per model MAC, ``macs``) and the
    average power ``power_mw`` over the step's ``cycles`` at the technology's clock."""
    seconds = cycles / (tech.clock_ghz * 1e9)
    report = {}
    for reading in READINGS:
        energy = events_energy(events_per_core, cfg, tech, reading)
        joules = energy["total"] * 1e-12
        report[reading] = {
            "energy_pj": energy,
            "gflops_per_w": 2 * macs / joules / 1e9 if joules else 0.0,
            "power_mw": joules / seconds * 1e3 if seconds else 0.0,
        }
    return report
