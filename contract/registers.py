"""The host-visible address map: CSRs, their bit fields and the memory windows, defined once.

Pure Python (no Amaranth). Every register and every field of it is declared here with its name,
position, width, reset value and access; the RTL builds its register logic from these objects
(:mod:`caterpillar.rtl.registers`), both instruction-level devices decode host accesses with
them, the drivers pack and unpack values by field name, and ``docs/registers.md`` is generated
from them. A core and the ring order the bits of ``CTRL`` and ``STATUS`` the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from caterpillar.contract.isa import COUNTER_MEANING, INSTR_WORDS, Counter, ErrorCause

__all__ = [
    "BitField", "Csr", "RegisterMap", "RingRegisterMap", "RegisterView", "registers_markdown",
    "CORE_ID", "RING_ID", "IMEM_BASE", "SPAD_BASE", "HOST_ADDR_BITS", "RING_ADDR_BITS",
    "RING_SLOT", "FORMAT_CODES", "CTRL", "STATUS", "CONFIG", "ERROR_CAUSE", "STALL",
    "RING_STATUS", "core_address", "SCALAR_REGISTERS", "COUNTER_BITS",
]

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
#: Scalar registers (``S0``..``S15``).
SCALAR_REGISTERS = 16
#: Width of every performance counter.
COUNTER_BITS = 64
#: Code of each number format in ``CONFIG``.
FORMAT_CODES = {"fp32": 0, "bf16": 1, "fp16": 2}


def core_address(core: int, addr: int) -> int:
    """Return the ring host address of ``addr`` in core ``core``'s map."""
    return core << HOST_ADDR_BITS | addr


@dataclass(frozen=True)
class BitField:
    """Bits ``lsb .. lsb + width - 1`` of a register."""

    name: str
    lsb: int
    width: int
    doc: str
    reset: int = 0

    @property
    def mask(self) -> int:
        """The field's bits in the register."""
        return ((1 << self.width) - 1) << self.lsb


@dataclass(frozen=True)
class Csr:
    """One control/status register: word address, access (``r``, ``w``, ``rw``), meaning and,
    where the register is more than one number, its fields (LSB first)."""

    name: str
    addr: int
    access: str
    doc: str
    fields: tuple = ()
    reset: int = 0

    def field(self, name: str) -> BitField:
        """Return the field called ``name``."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r}; its fields are "
                       f"{', '.join(f.name for f in self.fields)}")

    def pack(self, **values) -> int:
        """Return the register value with the named fields set (others 0)."""
        word = 0
        for name, value in values.items():
            f = self.field(name)
            if not 0 <= int(value) < (1 << f.width):
                raise ValueError(f"{self.name}.{name} is {f.width} bits wide, not {value!r}")
            word |= int(value) << f.lsb
        return word

    def unpack(self, value: int) -> dict:
        """Return ``{field: value}`` of a register value."""
        return {f.name: (value >> f.lsb) & ((1 << f.width) - 1) for f in self.fields}

    def with_addr(self, addr: int) -> Csr:
        """This register at another address (the same fields)."""
        return Csr(self.name, addr, self.access, self.doc, self.fields, self.reset)

    def to_dict(self) -> dict:
        """Plain data (for the driver and for JSON)."""
        return {"name": self.name, "addr": self.addr, "access": self.access, "doc": self.doc,
                "reset": self.reset,
                "fields": [{"name": f.name, "lsb": f.lsb, "width": f.width, "doc": f.doc,
                            "reset": f.reset} for f in self.fields]}


#: Commands; every bit is a pulse: writing 0 does nothing. The ring's CTRL has the same bits.
CTRL = Csr("CTRL", 0x08, "w", "commands (write 1 to act)", (
    BitField("start", 0, 1, "start at START_PC (ignored while busy or in error)"),
    BitField("clear", 1, 1, "clear done and error (leaves the error state)"),
    BitField("clear_counters", 2, 1, "zero every performance counter but HOST_WORDS"),
    BitField("clear_host_words", 3, 1, "zero HOST_WORDS"),
))
#: State of a core. The ring's STATUS (:data:`RING_STATUS`) has the same bits.
STATUS = Csr("STATUS", 0x0A, "r", "state of the core", (
    BitField("busy", 0, 1, "a program runs"),
    BitField("done", 1, 1, "the last program halted (sticky until clear or start)"),
    BitField("error", 2, 1, "the core stopped with an error (sticky until clear)"),
))
RING_STATUS = Csr("STATUS", 0x0A, "r", "state of the cores", (
    BitField("busy", 0, 1, "some core is busy"),
    BitField("done", 1, 1, "every core is done"),
    BitField("error", 2, 1, "some core is in error"),
))
#: The build parameters a driver needs to check.
CONFIG = Csr("CONFIG", 0x01, "r", "the core's build parameters", (
    BitField("nr", 0, 5, "PE array side"),
    BitField("operand_format", 5, 3, "operand format (0 fp32, 1 bf16, 2 fp16)"),
    BitField("acc_format", 8, 3, "accumulator format (same codes)"),
    BitField("mul_latency", 11, 5, "multiplier pipeline stages"),
    BitField("add_latency", 16, 5, "adder pipeline stages"),
))
ERROR_CAUSE = Csr("ERROR_CAUSE", 0x0B, "r", "why the core stopped", (
    BitField("cause", 0, max(e.value for e in ErrorCause).bit_length(),
             "an ErrorCause (0 if none; docs/isa.md)"),
))
#: Link stall injection (a verification aid).
STALL = Csr("STALL", 0x0D, "rw", "link stall injection", (
    BitField("threshold", 0, 8, "stall probability x 256 per link and cycle (0: off)"),
    BitField("seed", 8, 16, "LFSR seed (loaded on write)"),
))


class RegisterView:
    """Addresses and fields of a register map given as plain data (:meth:`RegisterMap.to_dict`),
    as a driver reads it from a device."""

    def __init__(self, data: dict, base: int = 0):
        self.data = data
        self.base = base
        self.csrs = {c["name"]: Csr(c["name"], c["addr"], c["access"], c["doc"],
                                    tuple(BitField(**f) for f in c["fields"]), c["reset"])
                     for c in data["csrs"]}

    def __getitem__(self, name: str) -> int:
        """The host address of CSR ``name``."""
        return self.base + self.csrs[name].addr

    def pack(self, name: str, **values) -> int:
        """The value of CSR ``name`` with the named fields set."""
        return self.csrs[name].pack(**values)

    def unpack(self, name: str, value: int) -> dict:
        """The fields of a value of CSR ``name``."""
        return self.csrs[name].unpack(value)


class _Map:
    """What both maps share: CSRs by name and their plain-data form."""

    csrs: list

    def _index(self, csrs) -> None:
        self.csrs = csrs
        self.by_name = {c.name: c for c in csrs}

    def __getitem__(self, name: str) -> int:
        return self.by_name[name].addr

    def _data(self, kind: str, **extra) -> dict:
        return {"kind": kind, "csrs": [c.to_dict() for c in self.csrs], **extra,
                "config": self.cfg.to_dict()}


class RegisterMap(_Map):
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
            Csr("ID", 0x00, "r", f"identification, {CORE_ID:#010x}", reset=CORE_ID),
            CONFIG,
            Csr("MEMA_WORDS", 0x02, "r", "MemA words per PE"),
            Csr("MEMB_WORDS", 0x03, "r", "MemB words per PE"),
            Csr("SPAD_WORDS", 0x04, "r", "SPAD words"),
            Csr("IMEM_WORDS", 0x05, "r", "instructions IMEM holds"),
            CTRL,
            Csr("START_PC", 0x09, "rw", "first instruction of the next start"),
            STATUS,
            ERROR_CAUSE,
            Csr("ERROR_PC", 0x0C, "r", "program counter of the failing instruction"),
            Csr("PC", 0x0D, "r", "current program counter"),
        ]
        for counter in Counter:
            base = 0x10 + 2 * counter.value
            meaning = COUNTER_MEANING[counter]
            csrs += [Csr(f"{counter.name}_LO", base, "r", f"{meaning}, bits 31..0"),
                     Csr(f"{counter.name}_HI", base + 1, "r", f"{meaning}, bits 63..32")]
        for i in range(SCALAR_REGISTERS):
            csrs.append(Csr(f"S{i}", 0x30 + i, "rw", f"scalar register {i} (operand-format "
                                                    "bit pattern)"))
        self._index(csrs)

    @property
    def config_word(self) -> int:
        """Value of the ``CONFIG`` register."""
        cfg = self.cfg
        return CONFIG.pack(nr=cfg.nr, operand_format=FORMAT_CODES[cfg.operand_format],
                           acc_format=FORMAT_CODES[cfg.acc_format],
                           mul_latency=cfg.mul_latency, add_latency=cfg.add_latency)

    def constants(self) -> dict:
        """Values of the registers that only describe the build (name -> value)."""
        cfg = self.cfg
        return {"ID": CORE_ID, "CONFIG": self.config_word, "MEMA_WORDS": cfg.mema_words,
                "MEMB_WORDS": cfg.memb_words, "SPAD_WORDS": cfg.spad_words,
                "IMEM_WORDS": cfg.imem_words}

    def to_dict(self) -> dict:
        """Return the map as plain data (for the driver and for JSON)."""
        return self._data("core", imem_base=self.imem_base, spad_base=self.spad_base,
                          instr_words=self.instr_words)

    def markdown(self) -> str:
        """Return the register table for ``docs/registers.md``."""
        lines = ["# Host register map", "",
                 "32-bit word addresses. Generated from `caterpillar.contract.registers`; do "
                 "not edit.", "",
                 f"* IMEM window: instruction `i`, word `w` (0..{INSTR_WORDS - 1}, LSB first) at "
                 f"`{IMEM_BASE:#010x} + {INSTR_WORDS} * i + w`. Writing it while the core is "
                 "busy is refused and stops the core (`host_access`).",
                 f"* SPAD window: word `a` at `{SPAD_BASE:#010x} + a` (operand-format bit "
                 "patterns, LSB-aligned). Reading or writing it while the core is busy is "
                 "refused (a read returns 0; the SPAD's ports belong to the array and the ring "
                 "engine then) and stops the core (`host_access`).", "",
                 "| address | name | access | meaning |", "|---|---|---|---|"]
        lines += [f"| `{c.addr:#06x}` | `{c.name}` | {c.access} | {c.doc} |" for c in self.csrs]
        return "\n".join(lines) + "\n" + _fields_markdown(self.csrs, "") + "\n"


class RingRegisterMap(_Map):
    """The ring's own CSRs (slot :data:`RING_SLOT`) for config ``cfg``.

    Core ``k``'s map (:class:`RegisterMap`) is at ``core_address(k, addr)``.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        self.base = core_address(RING_SLOT, 0)
        csrs = [
            Csr("RING_ID", 0x00, "r", f"identification, {RING_ID:#010x}", reset=RING_ID),
            Csr("CORES", 0x01, "r", "number of cores"),
            Csr("CTRL", CTRL.addr, "w", "written to every core's CTRL in the same cycle "
                                        "(start starts all cores together)", CTRL.fields),
            RING_STATUS,
            Csr("DONE_MASK", 0x0B, "r", "bit k: core k done"),
            Csr("ERROR_MASK", 0x0C, "r", "bit k: core k in error"),
            STALL,
        ]
        for k in range(cfg.cores):
            reset = (k - 1) % cfg.cores
            csrs.append(Csr(f"SRC{k}", 0x40 + k, "rw", f"the core whose link feeds core {k} "
                                                      f"(reset {reset})", reset=reset))
        self._index(csrs)

    def address(self, name: str) -> int:
        """Return the host address of CSR ``name``."""
        return self.base + self[name]

    def to_dict(self) -> dict:
        """Return the map as plain data (for the driver and for JSON)."""
        return self._data("ring", base=self.base, core_stride=1 << HOST_ADDR_BITS)

    def markdown(self) -> str:
        """Return the register table for ``docs/registers.md``."""
        lines = ["## Ring registers", "",
                 f"Ring host addresses are {RING_ADDR_BITS} bits: core `k`'s map above is at "
                 f"`k << {HOST_ADDR_BITS}`, the ring's own registers at slot {RING_SLOT} "
                 f"(`{self.base:#010x}`). Shown for {self.cfg.cores} cores.", "",
                 "| address | name | access | meaning |", "|---|---|---|---|"]
        lines += [f"| `{self.base + c.addr:#010x}` | `{c.name}` | {c.access} | {c.doc} |"
                  for c in self.csrs]
        return "\n".join(lines) + "\n" + _fields_markdown(self.csrs, "ring ") + "\n"


def _fields_markdown(csrs, prefix: str) -> str:
    lines = []
    for c in csrs:
        if not c.fields:
            continue
        lines += ["", f"### {prefix}`{c.name}` fields", "", "| bits | field | reset | meaning |",
                  "|---|---|---|---|"]
        for f in c.fields:
            bits = f"{f.lsb}" if f.width == 1 else f"{f.lsb + f.width - 1}:{f.lsb}"
            lines.append(f"| {bits} | `{f.name}` | {f.reset} | {f.doc} |")
    return "\n".join(lines)


def registers_markdown(cfg) -> str:
    """Return ``docs/registers.md``: a core's map for ``cfg``, then a 4-core ring's."""
    return RegisterMap(cfg).markdown() + "\n" + RingRegisterMap(cfg.replace(cores=4)).markdown()
