"""The one configuration object of the accelerator, its validation and its named presets.

RTL, compiler, simulators, golden model and tests all read the same :class:`CaterpillarConfig`.
This module is pure Python (no Amaranth), so software imports it cheaply.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from caterpillar.golden.numerics import FORMATS, FloatFormat

__all__ = ["CaterpillarConfig", "ConfigError", "PRESETS", "preset", "preset_names"]


class ConfigError(ValueError):
    """A configuration value is outside its allowed range."""


def _check_int(name, value, lo, hi, *, extra=""):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer in {lo}..{hi}, not {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be in {lo}..{hi}{extra}, not {value!r}")


def _check_fields(names) -> None:
    known = [f.name for f in dataclasses.fields(CaterpillarConfig)]
    unknown = sorted(str(n) for n in names if n not in known)
    if unknown:
        raise ConfigError(f"unknown config field(s) {', '.join(map(repr, unknown))}; the "
                          f"fields are {', '.join(known)}")


def _addr_width(words: int) -> int:
    return max(1, (words - 1).bit_length())


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


@dataclass(frozen=True)
class CaterpillarConfig:
    """Architecture parameters of one CATERPILLAR instance.

    Memory sizes are in words of the operand format. Every field is checked on construction;
    an out-of-range value raises :class:`ConfigError` naming the field, the value and the allowed
    range.

    Parameters
    ----------
    name : str
        Label used in reports and build-directory names.
    nr : int
        PE array side: a core has ``nr x nr`` PEs. One of 2, 4, 8, 16.
    cores : int
        Number of cores on the ring, 1..64.
    operand_format : str
        Format of stored operands (weights, activations): ``fp32``, ``bf16`` or ``fp16``.
    acc_format : str
        Format of the MAC accumulator: ``fp32``, or ``fp16`` (paper-faithful).
    mul_latency, add_latency : int
        Pipeline register stages in the multiplier and the adder, 1..8 each.
    mema_words : int
        MemA (one port) words per PE, 16..65536.
    memb_words : int
        MemB (two ports) words per PE, 16..65536.
    regfile_words : int
        PE register-file entries (after the accumulator banks in the accumulator file), 2..16.
    spad_words : int
        Scratchpad words per core, 64..2**22; a multiple of ``nr`` (the SPAD port is nr words).
    imem_words : int
        Instruction-memory entries per core, 16..65536.
    link_words : int or None
        Ring-link width in words per cycle, 1..nr; ``None`` means ``nr``.
    cpass : bool
        Whether the core has the fused pass of continuous propagation (the ``cpass`` kernel
        and the PEs' side fill of accumulator slots). Without it ``cpass`` is an illegal
        opcode, ``cp`` is refused (``mbcp`` and the other algorithms run) and the core is
        smaller (``docs/fpga.md``).
    ring_commands : int
        ``RING`` instructions the ring engine's command queue holds while the engine runs an
        earlier one, 0..32. A ``RING`` waits in its check only while the queue is full, so a
        core posts a multi-step collective and computes on; with 0 it waits while the engine
        is busy (``docs/multicore.md``).
    """

    name: str = "small"
    nr: int = 4
    cores: int = 1
    operand_format: str = "fp32"
    acc_format: str = "fp32"
    mul_latency: int = 2
    add_latency: int = 3
    mema_words: int = 2048
    memb_words: int = 512
    regfile_words: int = 4
    spad_words: int = 65536
    imem_words: int = 1024
    link_words: int | None = None
    cpass: bool = True
    ring_commands: int = 16

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"name must be a non-empty string, not {self.name!r}")
        if isinstance(self.nr, bool) or not isinstance(self.nr, int) \
                or self.nr not in (2, 4, 8, 16):
            raise ConfigError(f"nr must be one of 2, 4, 8, 16, not {self.nr!r}")
        _check_int("cores", self.cores, 1, 64)
        if not isinstance(self.operand_format, str) or self.operand_format not in FORMATS:
            raise ConfigError(f"operand_format must be one of {', '.join(FORMATS)}, "
                              f"not {self.operand_format!r}")
        if not isinstance(self.acc_format, str) or self.acc_format not in ("fp32", "fp16"):
            raise ConfigError(f"acc_format must be one of fp32, fp16, not {self.acc_format!r}")
        _check_int("mul_latency", self.mul_latency, 1, 8)
        _check_int("add_latency", self.add_latency, 1, 8)
        _check_int("mema_words", self.mema_words, 16, 65536)
        _check_int("memb_words", self.memb_words, 16, 65536)
        _check_int("regfile_words", self.regfile_words, 2, 16)
        _check_int("spad_words", self.spad_words, 64, 1 << 22)
        if self.spad_words % self.nr:
            raise ConfigError(f"spad_words must be a multiple of nr={self.nr} (the SPAD port is "
                              f"nr words wide), not {self.spad_words!r}")
        _check_int("imem_words", self.imem_words, 16, 65536)
        if not isinstance(self.cpass, bool):
            raise ConfigError(f"cpass must be true or false, not {self.cpass!r}")
        _check_int("ring_commands", self.ring_commands, 0, 32)
        if self.link_words is not None:
            _check_int("link_words", self.link_words, 1, self.nr, extra=" (at most nr)")

    # -- derived quantities ---------------------------------------------------------------------

    @property
    def operand(self) -> FloatFormat:
        """Operand number format."""
        return FORMATS[self.operand_format]

    @property
    def acc(self) -> FloatFormat:
        """Accumulator number format."""
        return FORMATS[self.acc_format]

    @property
    def word_width(self) -> int:
        """Bits per stored operand word."""
        return self.operand.width

    @property
    def acc_width(self) -> int:
        """Bits per accumulator value."""
        return self.acc.width

    @property
    def mac_latency(self) -> int:
        """Cycles from MAC operands in to accumulated result out."""
        return self.mul_latency + self.add_latency

    @property
    def write_back_latency(self) -> int:
        """Cycles from a micro-op's issue to its result being visible (docs/architecture.md)."""
        return self.mul_latency + self.add_latency + 3

    @property
    def acc_lanes(self) -> int:
        """Accumulator slots an accumulation rotates over so one MAC issues every cycle.

        A slot written at the end of the adder's last cycle is read again at adder entry, so
        consecutive accumulations into one slot are ``add_latency + 1`` cycles apart.
        """
        return _next_pow2(self.add_latency + 1)

    @property
    def chain_lanes(self) -> int:
        """Independent elements a dependent chain of micro-ops rotates over."""
        return _next_pow2(self.write_back_latency)

    @property
    def acc_slots(self) -> int:
        """Accumulator-file registers per PE: two banks of ``max(acc_lanes, chain_lanes)``
        (interleaved accumulations; GEMM alternates the banks), then the ``regfile_words``
        registers of the PE's register file (values a kernel keeps across lanes)."""
        return 2 * max(self.acc_lanes, self.chain_lanes) + self.regfile_words

    @property
    def regfile_base(self) -> int:
        """Accumulator-file slot of register-file entry 0."""
        return 2 * max(self.acc_lanes, self.chain_lanes)

    @property
    def spad_rows(self) -> int:
        """SPAD rows of ``nr`` words."""
        return self.spad_words // self.nr

    @property
    def spad_row_width(self) -> int:
        """Row-address bits of the SPAD."""
        return _addr_width(self.spad_rows)

    @property
    def pes_per_core(self) -> int:
        """Processing elements in one core."""
        return self.nr * self.nr

    @property
    def total_pes(self) -> int:
        """Processing elements in the whole ring."""
        return self.pes_per_core * self.cores

    @property
    def ring_link_words(self) -> int:
        """Ring-link width in words per cycle."""
        return self.nr if self.link_words is None else self.link_words

    @property
    def mema_addr_width(self) -> int:
        """Address bits of MemA."""
        return _addr_width(self.mema_words)

    @property
    def memb_addr_width(self) -> int:
        """Address bits of MemB."""
        return _addr_width(self.memb_words)

    @property
    def regfile_addr_width(self) -> int:
        """Address bits of the PE register file."""
        return _addr_width(self.regfile_words)

    @property
    def spad_addr_width(self) -> int:
        """Word-address bits of the scratchpad."""
        return _addr_width(self.spad_words)

    @property
    def imem_addr_width(self) -> int:
        """Address bits of the instruction memory."""
        return _addr_width(self.imem_words)

    # -- serialisation ----------------------------------------------------------------------------

    def replace(self, **changes) -> CaterpillarConfig:
        """Return a copy with ``changes`` applied (and validated); an unknown field raises
        :class:`ConfigError` listing the known ones."""
        _check_fields(changes)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Return the fields as a plain dict."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """Serialise to a JSON object (stable key order)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> CaterpillarConfig:
        """Build from a dict, rejecting unknown keys by name."""
        if not isinstance(d, dict):
            raise ConfigError(f"a config must be a JSON object, not {type(d).__name__}")
        _check_fields(d)
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> CaterpillarConfig:
        """Parse the output of :meth:`to_json`."""
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"config is not valid JSON: {e}") from None
        return cls.from_dict(d)


#: Named presets. ``small`` is the default; ``paper-*`` are the paper's two hardware cases
#: (fp16 operands and accumulator, 16 KB per PE split 12 KB MemA / 4 KB MemB, 512 KB SPAD).
#: ``ulx3s`` fits the ULX3S-85F (LFE5U-85F: 83,640 LUT4, 208 DP16KD, 156 MULT18X18D): a PE is
#: about 6k LUT4, so 4 PEs (nr = 2) and not 16; fp32 keeps it bit-identical to ``small``'s
#: numerics; ``small``'s memories fit (182 of the 208 DP16KD, 128 of them the 256 KB SPAD);
#: latencies 3 + 4 are the MAC pipeline that came nearest 50 MHz on this part
#: (``docs/fpga.md``); one core, so no ring-engine command queue (``ring_commands = 0``: a lone
#: core's programs post no collectives, and the queue would cost 231 LUT4 on a board whose
#: router is at its limit, ``docs/fpga.md``); no fused pass (``cpass = false``: with it the
#: board top filled 80 % of the LUT sites and did not route; without it, 72 % and routed at
#: 21.54 MHz, ``docs/fpga.md``), so ``cp`` is refused there and ``mbcp`` offered.
PRESETS = {
    "tiny": CaterpillarConfig(name="tiny", nr=2, mul_latency=1, add_latency=2,
                              mema_words=256, memb_words=128, spad_words=4096, imem_words=256),
    "small": CaterpillarConfig(),
    "ulx3s": CaterpillarConfig(name="ulx3s", nr=2, mul_latency=3, add_latency=4,
                               ring_commands=0, cpass=False),
    "paper-n1": CaterpillarConfig(name="paper-n1", nr=4, cores=32, operand_format="fp16",
                                  acc_format="fp16", mul_latency=2, add_latency=2,
                                  mema_words=6144, memb_words=2048, spad_words=262144,
                                  imem_words=4096),
    "paper-n3": CaterpillarConfig(name="paper-n3", nr=16, cores=8, operand_format="fp16",
                                  acc_format="fp16", mul_latency=2, add_latency=2,
                                  mema_words=6144, memb_words=2048, spad_words=262144,
                                  imem_words=4096),
}


def preset_names() -> list[str]:
    """Return the preset names."""
    return list(PRESETS)


def preset(name: str) -> CaterpillarConfig:
    """Return the preset called ``name``; raise :class:`ConfigError` listing the presets."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown config preset {name!r}; choose one of "
                          f"{', '.join(PRESETS)}") from None
