"""The GEMM engine: blocked rank-1 updates with C in/out and the next panel's B overlapped.

It runs the schedule :func:`~caterpillar.contract.geometry.gemm_schedule` defines: a prologue,
then one phase per (A block, B panel, row group) and an epilogue. A phase runs a compute loop
(``K`` steps of ``Lacc`` row-interleaved rank-1 updates, A broadcast on the row buses) beside a
task list on the SPAD port: idle, C rows out (previous phase), C rows in (next phase), the next
B panel, two guard cycles. In a block's first panel the A values stream from the SPAD onto the
row buses (and into MemA's tile at ``mema``) during the compute, so the task list follows it;
with ``a_mema`` A is in MemA already (one block, its tile at ``mema``), and every panel reads it
there. With ``a_rows`` (A row-major in the SPAD) a first panel's phase loads its rows into the
tile, a SPAD row per cycle, and computes from the tile
:func:`~caterpillar.contract.geometry.gemm_a_rows_lead` cycles behind the load; its task list
follows the load.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out

from caterpillar.contract.geometry import cdiv, gemm_a_rows_lead, log2
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



class Task(enum.Enum, shape=3):
    """The SPAD-port tasks of a phase, in the order they run (absent ones are skipped)."""

    IDLE = 0     # wait until the compute's first results can be read
    COUT = 1     # C rows of the previous phase out to the SPAD
    CIN = 2      # C rows of the next phase in from the SPAD (accumulate)
    BNEXT = 3    # the next B panel into MemB
    GUARD = 4    # two cycles between the port's users
    NONE = 5     # no task left
    START = 7    # the list has just begun: the first present task is still to be chosen


#: The tasks that can be present, in order; bit ``i`` of ``present`` is ``_ORDER[i]``.
_ORDER = (Task.IDLE, Task.COUT, Task.CIN, Task.BNEXT, Task.GUARD)


class Context(enum.Enum, shape=2):
    """Which part of the schedule runs."""

    PROLOGUE = 0
    PHASE = 1
    EPILOGUE = 2


class _Phase:
    """Registers naming one phase."""

    NAMES = ("valid", "block_row", "panel", "group", "row0", "n0", "bank", "buf")

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
        cfg, u, x = self.cfg, self.uop, self.xfer
        # Every bit of both outputs is driven (undriven output bits are X in Verilog).
        m.d.comb += [
            u.eq(compute_layout(cfg).const({
                "row_lim": NO_LIMIT, "col_lim": NO_LIMIT, "k_lim": NO_LIMIT,
                "a": ASrc.NEGZERO, "b": BSrc.ONE, "c": CSrc.NEGZERO})),
            x.eq(transfer_layout(cfg).const({})),
        ]
        g = self._phases(m)
        self._task_runner(m, g)
        self._compute_loop(g)
        self._micro_ops(m, g)
        self._sequencing(m, g)
        return m

    def _phases(self, m) -> SimpleNamespace:
        """The shape's quantities and the registers of the previous, current and next phase.

        The quantities the control compares against (the last panel, the last ``k`` step, the
        idle cycles of an A-streaming phase) are registered from ``f``: it is stable from
        ``start`` on, so they hold from the first busy cycle, and their arithmetic is not on
        the paths through the task list.
        """
        cfg, f = self.cfg, self.f
        nr, lanes, wb = cfg.nr, cfg.acc_lanes, cfg.write_back_latency
        g = SimpleNamespace(nr=nr, lanes=lanes, s=log2(nr), s_lanes=log2(lanes),
                            group_rows=nr * lanes, k=f.k, rows=f.m, cols=f.n, mc=f.mc,
                            lda_local=cdiv(f.k, nr))
        compute_cycles = f.k << log2(lanes)
        # a_rows: a first panel's load takes ceil(K / nr) k-blocks of nr Lacc cycles; the
        # loader counter runs until both the load and the lead to the compute have passed.
        load_cycles = cdiv(f.k, nr) << log2(nr * lanes)
        lead = gemm_a_rows_lead(cfg)
        g.last_panel_index = Signal(16)
        g.last_k = Signal(16)
        g.astream_idle = Signal(range(wb + 1))
        g.last_load = Signal(18 + g.s_lanes)
        g.last_loader = Signal(18 + g.s_lanes)
        m.d.sync += [g.last_panel_index.eq(cdiv(f.n, nr) - 1), g.last_k.eq(f.k - 1),
                     g.astream_idle.eq(Mux(f.a_rows, Mux(load_cycles < wb, wb - load_cycles, 0),
                                           Mux(compute_cycles < wb, wb - compute_cycles, 0))),
                     g.last_load.eq(load_cycles - 1),
                     g.last_loader.eq(Mux(load_cycles < lead, lead, load_cycles) - 1)]
        g.lead = lead
        g.prev, g.cur, g.nxt = _Phase("prev"), _Phase("cur"), _Phase("next")
        g.context = context = Signal(Context)
        cur = g.cur
        g.astream = (cur.panel == 0) & ~f.a_mema
        g.abus = g.astream & ~f.a_rows     # A on the row buses from the SPAD, as it streams
        # The B panel a phase loads: the next panel of cur (or cur's own, in the prologue).
        last_panel = cur.panel == g.last_panel_index
        g.has_bnext = (cur.group == 0) & (~last_panel | (cur.block_row + g.mc < g.rows))
        g.b_n0 = Mux(context == Context.PROLOGUE, cur.n0, Mux(last_panel, 0, cur.n0 + nr))
        g.b_buf = Mux(context == Context.PROLOGUE, cur.buf, ~cur.buf)
        g.cin = {n: Mux(context == Context.PROLOGUE, getattr(cur, n), getattr(g.nxt, n))
                 for n in ("row0", "n0", "bank")}
        return g

    @staticmethod
    def _following(g, src) -> dict:
        """Return the phase after ``src`` (``valid`` 0 when there is none).

        A phase holds its block's first row (``block_row``, a running sum of ``mc``) rather than
        the block's index, so that no multiplier lies on the phase-to-phase path.
        """
        rows, mc, group_rows = g.rows, g.mc, g.group_rows
        next_block_row = src.block_row + mc
        remaining = rows - src.block_row
        groups = Mux(remaining >= mc, mc >> log2(group_rows), cdiv(remaining, group_rows))
        last_group = src.group == groups - 1
        last_panel = src.panel == g.last_panel_index
        more_rows = next_block_row < rows
        return {
            "valid": src.valid & ~(last_group & last_panel & ~more_rows),
            "group": Mux(last_group, 0, src.group + 1),
            "panel": Mux(last_group, Mux(last_panel, 0, src.panel + 1), src.panel),
            "block_row": Mux(last_group & last_panel, next_block_row, src.block_row),
            "row0": Mux(last_group, Mux(last_panel, next_block_row, src.block_row),
                        src.row0 + group_rows),
            "n0": Mux(last_group, Mux(last_panel, 0, src.n0 + g.nr), src.n0),
            "bank": ~src.bank,
            "buf": Mux(last_group, ~src.buf, src.buf),
        }

    def _task_runner(self, m, g) -> None:
        """The SPAD port's task list: which tasks a phase has, the running one, its end."""
        wb, context = self.cfg.write_back_latency, g.context
        idle_cycles = Mux(context == Context.EPILOGUE, wb,
                          Mux(context == Context.PROLOGUE, 0, Mux(g.astream, g.astream_idle, wb)))
        present = Signal(5)
        m.d.comb += present.eq(Cat(
            idle_cycles != 0,
            (context != Context.PROLOGUE) & g.prev.valid,
            self.f.accumulate & Mux(context == Context.PROLOGUE, 1,
                                    (context == Context.PHASE) & g.nxt.valid),
            Mux(context == Context.PROLOGUE, 1, (context == Context.PHASE) & g.has_bnext),
            context != Context.EPILOGUE,
        ))

        def first_present_after(after):
            """The first present task after ``after`` (a task signal; None: the first)."""
            result = Task.NONE
            for index in reversed(range(len(_ORDER))):
                if after is None:
                    later = present[index]
                elif index == 0:
                    continue                    # no task comes before the first
                else:
                    later = (after.as_value() < index) & present[index]
                result = Mux(later, _ORDER[index], result)
            return result

        g.first_present_after = first_present_after
        g.task_reg = task_reg = Signal(Task)
        g.task = task = Signal(Task)
        m.d.comb += task.eq(Mux(task_reg == Task.START, first_present_after(None), task_reg))
        g.count = Signal(17)
        g.running = Signal()
        g.tasks_over = Signal()
        last_count = Mux(task == Task.IDLE, idle_cycles - 1,
                         Mux(task == Task.BNEXT, g.last_k,
                             Mux(task == Task.GUARD, 1, g.group_rows - 1)))
        g.task_end = g.running & (g.count == last_count)
        g.task_last = g.task_end & (first_present_after(task) == Task.NONE)

    @staticmethod
    def _compute_loop(g) -> None:
        """The rank-1 updates of a phase: step ``p`` of ``K``, lane of ``Lacc``."""
        g.p = Signal(16)
        g.lane = Signal(g.s_lanes)
        g.computing = Signal()
        g.compute_over = Signal()
        g.compute_last = g.computing & (g.p == g.last_k) & (g.lane == g.lanes - 1)
        # a_rows: the load of a first panel's A rows (item t: k-block, PE row, lane).
        g.t = Signal(18 + g.s_lanes)
        g.loading = Signal()

    def _micro_ops(self, m, g) -> None:
        """The compute micro-op of each compute cycle; the transfer of each task cycle."""
        f, u, x = self.f, self.uop, self.xfer
        s, s_lanes, nr, cur, p = g.s, g.s_lanes, g.nr, g.cur, g.p
        with m.If(g.computing):
            addr = f.mema + ((cur.group << s_lanes) + g.lane) * g.lda_local + (p >> s)
            row = cur.row0 + (g.lane << s)
            slot = Cat(g.lane, cur.bank)
            step_col = p[:s]
            m.d.comb += [
                u.valid.eq(1), u.fu.eq(FuOp.MAC), u.a.eq(ASrc.ROWBUS),
                u.row_drive.eq(Mux(g.abus, Drive.NONE, Drive.SEL)),
                u.drive_sel.eq(step_col), u.bus_src.eq(BusSrc.MEMA), u.mema.eq(addr),
                u.b.eq(BSrc.MEMB0), u.memb_rd.eq(Mux(cur.buf, g.k, 0) + p),
                u.c.eq(Mux((p == 0) & ~f.accumulate, CSrc.NEGZERO, CSrc.ACC)),
                u.acc_rd.eq(slot), u.acc_wr.eq(slot), u.dst.eq(Dst.ACC),
                u.select.eq(Select.ALL), u.row_base.eq(row), u.row_lim.eq(g.rows),
                u.col_base.eq(cur.n0), u.col_lim.eq(g.cols),
            ]
            with m.If(g.abus):
                m.d.comb += [
                    x.valid.eq(1), x.col_bus.eq(0),
                    x.spad_row.eq((f.a + p * f.lda + row) >> s),
                    x.lanes.eq(Cat(*[(row + i) < g.rows for i in range(nr)])),
                    x.target.eq(Select.COL), x.sel.eq(step_col),
                    x.kind.eq(XferKind.MEMA), x.addr.eq(addr),
                ]
        with m.If(g.loading & (g.t <= g.last_load)):
            # Item t: A row row0 + lane nr + i, k-block kb, into PE row i's tile (the
            # compute's address of that lane and k-block), as lda without trans loads it.
            t = g.t
            load_lane, load_row_pe = t[:s_lanes], t[s_lanes:s_lanes + s]
            kb = t[s_lanes + s:]
            row = cur.row0 + Cat(load_row_pe, load_lane)
            m.d.comb += [
                x.valid.eq(row < g.rows), x.col_bus.eq(1),
                x.spad_row.eq(((f.a + row * f.lda) >> s) + kb),
                x.lanes.eq(Cat(*[Cat(Const(i, s), kb) < g.k for i in range(nr)])),
                x.target.eq(Select.ROW), x.sel.eq(load_row_pe), x.kind.eq(XferKind.MEMA),
                x.addr.eq(f.mema + ((cur.group << s_lanes) + load_lane) * g.lda_local + kb),
            ]
        with m.If(g.running):
            task, count, prev, cin = g.task, g.count, g.prev, g.cin
            out = task == Task.COUT

            def c_spad_row(row0, n0):
                return (f.c + (row0 + count) * f.ldc + n0) >> s

            # Both rows' addresses, then the task's choice: the multiplier is not behind the
            # task-list logic.
            out_row, in_row = c_spad_row(prev.row0, prev.n0), c_spad_row(cin["row0"], cin["n0"])
            c_row = Mux(out, prev.row0, cin["row0"]) + count
            c_n0 = Mux(out, prev.n0, cin["n0"])
            c_bank = Mux(out, prev.bank, cin["bank"])
            with m.Switch(task):
                with m.Case(Task.COUT, Task.CIN):
                    m.d.comb += [
                        x.valid.eq(1), x.store.eq(out), x.col_bus.eq(1), x.relu.eq(f.relu & out),
                        x.spad_row.eq(Mux(out, out_row, in_row)),
                        x.lanes.eq(Cat(*[((c_n0 + i) < g.cols) & (c_row < g.rows)
                                         for i in range(nr)])),
                        x.target.eq(Select.ROW), x.sel.eq(count[:s]),
                        x.kind.eq(XferKind.ACC), x.addr.eq(Cat(count[s:s + s_lanes], c_bank)),
                    ]
                with m.Case(Task.BNEXT):
                    m.d.comb += [
                        x.valid.eq(1), x.col_bus.eq(1),
                        x.spad_row.eq((f.b + count * f.ldb + g.b_n0) >> s),
                        x.lanes.eq(Cat(*[(g.b_n0 + i) < g.cols for i in range(nr)])),
                        x.target.eq(Select.ALL), x.kind.eq(XferKind.MEMB),
                        x.addr.eq(Mux(g.b_buf, g.k, 0) + count),
                    ]

    def _sequencing(self, m, g) -> None:
        """The registers' updates: tasks, compute steps, and the phase-to-phase FSM."""
        task, count, running, tasks_over = g.task, g.count, g.running, g.tasks_over
        p, lane, computing, compute_over = g.p, g.lane, g.computing, g.compute_over
        context, prev, cur, nxt = g.context, g.prev, g.cur, g.nxt
        begin_tasks = [g.task_reg.eq(Task.START), count.eq(0), running.eq(1),
                       tasks_over.eq(0)]
        hold_tasks = [running.eq(0), tasks_over.eq(0)]
        begin_compute = [p.eq(0), lane.eq(0), computing.eq(1), compute_over.eq(0)]
        # A phase begins: an a_rows first panel with its load (the compute and the tasks wait
        # for it), another first panel with its compute (the tasks follow it), any other
        # phase with both.
        begin_load = [g.t.eq(0), g.loading.eq(1), computing.eq(0), compute_over.eq(0),
                      *hold_tasks]

        def begin_phase(first_panel):
            with m.If(first_panel & self.f.a_rows):
                m.d.sync += begin_load
            with m.Elif(first_panel):
                m.d.sync += [*begin_compute, *hold_tasks]
            with m.Else():
                m.d.sync += [*begin_compute, *begin_tasks]

        with m.If(g.loading):
            m.d.sync += g.t.eq(g.t + 1)
            with m.If(g.t == g.lead - 1):
                m.d.sync += begin_compute
            with m.If(g.t == g.last_load):
                m.d.sync += begin_tasks
            with m.If(g.t == g.last_loader):
                m.d.sync += g.loading.eq(0)

        with m.If(running):
            with m.If(g.task_end):
                after = g.first_present_after(task)
                m.d.sync += [g.task_reg.eq(after), count.eq(0)]
                with m.If(after == Task.NONE):
                    m.d.sync += [running.eq(0), tasks_over.eq(1)]
            with m.Else():
                m.d.sync += [g.task_reg.eq(task), count.eq(count + 1)]
        with m.If(computing):
            m.d.sync += lane.eq(lane + 1)
            with m.If(lane == g.lanes - 1):
                m.d.sync += p.eq(p + 1)
            with m.If(g.compute_last):
                m.d.sync += [computing.eq(0), compute_over.eq(1)]
                with m.If(g.abus):
                    m.d.sync += begin_tasks

        phase_done = (compute_over | g.compute_last) & (tasks_over | g.task_last)
        with m.FSM(name="gemm"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [*cur.eq({"valid": 1, "block_row": 0, "panel": 0, "group": 0,
                                          "row0": 0, "n0": 0, "bank": 0, "buf": 0}),
                                 prev.valid.eq(0), context.eq(Context.PROLOGUE),
                                 computing.eq(0), compute_over.eq(0), g.loading.eq(0),
                                 *begin_tasks]
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += self.busy.eq(1)
                with m.If((context == Context.PROLOGUE) & g.task_last):
                    # Phase 0 (a first panel: its tasks follow its compute, or with a_rows
                    # its load, unless A is in MemA already).
                    m.d.sync += [context.eq(Context.PHASE), *nxt.eq(self._following(g, cur))]
                    begin_phase(~self.f.a_mema)
                with m.Elif((context == Context.PHASE) & phase_done):
                    m.d.sync += prev.eq(cur)
                    with m.If(nxt.valid):
                        m.d.sync += [*cur.eq(nxt), *nxt.eq(self._following(g, nxt))]
                        begin_phase((nxt.panel == 0) & ~self.f.a_mema)
                    with m.Else():
                        m.d.sync += [context.eq(Context.EPILOGUE), *begin_tasks]
                with m.Elif((context == Context.EPILOGUE) & g.task_last):
                    m.d.comb += self.last.eq(1)
                    m.next = "IDLE"
