"""Technology files and the area of a machine built from them (``docs/energy.md``).

A technology file (YAML) gives the energy and area of the blocks a CATERPILLAR machine is made
of: the FPU, a PE's local SRAM (MemA and MemB), a core's SPAD, the per-PE overhead the
paper's totals imply, and the link and host energies per word. The default,
``paper-45nm.yaml`` beside this module, is the paper's Table 1. :func:`machine_area` prices a
:class:`~caterpillar.contract.config.CaterpillarConfig`: one FPU and one local SRAM per PE, one
SPAD per core, SRAM areas scaled linearly from the file's macro to the config's capacity.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

__all__ = ["DEFAULT_TECHNOLOGY", "Technology", "Sram", "TechnologyError", "load_technology",
           "machine_area"]

#: The paper's Table 1 (45 nm, 1 GHz).
DEFAULT_TECHNOLOGY = Path(__file__).with_name("paper-45nm.yaml")


class TechnologyError(ValueError):
    """A technology file that cannot be read: one line saying what and where."""


@dataclass(frozen=True)
class Sram:
    """An SRAM macro: its capacity, access width, energy per access and area."""

    bytes: int
    access_bytes: int
    energy_pj_per_access: float
    area_mm2: float


@dataclass(frozen=True)
class Technology:
    """The energy and area of a machine's blocks (the fields of a technology file)."""

    name: str
    source: str
    clock_ghz: float
    fpu_format: str
    fpu_energy_pj_per_op: float
    fpu_area_mm2: float
    local_sram: Sram
    spad_sram: Sram
    pe_overhead_mm2: float
    link_pj_per_word_hop: float
    host_pj_per_word: float


def load_technology(path=None) -> Technology:
    """Read a technology file (default :data:`DEFAULT_TECHNOLOGY`); raise
    :class:`TechnologyError` naming the file and the key at the first problem."""
    path = Path(path) if path is not None else DEFAULT_TECHNOLOGY
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise TechnologyError(f"cannot read technology file {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise TechnologyError(f"technology file {path} is not YAML: "
                              f"{' '.join(str(e).split())}") from None
    reader = _Reader(path, data)
    fpu = reader.section("fpu")
    return Technology(
        name=reader.text(data, "name"), source=reader.text(data, "source"),
        clock_ghz=reader.number(data, "clock_ghz", positive=True),
        fpu_format=reader.text(fpu, "format", "fpu."),
        fpu_energy_pj_per_op=reader.number(fpu, "energy_pj_per_op", "fpu."),
        fpu_area_mm2=reader.number(fpu, "area_mm2", "fpu."),
        local_sram=reader.sram("local_sram"), spad_sram=reader.sram("spad_sram"),
        pe_overhead_mm2=reader.number(data, "pe_overhead_mm2"),
        link_pj_per_word_hop=reader.number(data, "link_pj_per_word_hop"),
        host_pj_per_word=reader.number(data, "host_pj_per_word"))


class _Reader:
    """Typed access to a technology file's keys, each failure one line."""

    def __init__(self, path, data):
        self.path, self.data = path, data
        if not isinstance(data, dict):
            self.fail("", "must be a mapping of keys (see paper-45nm.yaml)")

    def fail(self, key, what):
        where = f" key {key!r}" if key else ""
        raise TechnologyError(f"technology file {self.path}{where} {what}")

    def get(self, mapping, key, prefix):
        if key not in mapping:
            self.fail(prefix + key, "is missing (every key of paper-45nm.yaml is required)")
        return mapping[key]

    def section(self, key):
        value = self.get(self.data, key, "")
        if not isinstance(value, dict):
            self.fail(key, f"must be a mapping, not {value!r}")
        return value

    def text(self, mapping, key, prefix=""):
        value = self.get(mapping, key, prefix)
        if not isinstance(value, str) or not value:
            self.fail(prefix + key, f"must be a non-empty string, not {value!r}")
        return value

    def number(self, mapping, key, prefix="", positive=False):
        value = self.get(mapping, key, prefix)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 \
                or (positive and value == 0):
            need = "a positive number" if positive else "a number >= 0"
            self.fail(prefix + key, f"must be {need}, not {value!r}")
        return float(value)

    def sram(self, key):
        section, prefix = self.section(key), key + "."
        return Sram(bytes=int(self.number(section, "bytes", prefix, positive=True)),
                    access_bytes=int(self.number(section, "access_bytes", prefix,
                                                 positive=True)),
                    energy_pj_per_access=self.number(section, "energy_pj_per_access", prefix),
                    area_mm2=self.number(section, "area_mm2", prefix))


def machine_area(cfg, tech: Technology) -> dict:
    """The area of the machine ``cfg`` describes (all ``cfg.cores`` cores) in ``tech``, by
    block, and its peak throughput (two FLOP per FMA, one FMA per PE per cycle).

    Keys: ``pes``, ``cores``, ``fpu_mm2``, ``local_sram_mm2``, ``pe_overhead_mm2``,
    ``spad_mm2`` (totals of their blocks), ``total_mm2``, ``local_sram_bytes`` and
    ``spad_bytes`` (per PE and per core), ``peak_gflops`` and ``peak_gflops_per_mm2``.
    """
    word_bytes = cfg.word_width // 8
    pes = cfg.cores * cfg.nr * cfg.nr
    local_bytes = (cfg.mema_words + cfg.memb_words) * word_bytes
    spad_bytes = cfg.spad_words * word_bytes
    blocks = {
        "fpu_mm2": pes * tech.fpu_area_mm2,
        "local_sram_mm2": pes * tech.local_sram.area_mm2 * local_bytes / tech.local_sram.bytes,
        "pe_overhead_mm2": pes * tech.pe_overhead_mm2,
        "spad_mm2": cfg.cores * tech.spad_sram.area_mm2 * spad_bytes / tech.spad_sram.bytes,
    }
    total = sum(blocks.values())
    peak = 2 * pes * tech.clock_ghz
    return {"technology": tech.name, "pes": pes, "cores": cfg.cores, **blocks,
            "total_mm2": total, "local_sram_bytes": local_bytes, "spad_bytes": spad_bytes,
            "peak_gflops": peak, "peak_gflops_per_mm2": peak / total}
