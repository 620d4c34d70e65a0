"""Micro-ops: the per-cycle control the sequencer broadcasts to every PE.

A cycle carries one :func:`compute_layout` micro-op (an operation on the PEs' MAC path) and one
:func:`transfer_layout` micro-op (a SPAD row moving over the row or column buses). Each PE
decodes both against its own ``(row, col)``; docs/architecture.md section 2 gives the timing.
"""

from __future__ import annotations

from amaranth.lib import data, enum

__all__ = [
    "FuOp", "ASrc", "BSrc", "CSrc", "Dst", "Fill", "BusSrc", "Select", "Drive", "Chain",
    "KDim", "XferKind", "compute_layout", "transfer_layout", "NO_LIMIT",
]

#: A bound that every index satisfies.
NO_LIMIT = 0xFFFF


class FuOp(enum.Enum, shape=3):
    """What the PE computes from ``a``, ``b``, ``c`` (all widened to the accumulator format)."""

    MAC = 0     # c + round(a * b)
    MAX = 1     # maximum(a, b)
    MIN = 2     # minimum(a, b)
    SCALE = 3   # a * 2**n, n = the signed low bits of c's bit pattern
    MOVE = 4    # a, unchanged
    GTSEL = 5   # b if a > 0 else +0
    RSEED = 6   # bit pattern K - bits(c): a reciprocal estimate of c (golden.numerics)
    MAXC = 7    # maximum(c, a)


class ASrc(enum.Enum, shape=3):
    """Multiplier operand ``a`` (operand format). ``MEMB0``/``MEMB1``: MemB read port 0 at
    ``memb_rd`` or port 1 at ``memb_rd2``."""

    MEMA = 0
    MEMB0 = 1
    MEMB1 = 2
    ROWBUS = 3
    COLBUS = 4
    ACC = 5      # accumulator slot ``acc_op``, rounded to the operand format
    SCALAR = 6
    NEGZERO = 7


class BSrc(enum.Enum, shape=3):
    """Multiplier operand ``b`` (operand format)."""

    MEMA = 0
    MEMB0 = 1
    MEMB1 = 2
    ROWBUS = 3
    COLBUS = 4
    ACC = 5
    SCALAR = 6
    ONE = 7


class CSrc(enum.Enum, shape=4):
    """Addend ``c`` (accumulator format), read at adder entry (``ACC``, links) or at issue."""

    NEGZERO = 0
    ACC = 1      # accumulator slot ``acc_rd``
    LINK_W = 2   # the west neighbour's east link register
    LINK_N = 3   # the north neighbour's south link register
    MEMA = 4
    MEMB0 = 5
    MEMB1 = 6
    SCALAR = 7
    SCALAR2 = 8  # the second immediate, ``scalar2``


class Dst(enum.Enum, shape=3):
    """Where the result goes at write-back."""

    NONE = 0
    ACC = 1      # accumulator slot ``acc_wr``
    MEMA = 2     # MemA at ``mema`` (rounded to the operand format)
    MEMB = 3     # MemB (write port 0) at ``memb_wr`` (rounded to the operand format)
    LINK_E = 4
    LINK_S = 5
    MEMA_ACC = 6  # both MemA at ``mema`` (rounded) and accumulator slot ``acc_wr`` (unrounded)


class Fill(enum.Enum, shape=2):
    """A word a micro-op reads at issue that also goes, widened, into accumulator slot
    ``fill_slot`` one cycle later, beside the MAC path (no FPU cycle).

    ``MEMA``: the MemA word at ``mema`` (the same read as ``a = MEMA``), where the micro-op is
    active and inside its reduction bound; ``MEMB1``: the MemB word at ``memb_rd2`` (read port
    1), in every PE whenever the micro-op is valid, whether or not it is active.
    """

    NONE = 0
    MEMA = 1
    MEMB1 = 2


class BusSrc(enum.Enum, shape=2):
    """What a PE driving a bus puts on it."""

    MEMA = 0
    MEMB0 = 1    # MemB read port 0 at ``memb_rd``
    ACC = 2      # accumulator slot ``acc_op``, rounded to the operand format


class Select(enum.Enum, shape=3):
    """Which PEs execute (write back) a compute micro-op."""

    ALL = 0
    DIAG = 1
    ONE = 2      # PE(sel_row, sel_col)
    ROW = 3      # row sel_row
    COL = 4      # column sel_col
    NONE = 5


class Drive(enum.Enum, shape=2):
    """Which PE of each row (column) drives its row (column) bus."""

    NONE = 0
    SEL = 1      # the PE in column ``drive_sel`` (row ``drive_sel`` for column buses)
    DIAG = 2     # the diagonal PE


class Chain(enum.Enum, shape=2):
    """Skewed reduction chains: the PE at chain position ``q`` works on ``chain_idx - q * D``.

    Position 0 takes its addend from the micro-op's ``c``; later positions from the link of
    the previous position; the last (diagonal) position writes ``dst``, the others their link.
    """

    NONE = 0
    ROW = 1      # east links; positions q = (col - row - 1) mod nr, the diagonal last
    COL = 2      # south links; positions q = (row - col - 1) mod nr, the diagonal last


class KDim(enum.Enum, shape=2):
    """Which PE coordinate indexes the reduction dimension for the ``k`` bound."""

    NONE = 0
    COL = 1
    ROW = 2


class XferKind(enum.Enum, shape=2):
    """The PE storage a transfer reads or writes."""

    MEMA = 0
    MEMB = 1
    ACC = 2


def compute_layout(cfg) -> data.StructLayout:
    """Return the compute micro-op layout for config ``cfg``.

    Fields: ``valid``; ``fu``; sources ``a``, ``b``, ``c``; ``dst``; addresses ``mema`` (read at
    issue and, for ``dst=MEMA``, written at write-back), ``memb_rd`` and ``memb_rd2`` (MemB read
    ports 0 and 1), ``memb_wr``; accumulator
    slots ``acc_op`` (operand and bus source, read at issue), ``acc_rd`` (addend, read at adder
    entry) and ``acc_wr``; a side fill of slot ``fill_slot`` (:class:`Fill`); ``scalar`` (an operand
    format bit pattern); the write predicate ``select`` with ``sel_row``/``sel_col`` and the
    bounds ``row_base + row < row_lim``, ``col_base + col < col_lim``; the reduction bound
    ``k_base + coordinate < k_lim`` (when false the product is replaced by ``-0``, so ``c``
    passes through); bus driving; and chain skewing (``chain_idx``, ``chain_len``).
    """
    coord = max(1, (cfg.nr - 1).bit_length())
    slot = max(1, (cfg.acc_slots - 1).bit_length())
    return data.StructLayout({
        "valid": 1, "fu": FuOp, "a": ASrc, "b": BSrc, "c": CSrc, "dst": Dst,
        "mema": cfg.mema_addr_width, "memb_rd": cfg.memb_addr_width,
        "memb_rd2": cfg.memb_addr_width, "memb_wr": cfg.memb_addr_width,
        "acc_op": slot, "acc_rd": slot, "acc_wr": slot, "fill": Fill, "fill_slot": slot,
        "scalar": cfg.word_width, "scalar2": cfg.word_width,
        "select": Select, "sel_row": coord, "sel_col": coord,
        "row_base": 16, "row_lim": 16, "col_base": 16, "col_lim": 16,
        "kdim": KDim, "k_base": 16, "k_lim": 16,
        "row_drive": Drive, "col_drive": Drive, "drive_sel": coord, "bus_src": BusSrc,
        "chain": Chain, "chain_idx": 16, "chain_len": 16,
    })


def transfer_layout(cfg) -> data.StructLayout:
    """Return the transfer micro-op layout for config ``cfg``.

    A load moves SPAD row ``spad_row`` onto the buses (lane ``k`` on row or column bus ``k``)
    and the targeted PEs write it into ``kind`` at ``addr`` (MemB through write port 1); a
    store has the targeted PE of each bus drive ``kind`` at ``addr`` (MemB through read port 0)
    and writes the lanes in ``lanes`` of SPAD row ``spad_row``. Targets (``Select``): ``ALL``
    PEs on each bus, ``ROW``/``COL`` the PE whose row/column is ``sel``, or ``DIAG``. A
    ``sequencer`` store writes ``data`` (from the sequencer, e.g. a counter) instead of the
    buses; a ``relu`` store writes ``max(v, +0)`` of every bus value ``v`` (operand format).
    """
    coord = max(1, (cfg.nr - 1).bit_length())
    return data.StructLayout({
        "valid": 1, "store": 1, "col_bus": 1, "spad_row": cfg.spad_row_width,
        "lanes": cfg.nr, "target": Select, "sel": coord, "kind": XferKind,
        "addr": max(cfg.mema_addr_width, cfg.memb_addr_width),
        "sequencer": 1, "data": cfg.word_width, "relu": 1,
    })
