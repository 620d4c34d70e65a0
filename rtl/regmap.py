"""The host-visible address map: CSRs and memory windows, defined once.

Pure Python (no Amaranth): the core decodes its host bus with :class:`RegisterMap`, simulation
devices hand :meth:`RegisterMap.to_dict` to the driver, and ``docs/registers.md`` is generated
from :meth:`RegisterMap.markdown`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .isa import INSTR_WORDS, Counter

__all__ = ["Csr", "RegisterMap", "RingRegisterMap", "registers_markdown", "CORE_ID",
           "RING_ID", "IMEM_BASE", "SPAD_BASE", "HOST_ADDR_BITS", "RING_ADDR_BITS", "RING_SLOT",
           "core_address"]

#: Value of the ID register.
CORE_ID = 0xCA7E0001
#: Word address of instruction 0, word 0, in the IMEM window (8 words per instruction).
IMEM_BASE = 0x0010_0000
#: Word address of SPAD word 0 in the SPAD window.
SPAD_BASE = 0x0100_0000
#: Width of a host word address.
HOST_ADDR_BITS = 26
#: Value of the ring's ID register.
RING_ID = 0xCA7E0100
#: Width of a ring host address: a 6-bit slot above a core's 26-bit address.
RING_ADDR_BITS = 32
#: The slot of the ring's own registers; slots 0..cores-1 are the cores.
RING_SLOT = 63


def core_address(core: int, addr: int) -> int:
    """Return the ring host address of ``addr`` in core ``core``'s map."""
    return core << HOST_ADDR_BITS | addr


@dataclass(frozen=True)
class Csr:
    """One control/status register: word address, access (``r``, ``w``, ``rw``), meaning."""

    name: str
    addr: int
    access: str
    doc: str


class RegisterMap:
    """The CSRs of a core for config ``cfg``, plus the memory windows.

    Attributes
    ----------
    csrs : list of Csr
    imem_base, spad_base : int
        First word address of the IMEM and SPAD windows.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        self.imem_base = IMEM_BASE
        self.spad_base = SPAD_BASE
        self.instr_words = INSTR_WORDS
        csrs = [
            Csr("ID", 0x00, "r", f"identification, {CORE_ID:#010x}"),
            Csr("CONFIG", 0x01, "r", "nr [4:0], operand format [7:5] (0 fp32, 1 bf16, "
                                    "2 fp16), accumulator format [10:8], mul_latency "
                                    "[15:11], add_latency [20:16]"),
            Csr("MEMA_WORDS", 0x02, "r", "MemA words per PE"),
            Csr("MEMB_WORDS", 0x03, "r", "MemB words per PE"),
            Csr("SPAD_WORDS", 0x04, "r", "SPAD words"),
            Csr("IMEM_WORDS", 0x05, "r", "instructions IMEM holds"),
            Csr("CTRL", 0x08, "w", "write 1 to bit 0: start at START_PC; bit 1: clear done "
                                  "and error; bit 2: clear the counters"),
            Csr("START_PC", 0x09, "rw", "first instruction of the next start"),
            Csr("STATUS", 0x0A, "r", "bit 0 busy, bit 1 done, bit 2 error"),
            Csr("ERROR_CAUSE", 0x0B, "r", "ErrorCause of the error (0 if none)"),
            Csr("ERROR_PC", 0x0C, "r", "program counter of the failing instruction"),
            Csr("PC", 0x0D, "r", "current program counter"),
        ]
        for counter in Counter:
            base = 0x10 + 2 * counter.value
            csrs += [Csr(f"{counter.name}_LO", base, "r", f"{counter.name.lower()} counter, "
                                                          "bits 31..0"),
                     Csr(f"{counter.name}_HI", base + 1, "r", f"{counter.name.lower()} "
                                                              "counter, bits 63..32")]
        for i in range(16):
            csrs.append(Csr(f"S{i}", 0x30 + i, "rw", f"scalar register {i} (operand-format "
                                                    "bit pattern)"))
        self.csrs = csrs
        self.by_name = {c.name: c for c in csrs}

    @property
    def config_word(self) -> int:
        """Value of the ``CONFIG`` register (layout in its description)."""
        cfg = self.cfg
        codes = {"fp32": 0, "bf16": 1, "fp16": 2}
        return (cfg.nr | codes[cfg.operand_format] << 5 | codes[cfg.acc_format] << 8
                | cfg.mul_latency << 11 | cfg.add_latency << 16)

    def __getitem__(self, name: str) -> int:
        return self.by_name[name].addr

    def to_dict(self) -> dict:
        """Return the map as plain data (for the driver and for JSON)."""
        return {"csrs": [asdict(c) for c in self.csrs], "imem_base": self.imem_base,
                "spad_base": self.spad_base, "instr_words": self.instr_words,
                "config": self.cfg.to_dict()}

    def markdown(self) -> str:
        """Return the register table for ``docs/registers.md``."""
        lines = ["# Host register map", "",
                 "32-bit word addresses. Generated from `caterpillar.rtl.host.RegisterMap`; do "
                 "not edit.", "",
                 f"* IMEM window: instruction `i`, word `w` (0..{INSTR_WORDS - 1}, LSB first) at "
                 f"`{IMEM_BASE:#010x} + {INSTR_WORDS} * i + w`.",
                 f"* SPAD window: word `a` at `{SPAD_BASE:#010x} + a` (operand-format bit "
                 "patterns, LSB-aligned).", "",
                 "| address | name | access | meaning |", "|---|---|---|---|"]
        lines += [f"| `{c.addr:#06x}` | `{c.name}` | {c.access} | {c.doc} |" for c in self.csrs]
        return "\n".join(lines) + "\n"


class RingRegisterMap:
    """The ring's own CSRs (slot :data:`RING_SLOT`) for config ``cfg``.

    Core ``k``'s map (:class:`RegisterMap`) is at ``core_address(k, addr)``.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        self.base = core_address(RING_SLOT, 0)
        csrs = [
            Csr("RING_ID", 0x00, "r", f"identification, {RING_ID:#010x}"),
            Csr("CORES", 0x01, "r", "number of cores"),
            Csr("CTRL", 0x08, "w", "written to every core's CTRL in the same cycle (bit 0 "
                                  "starts all cores together)"),
            Csr("STATUS", 0x0A, "r", "bit 0 every core done, bit 1 some core in error, bit 2 "
                                    "some core busy"),
            Csr("DONE_MASK", 0x0B, "r", "bit k: core k done"),
            Csr("ERROR_MASK", 0x0C, "r", "bit k: core k in error"),
            Csr("STALL", 0x0D, "rw", "link stall injection: bits 7..0 stall probability x 256 "
                                    "per link and cycle (0 off), bits 23..8 LFSR seed (loaded "
                                    "on write)"),
        ]
        for k in range(cfg.cores):
            csrs.append(Csr(f"SRC{k}", 0x40 + k, "rw", f"the core whose link feeds core {k} "
                                                      f"(reset {(k - 1) % cfg.cores})"))
        self.csrs = csrs
        self.by_name = {c.name: c for c in csrs}

    def __getitem__(self, name: str) -> int:
        return self.by_name[name].addr

    def address(self, name: str) -> int:
        """Return the host address of CSR ``name``."""
        return self.base + self[name]

    def to_dict(self) -> dict:
        """Return the map as plain data (for the driver and for JSON)."""
        return {"csrs": [asdict(c) for c in self.csrs], "base": self.base,
                "core_stride": 1 << HOST_ADDR_BITS, "config": self.cfg.to_dict()}

    def markdown(self) -> str:
        """Return the register table for ``docs/registers.md``."""
        lines = ["## Ring registers", "",
                 f"Ring host addresses are {RING_ADDR_BITS} bits: core `k`'s map above is at "
                 f"`k << {HOST_ADDR_BITS}`, the ring's own registers at slot {RING_SLOT} "
                 f"(`{self.base:#010x}`). Shown for {self.cfg.cores} cores.", "",
                 "| address | name | access | meaning |", "|---|---|---|---|"]
        lines += [f"| `{self.base + c.addr:#010x}` | `{c.name}` | {c.access} | {c.doc} |"
                  for c in self.csrs]
        return "\n".join(lines) + "\n"


def registers_markdown(cfg) -> str:
    """Return ``docs/registers.md``: a core's map for ``cfg``, then a 4-core ring's."""
    return RegisterMap(cfg).markdown() + "\n" + RingRegisterMap(cfg.replace(cores=4)).markdown()
