"""Assembler and disassembler for the core's instruction set (:mod:`caterpillar.rtl.isa`).

Assembly: one instruction per line, ``mnemonic field=value ...`` (fields in any order), ``#``
or ``;`` starts a comment. Values are integers (``12``, ``0x40``, ``0b101``), enum member names
for enum fields (``layout=diag``, ``fn=axpy``), and, for ``imm`` fields, real numbers
(``value=-0.125``, ``value=inf``) rounded into the config's operand format. Every field must be
given, except flags (default 0). Binary: 32 bytes per instruction, little-endian.
"""

from __future__ import annotations

import re

from caterpillar.golden.numerics import from_float
from caterpillar.rtl.isa import INSTR_BITS, OPERANDS, IsaError, Opcode, decode, encode

__all__ = ["AssemblyError", "assemble", "disassemble", "to_bytes", "from_bytes",
           "INSTR_BYTES"]

#: Bytes per encoded instruction.
INSTR_BYTES = INSTR_BITS // 8

_MNEMONICS = {op.name.lower(): op for op in Opcode}
_FLOAT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE][+-]?\d+|inf|nan)$", re.IGNORECASE)


class AssemblyError(ValueError):
    """A line of assembly is wrong; the message names the line and the field."""


def _value(text: str, field, op: Opcode, cfg, where: str) -> int:
    import caterpillar.rtl.isa as isa

    enum_type = getattr(isa, field.kind, None)
    if isinstance(enum_type, type) and hasattr(enum_type, "__members__"):
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


def assemble(text: str, cfg) -> list[int]:
    """Return the instruction words of assembly ``text``; raise :class:`AssemblyError`."""
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
        missing = [n for n, f in fields.items() if n not in values and f.kind != "flag"]
        if missing:
            raise AssemblyError(f"{where}: {op.name.lower()} needs field(s) "
                                f"{', '.join(map(repr, missing))}")
        try:
            words.append(encode(op, **values))
        except IsaError as e:
            raise AssemblyError(f"{where}: {e}") from None
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
