"""Assembler and disassembler for the core's instruction set (:mod:`caterpillar.contract.isa`).

Assembly: one instruction per line, ``mnemonic field=value ...`` (fields in any order), ``#``
or ``;`` starts a comment. Values are integers (``12``, ``0x40``, ``0b101``), enum member names
for enum fields (``layout=diag``, ``fn=axpy``), and, for ``imm`` fields, real numbers
(``value=-0.125``, ``value=inf``) rounded into the config's operand format. Every field must be
given, except flags, the ``rel`` selectors of a ``LOOP``'s body and ``pe_row`` fields
(default 0). Binary: 32 bytes per instruction, little-endian.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

from caterpillar.contract.geometry import SEQUENCER_OPCODES, kernel_plan
from caterpillar.contract.isa import (
    INSTR_BITS,
    OPERANDS,
    IsaError,
    Opcode,
    decode,
    encode,
    field_enum,
)
from caterpillar.golden.numerics import from_float

__all__ = ["AssemblyError", "assemble", "check_instruction", "disassemble", "to_bytes",
           "from_bytes", "INSTR_BYTES"]

#: Bytes per encoded instruction.
INSTR_BYTES = INSTR_BITS // 8

_MNEMONICS = {op.name.lower(): op for op in Opcode}
_FLOAT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE][+-]?\d+|inf|nan)$", re.IGNORECASE)


class AssemblyError(ValueError):
    """A line of assembly is wrong; the message names the line and the field."""


def _value(text: str, field, op: Opcode, cfg, where: str) -> int:
    enum_type = field_enum(field)
    if enum_type is not None:
        member = enum_type.__members__.get(text.upper())
        if member is not None:
            return member.value
        if not text.lstrip("-").isdigit():
            choices = ", ".join(m.lower() for m in enum_type.__members__)
            raise AssemblyError(f"{where}: field {field.name!r} of {op.name.lower()} must be "
                                f"one of {choices}, not {text!r}")
    if field.kind == "imm" and _FLOAT.match(text):
        return int(from_float(float(text), cfg.operand))
    try:
        return int(text, 0)
    except ValueError:
        raise AssemblyError(f"{where}: field {field.name!r} of {op.name.lower()}: {text!r} is "
                            f"not a number") from None


def check_instruction(op: Opcode, values: dict, cfg, where: str) -> None:
    """Raise :class:`AssemblyError` if the core of ``cfg`` would refuse the instruction (the
    decoder's checks: ranges against the config's memories, shapes, fields)."""
    if op in SEQUENCER_OPCODES:
        return
    fields = SimpleNamespace(**{**{f.name: 0 for f in OPERANDS[op]}, **values})
    for check in kernel_plan(op, fields, cfg).checks:
        if not check.ok:
            raise AssemblyError(f"{where}: {op.name.lower()} would stop the core with "
                                f"{check.cause.name.lower()}: {check.what} (config "
                                f"{cfg.name}: SPAD {cfg.spad_words}, MemA {cfg.mema_words}, "
                                f"MemB {cfg.memb_words} words)")


def assemble(text: str, cfg, *, check: bool = False) -> list[int]:
    """Return the instruction words of assembly ``text``; raise :class:`AssemblyError`.

    With ``check``, every instruction must pass the checks the core of ``cfg`` applies, and
    the program must fit its IMEM.
    """
    words = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.split(r"[#;]", raw, maxsplit=1)[0].strip()
        if not line:
            continue
        where = f"line {number}"
        mnemonic, *parts = line.split()
        op = _MNEMONICS.get(mnemonic.lower())
        if op is None:
            raise AssemblyError(f"{where}: unknown instruction {mnemonic!r}")
        fields = {f.name: f for f in OPERANDS[op]}
        values = {}
        for part in parts:
            name, sep, value = part.partition("=")
            if not sep or not value:
                raise AssemblyError(f"{where}: expected field=value, not {part!r}")
            if name not in fields:
                raise AssemblyError(f"{where}: {op.name.lower()} has no field {name!r}; its "
                                    f"fields are {', '.join(fields) or 'none'}")
            if name in values:
                raise AssemblyError(f"{where}: field {name!r} given twice")
            values[name] = _value(value, fields[name], op, cfg, where)
        missing = [n for n, f in fields.items()
                   if n not in values and f.kind not in ("flag", "rel", "pe_row")]
        if missing:
            raise AssemblyError(f"{where}: {op.name.lower()} needs field(s) "
                                f"{', '.join(map(repr, missing))}")
        try:
            words.append(encode(op, **values))
        except IsaError as e:
            raise AssemblyError(f"{where}: {e}") from None
        if check:
            check_instruction(op, values, cfg, where)
    if check and len(words) > cfg.imem_words:
        raise AssemblyError(f"the program has {len(words)} instructions; IMEM of config "
                            f"{cfg.name} holds {cfg.imem_words}")
    return words


def disassemble(words) -> str:
    """Return assembly text for instruction words (raises ``IsaError`` on an illegal one)."""
    lines = []
    for index, word in enumerate(words):
        try:
            lines.append(decode(int(word)).text())
        except IsaError as e:
            raise IsaError(f"instruction {index}: {e}") from None
    return "\n".join(lines) + ("\n" if lines else "")


def to_bytes(words) -> bytes:
    """Return the binary image of instruction words."""
    return b"".join(int(w).to_bytes(INSTR_BYTES, "little") for w in words)


def from_bytes(data: bytes) -> list[int]:
    """Return the instruction words of a binary image (its length must be a multiple of 32)."""
    if len(data) % INSTR_BYTES:
        raise ValueError(f"a program image is a multiple of {INSTR_BYTES} bytes, not "
                         f"{len(data)}")
    return [int.from_bytes(data[i:i + INSTR_BYTES], "little")
            for i in range(0, len(data), INSTR_BYTES)]
