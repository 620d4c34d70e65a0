"""Random legal programs for comparing the RTL with the instruction-level simulator.

A program mixes every instruction with random legal operands: tiles and vectors come from
fixed pools of MemA/MemB slots (so operands never alias in timing-dependent ways), data from a
random SPAD image with corner values, some runs of instructions repeat in ``LOOP`` s whose
loads and some of whose other SPAD operands move, and it ends by storing every PE memory pool
and the counters it read to the SPAD, so comparing the SPAD compares the whole state.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from caterpillar.contract.geometry import kernel_plan
from caterpillar.contract.isa import (
    REL_BITS,
    Counter,
    Layout,
    Opcode,
    VecOp,
    address_fields,
    encode,
    relocate,
    unpack,
)
from caterpillar.golden import numerics as gn
from caterpillar.sim.cases.kernels import KernelCase, best_mc, random_values

__all__ = ["random_program", "loop_program"]


def random_program(cfg, rng, length: int = 12) -> KernelCase:
    """Return a random program of ``length`` instructions (plus the final dumps) for ``cfg``.

    The SPAD's lower half holds random data, results go to its upper half; the case's single
    output is the whole upper half (its ``expected`` is left empty: compare two backends).
    """
    nr, fmt = cfg.nr, cfg.operand
    half = cfg.spad_words // 2
    mema_slot = cfg.mema_words // 4
    memb_slots = 8
    memb_slot = cfg.memb_words // memb_slots
    out = [half]

    def spad_out(words):
        base = -(-out[0] // nr) * nr
        out[0] = base + words
        if out[0] > cfg.spad_words:
            out[0] = half
            base = half
        return base

    def tile(max_words):
        cols = int(rng.integers(1, 2 * nr + 4))
        ldm = -(-cols // nr)
        rows = int(rng.integers(1, nr * max(1, max_words // ldm) + 1))
        rows = min(rows, nr * (max_words // ldm))
        return rows, cols, ldm

    def vec_len():
        return int(rng.integers(1, nr * memb_slot + 1))

    def vec_layout_len():
        """A layout and a length for it (FULL: whole SPAD rows)."""
        layout, n = Layout(int(rng.integers(len(Layout)))), vec_len()
        return layout, (-(-n // nr) * nr if layout == Layout.FULL else n)

    def slots(count):
        return [int(s) * memb_slot for s in rng.choice(memb_slots, count, replace=False)]

    def real(value):
        return int(gn.from_float(value, fmt))

    # Every PE memory starts from SPAD data, so nothing depends on what ran before.
    dump_rows, dump_ldm = nr * (cfg.mema_words // (2 * nr * nr)), 2 * nr
    program = [
        encode(Opcode.LDA, spad=0, mema=0, rows=2 * dump_rows, cols=dump_ldm * nr,
               lds=dump_ldm * nr, ldm=dump_ldm),
        encode(Opcode.LDV, spad=0, memb=0, len=cfg.memb_words * nr, layout=Layout.COLREP),
    ]
    program += [encode(Opcode.SETS, reg=r, value=real(v))
                for r, v in ((1, -0.25), (2, 0.01), (3, 0.5), (4, 1.5))]
    kinds = ["lda", "sta", "ldv", "stv", "bcast", "gemv", "gemvt", "ger", "vop", "smxce",
             "gemm", "cpass", "sets", "rdcnt", "nop", "sync"]
    weights = np.array([3, 2, 3, 2, 2, 3, 3, 3, 3, 1, 1, 2, 1, 1, 1, 1], dtype=float)
    for kind in rng.choice(kinds, length, p=weights / weights.sum()):
        if kind in ("lda", "sta"):
            rows, cols, ldm = tile(mema_slot)
            trans = int(rng.integers(2))
            spad_rows, width = (cols, rows) if trans else (rows, cols)
            lds = -(-width // nr) * nr
            spad = (int(rng.integers(0, half // 2)) // nr * nr if kind == "lda"
                    else spad_out(spad_rows * lds))
            program.append(encode(Opcode[kind.upper()], spad=spad,
                                  mema=int(rng.integers(4)) * mema_slot, rows=rows, cols=cols,
                                  lds=lds, ldm=ldm, trans=trans))
        elif kind in ("ldv", "stv"):
            layout, n = vec_layout_len()
            spad = (int(rng.integers(0, half // 2)) // nr * nr if kind == "ldv"
                    else spad_out(n))
            # COLREP: sometimes one PE row's copy only (row r + 1).
            row = int(rng.integers(nr + 1)) if layout == Layout.COLREP else 0
            program.append(encode(Opcode[kind.upper()], spad=spad, memb=slots(1)[0], len=n,
                                  layout=layout, row=row))
        elif kind == "bcast":
            src, dst = slots(2)
            if rng.integers(4) == 0:
                dst = src
            program.append(encode(Opcode.BCAST, dst=dst, src=src, len=vec_len(),
                                  layout=Layout(int(rng.integers(1, 3)))))
        elif kind in ("gemv", "gemvt"):
            rows, cols, ldm = tile(mema_slot)
            out_len = -(-(rows if kind == "gemv" else cols) // nr)
            in_len = -(-(cols if kind == "gemv" else rows) // nr)
            if max(out_len, in_len) > memb_slot:
                continue
            x, psum, y = slots(3)
            if rng.integers(3) == 0:
                y = x if rng.integers(2) else psum
            names = ("y", "x") if kind == "gemv" else ("z", "d")
            load = int(rng.integers(2))
            # gemv may store y into the SPAD's upper half instead of MemB.
            store = {"store": 1, "dst": spad_out(out_len * nr)} \
                if kind == "gemv" and rng.integers(2) else {}
            program.append(encode(Opcode[kind.upper()], **{names[0]: y, names[1]: x},
                                  w=int(rng.integers(4)) * mema_slot, psum=psum, rows=rows,
                                  cols=cols, ldw=ldm, load=load,
                                  spad=load * (int(rng.integers(0, half // 2)) // nr * nr),
                                  **store))
        elif kind == "ger":
            rows, cols, ldm = tile(mema_slot)
            if max(-(-rows // nr), -(-cols // nr)) > memb_slot:
                continue
            w, mom = (int(s) * mema_slot for s in rng.choice(4, 2, replace=False))
            u, v = slots(2)
            use_wd, use_mom = int(rng.integers(2)), int(rng.integers(2))
            # The plain update may load u from the SPAD into accumulator slots itself.
            load = int(not (use_wd or use_mom) and rng.integers(2))
            program.append(encode(Opcode.GER, w=w, u=u, v=v, mom=mom, rows=rows, cols=cols,
                                  ldw=ldm, alpha=1, wd=2, mu=3, use_wd=use_wd, use_mom=use_mom,
                                  load=load,
                                  spad=load * (int(rng.integers(0, half // 2)) // nr * nr)))
        elif kind == "cpass":
            rows, cols, ldm = tile(mema_slot)
            lanes = cfg.acc_lanes
            d_len = -(-(-(-rows // nr)) // lanes) * lanes
            if max(d_len, lanes * ldm) > memb_slot:
                continue
            d, a, x, y, z, q, fpsum, bpsum = slots(8)
            fwd = int(rng.integers(2))
            # The pass may store y into the SPAD's upper half and load d from the SPAD.
            store = {"store": 1, "dst": spad_out(-(-rows // nr) * nr)} \
                if fwd and rng.integers(2) else {}
            load = int(rng.integers(2))
            program.append(encode(Opcode.CPASS, w=int(rng.integers(4)) * mema_slot, d=d, a=a,
                                  x=x, y=y, z=z, q=q, fpsum=fpsum, bpsum=bpsum, rows=rows,
                                  cols=cols, ldw=ldm, prop=int(rng.integers(2)), fwd=fwd,
                                  load=load,
                                  spad=load * (int(rng.integers(0, half // 2)) // nr * nr),
                                  **store))
        elif kind == "vop":
            z, x, y = (int(s) * memb_slot for s in rng.choice(memb_slots, 3))
            layout, n = vec_layout_len()
            program.append(encode(Opcode.VOP, fn=VecOp(int(rng.integers(len(VecOp)))),
                                  layout=layout, z=z, x=x, y=y, len=n,
                                  alpha=int(rng.integers(1, 5))))
        elif kind == "smxce":
            per_pe = max(1, (memb_slot - 2) // 3)
            n = int(rng.integers(1, nr * per_pe + 1))
            z, x, t, scr = slots(4)
            program.append(encode(Opcode.SMXCE, z=z, x=x, t=t, scr=scr, len=n,
                                  rows=int(rng.integers(nr + 1))))
        elif kind == "gemm":
            m, n, k = (int(rng.integers(1, 3 * nr + 3)) for _ in range(3))
            if 2 * k > cfg.memb_words:
                continue
            # A^T streamed, A in MemA already (a_mema: whatever earlier instructions left
            # there, in one of the slots the other kernels use where A's tile fits), or A
            # row-major, loaded by the GEMM (a_rows).
            a_mode = int(rng.integers(3))
            lda, ldb, ldc = (-(-v // nr) * nr for v in (max(m, k) if a_mode == 2 else m, n, n))
            a = int(rng.integers(0, half // 4)) // nr * nr
            b = a + max(m, k) * lda
            c = spad_out(m * ldc)
            mc = best_mc(cfg, m, k)
            a_words = mc // nr * -(-k // nr)
            slot = int(rng.integers(4)) * mema_slot
            program.append(encode(Opcode.GEMM, c=c, a=a, b=b, m=m, n=n, k=k, lda=lda, ldb=ldb,
                                  ldc=ldc, mc=mc, accumulate=int(rng.integers(2)),
                                  a_mema=int(a_mode == 1), a_rows=int(a_mode == 2),
                                  mema=slot if slot + a_words <= cfg.mema_words else 0))
        elif kind == "sets":
            program.append(encode(Opcode.SETS, reg=int(rng.integers(1, 5)),
                                  value=real(float(rng.standard_normal()))))
        elif kind == "rdcnt":
            program.append(encode(Opcode.RDCNT, counter=Counter(int(rng.integers(len(Counter)))),
                                  spad=spad_out(4)))
        elif kind == "sync":
            program.append(encode(Opcode.SYNC))
        else:
            program.append(encode(Opcode.NOP))

    program = program[:6] + _in_loops(program[6:], cfg, rng)
    # Dump the PE memories: MemA through one tile covering every PE's pool, MemB in the four
    # layouts (the diagonal, row 0 and column 0 between them cover every PE when nr = 2; FULL
    # the first words of every PE).
    program.append(encode(Opcode.STA, spad=spad_out(dump_rows * dump_ldm * nr), mema=0,
                          rows=dump_rows, cols=dump_ldm * nr, lds=dump_ldm * nr,
                          ldm=dump_ldm))
    for layout in Layout:
        program.append(encode(Opcode.STV, spad=spad_out(cfg.memb_words * nr), memb=0,
                              len=cfg.memb_words * nr, layout=layout))
    program.append(encode(Opcode.HALT))
    data = random_values(half, fmt, rng, specials=0.05)
    return KernelCase(f"random program ({length} instructions)", program, {0: data},
                      outputs=[(half, (cfg.spad_words - half,))])


def _in_loops(words, cfg, rng) -> list:
    """``words`` with some runs of one to three instructions in ``LOOP`` s of one to three
    repetitions. Per repetition every ``LDV`` and ``LDA`` loads from a SPAD address a stride
    of 1 to 4 rows further (the data half's words shift); each other SPAD address field of a
    body instruction (a store's destination, a kernel's load, GEMM's operands) moves by the
    same stride at random where the last repetition stays legal, so stores land in other words
    of the results half. MemA and MemB operands stay put (their slots never alias)."""
    out, i = [], 0
    while i < len(words):
        if rng.integers(6):
            out.append(words[i])
            i += 1
            continue
        n = int(rng.integers(1, 4))
        body = words[i:i + n]
        count, stride = int(rng.integers(1, 4)), int(rng.integers(1, 5)) * cfg.nr
        moved = [_moving_spad(w, (count - 1) * stride, cfg, rng) for w in body]
        out += [encode(Opcode.LOOP, count=count, body=len(body), stride1=stride), *moved]
        i += n
    return out


def _moving_spad(word, furthest, cfg, rng) -> int:
    """``word`` with ``rel`` selecting the loop's first stride for its SPAD fields: always a
    load's (``LDV``, ``LDA``), each other at random unless the repetition ``furthest`` words on
    fails a check."""
    op, values = unpack(word)
    fields = address_fields(op)
    if not fields:
        return word
    always = op in (Opcode.LDV, Opcode.LDA)
    chosen = [f.kind == "spad" and (always or bool(rng.integers(2))) for f in fields]
    rel = sum(1 << (REL_BITS * k) for k, move in enumerate(chosen) if move)
    last = relocate(op, {**values, "rel": rel}, (furthest, 0, 0))
    if not all(c.ok for c in kernel_plan(op, SimpleNamespace(**last), cfg).checks):
        rel = int(always)
    return encode(op, **{**values, "rel": rel}) if rel else word


def loop_program(cfg, rng, count: int = 5) -> KernelCase:
    """Return a program whose ``LOOP`` runs a body ``count`` times with every address kind
    moving: per repetition the body loads its input from the SPAD (``4 nr`` words further each
    time: stride 1) into MemB (4 words lower each time: stride 2, negative), computes ``y = W
    x`` with the gemv storing ``y`` (``16 nr`` words further each time: stride 3), rectifies it
    and stores it (stride 3), and a second gemv loads its own input (stride 1) and stores its
    ``y`` (stride 3); a loop of one ``nop`` follows. The output is every word the program
    stores: compare two backends, or the loop with its unrolled twin
    (:func:`~caterpillar.software.compiler.loops.unfold_loops`)."""
    nr, fmt = cfg.nr, cfg.operand
    rows = cols = 3 * nr
    ldw = cols // nr
    x0, y, psum, z = 8 * ldw + 16, 8 * ldw + 32, 8 * ldw + 40, 8 * ldw + 48
    inputs, out = 64 * nr, cfg.spad_words // 2
    relu_out = out + (count + 1) * 16 * nr
    neg4 = (1 << 24) - 4
    rel = lambda *sels: sum(s << (2 * i) for i, s in enumerate(sels))  # noqa: E731
    body = [
        encode(Opcode.LDV, spad=inputs, memb=x0, len=cols, layout=Layout.COLREP, rel=rel(1, 2)),
        encode(Opcode.GEMV, y=y, x=x0, w=0, psum=psum, rows=rows, cols=cols, ldw=ldw,
               store=1, dst=out, rel=rel(0, 2, 0, 0, 0, 3)),
        encode(Opcode.VOP, fn=VecOp.MAXS, layout=Layout.DIAG, z=z, x=y, y=y, len=rows,
               alpha=0),
        encode(Opcode.STV, spad=relu_out, memb=z, len=rows, layout=Layout.DIAG, rel=rel(3)),
        encode(Opcode.GEMV, y=y, x=x0 + ldw, w=0, psum=psum, rows=rows, cols=cols, ldw=ldw,
               load=1, spad=inputs + nr, store=1, dst=out + 8 * nr, rel=rel(0, 0, 0, 0, 1, 3)),
    ]
    program = [
        encode(Opcode.LDA, spad=0, mema=0, rows=rows, cols=cols, lds=cols, ldm=ldw),
        encode(Opcode.LOOP, count=count, body=len(body), stride1=2 * nr * 2, stride2=neg4,
               stride3=16 * nr),
        *body,
        encode(Opcode.LOOP, count=3, body=1),
        encode(Opcode.NOP),
        encode(Opcode.HALT),
    ]
    data = random_values(inputs + (count + 2) * 4 * nr, fmt, rng)
    span = relu_out + count * 16 * nr - out
    return KernelCase(f"loop program ({count} repetitions)", program, {0: data},
                      outputs=[(out, (span,))], macs=2 * count * rows * cols)
