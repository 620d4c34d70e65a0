"""Micro-op generators of the macro-instructions (all but GEMM): what each cycle of a
kernel's loop nest issues. The loop nests themselves are in :mod:`.isa_geometry`."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Mux

from caterpillar.contract.geometry import (
    GER_U_SLOTS,
    cpass_fill_cycles,
    cpass_fits,
    ger_issue_run,
    log2,
)
from caterpillar.contract.isa import Layout, Opcode, VecOp
from caterpillar.golden.numerics import exp_constants, from_float
from caterpillar.rtl.microop import (
    ASrc,
    BSrc,
    BusSrc,
    Chain,
    CSrc,
    Drive,
    Dst,
    Fill,
    FuOp,
    KDim,
    Select,
    XferKind,
)

__all__ = ["Emitter", "KERNELS", "kernels_of"]


class Emitter:
    """What a kernel generator sees in one cycle and the micro-op fields it sets.

    ``f``: the instruction's operand fields (registered); ``v``: the kernel plan's values
    (registered); ``seg``: the segment index; ``i``: loop indices ``top``, ``outer``,
    ``middle``, ``inner``; ``last``: whether each index is at its last value.
    """

    def __init__(self, m, cfg, uop, xfer, f, v, seg, i, last):
        self.m, self.cfg, self.f, self.v = m, cfg, f, v
        self._uop, self._xfer = uop, xfer
        self.seg, self.i, self.last = seg, i, last
        self.shift = log2(cfg.nr)

    def uop(self, **fields):
        """Issue a compute micro-op this cycle with ``fields`` (the rest at their defaults)."""
        self.m.d.comb += self._uop.valid.eq(1)
        for name, value in fields.items():
            self.m.d.comb += getattr(self._uop, name).eq(value)

    def xfer(self, **fields):
        """Issue a transfer micro-op this cycle."""
        self.m.d.comb += self._xfer.valid.eq(1)
        for name, value in fields.items():
            self.m.d.comb += getattr(self._xfer, name).eq(value)

    def load_row(self, row, length, col_bus, kind, addr):
        """Load SPAD row ``row`` of the vector at field ``spad`` (``length`` words) into
        ``addr`` of every PE, as LDV loads a replicated layout (``col_bus``: COLREP's bus)."""
        self.xfer(store=0, col_bus=col_bus, spad_row=(self.f.spad >> self.shift) + row,
                  lanes=self.lanes_below(row << self.shift, length), target=Select.ALL, sel=0,
                  kind=kind, addr=addr)

    def lanes_below(self, first, limit):
        """Return the lane mask of elements ``first + k < limit``, ``k`` in ``0..nr-1``."""
        return Cat(*[(first + k) < limit for k in range(self.cfg.nr)])

    def word(self, value: float) -> int:
        """Return the operand-format bit pattern of ``value``."""
        return int(from_float(value, self.cfg.operand))


def _rdcnt(e: Emitter):
    f, cfg = e.f, e.cfg
    w = e.i["inner"]
    address = f.spad + w
    data = (e.v["counter"] >> (w * cfg.word_width))[:cfg.word_width]
    lane = address[:e.shift] if e.shift else 0
    e.xfer(store=1, sequencer=1, spad_row=address >> e.shift,
           lanes=Const(1, cfg.nr) << lane, data=data)


def _ldv_stv(e: Emitter, store: bool):
    f = e.f
    q = e.i["inner"]
    col_bus = f.layout != Layout.ROWREP
    # FULL: SPAD row q to or from PE row q mod nr (a column bus per word), at word q / nr;
    # COLREP with row r + 1: PE row r only.
    full = f.layout == Layout.FULL
    one_row = f.row != 0
    if store:
        target = Mux(f.layout == Layout.DIAG, Select.DIAG,
                     Mux((f.layout == Layout.COLREP) | full, Select.ROW, Select.COL))
    else:
        target = Mux(f.layout == Layout.DIAG, Select.DIAG,
                     Mux(full | one_row, Select.ROW, Select.ALL))
    e.xfer(store=int(store), col_bus=col_bus, spad_row=(f.spad >> e.shift) + q,
           lanes=e.lanes_below(q << e.shift, f.len), target=target,
           sel=Mux(full, q[:e.shift] if e.shift else 0, Mux(one_row, f.row - 1, 0)),
           kind=XferKind.MEMB, addr=f.memb + Mux(full, q >> e.shift, q))


def _lda_sta(e: Emitter, store: bool):
    f = e.f
    j, q = e.i["middle"], e.i["inner"]
    nr_mask = e.cfg.nr - 1
    spad_row = ((f.spad + j * f.lds) >> e.shift) + q
    normal_addr = f.mema + (j >> e.shift) * f.ldm + q
    trans_addr = f.mema + q * f.ldm + (j >> e.shift)
    e.xfer(store=int(store), col_bus=~f.trans, spad_row=spad_row,
           lanes=e.lanes_below(q << e.shift, Mux(f.trans, f.rows, f.cols)),
           target=Mux(f.trans, Select.COL, Select.ROW), sel=j & nr_mask,
           kind=XferKind.MEMA, addr=Mux(f.trans, trans_addr, normal_addr))


def _bcast(e: Emitter):
    f = e.f
    q = e.i["inner"]
    to_cols = f.layout == Layout.COLREP
    e.uop(fu=FuOp.MOVE, a=Mux(to_cols, ASrc.COLBUS, ASrc.ROWBUS), dst=Dst.MEMB,
          col_drive=Mux(to_cols, Drive.DIAG, Drive.NONE),
          row_drive=Mux(to_cols, Drive.NONE, Drive.DIAG), bus_src=BusSrc.MEMB0,
          memb_rd=f.src + q, memb_wr=f.dst + q, select=Select.ALL,
          col_base=Mux(to_cols, q << e.shift, 0), col_lim=Mux(to_cols, f.len, 0xFFFF),
          row_base=Mux(to_cols, 0, q << e.shift), row_lim=Mux(to_cols, 0xFFFF, f.len))


def _gemv(e: Emitter, transposed: bool):
    f, v, m = e.f, e.v, e.m
    lanes = e.cfg.acc_lanes
    with m.If(e.seg == 0):
        g, step, lane = e.i["outer"], e.i["middle"], e.i["inner"]
        red = (step - v["lead"])[:len(step)]
        out = (g << log2(lanes)) | lane
        first, last = red == 0, e.last["middle"]
        with m.If(f.load & (g == 0) & (lane == 0) & (step < v["red_loc"])):
            # The input's SPAD row `step`, as LDV with the input's replicated layout loads it.
            e.load_row(step, f.rows if transposed else f.cols, not transposed, XferKind.MEMB,
                       (f.d if transposed else f.x) + step)
        if transposed:
            # PE(r, c): output column jj = out, reduction over its rows ii = red.
            addr = f.w + red * f.ldw + out
            e.uop(memb_rd=f.d + red, col_base=out << e.shift, col_lim=f.cols,
                  kdim=KDim.ROW, k_base=red << e.shift, k_lim=f.rows)
        else:
            addr = f.w + out * f.ldw + red
            e.uop(memb_rd=f.x + red, row_base=out << e.shift, row_lim=f.rows,
                  kdim=KDim.COL, k_base=red << e.shift, k_lim=f.cols)
        e.uop(fu=FuOp.MAC, a=ASrc.MEMA, b=BSrc.MEMB0, mema=addr,
              c=Mux(first, CSrc.NEGZERO, CSrc.ACC), dst=Mux(last, Dst.MEMB, Dst.ACC),
              acc_rd=lane, acc_wr=lane, memb_wr=f.psum + out, select=Select.ALL)
        with m.If(step < v["lead"]):
            e.uop(select=Select.NONE)
    with m.If(e.seg == 2):
        inner = e.i["inner"]
        e.uop(fu=FuOp.MAC, a=ASrc.MEMB0, b=BSrc.ONE, memb_rd=f.psum,
              memb_wr=f.z if transposed else f.y, dst=Dst.MEMB, select=Select.ALL,
              chain=Chain.COL if transposed else Chain.ROW, chain_idx=inner,
              chain_len=v["out_loc"])
        if transposed:
            e.uop(col_lim=f.cols)
        else:
            e.uop(row_lim=f.rows)
            _store_chain_sums(e, inner, v["out_loc"])


def _store_chain_sums(e: Emitter, inner, out_loc):
    """With ``store`` (GEMV's and CPASS's): the diagonal writes the chain's sum ``q`` into slot
    ``q mod acc_lanes``, and SPAD row ``q`` takes it from there ``write_back_latency`` cycles
    after its chain step issued (the chain runs that much longer: the plans' tail)."""
    f, m, cfg = e.f, e.m, e.cfg
    lanes = cfg.acc_lanes
    last_step = (cfg.nr - 1) * (cfg.add_latency + 1)
    q_sum = (inner - last_step)[:len(inner)]
    q_row = (inner - last_step - cfg.write_back_latency)[:len(inner)]
    with m.If(f.store):
        e.uop(dst=Dst.ACC, acc_wr=q_sum[:log2(lanes)])
        with m.If((inner >= last_step + cfg.write_back_latency) & (q_row < out_loc)):
            e.xfer(store=1, col_bus=1, spad_row=(f.dst >> e.shift) + q_row,
                   lanes=e.lanes_below(q_row << e.shift, f.rows), target=Select.DIAG, sel=0,
                   kind=XferKind.ACC, addr=q_row[:log2(lanes)])


# Steps of the rank-1 update, in order; absent steps are skipped (contract/geometry.py). Without
# weight decay and momentum the update is one MAC per weight with W read at issue (_ACC), one
# per cycle or in runs of issues and idle cycles (_IDLE). With them, where MemA's banks allow,
# W and m are read at issue and m written beside its slot (_WDM, _MOMW, _UPDM); else W is
# loaded into a slot (_LW) and m stored by a move (_MST).
_G, _LW, _WD, _MOM, _UPD, _MST, _ACC, _IDLE, _WDM, _MOMW, _UPDM = range(11)


def _ger_load_u(e: Emitter, row):
    """With load: u's SPAD row ``row`` (if u has it) into accumulator slot ``row mod
    GER_U_SLOTS`` of every PE, as LDV with layout ROWREP would load it into MemB."""
    with e.m.If(row < e.v["m_loc"]):
        e.load_row(row, e.f.rows, 0, XferKind.ACC, row[:log2(GER_U_SLOTS)])


def _ger(e: Emitter):
    m = e.m
    with m.If(e.seg == 0):
        _ger_load_u(e, e.i["inner"])
    with m.If(e.seg == 1):
        _ger_update(e)


def _ger_update(e: Emitter):
    f, m, cfg = e.f, e.m, e.cfg
    lanes, run = cfg.chain_lanes, ger_issue_run(cfg)
    top, jg, step, lane = e.i["top"], e.i["outer"], e.i["middle"], e.i["inner"]
    with m.If(f.load & (jg == 0) & (step == 0) & (lane == 0)):
        _ger_load_u(e, top + e.v["lead"])
    plain = ~f.use_wd & ~f.use_mom
    # Paired (two rows of lanes / 2 weights per step): the lane's top bit picks the row.
    half = log2(lanes) - 1
    paired = e.v["paired"]
    ii = Mux(paired, (top << 1) | lane[half], top)
    jj = Mux(e.v["streams"], jg, Mux(plain, (jg << log2(run)) | lane,
                                     Mux(paired, lane[:half], (jg << log2(lanes)) | lane)))
    # Map the step counter onto the step kinds present for this instruction's flags.
    banked = Mux(step == 0, _G,
                 Mux(step == 1, Mux(f.use_wd, _WDM, Mux(f.use_mom, _MOMW, _UPDM)),
                     Mux((step == 2) & f.use_wd & f.use_mom, _MOMW, _UPDM)))
    slotted = Mux(step < 2, step,
                  Mux(f.use_wd & (step == 2), _WD, Mux(~f.use_mom, _UPD, step - f.use_wd + 1)))
    kind = Mux(plain, Mux(step == 0, _ACC, _IDLE), Mux(e.v["banked"], banked, slotted))
    w_addr = f.w + ii * f.ldw + jj
    mom_addr = f.mom + ii * f.ldw + jj
    w_slot = lanes + lane
    where = dict(select=Select.ALL, row_base=ii << e.shift, row_lim=f.rows,
                 col_base=jj << e.shift, col_lim=f.cols)
    with m.Switch(kind):
        with m.Case(_G):
            e.uop(**where, fu=FuOp.MAC, c=CSrc.NEGZERO, a=ASrc.MEMB0, b=BSrc.MEMB1,
                  memb_rd=f.u + ii, memb_rd2=f.v + jj, dst=Dst.ACC, acc_wr=lane)
        with m.Case(_LW):
            e.uop(**where, fu=FuOp.MOVE, a=ASrc.MEMA, mema=w_addr, dst=Dst.ACC, acc_wr=w_slot)
        with m.Case(_WD):
            e.uop(**where, fu=FuOp.MAC, c=CSrc.ACC, acc_rd=lane, a=ASrc.SCALAR,
                  scalar=e.v["wd"], b=BSrc.ACC, acc_op=w_slot, dst=Dst.ACC, acc_wr=lane)
        with m.Case(_MOM):
            e.uop(**where, fu=FuOp.MAC, c=CSrc.ACC, acc_rd=lane, a=ASrc.SCALAR,
                  scalar=e.v["mu"], b=BSrc.MEMA, mema=mom_addr, dst=Dst.ACC, acc_wr=lane)
        with m.Case(_UPD):
            e.uop(**where, fu=FuOp.MAC, c=CSrc.ACC, acc_rd=w_slot, a=ASrc.SCALAR,
                  scalar=e.v["alpha"], b=BSrc.ACC, acc_op=lane, dst=Dst.MEMA, mema=w_addr)
        with m.Case(_MST):
            e.uop(**where, fu=FuOp.MOVE, a=ASrc.ACC, acc_op=lane, dst=Dst.MEMA,
                  mema=mom_addr)
        with m.Case(_ACC):
            # With load, u's word is in its accumulator slot (read at t + 1, as MemB's).
            e.uop(**where, fu=FuOp.MAC, c=CSrc.MEMA, a=Mux(f.load, ASrc.ACC, ASrc.MEMB0),
                  acc_op=ii[:log2(GER_U_SLOTS)], b=BSrc.MEMB1, memb_rd=f.u + ii,
                  memb_rd2=f.v + jj, dst=Dst.MEMA, mema=w_addr)
        with m.Case(_WDM):
            e.uop(**where, fu=FuOp.MAC, c=CSrc.ACC, acc_rd=lane, a=ASrc.SCALAR,
                  scalar=e.v["wd"], b=BSrc.MEMA, mema=w_addr, dst=Dst.ACC, acc_wr=lane)
        with m.Case(_MOMW):
            e.uop(**where, fu=FuOp.MAC, c=CSrc.ACC, acc_rd=lane, a=ASrc.SCALAR,
                  scalar=e.v["mu"], b=BSrc.MEMA, mema=mom_addr, dst=Dst.MEMA_ACC,
                  acc_wr=lane)
        with m.Case(_UPDM):
            e.uop(**where, fu=FuOp.MAC, c=CSrc.MEMA, a=ASrc.SCALAR, scalar=e.v["alpha"],
                  b=BSrc.ACC, acc_op=lane, dst=Dst.MEMA, mema=w_addr)


def _cpass(e: Emitter):
    f, v, m, cfg = e.f, e.v, e.m, e.cfg
    lacc, lanes = cfg.acc_lanes, cfg.chain_lanes
    sh_lacc = log2(lacc)
    # Slots: deltas d(rho), forward sums p(rho), weights w(k); the combine reuses w's.
    d_slot, p_slot, w_slot = 0, lacc, 2 * lacc
    seg, i, last = e.seg, e.i, e.last
    run = ger_issue_run(cfg)
    sh_cols = log2(lanes // lacc)

    def forward(window, k, rho, cs, ii, jj, final):
        # The forward step with W' from the weight's slot, in gemv's order.
        with m.If(f.fwd):
            e.uop(row_base=ii << e.shift, row_lim=f.rows, select=Select.ALL,
                  fu=FuOp.MAC, a=ASrc.ACC, acc_op=w_slot + k, b=BSrc.MEMB0,
                  memb_rd=f.x + jj,
                  c=Mux((window == 0) & (cs == 0), CSrc.NEGZERO, CSrc.ACC),
                  acc_rd=p_slot + rho, dst=Mux(final, Dst.MEMB, Dst.ACC),
                  acc_wr=p_slot + rho, memb_wr=f.fpsum + ii, kdim=KDim.COL,
                  k_base=jj << e.shift, k_lim=f.cols)

    def prop_free_weight(pair, c):
        """Without prop: the weight of a window that slot ``c`` of run pair ``pair`` serves."""
        return (pair << log2(run)) | c[:log2(run)] if run > 1 else pair

    def forward_step(window, k, group, final):
        """Without prop: weight ``k``'s forward step in ``window`` of row ``group``; ``final``:
        the group's last window, whose last column writes the sums."""
        rho, cs = k[:sh_lacc], k >> sh_lacc
        ii, jj = (group << sh_lacc) | rho, (window << sh_cols) | cs
        forward(window, k, rho, cs, ii, jj, final & (cs == (lanes // lacc) - 1))

    def fill_delta(group, rho):
        """Row group ``group``'s delta of row lane ``rho`` into its slot, beside the MAC
        path (without load)."""
        with m.If(~f.load):
            e.uop(fill=Fill.MEMB1, memb_rd2=f.d + (group << sh_lacc) + rho,
                  fill_slot=d_slot + rho)

    def load_delta(group, rho):
        """With load: that delta's SPAD row (one word per PE row, as LDV with ROWREP loads
        it) into its slot, issued a cycle before the fill would be: it lands when the fill's
        write would."""
        row = (group << sh_lacc) | rho
        with m.If(f.load & (row < v["m_loc"])):
            e.load_row(row, f.rows, 0, XferKind.ACC, d_slot + rho)

    with m.Switch(seg):
        with m.Case(0):  # the first group's deltas (with load a cycle later)
            e.uop(select=Select.NONE)
            with m.If(i["inner"] < lacc):
                fill_delta(0, i["inner"])
                load_delta(0, i["inner"])
        with m.Case(1):
            g, wi = i["top"], i["outer"]

            def weight(window, k):
                """Row lane, column in the window, local row, local column, MemA address."""
                rho, cs = k[:sh_lacc], k >> sh_lacc
                ii = (g << sh_lacc) | rho
                jj = (window << sh_cols) | cs
                return rho, cs, ii, jj, f.w + ii * f.ldw + jj

            def update(k, rho, ii, jj, w_addr, c_src):
                # W' = W + d a, to MemA and to the weight's slot.
                e.uop(row_base=ii << e.shift, row_lim=f.rows, col_base=jj << e.shift,
                      col_lim=f.cols, select=Select.ALL, fu=FuOp.MAC, a=ASrc.ACC,
                      acc_op=d_slot + rho, b=BSrc.MEMB0, memb_rd=f.a + jj, c=c_src,
                      acc_rd=w_slot + k, dst=Dst.MEMA_ACC, mema=w_addr, acc_wr=w_slot + k)

            with m.If(f.prop):
                op, k = i["middle"], i["inner"]
                rho, cs, ii, jj, w_addr = weight(wi, k)
                q_addr = f.q + (jj << sh_lacc) + rho
                with m.Switch(op):
                    with m.Case(0):  # backward step (W before the update), W into its slot
                        e.uop(col_base=jj << e.shift, col_lim=f.cols, select=Select.ALL,
                              fu=FuOp.MAC, a=ASrc.MEMA, mema=w_addr, b=BSrc.ACC,
                              acc_op=d_slot + rho, c=Mux(g == 0, CSrc.NEGZERO, CSrc.MEMB1),
                              memb_rd2=q_addr, dst=Dst.MEMB, memb_wr=q_addr, kdim=KDim.ROW,
                              k_base=ii << e.shift, k_lim=f.rows,
                              fill=Fill.MEMA, fill_slot=w_slot + k)
                    with m.Case(1):
                        update(k, rho, ii, jj, w_addr, CSrc.ACC)
                    with m.Case(2):  # the next group's deltas beside the last window's
                        forward(wi, k, rho, cs, ii, jj,
                                last["outer"] & (cs == (lanes // lacc) - 1))
                        with m.If(last["outer"]):
                            with m.If(~last["top"] & (k < lacc)):
                                fill_delta(g + 1, k)
                            with m.If(~f.fwd):
                                e.uop(select=Select.NONE)
                # With load, the delta that fills at forward run position k loads a cycle
                # earlier: at window cycle 2 L + k - 1.
                ahead = ((op << log2(lanes)) | k) + 1 - 2 * lanes
                with m.If(last["outer"] & ~last["top"] & (ahead >= 0) & (ahead < lacc)):
                    load_delta(g + 1, ahead[:sh_lacc])
            with m.Else():
                # Runs of `run` updates (W read at issue, written into the next run) and as
                # many forward steps of the previous window, which a group's first window
                # takes from the group before; its last window fills the next group's deltas.
                pair, c = i["middle"], i["inner"]
                k = prop_free_weight(pair, c)
                with m.If(c < run):
                    rho, cs, ii, jj, w_addr = weight(wi, k)
                    update(k, rho, ii, jj, w_addr, CSrc.MEMA)
                with m.Elif(wi > 0):
                    forward_step(wi - 1, k, g, final=False)
                with m.Elif(g > 0):
                    forward_step(v["windows"] - 1, k, g - 1, final=True)
                with m.If(last["outer"] & ~last["top"]):
                    cycle = (pair << log2(2 * run)) | c
                    issued = f.fwd & (c >= run) & ((wi > 0) | (g > 0))
                    for rho, at in enumerate(cpass_fill_cycles(cfg)):
                        with m.If(cycle == at):
                            fill_delta(g + 1, rho)
                            with m.If(~f.load & (c >= run) & ~issued):
                                e.uop(select=Select.NONE)
                        # A fill cycle is at or after the last update reading its slot, so never
                        # the window's first: its load is in the same window.
                        assert at >= 1, at
                        with m.If(cycle == at - 1):
                            load_delta(g + 1, rho)
        with m.Case(2):  # z's partial sums: the acc_lanes row lanes of each column, in order
            with m.If(~f.prop):  # the last group's last forward steps
                pair, c = i["middle"], i["inner"]
                with m.If(c >= run):
                    forward_step(v["windows"] - 1, prop_free_weight(pair, c), v["groups"] - 1,
                                 final=True)
            with m.Else():
                jg, rho, lane = i["outer"], i["middle"], i["inner"]
                jj = (jg << sh_lacc) | lane
                e.uop(select=Select.ALL, col_base=jj << e.shift, col_lim=f.cols,
                      fu=FuOp.MAC, a=ASrc.MEMB0, memb_rd=f.q + (jj << sh_lacc) + rho,
                      b=BSrc.ONE, c=Mux(rho == 0, CSrc.NEGZERO, CSrc.ACC),
                      acc_rd=w_slot + lane, acc_wr=w_slot + lane,
                      dst=Mux(last["middle"], Dst.MEMB, Dst.ACC), memb_wr=f.bpsum + jj)
        with m.Case(4):
            with m.If(f.fwd):
                e.uop(fu=FuOp.MAC, a=ASrc.MEMB0, b=BSrc.ONE, memb_rd=f.fpsum, memb_wr=f.y,
                      dst=Dst.MEMB, select=Select.ALL, chain=Chain.ROW, chain_idx=i["inner"],
                      chain_len=v["m_loc"], row_lim=f.rows)
                _store_chain_sums(e, i["inner"], v["m_loc"])
        with m.Case(5):
            with m.If(f.prop):
                e.uop(fu=FuOp.MAC, a=ASrc.MEMB0, b=BSrc.ONE, memb_rd=f.bpsum, memb_wr=f.z,
                      dst=Dst.MEMB, select=Select.ALL, chain=Chain.COL, chain_idx=i["inner"],
                      chain_len=v["k_loc"], col_lim=f.cols)


def _vop(e: Emitter):
    f, m, cfg = e.f, e.m, e.cfg
    lanes = cfg.chain_lanes
    single = (f.fn == VecOp.COPY) | (f.fn == VecOp.SCALE) | (f.fn == VecOp.MAXS)
    lane = e.i["inner"]
    step = e.i["middle"]
    q = Mux(single, e.i["outer"], (e.i["outer"] << log2(lanes)) | lane)
    base = q << e.shift
    with m.Switch(f.layout):
        with m.Case(Layout.DIAG):
            e.uop(select=Select.DIAG, row_base=base, row_lim=f.len)
        with m.Case(Layout.COLREP):
            e.uop(select=Select.ALL, col_base=base, col_lim=f.len)
        with m.Case(Layout.ROWREP):
            e.uop(select=Select.ALL, row_base=base, row_lim=f.len)
        with m.Case(Layout.FULL):
            # PE row r holds SPAD row q nr + r (whole rows: the length is checked).
            e.uop(select=Select.ALL, row_base=base, row_lim=f.len >> e.shift)
    e.uop(memb_rd=f.x + q, memb_rd2=f.y + q, memb_wr=f.z + q, dst=Dst.MEMB, acc_op=lane,
          acc_rd=lane, acc_wr=lane)
    alpha = e.v["alpha"]
    with m.If(~single & (step == 0)):
        # Two-input functions: y into the lane's slot first (one MemB read).
        e.uop(fu=FuOp.MOVE, a=ASrc.MEMB1, dst=Dst.ACC)
    with m.Elif(single | (step == 1)):
        with m.Switch(f.fn):
            with m.Case(VecOp.COPY):
                e.uop(fu=FuOp.MOVE, a=ASrc.MEMB0)
            with m.Case(VecOp.SCALE):
                e.uop(fu=FuOp.MAC, c=CSrc.NEGZERO, a=ASrc.SCALAR, scalar=alpha, b=BSrc.MEMB0)
            with m.Case(VecOp.MAXS):
                e.uop(fu=FuOp.MAX, a=ASrc.MEMB0, b=BSrc.SCALAR, scalar=alpha)
            with m.Case(VecOp.ADD):
                e.uop(fu=FuOp.MAC, c=CSrc.MEMB0, a=ASrc.ACC, b=BSrc.ONE)
            with m.Case(VecOp.SUB, VecOp.MSEG):
                e.uop(fu=FuOp.MAC, c=CSrc.MEMB0, a=ASrc.ACC, b=BSrc.SCALAR,
                      scalar=e.word(-1.0))
                with m.If(f.fn == VecOp.MSEG):
                    e.uop(dst=Dst.ACC)
            with m.Case(VecOp.MUL):
                e.uop(fu=FuOp.MAC, c=CSrc.NEGZERO, a=ASrc.MEMB0, b=BSrc.ACC)
            with m.Case(VecOp.AXPY):
                e.uop(fu=FuOp.MAC, c=CSrc.ACC, a=ASrc.SCALAR, scalar=alpha, b=BSrc.MEMB0)
            with m.Case(VecOp.MAX):
                e.uop(fu=FuOp.MAX, a=ASrc.MEMB0, b=BSrc.ACC)
            with m.Case(VecOp.RELUD):
                e.uop(fu=FuOp.GTSEL, a=ASrc.MEMB0, b=BSrc.ACC)
    with m.Else():  # mseg: z = alpha (x - y)
        e.uop(fu=FuOp.MAC, c=CSrc.NEGZERO, a=ASrc.SCALAR, scalar=alpha, b=BSrc.ACC)


def _smxce(e: Emitter):
    f, m, cfg = e.f, e.m, e.cfg
    lanes = cfg.chain_lanes
    k = exp_constants(cfg.operand, cfg.acc)
    mx, sm = cfg.regfile_base, cfg.regfile_base + 1  # register-file entries 0 and 1
    per_pe = e.v["per_pe"]
    chain_steps = e.v["chain"]
    seg, outer, middle, inner = e.seg, e.i["outer"], e.i["middle"], e.i["inner"]
    lane = inner
    q = (outer << log2(lanes)) | lane
    # The samples' rows: row 0 (rows 0), else rows 0 .. rows - 1, each its own sample (a row
    # chain's bound is its element index 0 in the row dimension: row_lim bounds its rows).
    samples = Mux(f.rows == 0, 1, f.rows)
    row0 = dict(select=Select.ALL, row_lim=samples)
    element = dict(col_base=q << e.shift, col_lim=f.len)
    dscr, fscr, escr = f.scr + q, f.scr + per_pe + q, f.scr + 2 * per_pe + q
    neg_s, tn = f.scr + 3 * per_pe, f.scr + 3 * per_pe + 1
    with m.Switch(seg):
        with m.Case(0):  # local max over this PE's logits, one step every `lanes` cycles
            with m.If(inner == 0):
                with m.If(outer == 0):
                    e.uop(fu=FuOp.MOVE, a=ASrc.SCALAR, scalar=k["neg_inf"], dst=Dst.ACC,
                          acc_wr=mx, **row0)
                with m.Else():
                    e.uop(fu=FuOp.MAXC, c=CSrc.ACC, acc_rd=mx, a=ASrc.MEMB0,
                          memb_rd=f.x + outer - 1, dst=Dst.ACC, acc_wr=mx, **row0,
                          col_base=(outer - 1) << e.shift, col_lim=f.len)
        with m.Case(1):  # max chain along each sample's row r into PE(r, r)
            with m.If(inner < chain_steps):
                e.uop(fu=FuOp.MAXC, c=CSrc.SCALAR, scalar=k["neg_inf"], a=ASrc.ACC, acc_op=mx,
                      dst=Dst.ACC, acc_wr=mx, chain=Chain.ROW, chain_idx=inner, chain_len=1,
                      **row0)
        with m.Case(2, 8):  # PE(r, r) broadcasts the max (or 1 / sum) on row bus r
            with m.If(inner == 0):
                e.uop(fu=FuOp.MOVE, a=ASrc.ROWBUS, row_drive=Drive.DIAG,
                      bus_src=BusSrc.ACC, acc_op=Mux(seg == 2, mx, 0), dst=Dst.ACC,
                      acc_wr=Mux(seg == 2, mx, sm), **row0)
        with m.Case(3):  # exp(x - max), one element per lane
            e.uop(**row0, **element)
            t_slot = lanes + lane
            coefficients = k["coefficients"]
            with m.Switch(middle):
                with m.Case(0):
                    e.uop(fu=FuOp.MAC, c=CSrc.MEMB0, memb_rd=f.x + q, a=ASrc.ACC, acc_op=mx,
                          b=BSrc.SCALAR, scalar=k["minus_one"], dst=Dst.ACC, acc_wr=lane)
                with m.Case(1):
                    e.uop(fu=FuOp.MAX, a=ASrc.ACC, acc_op=lane, b=BSrc.SCALAR,
                          scalar=k["lower"], dst=Dst.MEMB, memb_wr=dscr)
                with m.Case(2):  # t = magic + round(d log2e): k in t's low bits
                    e.uop(fu=FuOp.MAC, c=CSrc.SCALAR2, scalar2=k["magic"], a=ASrc.MEMB0,
                          memb_rd=dscr, b=BSrc.SCALAR, scalar=k["log2e"], dst=Dst.ACC,
                          acc_wr=t_slot)
                with m.Case(3):  # k = t - magic, exactly
                    e.uop(fu=FuOp.MAC, c=CSrc.ACC, acc_rd=t_slot, a=ASrc.SCALAR,
                          scalar=k["neg_magic"], b=BSrc.ONE, dst=Dst.ACC, acc_wr=lane)
                with m.Case(4):  # g = k - d log2e = -f, |g| <= 1/2
                    e.uop(fu=FuOp.MAC, c=CSrc.ACC, acc_rd=lane, a=ASrc.MEMB0, memb_rd=dscr,
                          b=BSrc.SCALAR, scalar=k["neg_log2e"], dst=Dst.MEMB, memb_wr=fscr)
                with m.Case(5):  # Horner: p = c6 g + c5 ...
                    e.uop(fu=FuOp.MAC, c=CSrc.SCALAR2, scalar2=coefficients[1], a=ASrc.SCALAR,
                          scalar=coefficients[0], b=BSrc.MEMB1, memb_rd2=fscr, dst=Dst.ACC,
                          acc_wr=lane)
                for step in range(6, 11):
                    with m.Case(step):
                        e.uop(fu=FuOp.MAC, c=CSrc.SCALAR2, scalar2=coefficients[step - 4],
                              a=ASrc.ACC, acc_op=lane, b=BSrc.MEMB1, memb_rd2=fscr,
                              dst=Dst.ACC, acc_wr=lane)
                with m.Case(11):
                    e.uop(fu=FuOp.SCALE, a=ASrc.ACC, acc_op=lane, c=CSrc.ACC, acc_rd=t_slot,
                          dst=Dst.MEMB, memb_wr=escr)
        with m.Case(5):  # local sum of exp values
            with m.If(inner == 0):
                with m.If(outer == 0):
                    e.uop(fu=FuOp.MOVE, a=ASrc.NEGZERO, dst=Dst.ACC, acc_wr=sm, **row0)
                with m.Else():
                    e.uop(fu=FuOp.MAC, c=CSrc.ACC, acc_rd=sm, a=ASrc.MEMB0,
                          memb_rd=f.scr + 2 * per_pe + outer - 1, b=BSrc.ONE, dst=Dst.ACC,
                          acc_wr=sm, **row0, col_base=(outer - 1) << e.shift, col_lim=f.len)
        with m.Case(6):  # sum chain along each sample's row r into PE(r, r)
            with m.If(inner < chain_steps):
                e.uop(fu=FuOp.MAC, c=CSrc.NEGZERO, a=ASrc.ACC, acc_op=sm, b=BSrc.ONE,
                      dst=Dst.ACC, acc_wr=sm, chain=Chain.ROW, chain_idx=inner, chain_len=1,
                      **row0)
        with m.Case(7):  # 1 / sum in PE(r, r): seed, then three Newton steps r = r (2 - s r)
            pe00 = dict(select=Select.DIAG, row_lim=samples)
            with m.If(inner == 0):
                with m.Switch(outer):
                    with m.Case(0):
                        e.uop(fu=FuOp.RSEED, c=CSrc.ACC, acc_rd=sm, dst=Dst.ACC, acc_wr=0,
                              **pe00)
                    with m.Case(1):
                        e.uop(fu=FuOp.MAC, a=ASrc.ACC, acc_op=sm, b=BSrc.SCALAR,
                              scalar=k["minus_one"], dst=Dst.MEMB, memb_wr=neg_s, **pe00)
                    for it in range(3):
                        with m.Case(2 + 2 * it):
                            e.uop(fu=FuOp.MAC, c=CSrc.SCALAR, scalar=k["two"], a=ASrc.ACC,
                                  acc_op=0, b=BSrc.MEMB1, memb_rd2=neg_s, dst=Dst.MEMB,
                                  memb_wr=tn, **pe00)
                        with m.Case(3 + 2 * it):
                            e.uop(fu=FuOp.MAC, a=ASrc.ACC, acc_op=0, b=BSrc.MEMB1,
                                  memb_rd2=tn, dst=Dst.ACC, acc_wr=0, **pe00)
        with m.Case(9):  # z = e / sum - t (rows 0: moved down column c to the diagonal)
            with m.Switch(middle):
                with m.Case(0):
                    e.uop(fu=FuOp.MAC, a=ASrc.MEMB0, memb_rd=escr, b=BSrc.ACC, acc_op=sm,
                          dst=Dst.ACC, acc_wr=lane, **row0, **element)
                with m.Case(1):
                    e.uop(fu=FuOp.MAC, c=CSrc.ACC, acc_rd=lane, a=ASrc.MEMB1,
                          memb_rd2=f.t + q, b=BSrc.SCALAR, scalar=k["minus_one"],
                          dst=Dst.ACC, acc_wr=lane, **row0, **element)
                with m.Case(2):
                    with m.If(f.rows == 0):
                        e.uop(fu=FuOp.MOVE, a=ASrc.COLBUS, col_drive=Drive.SEL, drive_sel=0,
                              bus_src=BusSrc.ACC, acc_op=lane, dst=Dst.MEMB, memb_wr=f.z + q,
                              select=Select.DIAG, **element)
                    with m.Else():  # each sample's z stays in its row
                        e.uop(fu=FuOp.MOVE, a=ASrc.ACC, acc_op=lane, dst=Dst.MEMB,
                              memb_wr=f.z + q, **row0, **element)


#: Generator of each opcode that issues micro-ops.
KERNELS = {
    Opcode.RDCNT: _rdcnt,
    Opcode.LDV: lambda e: _ldv_stv(e, store=False),
    Opcode.STV: lambda e: _ldv_stv(e, store=True),
    Opcode.LDA: lambda e: _lda_sta(e, store=False),
    Opcode.STA: lambda e: _lda_sta(e, store=True),
    Opcode.BCAST: _bcast,
    Opcode.GEMV: lambda e: _gemv(e, transposed=False),
    Opcode.GEMVT: lambda e: _gemv(e, transposed=True),
    Opcode.GER: _ger,
    Opcode.CPASS: _cpass,
    Opcode.VOP: _vop,
    Opcode.SMXCE: _smxce,
}


def kernels_of(cfg) -> dict:
    """:data:`KERNELS` that config ``cfg`` builds: ``cpass`` only where it fits
    (:func:`~caterpillar.contract.geometry.cpass_fits`; elsewhere its check fails first)."""
    return {op: kernel for op, kernel in KERNELS.items()
            if op != Opcode.CPASS or cpass_fits(cfg)}
