"""The instruction word as the RTL sees it: Amaranth layouts built from the ISA's field table.

:data:`caterpillar.contract.isa.OPERANDS` is the one definition of every bit position; this
module only turns it into :class:`amaranth.lib.data` layouts for the sequencer's decoder and
for the engines that take an instruction's operands.
"""

from __future__ import annotations

from amaranth.lib import data

from caterpillar.contract.isa import INSTR_BITS, OPCODE_BITS, OPERANDS, Opcode

__all__ = ["operand_layout", "instruction_layout", "FieldView"]


def operand_layout(op: Opcode) -> data.StructLayout:
    """Return the layout of ``op``'s operand fields, LSB first (every field unsigned)."""
    return data.StructLayout({f.name: f.width for f in OPERANDS[op]})


def instruction_layout() -> data.StructLayout:
    """Return the 256-bit instruction layout: ``op``, then a union of every opcode's operands."""
    variants = {op.name.lower(): operand_layout(op) for op in Opcode if OPERANDS[op]}
    args = data.UnionLayout(variants)
    return data.StructLayout({"op": OPCODE_BITS, "args": args,
                              "_pad": INSTR_BITS - OPCODE_BITS - args.size})


class FieldView:
    """Attribute access to one opcode's operand fields as plain Amaranth values (what the
    kernel geometry and the micro-op generators compute with)."""

    def __init__(self, view):
        self._view = view

    def __getattr__(self, name):
        value = getattr(self._view, name)
        return value.as_value() if hasattr(value, "as_value") else value
