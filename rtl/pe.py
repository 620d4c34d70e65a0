"""The processing element: local memories, accumulators and the MAC path, driven by micro-ops."""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from caterpillar.contract.geometry import (
    bank_index,
    bank_of,
    cpass_fits,
    mema_bank_bit,
    mema_bank_words,
)
from caterpillar.golden.numerics import reciprocal_seed_magic
from caterpillar.rtl.fp.adder import FPAdder
from caterpillar.rtl.fp.compare import FPCompare
from caterpillar.rtl.fp.convert import FPConvert
from caterpillar.rtl.fp.multiplier import FPMultiplier
from caterpillar.rtl.fp.scale import FPScale, scale_shift_shape
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
    compute_layout,
    transfer_layout,
)
from caterpillar.rtl.ports import PEEvents

__all__ = ["PE", "PER_PE_ATTRIBUTE", "chain_position", "chain_delay"]

#: The attribute on the registers that delay a PE's micro-op fields down its pipeline. Every PE
#: has the same ones, fed by the same micro-op bus, so Yosys would merge them into one register
#: per field driving the whole array; the synthesis script marks their flip-flops ``keep`` so
#: each PE drives its own (docs/fpga.md: the merged registers were where the router congested).
PER_PE_ATTRIBUTE = "caterpillar_per_pe"


def chain_position(chain: Chain, nr: int, row: int, col: int) -> int:
    """Return a PE's position along its reduction chain (the diagonal PE is last)."""
    if chain == Chain.ROW:
        return (col - row - 1) % nr
    return (row - col - 1) % nr


def chain_delay(cfg) -> int:
    """Cycles between consecutive chain positions working on the same element."""
    return cfg.add_latency + 1


def _delay(m, value, cycles: int, name: str):
    """Return ``value`` delayed by ``cycles`` reset-less registers (its shape kept)."""
    shape = value.shape() if hasattr(value, "shape") else Value.cast(value).shape()
    for i in range(cycles):
        reg = Signal(shape, name=f"{name}_d{i + 1}", reset_less=True,
                     attrs={PER_PE_ATTRIBUTE: 1})
        m.d.sync += reg.eq(value)
        value = reg
    return value


def _pick(m, selector, choices: dict, default, shape, name: str):
    """Return a signal equal to ``choices[selector]`` (``default`` for other values)."""
    out = Signal(shape, name=name)
    m.d.comb += out.eq(default)
    with m.Switch(selector):
        for key, value in choices.items():
            with m.Case(key):
                m.d.comb += out.eq(value)
    return out


def _more_than(bits, limit: int):
    """Return whether more than ``limit`` of ``bits`` are set (for a handful of bits)."""
    count = sum(Value.cast(b).as_unsigned() for b in bits)
    return count > limit


def selected(sel, sel_row, sel_col, row: int, col: int):
    """Return whether ``PE(row, col)`` is selected by ``sel`` (a :class:`Select`)."""
    return Mux(sel == Select.ALL, 1,
           Mux(sel == Select.DIAG, int(row == col),
           Mux(sel == Select.ONE, (sel_row == row) & (sel_col == col),
           Mux(sel == Select.ROW, sel_row == row,
           Mux(sel == Select.COL, sel_col == col, 0)))))


class PE(wiring.Component):
    """One processing element at ``(row, col)`` of an ``nr x nr`` core.

    Contract: every cycle it accepts one compute and one transfer micro-op (broadcast to all
    PEs) and acts on them as docs/architecture.md section 2 specifies: memory reads at issue,
    bus values two cycles later, write-back ``cfg.write_back_latency - 1`` cycles after issue.
    It never stalls. ``hazard`` is high in a cycle where two users claim one of MemA's two
    banks (or two reads or two writes claim MemA), more than two claim MemB's two ports (or two
    claim one of them), the PE is asked to drive a bus twice, or two of the write-back, a
    transfer load and a side fill write one accumulator slot.
    Reset clears nothing but the pipelines; memories and accumulators keep their contents.

    Parameters
    ----------
    cfg : CaterpillarConfig
    row, col : int
        Position in the array.

    Members
    -------
    uop : In(compute_layout(cfg))
    xfer : In(transfer_layout(cfg))
    row_bus, col_bus : In(word)
        The values on this PE's row and column buses.
    row_drive, col_drive : Out(1)
        This PE drives its row (column) bus this cycle with ``row_out`` (``col_out``).
    row_out, col_out : Out(word)
    link_w, link_n : In(acc)
        The west neighbour's east link register, the north neighbour's south link register.
    link_e, link_s : Out(acc)
        This PE's east and south link registers.
    hazard : Out(1)
    events : Out(PEEvents())
        This cycle's events for the counters: a micro-op issued here (``op``), a MAC with a
        real product among them (``mac``), and the MemA and MemB words read and written (each
        counted in the cycle its port is enabled).
    """

    def __init__(self, cfg, row: int, col: int):
        self.cfg, self.row, self.col = cfg, row, col
        word, acc = cfg.word_width, cfg.acc_width
        super().__init__({
            "uop": In(compute_layout(cfg)), "xfer": In(transfer_layout(cfg)),
            "row_bus": In(word), "col_bus": In(word),
            "row_drive": Out(1), "col_drive": Out(1), "row_out": Out(word), "col_out": Out(word),
            "link_w": In(acc), "link_n": In(acc), "link_e": Out(acc), "link_s": Out(acc),
            "hazard": Out(1), "events": Out(PEEvents()),
        })

    def elaborate(self, platform):
        m = Module()
        issue = self._issue(m)
        mem = self._memories(m, issue)
        read = self._read(m, issue, mem)
        result = self._execute(m, issue, mem, read)
        written = self._write_back(m, issue, mem, result)
        ports = self._memory_ports(m, issue, mem, written)
        self._hazards(m, issue, read, written, ports)
        return m

    def _convert(self, m, value, src, dst, name):
        """``value`` converted from format ``src`` to ``dst`` (a unit only where they differ)."""
        if src == dst:
            return value
        cvt = FPConvert(src, dst, latency=0)
        m.submodules[name] = cvt
        m.d.comb += [cvt.operands.payload.eq(value), cvt.operands.valid.eq(1)]
        return cvt.result.payload

    def _issue(self, m) -> SimpleNamespace:
        """Cycle ``t``: decode both micro-ops against ``(row, col)``: whether this PE acts,
        its chain position, which memory ports and buses it uses."""
        cfg, r, c, u, x = self.cfg, self.row, self.col, self.uop, self.xfer
        shift_nr = (cfg.nr - 1).bit_length()
        in_chain = u.chain != Chain.NONE
        chain_q = Mux(u.chain == Chain.ROW, chain_position(Chain.ROW, cfg.nr, r, c),
                      chain_position(Chain.COL, cfg.nr, r, c))
        chain_eff = Signal(17, name="chain_eff")
        m.d.comb += chain_eff.eq(u.chain_idx - chain_q * chain_delay(cfg))
        eff = chain_eff[:16]
        chain_ok = ~in_chain | (~chain_eff[16] & (eff < u.chain_len))
        chain_last = in_chain & (chain_q == cfg.nr - 1)
        chain_first = in_chain & (chain_q == 0)
        # In a chain the element index replaces the broadcast base of the chain's dimension.
        row_base = Mux(u.chain == Chain.ROW, eff << shift_nr, u.row_base)
        col_base = Mux(u.chain == Chain.COL, eff << shift_nr, u.col_base)
        bounds_ok = ((row_base + r) < u.row_lim) & ((col_base + c) < u.col_lim)
        active = Signal(name="active")
        m.d.comb += active.eq(u.valid & selected(u.select, u.sel_row, u.sel_col, r, c)
                              & bounds_ok & chain_ok)
        k_ok = (u.kdim == KDim.NONE) | ((u.k_base + Mux(u.kdim == KDim.COL, c, r)) < u.k_lim)

        link_dst = Mux(u.chain == Chain.ROW, Dst.LINK_E, Dst.LINK_S)
        link_src = Mux(u.chain == Chain.ROW, CSrc.LINK_W, CSrc.LINK_N)
        c_src = Signal(CSrc, name="c_src")
        dst = Signal(Dst, name="dst")
        memb_rd = Signal(cfg.memb_addr_width, name="memb_rd")
        memb_wr = Signal(cfg.memb_addr_width, name="memb_wr")
        m.d.comb += [
            c_src.eq(Mux(in_chain & ~chain_first, link_src, u.c)),
            dst.eq(Mux(in_chain, Mux(chain_last, u.dst, link_dst), u.dst)),
            memb_rd.eq(Mux(in_chain, u.memb_rd + eff, u.memb_rd)),
            memb_wr.eq(Mux(in_chain, u.memb_wr + eff, u.memb_wr)),
        ]

        def drives(mode, own):
            return u.valid & Mux(mode == Drive.SEL, u.drive_sel == own,
                                 Mux(mode == Drive.DIAG, int(r == c), 0))

        drive_row = drives(u.row_drive, c)
        drive_col = drives(u.col_drive, r)
        drive_any = drive_row | drive_col

        def uses(a_src, b_src, c_srcs):
            # Outside the reduction bound a and b are constants: their memories are not read.
            return (k_ok & ((u.a == a_src) | (u.b == b_src))
                    | Cat(*[c_src == s for s in c_srcs]).any())

        # The side fill serves cpass alone: without it no slot has a third write source.
        side_fill = cpass_fits(cfg)
        fill_mema = active & k_ok & (u.fill == Fill.MEMA) if side_fill else Const(0, 1)
        fill_memb = u.valid & (u.fill == Fill.MEMB1) if side_fill else Const(0, 1)

        x_target = x.valid & ~x.sequencer & selected(x.target, x.sel, x.sel, r, c)
        x_on = Signal(name="x_on")
        m.d.comb += x_on.eq(x_target & Mux(x.col_bus, x.lanes[c], x.lanes[r]))
        x_store = x_on & x.store
        return SimpleNamespace(
            active=active, k_ok=k_ok, in_chain=in_chain, c_src=c_src, dst=dst,
            memb_rd=memb_rd, memb_wr=memb_wr, drive_row=drive_row, drive_col=drive_col,
            fill_mema=fill_mema, fill_memb=fill_memb,
            mema_read_c=(active & uses(ASrc.MEMA, BSrc.MEMA, [CSrc.MEMA]) | fill_mema
                         | drive_any & (u.bus_src == BusSrc.MEMA)),
            memb0_read_c=(active & uses(ASrc.MEMB0, BSrc.MEMB0, [CSrc.MEMB0])
                          | drive_any & (u.bus_src == BusSrc.MEMB0)),
            memb1_read_c=active & uses(ASrc.MEMB1, BSrc.MEMB1, [CSrc.MEMB1]) | fill_memb,
            x_on=x_on, x_store=x_store,
            mema_read_x=x_store & (x.kind == XferKind.MEMA),
            memb_read_x=x_store & (x.kind == XferKind.MEMB))

    def _memories(self, m, s) -> SimpleNamespace:
        """MemA (two banks of one port, split by address bit
        :func:`~caterpillar.contract.geometry.mema_bank_bit`), MemB (two ports) and the
        accumulator file.

        Each physical port is a read port and a write port of one ``lib.memory.Memory`` that
        share the address, so Yosys maps a port to one port of a block RAM; which user a port
        serves in a cycle is chosen in :meth:`_memory_ports`. MemA's banks let a read and a
        write of words in different banks share a cycle (the rank-1 update's one weight per
        cycle, docs/architecture.md section 1). MemB carries ``no_rw_check``:
        the PE never reads a word on one port while the other writes it (a hazard otherwise),
        so the block RAM's undefined cross-port collision is never observed.
        """
        cfg, u = self.cfg, self.uop
        banks = []
        for bank in range(2):
            banks.append(Memory(shape=cfg.word_width, depth=mema_bank_words(cfg), init=[]))
            m.submodules[f"mema{bank}"] = banks[-1]
        m.submodules.memb = memb = Memory(shape=cfg.word_width, depth=cfg.memb_words, init=[],
                                          attrs={"no_rw_check": 1})
        slots = Array(Signal(cfg.acc_width, name=f"acc{i}", reset_less=True)
                      for i in range(cfg.acc_slots))
        return SimpleNamespace(
            mema=[(bank.read_port(), bank.write_port()) for bank in banks],
            memb=[(memb.read_port(), memb.write_port()) for _ in range(2)],
            mema_data=Signal(cfg.word_width, name="mema_data"),
            memb0_data=Signal(cfg.word_width, name="memb0_data"),
            memb1_data=Signal(cfg.word_width, name="memb1_data"),
            slots=slots, slot_bits=len(u.acc_rd))

    def _read(self, m, s, mem) -> SimpleNamespace:
        """Cycle ``t + 1``: read data; the bus write registers; each operand's local source."""
        cfg, u, x = self.cfg, self.uop, self.xfer
        op_fmt, acc_fmt, word = cfg.operand, cfg.acc, cfg.word_width
        s1 = {k: _delay(m, v, 1, f"s1_{k}") for k, v in {
            "a": u.a, "b": u.b, "c": s.c_src, "scalar": u.scalar, "scalar2": u.scalar2,
            "acc_op": u.acc_op, "fill_mema": s.fill_mema, "fill_memb": s.fill_memb,
            "fill_slot": u.fill_slot,
            "bus_src": u.bus_src, "drive_row": s.drive_row, "drive_col": s.drive_col,
            "x_store": s.x_store, "x_kind": x.kind, "x_addr": x.addr, "x_col_bus": x.col_bus,
        }.items()}
        acc_rd_op = self._convert(m, mem.slots[s1["acc_op"]], acc_fmt, op_fmt, "narrow_acc_op")
        x_acc_op = self._convert(m, mem.slots[s1["x_addr"][:mem.slot_bits]], acc_fmt, op_fmt,
                                 "narrow_x_acc")
        bus_value = _pick(m, s1["bus_src"], {BusSrc.MEMA: mem.mema_data,
                                             BusSrc.MEMB0: mem.memb0_data}, acc_rd_op, word,
                          "bus_value")
        store_value = _pick(m, s1["x_kind"], {XferKind.MEMA: mem.mema_data,
                                              XferKind.MEMB: mem.memb0_data}, x_acc_op, word,
                            "store_value")
        store_row = s1["x_store"] & ~s1["x_col_bus"]
        store_col = s1["x_store"] & s1["x_col_bus"]
        row_reg = Signal(word, reset_less=True)
        col_reg = Signal(word, reset_less=True)
        row_on, col_on = Signal(), Signal()
        m.d.sync += [
            row_on.eq(s1["drive_row"] | store_row), col_on.eq(s1["drive_col"] | store_col),
            row_reg.eq(Mux(store_row, store_value, bus_value)),
            col_reg.eq(Mux(store_col, store_value, bus_value)),
        ]
        m.d.comb += [self.row_drive.eq(row_on), self.col_drive.eq(col_on),
                     self.row_out.eq(row_reg), self.col_out.eq(col_reg)]

        # The side fill: the word read at issue, widened, into its slot at the end of t + 1.
        if cpass_fits(cfg):
            fill_word = Mux(s1["fill_mema"], mem.mema_data, mem.memb1_data)
            fill_value = self._convert(m, fill_word, op_fmt, acc_fmt, "widen_fill")
            with m.If(s1["fill_mema"] | s1["fill_memb"]):
                m.d.sync += mem.slots[s1["fill_slot"]].eq(fill_value)

        neg_zero_op = op_fmt.sign_mask
        one_op = op_fmt.bias << op_fmt.man_bits
        a_local = _pick(m, s1["a"], {
            ASrc.MEMA: mem.mema_data, ASrc.MEMB0: mem.memb0_data,
            ASrc.MEMB1: mem.memb1_data, ASrc.ACC: acc_rd_op, ASrc.SCALAR: s1["scalar"]},
            neg_zero_op, word, "a_local")
        b_local = _pick(m, s1["b"], {
            BSrc.MEMA: mem.mema_data, BSrc.MEMB0: mem.memb0_data,
            BSrc.MEMB1: mem.memb1_data, BSrc.ACC: acc_rd_op, BSrc.SCALAR: s1["scalar"]},
            one_op, word, "b_local")
        c_issue = _pick(m, s1["c"], {
            CSrc.MEMA: mem.mema_data, CSrc.MEMB0: mem.memb0_data,
            CSrc.MEMB1: mem.memb1_data, CSrc.SCALAR: s1["scalar"],
            CSrc.SCALAR2: s1["scalar2"]}, neg_zero_op, word, "c_issue")
        return SimpleNamespace(s1=s1, store_row=store_row, store_col=store_col,
                               fill_on=s1["fill_mema"] | s1["fill_memb"],
                               a_local=a_local, b_local=b_local, c_issue=c_issue)

    def _execute(self, m, s, mem, read) -> SimpleNamespace:
        """Cycle ``t + 2``: operands into the multiplier; ``t + 2 + Lm``: the addend and the
        side unit (compare, scale, move); the result at ``t + 2 + Lm + La``."""
        cfg, u = self.cfg, self.uop
        op_fmt, acc_fmt, acc_width = cfg.operand, cfg.acc, cfg.acc_width
        lm, la = cfg.mul_latency, cfg.add_latency
        neg_zero_op = op_fmt.sign_mask
        s2 = {k: _delay(m, v, 1, f"s2_{k}") for k, v in {
            "a": read.s1["a"], "b": read.s1["b"], "c": read.s1["c"], "a_local": read.a_local,
            "b_local": read.b_local, "c_issue": read.c_issue}.items()}
        a_op = Mux(s2["a"] == ASrc.ROWBUS, self.row_bus,
                   Mux(s2["a"] == ASrc.COLBUS, self.col_bus, s2["a_local"]))
        b_op = Mux(s2["b"] == BSrc.ROWBUS, self.row_bus,
                   Mux(s2["b"] == BSrc.COLBUS, self.col_bus, s2["b_local"]))
        ctl2 = {k: _delay(m, v, 2, f"ctl2_{k}") for k, v in {
            "active": s.active, "k_ok": s.k_ok, "fu": u.fu, "dst": s.dst, "mema": u.mema,
            "memb_wr": s.memb_wr, "acc_rd": u.acc_rd, "acc_wr": u.acc_wr}.items()}
        # Outside the reduction bound the product becomes (-0) * (+0) = -0: c passes unchanged.
        a_k = Mux(ctl2["k_ok"], a_op, neg_zero_op)
        b_k = Mux(ctl2["k_ok"], b_op, 0)
        m.submodules.mul = mul = FPMultiplier(op_fmt, acc_fmt, latency=lm)
        m.d.comb += [mul.operands.valid.eq(ctl2["active"]),
                     mul.operands.payload.a.eq(a_k), mul.operands.payload.b.eq(b_k)]

        ctl3 = {k: _delay(m, v, lm, f"ctl3_{k}") for k, v in ctl2.items()}
        c_src3 = _delay(m, s2["c"], lm, "c_src3")
        c_issue3 = _delay(m, self._convert(m, s2["c_issue"], op_fmt, acc_fmt, "widen_c"), lm,
                          "c_iss3")
        a_side = _delay(m, self._convert(m, a_k, op_fmt, acc_fmt, "widen_a"), lm, "a_side")
        b_side = _delay(m, self._convert(m, b_k, op_fmt, acc_fmt, "widen_b"), lm, "b_side")
        addend = _pick(m, c_src3, {CSrc.ACC: mem.slots[ctl3["acc_rd"]],
                                   CSrc.LINK_W: self.link_w, CSrc.LINK_N: self.link_n},
                       c_issue3, acc_width, "addend")
        m.submodules.add = add = FPAdder(acc_fmt, latency=la)
        m.d.comb += [add.operands.valid.eq(ctl3["active"]),
                     add.operands.payload.a.eq(addend),
                     add.operands.payload.b.eq(mul.result.payload)]

        m.submodules.cmp = cmp = FPCompare(acc_fmt, latency=0)
        m.submodules.scl = scl = FPScale(acc_fmt, latency=0)
        m.d.comb += [
            cmp.operands.valid.eq(1), cmp.operands.payload.a.eq(a_side),
            cmp.operands.payload.b.eq(Mux(ctl3["fu"] == FuOp.MAXC, addend, b_side)),
            scl.operands.valid.eq(1), scl.operands.payload.x.eq(a_side),
            scl.operands.payload.n.eq(addend[:scale_shift_shape(acc_fmt).width].as_signed()),
        ]
        # a > 0 exactly when a has a clear sign bit and is neither zero nor NaN.
        a_exp_ones = a_side[acc_fmt.man_bits:acc_width - 1].all()
        a_positive = (~a_side[acc_width - 1] & a_side[:acc_width - 1].any()
                      & ~(a_exp_ones & a_side[:acc_fmt.man_bits].any()))
        side = _pick(m, ctl3["fu"], {
            FuOp.MAX: cmp.result.payload.max, FuOp.MIN: cmp.result.payload.min,
            FuOp.MAXC: cmp.result.payload.max,
            FuOp.SCALE: scl.result.payload, FuOp.MOVE: a_side,
            FuOp.GTSEL: Mux(a_positive, b_side, Const(0, acc_width)),
            FuOp.RSEED: (reciprocal_seed_magic(acc_fmt) - addend)[:acc_width],
        }, 0, acc_width, "side")
        side_wb = _delay(m, side, la, "side")

        ctl4 = {k: _delay(m, v, la, f"ctl4_{k}") for k, v in ctl3.items()}
        result = Signal(acc_width, name="result")
        m.d.comb += result.eq(Mux(ctl4["fu"] == FuOp.MAC, add.result.payload, side_wb))
        return SimpleNamespace(ctl4=ctl4, value=result,
                               narrowed=self._convert(m, result, acc_fmt, op_fmt,
                                                      "narrow_result"))

    def _write_back(self, m, s, mem, result) -> SimpleNamespace:
        """The end of ``t + 2 + Lm + La``: the result to its destination; the end of ``t + 2``:
        a transfer load from the bus its SPAD lane drives."""
        cfg, x = self.cfg, self.xfer
        ctl4 = result.ctl4
        wb, wb_dst = ctl4["active"], ctl4["dst"]
        link_e = Signal(cfg.acc_width, reset_less=True)
        link_s = Signal(cfg.acc_width, reset_less=True)
        with m.If(wb & (wb_dst == Dst.LINK_E)):
            m.d.sync += link_e.eq(result.value)
        with m.If(wb & (wb_dst == Dst.LINK_S)):
            m.d.sync += link_s.eq(result.value)
        m.d.comb += [self.link_e.eq(link_e), self.link_s.eq(link_s)]

        x2 = {k: _delay(m, v, 2, f"x2_{k}") for k, v in {
            "load": s.x_on & ~x.store, "kind": x.kind, "addr": x.addr, "col_bus": x.col_bus,
        }.items()}
        load_value = Mux(x2["col_bus"], self.col_bus, self.row_bus)
        w = SimpleNamespace(
            load_mema=x2["load"] & (x2["kind"] == XferKind.MEMA),
            load_memb=x2["load"] & (x2["kind"] == XferKind.MEMB),
            load_acc=x2["load"] & (x2["kind"] == XferKind.ACC),
            wb_mema=wb & ((wb_dst == Dst.MEMA) | (wb_dst == Dst.MEMA_ACC)),
            wb_memb=wb & (wb_dst == Dst.MEMB),
            wb_acc=wb & ((wb_dst == Dst.ACC) | (wb_dst == Dst.MEMA_ACC)),
            load_slot=x2["addr"][:mem.slot_bits],
            acc_wr=ctl4["acc_wr"], wb_mema_addr=ctl4["mema"], wb_memb_addr=ctl4["memb_wr"],
            wb_data=result.narrowed, load_addr=x2["addr"], load_value=load_value)
        with m.If(w.wb_acc):
            m.d.sync += mem.slots[ctl4["acc_wr"]].eq(result.value)
        with m.If(w.load_acc):
            m.d.sync += mem.slots[w.load_slot].eq(
                self._convert(m, load_value, cfg.operand, cfg.acc, "widen_load"))
        return w

    def _memory_ports(self, m, s, mem, w) -> SimpleNamespace:
        """Give each memory user of this cycle a physical port (docs/architecture.md section 2).

        Each MemA bank's one port serves the write if it falls in that bank, else the read.
        MemB's users, in priority order, are the read of operand port 0 (``R0``: an operand,
        the bus or a transfer store), the read of operand port 1 (``R1``), the write-back
        (``WB``) and the transfer load (``WL``); port 0 serves the first present and port 1 the
        second, so ``R0`` is always on port 0 and ``R1``'s data comes from port 1 only when
        ``R0`` was read too. A third user is a hazard.
        """
        u, x = self.uop, self.xfer
        mema_read = s.mema_read_c | s.mema_read_x
        mema_write = w.wb_mema | w.load_mema
        read_addr = Signal.like(u.mema, name="mema_read_addr")
        write_addr = Signal.like(u.mema, name="mema_write_addr")
        m.d.comb += [read_addr.eq(Mux(s.mema_read_x, x.addr, u.mema)),
                     write_addr.eq(Mux(w.load_mema, w.load_addr, w.wb_mema_addr))]
        k = mema_bank_bit(self.cfg)
        for bank, (rd, wr) in enumerate(mem.mema):
            # One port per bank: the write, if it falls in this bank, else the read.
            writes = mema_write & (bank_of(write_addr, k) == bank)
            m.d.comb += [
                rd.addr.eq(bank_index(Mux(writes, write_addr, read_addr), k)),
                rd.en.eq(mema_read & (bank_of(read_addr, k) == bank)),
                wr.addr.eq(rd.addr), wr.en.eq(writes),
                wr.data.eq(Mux(w.load_mema, w.load_value, w.wb_data)),
            ]
        read_bank = Signal(name="mema_read_bank")
        m.d.sync += read_bank.eq(bank_of(read_addr, k))
        m.d.comb += mem.mema_data.eq(Mux(read_bank, mem.mema[1][0].data, mem.mema[0][0].data))
        mema_clash = mema_read & mema_write & (bank_of(read_addr, k) == bank_of(write_addr, k))

        r0 = s.memb0_read_c | s.memb_read_x
        r1 = s.memb1_read_c
        users = [  # (present, address, write data or None), in priority order
            (r0, Mux(s.memb_read_x, x.addr, s.memb_rd), None),
            (r1, u.memb_rd2, None),
            (w.wb_memb, w.wb_memb_addr, w.wb_data),
            (w.load_memb, w.load_addr, w.load_value),
        ]
        ports = []
        for index, (rd, wr) in enumerate(mem.memb):
            addr = Signal.like(rd.addr, name=f"memb{index}_addr")
            data = Signal.like(wr.data, name=f"memb{index}_wdata")
            reads, writes = Signal(name=f"memb{index}_re"), Signal(name=f"memb{index}_we")
            # Port `index` serves the user with exactly `index` present users before it.
            for k in reversed(range(len(users))):
                present, user_addr, user_data = users[k]
                earlier = sum(Value.cast(p).as_unsigned() for p, _, _ in users[:k])
                with m.If(present & (earlier == index)):
                    m.d.comb += addr.eq(user_addr)
                    if user_data is None:
                        m.d.comb += reads.eq(1)
                    else:
                        m.d.comb += [writes.eq(1), data.eq(user_data)]
            m.d.comb += [rd.addr.eq(addr), rd.en.eq(reads), wr.addr.eq(addr),
                         wr.en.eq(writes), wr.data.eq(data)]
            ports.append(SimpleNamespace(addr=addr, reads=reads, writes=writes))
        r0_before = Signal(name="memb_r0_before")
        m.d.sync += r0_before.eq(r0)
        m.d.comb += [mem.memb0_data.eq(mem.memb[0][0].data),
                     mem.memb1_data.eq(Mux(r0_before, mem.memb[1][0].data,
                                           mem.memb[0][0].data))]
        p0, p1 = ports
        collision = p1.writes & (p0.reads | p0.writes) & (p0.addr == p1.addr)
        # The events count the users, each served by a port unless there are more than two (a
        # hazard): the ports' enables' numbers, but not from them: Yosys writes the enables as
        # processes, which Icarus leaves X until an input first changes.
        return SimpleNamespace(memb_collision=collision, mema_clash=mema_clash,
                               memb_reads=r0 + r1, memb_writes=w.wb_memb + w.load_memb)

    def _hazards(self, m, s, read, w, ports) -> None:
        """``hazard`` (a port, bus or slot claimed twice in a cycle, or one MemB word read and
        written, or written twice, in one cycle) and the MAC count."""
        u = self.uop
        hazard = (
            _more_than([s.mema_read_c, s.mema_read_x], 1)
            | _more_than([w.load_mema, w.wb_mema], 1)
            | ports.mema_clash
            | (s.memb0_read_c & s.memb_read_x)
            | _more_than([s.memb0_read_c | s.memb_read_x, s.memb1_read_c, w.load_memb,
                          w.wb_memb], 2)
            | ports.memb_collision
            | (w.load_acc & w.wb_acc & (w.load_slot == w.acc_wr))
            | (read.fill_on & w.wb_acc & (read.s1["fill_slot"] == w.acc_wr))
            | (read.fill_on & w.load_acc & (read.s1["fill_slot"] == w.load_slot))
            | (read.s1["drive_row"] & read.store_row)
            | (read.s1["drive_col"] & read.store_col)
        )
        ev = self.events
        m.d.comb += [
            self.hazard.eq(hazard), ev.op.eq(s.active),
            ev.mac.eq(s.active & s.k_ok & (u.fu == FuOp.MAC) & ~s.in_chain),
            ev.mema_read.eq(s.mema_read_c | s.mema_read_x),
            ev.mema_write.eq(w.load_mema | w.wb_mema),
            ev.memb_reads.eq(ports.memb_reads), ev.memb_writes.eq(ports.memb_writes),
        ]
