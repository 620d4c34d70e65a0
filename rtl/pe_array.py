"""The nr x nr PE array: row and column broadcast buses and the neighbour links."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from caterpillar.rtl.pe import PE
from caterpillar.rtl.ports import ArrayStatus, MicroOps, SpadEdge

__all__ = ["PEArray"]


class PEArray(wiring.Component):
    """``nr x nr`` :class:`~caterpillar.rtl.pe.PE` on broadcast buses, with a SPAD edge port.

    Buses: each row (column) bus carries, in a cycle, the value of its single driver: one PE,
    or SPAD lane ``k`` when ``spad.drive`` puts the SPAD row on the row (``spad.col=0``) or
    column (``spad.col=1``) buses. More than one driver on a bus raises ``hazard``. Links form
    a torus: east from ``(r, c)`` to ``(r, c+1 mod nr)``, south to ``(r+1 mod nr, c)``.
    Purely combinational around the PEs; all latencies are the PEs' (docs/architecture.md).

    Members
    -------
    issue : In(MicroOps(cfg))
    spad : In(SpadEdge(cfg))
        The SPAD row driven onto the buses this cycle, and the bus values (what a store
        writes to the SPAD).
    status : Out(ArrayStatus(cfg))
        ``hazard``, and this cycle's events summed over the PEs (``macs``: MACs with a real
        product issued; ``ops``, MemA and MemB words read and written).
    """

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({"issue": In(MicroOps(cfg)), "spad": In(SpadEdge(cfg)),
                          "status": Out(ArrayStatus(cfg))})

    def elaborate(self, platform):
        m = Module()
        nr = self.cfg.nr
        pes = [[PE(self.cfg, r, c) for c in range(nr)] for r in range(nr)]
        for r in range(nr):
            for c in range(nr):
                pe = pes[r][c]
                m.submodules[f"pe_{r}_{c}"] = pe
                m.d.comb += [
                    pe.uop.eq(self.issue.uop), pe.xfer.eq(self.issue.xfer),
                    pe.row_bus.eq(self.spad.row_bus[r]), pe.col_bus.eq(self.spad.col_bus[c]),
                    pe.link_w.eq(pes[r][(c - 1) % nr].link_e),
                    pe.link_n.eq(pes[(r - 1) % nr][c].link_s),
                ]

        conflicts = []

        def bus(name, lane, drivers, spad_on):
            # drivers: (enable, value) pairs; the SPAD lane is one more. One-hot enables make
            # an AND-OR the multiplexer; a second enable is a conflict.
            value = Signal(self.cfg.word_width, name=name)
            expr_value, seen, conflict = 0, 0, 0
            for enable, v in [*drivers, (spad_on, self.spad.data[lane])]:
                conflict = conflict | (seen & enable)
                seen = seen | enable
                expr_value = expr_value | (enable.replicate(self.cfg.word_width) & v)
            m.d.comb += value.eq(expr_value)
            conflicts.append(conflict)
            return value

        for k in range(nr):
            row_value = bus(f"row_bus_{k}", k,
                            [(pes[k][c].row_drive, pes[k][c].row_out) for c in range(nr)],
                            self.spad.drive & ~self.spad.col)
            col_value = bus(f"col_bus_{k}", k,
                            [(pes[r][k].col_drive, pes[r][k].col_out) for r in range(nr)],
                            self.spad.drive & self.spad.col)
            m.d.comb += [self.spad.row_bus[k].eq(row_value),
                         self.spad.col_bus[k].eq(col_value)]

        every = [pes[r][c] for r in range(nr) for c in range(nr)]
        m.d.comb += self.status.hazard.eq(Cat(*(pe.hazard for pe in every), *conflicts).any())
        for total, event in [("macs", "mac"), ("ops", "op"), ("mema_reads", "mema_read"),
                             ("mema_writes", "mema_write"), ("memb_reads", "memb_reads"),
                             ("memb_writes", "memb_writes")]:
            m.d.comb += getattr(self.status, total).eq(
                _tree_sum([getattr(pe.events, event) for pe in every]))
        return m


def _tree_sum(values):
    """The sum of ``values`` as a balanced tree of adders (depth log2 of their number)."""
    while len(values) > 1:
        values = [a + b for a, b in zip(values[::2], values[1::2])] + values[len(values) & ~1:]
    return values[0]
