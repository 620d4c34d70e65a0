"""The GEMM engine: blocked rank-1 updates with C in/out and the next panel's B overlapped.

It runs the schedule :func:`~caterpillar.contract.geometry.gemm_schedule` defines: a prologue,
then one phase per (A block, B panel, row group) and an epilogue. A phase runs a compute loop
(``K`` steps of ``Lacc`` row-interleaved rank-1 updates, A broadcast on the row buses) beside a
task list on the SPAD port: idle, C rows out (previous phase), C rows in (next phase), the next
B panel, two guard cycles. In a block's first panel the A values stream from the SPAD onto the
row buses (and into MemA) during the compute, so the task list follows it.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from caterpillar.contract.geometry import cdiv, log2
from caterpillar.contract.isa import Opcode
from caterpillar.rtl.instruction import operand_layout
from caterpillar.rtl.microop import (
    NO_LIMIT,
    ASrc,
    BSrc,
    BusSrc,
    CSrc,
    Drive,
    Dst,
    FuOp,
    Select,
    XferKind,
    compute_layout,
    transfer_layout,
)

__all__ = ["GemmEngine"]

# The task list of a phase, in order (absent tasks are skipped); _START is "not chosen yet".
_IDLE, _COUT, _CIN, _BNEXT, _GUARD, _NONE = range(6)
_START = 7
_PROLOGUE, _PHASE, _EPILOGUE = range(3)


class _Phase:
    """Registers naming one phase."""

    NAMES = ("valid", "block", "panel", "group", "row0", "n0", "bank", "buf")

    def __init__(self, prefix):
        for name in self.NAMES:
            width = 1 if name in ("valid", "bank", "buf") else 16
            setattr(self, name, Signal(width, name=f"{prefix}_{name}"))

    def eq(self, values):
        """Assign from another phase or from a dict of values."""
        get = values.get if isinstance(values, dict) else lambda n: getattr(values, n)
        return [getattr(self, n).eq(get(n)) for n in self.NAMES]


class GemmEngine(wiring.Component):
    """Micro-op generator of ``gemm`` (:func:`~caterpillar.contract.geometry.gemm_schedule`).

    Contract: a ``start`` pulse, with ``f`` holding checked operands that stay stable, begins
    the prologue in the next cycle; ``busy`` is then high for exactly the schedule's cycles, one
    micro-op cycle each. ``uop`` and ``xfer`` are combinational, valid only while ``busy``.

    Members
    -------
    start : In(1)
    f : In(operand_layout(Opcode.GEMM))
    busy : Out(1)
    last : Out(1)
        High in the last busy cycle.
    uop : Out(compute_layout(cfg))
    xfer : Out(transfer_layout(cfg))
    """

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({
            "start": In(1), "f": In(operand_layout(Opcode.GEMM)), "busy": Out(1),
            "last": Out(1), "uop": Out(compute_layout(cfg)), "xfer": Out(transfer_layout(cfg)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, f = self.cfg, self.f
        nr, lanes, wb = cfg.nr, cfg.acc_lanes, cfg.write_back_latency
        s, s_lanes = log2(nr), log2(lanes)
        group_rows = nr * lanes
        u, x = self.uop, self.xfer
        # Every bit of both outputs is driven (undriven output bits are X in Verilog).
        m.d.comb += [
            u.eq(compute_layout(cfg).const({
                "row_lim": NO_LIMIT, "col_lim": NO_LIMIT, "k_lim": NO_LIMIT,
                "a": ASrc.NEGZERO, "b": BSrc.ONE, "c": CSrc.NEGZERO})),
            x.eq(transfer_layout(cfg).const({})),
        ]

        k, rows, cols, mc = f.k, f.m, f.n, f.mc
        panels = cdiv(cols, nr)
        lda_local = cdiv(k, nr)
        compute_cycles = k << s_lanes

        def following(src) -> dict:
            """Return the phase after ``src`` (``valid`` 0 when there is none)."""
            remaining = rows - src.block * mc
            groups = Mux(remaining >= mc, mc >> log2(group_rows), cdiv(remaining, group_rows))
            last_group = src.group == groups - 1
            last_panel = src.panel == panels - 1
            more_rows = (src.block + 1) * mc < rows
            return {
                "valid": src.valid & ~(last_group & last_panel & ~more_rows),
                "group": Mux(last_group, 0, src.group + 1),
                "panel": Mux(last_group, Mux(last_panel, 0, src.panel + 1), src.panel),
                "block": Mux(last_group & last_panel, src.block + 1, src.block),
                "row0": Mux(last_group, Mux(last_panel, (src.block + 1) * mc, src.block * mc),
                            src.row0 + group_rows),
                "n0": Mux(last_group, Mux(last_panel, 0, src.n0 + nr), src.n0),
                "bank": ~src.bank,
                "buf": Mux(last_group, ~src.buf, src.buf),
            }

        prev, cur, nxt = _Phase("prev"), _Phase("cur"), _Phase("next")
        context = Signal(2)
        astream = cur.panel == 0

        # The B panel a phase loads: the next panel of cur (or cur's own, in the prologue).
        last_panel = cur.panel == panels - 1
        has_bnext = (cur.group == 0) & (~last_panel | ((cur.block + 1) * mc < rows))
        b_n0 = Mux(context == _PROLOGUE, cur.n0, Mux(last_panel, 0, cur.n0 + nr))
        b_buf = Mux(context == _PROLOGUE, cur.buf, ~cur.buf)
        cin = {n: Mux(context == _PROLOGUE, getattr(cur, n), getattr(nxt, n))
               for n in ("row0", "n0", "bank")}

        # -- task runner -------------------------------------------------------------------
        idle_cycles = Mux(context == _EPILOGUE, wb,
                          Mux(context == _PROLOGUE, 0,
                              Mux(astream, Mux(compute_cycles < wb, wb - compute_cycles, 0),
                                  wb)))
        present = Signal(5)
        m.d.comb += present.eq(Cat(
            idle_cycles != 0,
            (context != _PROLOGUE) & prev.valid,
            f.accumulate & Mux(context == _PROLOGUE, 1, (context == _PHASE) & nxt.valid),
            Mux(context == _PROLOGUE, 1, (context == _PHASE) & has_bnext),
            context != _EPILOGUE,
        ))

        def first_present_after(t):
            result = _NONE
            for index in reversed(range(5)):
                result = Mux((t < index) & present[index], index, result)
            return result

        task_reg = Signal(range(_START + 1))
        task = Signal(range(_START + 1))
        m.d.comb += task.eq(Mux(task_reg == _START, first_present_after(-1), task_reg))
        count = Signal(17)
        running = Signal()
        tasks_over = Signal()
        task_len = Mux(task == _IDLE, idle_cycles,
                       Mux(task == _BNEXT, k, Mux(task == _GUARD, 2, group_rows)))
        task_end = running & (count == task_len - 1)
        task_last = task_end & (first_present_after(task) == _NONE)

        # -- compute loop ------------------------------------------------------------------
        p = Signal(16)
        lane = Signal(s_lanes)
        computing = Signal()
        compute_over = Signal()
        compute_last = computing & (p == k - 1) & (lane == lanes - 1)

        # -- micro-ops -----------------------------------------------------------------------
        with m.If(computing):
            addr = ((cur.group << s_lanes) + lane) * lda_local + (p >> s)
            row = cur.row0 + (lane << s)
            slot = Cat(lane, cur.bank)
            step_col = p[:s]
            m.d.comb += [
                u.valid.eq(1), u.fu.eq(FuOp.MAC), u.a.eq(ASrc.ROWBUS),
                u.row_drive.eq(Mux(astream, Drive.NONE, Drive.SEL)), u.drive_sel.eq(step_col),
                u.bus_src.eq(BusSrc.MEMA), u.mema.eq(addr),
                u.b.eq(BSrc.MEMB0), u.memb_rd.eq(Mux(cur.buf, k, 0) + p),
                u.c.eq(Mux((p == 0) & ~f.accumulate, CSrc.NEGZERO, CSrc.ACC)),
                u.acc_rd.eq(slot), u.acc_wr.eq(slot), u.dst.eq(Dst.ACC),
                u.select.eq(Select.ALL), u.row_base.eq(row), u.row_lim.eq(rows),
                u.col_base.eq(cur.n0), u.col_lim.eq(cols),
            ]
            with m.If(astream):
                m.d.comb += [
                    x.valid.eq(1), x.col_bus.eq(0),
                    x.spad_row.eq((f.a + p * f.lda + row) >> s),
                    x.lanes.eq(Cat(*[(row + i) < rows for i in range(nr)])),
                    x.target.eq(Select.COL), x.sel.eq(step_col),
                    x.kind.eq(XferKind.MEMA), x.addr.eq(addr),
                ]
        with m.If(running):
            out = task == _COUT
            c_row = Mux(out, prev.row0, cin["row0"]) + count
            c_n0 = Mux(out, prev.n0, cin["n0"])
            c_bank = Mux(out, prev.bank, cin["bank"])
            with m.Switch(task):
                with m.Case(_COUT, _CIN):
                    m.d.comb += [
                        x.valid.eq(1), x.store.eq(out), x.col_bus.eq(1),
                        x.spad_row.eq((f.c + c_row * f.ldc + c_n0) >> s),
                        x.lanes.eq(Cat(*[((c_n0 + i) < cols) & (c_row < rows)
                                         for i in range(nr)])),
                        x.target.eq(Select.ROW), x.sel.eq(count[:s]),
                        x.kind.eq(XferKind.ACC), x.addr.eq(Cat(count[s:s + s_lanes], c_bank)),
                    ]
                with m.Case(_BNEXT):
                    m.d.comb += [
                        x.valid.eq(1), x.col_bus.eq(1),
                        x.spad_row.eq((f.b + count * f.ldb + b_n0) >> s),
                        x.lanes.eq(Cat(*[(b_n0 + i) < cols for i in range(nr)])),
                        x.target.eq(Select.ALL), x.kind.eq(XferKind.MEMB),
                        x.addr.eq(Mux(b_buf, k, 0) + count),
                    ]

        # -- sequencing ----------------------------------------------------------------------
        begin_tasks = [task_reg.eq(_START), count.eq(0), running.eq(1), tasks_over.eq(0)]
        hold_tasks = [running.eq(0), tasks_over.eq(0)]
        begin_compute = [p.eq(0), lane.eq(0), computing.eq(1), compute_over.eq(0)]

        with m.If(running):
            with m.If(task_end):
                after = first_present_after(task)
                m.d.sync += [task_reg.eq(after), count.eq(0)]
                with m.If(after == _NONE):
                    m.d.sync += [running.eq(0), tasks_over.eq(1)]
            with m.Else():
                m.d.sync += [task_reg.eq(task), count.eq(count + 1)]
        with m.If(computing):
            m.d.sync += lane.eq(lane + 1)
            with m.If(lane == lanes - 1):
                m.d.sync += p.eq(p + 1)
            with m.If(compute_last):
                m.d.sync += [computing.eq(0), compute_over.eq(1)]
                with m.If(astream):
                    m.d.sync += begin_tasks

        phase_done = (compute_over | compute_last) & (tasks_over | task_last)
        with m.FSM(name="gemm"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [*cur.eq({"valid": 1, "block": 0, "panel": 0, "group": 0,
                                          "row0": 0, "n0": 0, "bank": 0, "buf": 0}),
                                 prev.valid.eq(0), context.eq(_PROLOGUE), computing.eq(0),
                                 compute_over.eq(0), *begin_tasks]
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += self.busy.eq(1)
                with m.If((context == _PROLOGUE) & task_last):
                    # Phase 0 (a first panel: its tasks follow its compute).
                    m.d.sync += [context.eq(_PHASE), *nxt.eq(following(cur)), *begin_compute,
                                 *hold_tasks]
                with m.Elif((context == _PHASE) & phase_done):
                    m.d.sync += prev.eq(cur)
                    with m.If(nxt.valid):
                        m.d.sync += [*cur.eq(nxt), *nxt.eq(following(nxt)), *begin_compute]
                        with m.If(nxt.panel == 0):
                            m.d.sync += hold_tasks
                        with m.Else():
                            m.d.sync += begin_tasks
                    with m.Else():
                        m.d.sync += [context.eq(_EPILOGUE), *begin_tasks]
                with m.Elif((context == _EPILOGUE) & task_last):
                    m.d.comb += self.last.eq(1)
                    m.next = "IDLE"
        return m
