"""The hardware events of each instruction, counted as the RTL's event counters count them.

Pure Python. :func:`instruction_events` gives, for one checked instruction, what the event
counters (:data:`~caterpillar.contract.isa.EVENT_COUNTERS`) add while it runs;
:func:`ring_events` does the same for a ``RING`` instruction. They follow the micro-op streams of
:mod:`caterpillar.rtl.kernels` and :mod:`caterpillar.rtl.gemm` and the PE's decode
(docs/architecture.md section 2): a PE executes a micro-op where it is selected and inside the
bounds; it reads a memory for an operand inside the reduction bound, for an addend, for a side
fill or for a bus it drives; a transfer reads or writes the PEs its lanes target, and the SPAD a
whole row per load and the targeted lanes per store. The counters' RTL and these formulas are
checked against each other on every kernel, in random programs and in training steps on the
Verilated core and ring.
"""

from __future__ import annotations

from caterpillar.contract.geometry import cdiv
from caterpillar.contract.isa import Counter, Layout, Opcode, VecOp

__all__ = ["instruction_events", "ring_events", "EVENTS_PER_INSTRUCTION"]

#: The counters :func:`instruction_events` and :func:`ring_events` report.
EVENTS_PER_INSTRUCTION = (Counter.MACS, Counter.OPS, Counter.MEMA_READS, Counter.MEMA_WRITES,
                          Counter.MEMB_READS, Counter.MEMB_WRITES, Counter.SPAD_READS,
                          Counter.SPAD_WRITES, Counter.LINK_WORDS, Counter.RING_ADDS)


def _events(ops=0, mema_r=0, mema_w=0, memb_r=0, memb_w=0, spad_r=0, spad_w=0, macs=0) -> dict:
    return {Counter.MACS: macs, Counter.OPS: ops, Counter.MEMA_READS: mema_r,
            Counter.MEMA_WRITES: mema_w,
            Counter.MEMB_READS: memb_r, Counter.MEMB_WRITES: memb_w,
            Counter.SPAD_READS: spad_r, Counter.SPAD_WRITES: spad_w,
            Counter.LINK_WORDS: 0, Counter.RING_ADDS: 0}


def _copies(layout: int, nr: int) -> int:
    """PEs holding each element of a vector in ``layout``."""
    return 1 if layout in (Layout.DIAG.value, Layout.FULL.value) else nr


def _rdcnt(f, plan, cfg):
    return _events(spad_w=plan.values["words"])


def _ldv(f, plan, cfg):
    # Every PE of the layout on the element's bus writes it (one PE row's with ``row``).
    copies = 1 if f.row else _copies(f.layout, cfg.nr)
    return _events(memb_w=copies * f.len, spad_r=cfg.nr * plan.values["rows"])


def _stv(f, plan, cfg):
    return _events(memb_r=f.len, spad_w=f.len)


def _lda(f, plan, cfg):
    rows = plan.values["spad_rows"] * plan.values["spad_chunks"]
    return _events(mema_w=f.rows * f.cols, spad_r=cfg.nr * rows)


def _sta(f, plan, cfg):
    return _events(mema_r=f.rows * f.cols, spad_w=f.rows * f.cols)


def _bcast(f, plan, cfg):
    # The diagonal PEs drive the buses from MemB for every row of the vector.
    nr = cfg.nr
    return _events(ops=nr * f.len, memb_r=nr * plan.values["rows"], memb_w=nr * f.len)


def _chain(outputs: int, nr: int, to_spad: bool = False) -> dict:
    """The reduction chain of ``outputs`` sums over ``nr`` partial sums each: every position
    reads its partial sum from MemB, the last (diagonal) one writes the sum to MemB, or
    (``to_spad``: GEMV's or CPASS's ``store``) to an accumulator slot from which it is
    stored."""
    sums = _events(spad_w=outputs) if to_spad else _events(memb_w=outputs)
    return _add(_events(ops=nr * outputs, memb_r=nr * outputs), sums)


def _add(*parts) -> dict:
    total = _events()
    for part in parts:
        for counter, value in part.items():
            total[counter] += value
    return total


def _gemv(f, plan, cfg, transposed: bool):
    nr, red_loc = cfg.nr, plan.values["red_loc"]
    outputs = f.cols if transposed else f.rows
    weights = f.rows * f.cols
    partial = _events(ops=nr * outputs * red_loc, mema_r=weights, memb_r=weights,
                      memb_w=nr * outputs, macs=weights)
    # The load writes the input into every PE of its replicated layout, as LDV does.
    inputs = f.rows if transposed else f.cols
    load = _events(memb_w=nr * inputs, spad_r=nr * red_loc) if f.load else _events()
    return _add(partial, _chain(outputs, nr, to_spad=not transposed and bool(f.store)), load)


def _ger(f, plan, cfg):
    weights = f.rows * f.cols
    if not (f.use_wd or f.use_mom):
        # With load u comes from accumulator slots, loaded a SPAD row per row of u.
        u = _events(spad_r=cfg.nr * plan.values["m_loc"]) if f.load else \
            _events(memb_r=weights)
        return _add(_events(ops=weights, mema_r=weights, mema_w=weights, memb_r=weights,
                            macs=weights), u)
    steps = plan.values["steps"]
    if plan.values["banked"]:
        # W read by the decay and the update, m read and written by the momentum step.
        mema_r, mema_w = 1 + f.use_wd + f.use_mom, 1 + f.use_mom
    else:
        # W into a slot once, m read by the momentum step; W and m stored.
        mema_r, mema_w = 1 + f.use_mom, 1 + f.use_mom
    # Every step but the slotted W load and m store is a MAC.
    return _events(ops=steps * weights, mema_r=mema_r * weights, mema_w=mema_w * weights,
                   memb_r=2 * weights, macs=(2 + f.use_wd + f.use_mom) * weights)


def _cpass(f, plan, cfg):
    nr, lacc, lanes = cfg.nr, cfg.acc_lanes, cfg.chain_lanes
    groups, windows = plan.values["groups"], plan.values["windows"]
    rows, cols, weights = f.rows, f.cols, f.rows * f.cols
    # Each group's deltas fill a slot in every PE (MemB read port 1), beside the MAC path;
    # with load a SPAD row each (the rows of d only).
    deltas = _events(spad_r=nr * plan.values["m_loc"]) if f.load else \
        _events(memb_r=groups * lacc * nr * nr)
    update = _events(ops=weights, mema_r=0 if f.prop else weights, mema_w=weights,
                     memb_r=weights, macs=weights)
    parts = [deltas, update]
    if f.prop:
        # Backward steps: every PE row, partial sums through MemB (read after the first group).
        parts.append(_events(ops=groups * lacc * nr * cols, mema_r=weights,
                             memb_r=(groups - 1) * lacc * nr * cols,
                             memb_w=groups * lacc * nr * cols, macs=weights))
        # The combine of the lanes' partial sums: MACs by one, counted as MACs.
        parts.append(_events(ops=lacc * nr * cols, memb_r=lacc * nr * cols, memb_w=nr * cols,
                             macs=lacc * nr * cols))
        parts.append(_chain(cols, nr))
    if f.fwd:
        # Forward steps over every window position (padded columns too), in every PE column.
        steps = rows * nr * windows * (lanes // lacc)
        parts.append(_events(ops=steps, memb_r=weights, memb_w=rows * nr, macs=weights))
        parts.append(_chain(rows, nr, to_spad=bool(f.store)))
    return _add(*parts)


#: MACs per element of each ``VOP`` function (the others compare or move).
_VOP_MACS = {VecOp.ADD: 1, VecOp.SUB: 1, VecOp.MUL: 1, VecOp.AXPY: 1, VecOp.SCALE: 1,
             VecOp.MSEG: 2}


def _vop(f, plan, cfg):
    elements = _copies(f.layout, cfg.nr) * f.len
    macs = _VOP_MACS.get(VecOp(f.fn), 0) * elements
    if f.fn in (VecOp.COPY.value, VecOp.SCALE.value, VecOp.MAXS.value):
        return _events(ops=elements, memb_r=elements, memb_w=elements, macs=macs)
    steps = 3 if f.fn == VecOp.MSEG.value else 2
    return _events(ops=steps * elements, memb_r=2 * elements, memb_w=elements, macs=macs)


def _smxce(f, plan, cfg):
    nr, n = cfg.nr, f.len
    # Row 0 holds the logits (rows 0): two local passes, exp (12 steps), the output (3
    # steps); chains and broadcasts over row 0 (6 nr), the reciprocal's 8 steps in PE(0, 0).
    # MACs: 10 per element in exp, 1 in the local sum, 2 in the output; 7 in the reciprocal.
    # With ``rows`` R, R PE rows each do all of it for their sample at once.
    r = max(f.rows, 1)
    return _events(ops=r * (17 * n + 6 * nr + 8), memb_r=r * (13 * n + 6),
                   memb_w=r * (4 * n + 4), macs=r * (13 * n + 7))


def _gemm(f, plan, cfg):
    nr, lanes = cfg.nr, cfg.acc_lanes
    schedule = plan.schedule
    phases = schedule.phases
    astream = sum(ph.astream for ph in phases)
    loads = [schedule.first_panel] + [ph.next_panel for ph in phases if ph.next_panel]
    panel_cols = [min(nr, f.n - panel * nr) for _, panel in loads]
    cin = len(phases) if f.accumulate else 0
    # a_rows: every phase reads A in MemA, and the loads read each row of A once (rows past
    # m issue no load); else a first panel's compute takes A from the stream, a row per cycle.
    a_rows = f.m * cdiv(f.k, nr) if f.a_rows else f.k * lanes * astream
    spad_rows = a_rows + nr * lanes * cin + f.k * len(loads)
    mema_phases = len(phases) if f.a_rows else len(phases) - astream
    return _events(ops=f.m * f.n * f.k, mema_r=nr * f.k * lanes * mema_phases,
                   mema_w=0 if f.a_mema else f.k * f.m, memb_r=f.m * f.n * f.k,
                   memb_w=f.k * nr * sum(panel_cols), spad_r=nr * spad_rows,
                   spad_w=f.m * f.n, macs=f.m * f.n * f.k)


_KERNEL_EVENTS = {
    Opcode.RDCNT: _rdcnt,
    Opcode.LDV: _ldv,
    Opcode.STV: _stv,
    Opcode.LDA: _lda,
    Opcode.STA: _sta,
    Opcode.BCAST: _bcast,
    Opcode.GEMV: lambda f, plan, cfg: _gemv(f, plan, cfg, transposed=False),
    Opcode.GEMVT: lambda f, plan, cfg: _gemv(f, plan, cfg, transposed=True),
    Opcode.GER: _ger,
    Opcode.CPASS: _cpass,
    Opcode.VOP: _vop,
    Opcode.SMXCE: _smxce,
    Opcode.GEMM: _gemm,
}


def instruction_events(op: Opcode, f, plan, cfg) -> dict:
    """Return ``{counter: events}`` an instruction adds to :data:`EVENTS_PER_INSTRUCTION`.

    ``f``: its operand fields (ints, checks passed), ``plan``: its
    :func:`~caterpillar.contract.geometry.kernel_plan`. Instructions without micro-ops (and
    ``RING``: :func:`ring_events`) add nothing.
    """
    kernel = _KERNEL_EVENTS.get(op)
    return kernel(f, plan, cfg) if kernel else _events()


def ring_events(f, cfg) -> dict:
    """Return ``{counter: events}`` of a ``RING`` instruction with fields ``f``: the rows it
    sends and the local rows it adds to are read, the words it keeps written; every beat sent
    (its own rows, and with ``fwd`` every received one but the ``hold`` last) is ``nr`` link
    words; an added beat is ``nr`` additions."""
    nr = cfg.nr
    send_rows, recv_rows = cdiv(f.slen, nr), cdiv(f.rlen, nr)
    events = _events(spad_r=nr * (send_rows + (recv_rows if f.add else 0)),
                     spad_w=f.rlen if f.keep else 0)
    forwarded = recv_rows - f.hold // nr if f.fwd else 0
    events[Counter.LINK_WORDS] = nr * (send_rows + forwarded)
    events[Counter.RING_ADDS] = nr * recv_rows if f.add else 0
    return events
