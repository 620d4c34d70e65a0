"""Kernel cases: a program, its input data and the golden result, for any backend.

Each case builder lays out its operands in the SPAD and PE memories, writes a short program
(load, compute, store) and computes the expected output directly with
:mod:`caterpillar.golden.kernels` on the logical matrices, independently of the
instruction-level simulator's per-PE bookkeeping. :func:`run_case` runs a case on a
:class:`~caterpillar.software.driver.device.Device` through the driver.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from caterpillar.contract.geometry import vector_words
from caterpillar.contract.isa import Layout, Opcode, VecOp, encode
from caterpillar.golden import kernels as gk
from caterpillar.golden import numerics as gn
from caterpillar.software.driver.core import Driver

__all__ = ["KernelCase", "random_values", "run_case", "gemv_case", "gemvt_case", "ger_case",
           "cpass_case", "gemm_case", "gemm_reuse_case", "vop_case", "smxce_case",
           "transfer_case", "vector_transfer_case", "best_mc"]


@dataclass
class KernelCase:
    """A program with its data: run it, read ``outputs``, compare with ``expected``."""

    name: str
    program: list
    spad: dict = field(default_factory=dict)
    sregs: dict = field(default_factory=dict)
    outputs: list = field(default_factory=list)       # (spad address, shape)
    expected: list = field(default_factory=list)      # arrays, one per output
    macs: int = 0                                     # the problem's multiply-adds
    counted: int | None = None                        # the MAC counter's, where it differs

    @property
    def counted_macs(self) -> int:
        """What the MAC counter reads after the case: ``macs`` unless a kernel also counts
        MACs that are not the problem's (``cpass`` adds its partial sums of ``z``)."""
        return self.macs if self.counted is None else self.counted


def random_values(shape, fmt, rng, *, specials: float = 0.0, scale: float = 1.0):
    """Return random bit patterns: normal values, and a ``specials`` fraction of corner values
    (zeros of both signs, subnormals, infinities, NaN)."""
    values = gn.from_float(rng.standard_normal(shape) * scale, fmt).astype(np.uint64)
    if specials:
        corner = np.array([0, fmt.sign_mask, 1, fmt.man_mask, fmt.inf, fmt.inf | fmt.sign_mask,
                           fmt.canonical_nan, fmt.max_normal], dtype=np.uint64)
        pick = rng.random(shape) < specials
        values = np.where(pick, corner[rng.integers(0, len(corner), shape)], values)
    return values


def _ceil(x, n):
    return -(-x // n) * n


def _padded(matrix, ld):
    rows, cols = matrix.shape
    out = np.zeros((rows, ld), dtype=np.uint64)
    out[:, :cols] = matrix
    return out.ravel()


def run_case(device, case: KernelCase, timeout_cycles: int = 50_000_000):
    """Load ``case`` into ``device``, run it, return ``(outputs, stats)``.

    The output regions are zeroed first and ``HOST_WORDS`` cleared, so a case gives the same
    answer and counters on a device that ran other cases before (words a program leaves
    unwritten, e.g. padding, read as zero; the host words are the case's own).
    """
    driver = Driver(device)
    driver.clear_host_words()
    driver.load_program(case.program)
    for addr, shape in case.outputs:
        driver.write_spad(addr, np.zeros(int(np.prod(shape)), dtype=np.uint64))
    for addr, values in case.spad.items():
        driver.write_spad(addr, values)
    for index, bits in case.sregs.items():
        driver.set_scalar(index, bits)
    stats = driver.run(timeout_cycles=timeout_cycles)
    outputs = [driver.read_spad(addr, int(np.prod(shape))).reshape(shape)
               for addr, shape in case.outputs]
    return outputs, stats


def _gemv_case(cfg, rows, cols, rng, specials, transposed, load, store=False) -> KernelCase:
    nr, fmt, acc = cfg.nr, cfg.operand, cfg.acc
    w = random_values((rows, cols), fmt, rng, specials=specials)
    n_in, n_out = (rows, cols) if transposed else (cols, rows)
    vec = random_values(n_in, fmt, rng, specials=specials)
    lds, ldw = _ceil(cols, nr), -(-cols // nr)
    in_loc, out_loc = -(-n_in // nr), -(-n_out // nr)
    v_diag, v_rep, psum, out = 0, in_loc, 2 * in_loc, 2 * in_loc + out_loc
    spad_v = _ceil(rows * lds, nr)
    spad_out = spad_v + _ceil(n_in, nr)
    loading = dict(load=int(load), spad=spad_v if load else 0)
    if transposed:
        kernel = encode(Opcode.GEMVT, z=out, d=v_rep, w=0, psum=psum, rows=rows, cols=cols,
                        ldw=ldw, **loading)
        expected, _ = gk.gemvt(w, vec, nr, fmt, acc)
    else:
        kernel = encode(Opcode.GEMV, y=out, x=v_rep, w=0, psum=psum, rows=rows, cols=cols,
                        ldw=ldw, store=int(store), dst=spad_out if store else 0, **loading)
        expected, _ = gk.gemv(w, vec, nr, fmt, acc)
    # Without load the input reaches its replicated layout by a diagonal load and a broadcast.
    replicate = [] if load else [
        encode(Opcode.LDV, spad=spad_v, memb=v_diag, len=n_in, layout=Layout.DIAG),
        encode(Opcode.BCAST, dst=v_rep, src=v_diag, len=n_in,
               layout=Layout.ROWREP if transposed else Layout.COLREP),
    ]
    program = [
        encode(Opcode.LDA, spad=0, mema=0, rows=rows, cols=cols, lds=lds, ldm=ldw),
        *replicate,
        kernel,
        # With store the gemv stores y itself.
        *([] if store else [encode(Opcode.STV, spad=spad_out, memb=out, len=n_out,
                                   layout=Layout.DIAG)]),
        encode(Opcode.HALT),
    ]
    flags = " (load)" * load + " (store)" * store
    name = f"{'gemvt' if transposed else 'gemv'}{flags} {rows}x{cols}"
    return KernelCase(name, program, {0: _padded(w, lds), spad_v: vec},
                      outputs=[(spad_out, (n_out,))], expected=[expected], macs=rows * cols)


def gemv_case(cfg, rows, cols, rng, *, specials=0.0, load=False, store=False) -> KernelCase:
    """``y = W x`` with W loaded by ``lda`` and x broadcast from the diagonal (with ``load``:
    loaded from the SPAD by the ``gemv`` itself), y stored by ``stv`` (with ``store``: by the
    ``gemv``)."""
    return _gemv_case(cfg, rows, cols, rng, specials, transposed=False, load=load, store=store)


def gemvt_case(cfg, rows, cols, rng, *, specials=0.0, load=False) -> KernelCase:
    """``z = W^T d`` with the weights in place and d broadcast along the rows (with ``load``:
    loaded from the SPAD by the ``gemvt`` itself)."""
    return _gemv_case(cfg, rows, cols, rng, specials, transposed=True, load=load)


def ger_case(cfg, rows, cols, rng, *, use_wd=False, use_mom=False, specials=0.0, ldw_pad=0,
             mom_pad=0, load=False):
    """The rank-1 update: ``W += u v^T`` (one MAC per weight), or with weight decay and/or
    momentum ``W += alpha g`` (:func:`~caterpillar.golden.kernels.ger`); ``W``'s rows
    ``ceil(cols / nr) + ldw_pad`` words apart in MemA, the momentum ``mom_pad`` words after
    ``W``'s tile; with ``load`` u is loaded from the SPAD by the ``ger`` itself."""
    nr, fmt, acc = cfg.nr, cfg.operand, cfg.acc
    w = random_values((rows, cols), fmt, rng, specials=specials)
    mom = random_values((rows, cols), fmt, rng, specials=specials)
    u = random_values(rows, fmt, rng, specials=specials)
    v = random_values(cols, fmt, rng, specials=specials)
    lds, ldw = _ceil(cols, nr), -(-cols // nr) + ldw_pad
    m_loc, k_loc = -(-rows // nr), -(-cols // nr)
    tile = m_loc * ldw + mom_pad
    u_diag, v_diag, u_rep, v_rep = 0, m_loc, m_loc + k_loc, 2 * m_loc + k_loc
    spad_m = _ceil(rows * lds, nr)
    spad_u = spad_m + _ceil(rows * lds, nr)
    spad_v = spad_u + _ceil(rows, nr)
    spad_out = spad_v + _ceil(cols, nr)
    alpha, wd, mu = (int(gn.from_float(v, fmt)) for v in (-0.0625, 0.01, 0.9))
    load_mom = [encode(Opcode.LDA, spad=spad_m, mema=tile, rows=rows, cols=cols, lds=lds,
                       ldm=ldw)] if use_mom else []
    store_mom = [encode(Opcode.STA, spad=spad_out + rows * lds, mema=tile, rows=rows,
                        cols=cols, lds=lds, ldm=ldw)] if use_mom else []
    program = [
        encode(Opcode.LDA, spad=0, mema=0, rows=rows, cols=cols, lds=lds, ldm=ldw),
        *load_mom,
        *([] if load else [
            encode(Opcode.LDV, spad=spad_u, memb=u_diag, len=rows, layout=Layout.DIAG),
            encode(Opcode.BCAST, dst=u_rep, src=u_diag, len=rows, layout=Layout.ROWREP)]),
        encode(Opcode.LDV, spad=spad_v, memb=v_diag, len=cols, layout=Layout.DIAG),
        encode(Opcode.BCAST, dst=v_rep, src=v_diag, len=cols, layout=Layout.COLREP),
        encode(Opcode.GER, w=0, u=0 if load else u_rep, v=v_rep, mom=tile if use_mom else 0,
               rows=rows, cols=cols, ldw=ldw, alpha=1, wd=2, mu=3, use_wd=int(use_wd),
               use_mom=int(use_mom), load=int(load), spad=spad_u if load else 0),
        encode(Opcode.STA, spad=spad_out, mema=0, rows=rows, cols=cols, lds=lds, ldm=ldw),
        *store_mom,
        encode(Opcode.HALT),
    ]
    plain = not (use_wd or use_mom)
    if plain:
        new_w, new_mom = gk.ger_accumulate(w, u, v, fmt, acc), None
    else:
        new_w, new_mom = gk.ger(w, u, v, alpha, fmt, acc, wd=wd if use_wd else None,
                                mom=mom if use_mom else None, mu=mu)
    outputs = [(spad_out, (rows, lds))]
    expected = [_padded(new_w, lds).reshape(rows, lds)]
    spad = {0: _padded(w, lds), spad_u: u, spad_v: v}
    if use_mom:
        outputs.append((spad_out + rows * lds, (rows, lds)))
        expected.append(_padded(new_mom, lds).reshape(rows, lds))
        spad[spad_m] = _padded(mom, lds)
    return KernelCase(f"ger {rows}x{cols} wd={use_wd} mom={use_mom}" + " (load)" * load,
                      program, spad,
                      {1: alpha, 2: wd, 3: mu}, outputs, expected,
                      macs=rows * cols * (1 if plain else 2 + use_wd + use_mom))


def cpass_case(cfg, rows, cols, rng, *, prop=True, fwd=True, store=False, load=False,
               specials=0.0) -> KernelCase:
    """Continuous propagation's fused pass: ``z = W^T d`` (``prop``), ``W += d a^T``, then
    ``y = W x`` with the updated ``W`` (``fwd``; with ``store`` the cpass stores ``y`` in the
    SPAD itself; with ``load`` it takes ``d`` from the SPAD); outputs ``W'``, then ``y`` and
    ``z``."""
    nr, fmt, acc, lanes = cfg.nr, cfg.operand, cfg.acc, cfg.acc_lanes
    w = random_values((rows, cols), fmt, rng, specials=specials)
    d = random_values(rows, fmt, rng, specials=specials)
    a = random_values(cols, fmt, rng, specials=specials)
    x = random_values(cols, fmt, rng, specials=specials)
    lds, ldw = _ceil(cols, nr), -(-cols // nr)
    m_loc, k_loc = -(-rows // nr), -(-cols // nr)
    d_len = _ceil(m_loc, lanes)
    # MemB: d, a, x (replicated), the outputs and the scratch; the diagonal copies d, a and x
    # are loaded into fpsum, bpsum and z, which cpass writes after they are broadcast.
    layout, top = {}, 0
    for name, size in [("d", d_len), ("a", k_loc), ("x", k_loc), ("y", m_loc), ("z", k_loc),
                       ("q", lanes * k_loc), ("fpsum", m_loc), ("bpsum", k_loc)]:
        layout[name], top = top, top + size
    layout.update(d_diag=layout["fpsum"], a_diag=layout["bpsum"], x_diag=layout["z"])
    spad_d = _ceil(rows * lds, nr)
    spad_a = spad_d + _ceil(rows, nr)
    spad_x = spad_a + _ceil(cols, nr)
    spad_w = spad_x + _ceil(cols, nr)
    spad_y = spad_w + rows * lds
    spad_z = spad_y + _ceil(rows, nr)
    L = layout
    program = [
        encode(Opcode.LDA, spad=0, mema=0, rows=rows, cols=cols, lds=lds, ldm=ldw),
        *([] if load else [encode(Opcode.LDV, spad=spad_d, memb=L["d_diag"], len=rows,
                                  layout=Layout.DIAG)]),
        encode(Opcode.LDV, spad=spad_a, memb=L["a_diag"], len=cols, layout=Layout.DIAG),
        encode(Opcode.LDV, spad=spad_x, memb=L["x_diag"], len=cols, layout=Layout.DIAG),
        *([] if load else [encode(Opcode.BCAST, dst=L["d"], src=L["d_diag"], len=rows,
                                  layout=Layout.ROWREP)]),
        encode(Opcode.BCAST, dst=L["a"], src=L["a_diag"], len=cols, layout=Layout.COLREP),
        encode(Opcode.BCAST, dst=L["x"], src=L["x_diag"], len=cols, layout=Layout.COLREP),
        encode(Opcode.CPASS, w=0, d=L["d"], a=L["a"], x=L["x"], y=L["y"], z=L["z"], q=L["q"],
               fpsum=L["fpsum"], bpsum=L["bpsum"], rows=rows, cols=cols, ldw=ldw,
               prop=int(prop), fwd=int(fwd), store=int(store), dst=spad_y if store else 0,
               load=int(load), spad=spad_d if load else 0),
        encode(Opcode.STA, spad=spad_w, mema=0, rows=rows, cols=cols, lds=lds, ldm=ldw),
    ]
    new_w = gk.ger_accumulate(w, d, a, fmt, acc)
    outputs = [(spad_w, (rows, lds))]
    expected = [_padded(new_w, lds).reshape(rows, lds)]
    if fwd:
        if not store:
            program.append(encode(Opcode.STV, spad=spad_y, memb=L["y"], len=rows,
                                  layout=Layout.DIAG))
        outputs.append((spad_y, (rows,)))
        expected.append(gk.gemv(new_w, x, nr, fmt, acc)[0])
    if prop:
        program.append(encode(Opcode.STV, spad=spad_z, memb=L["z"], len=cols,
                              layout=Layout.DIAG))
        outputs.append((spad_z, (cols,)))
        expected.append(gk.cpass_backward(w, d, nr, lanes, fmt, acc)[0])
    program.append(encode(Opcode.HALT))
    macs = rows * cols * (1 + prop + fwd)
    name = (f"cpass {rows}x{cols} prop={int(prop)} fwd={int(fwd)}" + " (store)" * store
            + " (load)" * load)
    return KernelCase(name, program,
                      {0: _padded(w, lds), spad_d: d, spad_a: a, spad_x: x}, {}, outputs,
                      expected, macs=macs, counted=macs + prop * lanes * nr * cols)


def best_mc(cfg, m, k) -> int:
    """Return the largest legal ``mc`` for a GEMM of ``m`` rows and ``k`` inner dimension."""
    group = cfg.nr * cfg.acc_lanes
    per_pe_rows = cfg.mema_words // -(-k // cfg.nr)
    mc = (per_pe_rows * cfg.nr) // group * group
    if mc == 0:
        raise ValueError(f"k={k} leaves no room for one row group of A in MemA")
    return min(mc, _ceil(m, group))


def gemm_case(cfg, m, n, k, rng, *, accumulate=False, specials=0.0, mc=None,
              a_mema=False, a_rows=False, lda_pad=0, mema=0, relu=False) -> KernelCase:
    """``C = A B`` (or ``C += A B``) on SPAD-resident matrices; A is stored transposed, or
    row-major (``a_rows``: the GEMM loads it into MemA itself; ``a_mema``: an ``lda`` loads
    it first), with ``lda_pad`` more words in its leading dimension; A's MemA tile at
    ``mema``; with ``relu`` C rectified as it is stored (``vop maxs`` with +0's values)."""
    nr, fmt, acc = cfg.nr, cfg.operand, cfg.acc
    a = random_values((m, k), fmt, rng, specials=specials)
    b = random_values((k, n), fmt, rng, specials=specials)
    c = random_values((m, n), fmt, rng, specials=specials)
    rows_major = a_mema or a_rows
    lds = _ceil(k if rows_major else m, nr) + lda_pad     # A's leading dimension in the SPAD
    lda = _ceil(m, nr) if a_mema else lds
    ldb, ldc = _ceil(n, nr), _ceil(n, nr)
    a_stored = _padded(a, lds) if rows_major else _padded(a.T, lds)
    a0, b0 = 0, _ceil(a_stored.size, nr)
    c0 = b0 + k * ldb
    mc = best_mc(cfg, m, k) if mc is None else mc
    program = [
        encode(Opcode.GEMM, c=c0, a=a0, b=b0, m=m, n=n, k=k, lda=lda, ldb=ldb, ldc=ldc, mc=mc,
               accumulate=int(accumulate), a_mema=int(a_mema), a_rows=int(a_rows), mema=mema,
               relu=int(relu)),
        encode(Opcode.HALT),
    ]
    if a_mema:
        program.insert(0, encode(Opcode.LDA, spad=a0, mema=mema, rows=m, cols=k,
                                 lds=lds, ldm=-(-k // nr), trans=0))
    expected = gk.gemm(a, b, c if accumulate else None, fmt, acc)
    if relu:
        expected = gk.vop("maxs", expected, expected, 0, fmt, acc)
    name = (f"gemm {m}x{n}x{k}{' acc' if accumulate else ''}{' a_mema' if a_mema else ''}"
            f"{' a_rows' if a_rows else ''}{f' lda+{lda_pad}' if lda_pad else ''}"
            f"{f' mema={mema}' if mema else ''}{' relu' if relu else ''}")
    return KernelCase(name, program, {a0: a_stored, b0: _padded(b, ldb), c0: _padded(c, ldc)},
                      outputs=[(c0, (m, ldc))],
                      expected=[_padded(expected, ldc).reshape(m, ldc)], macs=m * n * k)


def gemm_reuse_case(cfg, m, n, k, rng, *, mema: int) -> KernelCase:
    """Two GEMMs sharing A: the first streams ``A^T`` from the SPAD and keeps A's block (one,
    ``m <= mc``) in MemA at ``mema``; an ``lda`` then fills MemA below ``mema``; the second
    GEMM (``a_mema``) multiplies the tile it finds at ``mema`` by another B. Both products are
    checked, so the second shows where the first left A."""
    nr, fmt, acc = cfg.nr, cfg.operand, cfg.acc
    a = random_values((m, k), fmt, rng)
    b1, b2 = random_values((k, n), fmt, rng), random_values((k, n), fmt, rng)
    lda, ldb = _ceil(m, nr), _ceil(n, nr)
    a0 = 0
    b10 = _ceil(k * lda, nr)
    b20 = b10 + k * ldb
    c10 = b20 + k * ldb
    c20 = c10 + m * ldb
    mc = _ceil(m, nr * cfg.acc_lanes)
    common = dict(m=m, n=n, k=k, lda=lda, ldb=ldb, ldc=ldb, mc=mc, mema=mema)
    ldm = -(-n // nr)
    if -(-k // nr) * ldm > mema:
        raise ValueError(f"mema={mema} leaves no room below it for B's {k} x {n} tile")
    program = [encode(Opcode.GEMM, c=c10, a=a0, b=b10, **common),
               encode(Opcode.LDA, spad=b10, mema=0, rows=k, cols=n, lds=ldb, ldm=ldm),
               encode(Opcode.GEMM, c=c20, a=a0, b=b20, a_mema=1, **common),
               encode(Opcode.HALT)]
    return KernelCase(f"gemm {m}x{n}x{k} twice, A kept at mema={mema}", program,
                      {a0: _padded(a.T, lda), b10: _padded(b1, ldb), b20: _padded(b2, ldb)},
                      outputs=[(c10, (m, ldb)), (c20, (m, ldb))],
                      expected=[_padded(gk.gemm(a, b, None, fmt, acc), ldb).reshape(m, ldb)
                                for b in (b1, b2)], macs=2 * m * n * k)


_VOP_MACS = {"add": 1, "sub": 1, "mul": 1, "axpy": 1, "scale": 1, "mseg": 2}


def vop_case(cfg, fn: VecOp, layout: Layout, length, rng, *, specials=0.0) -> KernelCase:
    """One elementwise ``vop`` on vectors loaded in ``layout``."""
    nr, fmt, acc = cfg.nr, cfg.operand, cfg.acc
    x = random_values(length, fmt, rng, specials=specials)
    y = random_values(length, fmt, rng, specials=specials)
    alpha = int(gn.from_float(-0.75, fmt))
    per_pe = vector_words(nr, Layout(layout).value, length)
    spad_y = _ceil(length, nr)
    spad_z = 2 * spad_y
    program = [
        encode(Opcode.LDV, spad=0, memb=0, len=length, layout=layout),
        encode(Opcode.LDV, spad=spad_y, memb=per_pe, len=length, layout=layout),
        encode(Opcode.VOP, fn=fn, layout=layout, z=2 * per_pe, x=0, y=per_pe, len=length,
               alpha=4),
        encode(Opcode.STV, spad=spad_z, memb=2 * per_pe, len=length, layout=layout),
        encode(Opcode.HALT),
    ]
    name = VecOp(fn).name.lower()
    expected = gk.vop(name, x, y, alpha, fmt, acc)
    copies = 1 if layout in (Layout.DIAG, Layout.FULL) else nr
    return KernelCase(f"vop {name} {Layout(layout).name.lower()} {length}", program,
                      {0: x, spad_y: y}, {4: alpha}, [(spad_z, (length,))], [expected],
                      macs=length * copies * _VOP_MACS.get(name, 0))


def smxce_case(cfg, length, rng, *, specials=0.0, rows=0) -> KernelCase:
    """The softmax cross-entropy gradient of random logits against a one-hot target; with
    ``rows`` R > 0, of R samples at once, sample r in PE row r (its logits, target and
    gradient moved by ``ldv`` and ``stv`` with ``row`` r + 1)."""
    if rows:
        return _smxce_rows_case(cfg, length, rows, rng, specials=specials)
    nr, fmt, acc = cfg.nr, cfg.operand, cfg.acc
    x = random_values(length, fmt, rng, specials=specials, scale=3.0)
    t = np.zeros(length, dtype=np.uint64)
    t[rng.integers(length)] = gn.from_float(1.0, fmt)
    per_pe = -(-length // nr)
    spad_t = _ceil(length, nr)
    spad_z = 2 * spad_t
    program = [
        encode(Opcode.LDV, spad=0, memb=0, len=length, layout=Layout.COLREP),
        encode(Opcode.LDV, spad=spad_t, memb=per_pe, len=length, layout=Layout.COLREP),
        encode(Opcode.SMXCE, z=2 * per_pe, x=0, t=per_pe, scr=3 * per_pe, len=length),
        encode(Opcode.STV, spad=spad_z, memb=2 * per_pe, len=length, layout=Layout.DIAG),
        encode(Opcode.HALT),
    ]
    z, _ = gk.smxce([x[c::nr] for c in range(nr)], [t[c::nr] for c in range(nr)], length, nr,
                    fmt, acc)
    return KernelCase(f"smxce {length}", program, {0: x, spad_t: t},
                      outputs=[(spad_z, (length,))], expected=[z], macs=13 * length + 7)


def _smxce_rows_case(cfg, length, rows, rng, *, specials) -> KernelCase:
    nr, fmt, acc = cfg.nr, cfg.operand, cfg.acc
    x = random_values((rows, length), fmt, rng, specials=specials, scale=3.0)
    t = np.zeros((rows, length), dtype=np.uint64)
    t[np.arange(rows), rng.integers(length, size=rows)] = gn.from_float(1.0, fmt)
    per_pe, ld = -(-length // nr), _ceil(length, nr)
    spad_t, spad_z = rows * ld, 2 * rows * ld
    program = []
    for r in range(rows):
        program += [
            encode(Opcode.LDV, spad=r * ld, memb=0, len=length, layout=Layout.COLREP, row=r + 1),
            encode(Opcode.LDV, spad=spad_t + r * ld, memb=per_pe, len=length,
                   layout=Layout.COLREP, row=r + 1)]
    program.append(encode(Opcode.SMXCE, z=2 * per_pe, x=0, t=per_pe, scr=3 * per_pe, len=length,
                          rows=rows))
    program += [encode(Opcode.STV, spad=spad_z + r * ld, memb=2 * per_pe, len=length,
                       layout=Layout.COLREP, row=r + 1) for r in range(rows)]
    program.append(encode(Opcode.HALT))
    z = [gk.smxce([x[r, c::nr] for c in range(nr)], [t[r, c::nr] for c in range(nr)], length,
                  nr, fmt, acc, r)[0] for r in range(rows)]
    pad = lambda v: np.pad(v, ((0, 0), (0, ld - length)))  # noqa: E731
    return KernelCase(f"smxce {length} x {rows} rows", program,
                      {0: pad(x).ravel(), spad_t: pad(t).ravel()},
                      outputs=[(spad_z + r * ld, (length,)) for r in range(rows)], expected=z,
                      macs=rows * (13 * length + 7))


def transfer_case(cfg, rows, cols, rng, *, trans=False) -> KernelCase:
    """A matrix into MemA (normal or transposed orientation) and back out both ways."""
    nr = cfg.nr
    tile = random_values((rows, cols), cfg.operand, rng, specials=0.2)
    stored = tile.T if trans else tile
    lds = _ceil(stored.shape[1], nr)
    ldm = -(-cols // nr)
    out = _ceil(stored.shape[0] * lds, nr)
    out_t = out + _ceil(stored.shape[0] * lds, nr)
    ld_t = _ceil(rows if not trans else cols, nr)
    program = [
        encode(Opcode.LDA, spad=0, mema=0, rows=rows, cols=cols, lds=lds, ldm=ldm,
               trans=int(trans)),
        encode(Opcode.STA, spad=out, mema=0, rows=rows, cols=cols, lds=lds, ldm=ldm,
               trans=int(trans)),
        encode(Opcode.STA, spad=out_t, mema=0, rows=rows, cols=cols, lds=ld_t, ldm=ldm,
               trans=int(not trans)),
        encode(Opcode.HALT),
    ]
    other = tile if trans else tile.T
    return KernelCase(f"lda/sta {rows}x{cols} trans={trans}", program, {0: _padded(stored, lds)},
                      outputs=[(out, (stored.shape[0], lds)),
                               (out_t, (other.shape[0], ld_t))],
                      expected=[_padded(stored, lds).reshape(stored.shape[0], lds),
                                _padded(other, ld_t).reshape(other.shape[0], ld_t)])


def transfer_chain_case(cfg, length, rng) -> KernelCase:
    """Transfers back to back, each reading what the one before wrote in its first cycle: a
    load, a store of the loaded rows, a load of the stored ones, a store (the short drain
    after a transfer kernel, ``contract/geometry.py`` ``drain_cycles``)."""
    nr = cfg.nr
    x = random_values(length, cfg.operand, rng, specials=0.2)
    per_pe, ld = -(-length // nr), _ceil(length, nr)
    program = [encode(Opcode.LDV, spad=0, memb=0, len=length, layout=Layout.DIAG),
               encode(Opcode.STV, spad=ld, memb=0, len=length, layout=Layout.DIAG),
               encode(Opcode.LDV, spad=ld, memb=per_pe, len=length, layout=Layout.COLREP),
               encode(Opcode.STV, spad=2 * ld, memb=per_pe, len=length, layout=Layout.COLREP),
               encode(Opcode.HALT)]
    return KernelCase(f"transfer chain {length}", program, {0: x},
                      outputs=[(ld, (length,)), (2 * ld, (length,))], expected=[x, x])


def vector_transfer_case(cfg, length, rng) -> KernelCase:
    """A vector through every layout: loads, broadcasts from the diagonal, stores."""
    nr = cfg.nr
    x = random_values(length, cfg.operand, rng, specials=0.2)
    per_pe = -(-length // nr)
    ld = _ceil(length, nr)
    program = [encode(Opcode.LDV, spad=0, memb=0, len=length, layout=Layout.DIAG)]
    outputs = []
    for index, layout in enumerate((Layout.COLREP, Layout.ROWREP)):
        dst = per_pe * (index + 1)
        program += [encode(Opcode.BCAST, dst=dst, src=0, len=length, layout=layout),
                    encode(Opcode.STV, spad=ld * (index + 1), memb=dst, len=length,
                           layout=layout)]
        outputs.append((ld * (index + 1), (length,)))
    program += [encode(Opcode.LDV, spad=0, memb=3 * per_pe, len=length, layout=Layout.ROWREP),
                encode(Opcode.STV, spad=3 * ld, memb=3 * per_pe, len=length,
                       layout=Layout.ROWREP), encode(Opcode.HALT)]
    outputs.append((3 * ld, (length,)))
    return KernelCase(f"vectors {length}", program, {0: x}, outputs=outputs,
                      expected=[x, x, x])
