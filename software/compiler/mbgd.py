"""Minibatch GD lowered to GEMM kernels on SPAD-resident matrices, on one core and a ring.

One core: every matrix lives in the SPAD (``[W | b]^T``, activations, gradients); GEMMs read
and write the SPAD, elementwise steps stream chunks through MemB, and the small transposes
left (the deltas, batch-major) pass through MemA (``lda`` with ``trans``, then ``sta``). A
GEMM takes its A operand either streamed as ``A^T`` (:meth:`MbgdBuilder.gemm`) or as A itself,
loaded into MemA by an ``lda`` first (``gemm`` with ``a_mema``: :meth:`MbgdBuilder.gemm_rows`),
so each layer keeps one copy of ``[W | b]``, transposed: the forward streams it, the backward
loads its ``W^T`` rows, the update writes it from the features x batch input loaded the same
way. No transposed copy of a panel and no batch-major input above the first layer is built.

A ring (the bucket algorithm, model parallel): core ``k`` owns the output rows ``R_k`` of
every layer (``ring_blocks(out, C, 1)``): its row panel of ``[W | b]``. Per layer:

* forward: ``H_k = [W | b]_k [A; 1]`` (GEMM over the whole input), ReLU into rows ``R_k`` of
  the next input, then a bucket **all-gather** of the next input (units of one feature row);
  the logits are gathered the same way, each core forms the output gradient of its share of
  the samples and a bucket all-gather gives every core the whole of it;
* backward: the partial ``E_k = W_k^T D_k`` over the whole input width, a bucket
  **reduce-scatter** leaves core ``k`` the summed rows ``R'_k`` of ``E`` (its rows of the
  layer below), the ReLU mask is local;
* update: ``[W | b]_k (+)= D_k [A^T | 1]`` is local (the input was gathered in the forward
  pass), and so is the optimiser.

The output layer is split by columns instead when it shares the layer below's segment and
has no more outputs than inputs (:func:`~.program.layer_splits`): core ``k`` holds the
columns of its ``[W | b]`` that match its rows of the layer below (the bias column on the
segment's last core), so that layer's output is not gathered; the logits are the
reduce-scattered partials ``Z_k = [A; 1]_k^T [W | b]_k^T`` (each core keeps the sums of the
samples whose output gradient it forms; the host reads them there) and the core's rows of
``E = W_k^T D^T`` are whole (no reduce-scatter). docs/multicore.md gives the reasons and the cycles.

A layer with fewer output rows than its segment has cores leaves some cores without rows
(``ring_blocks`` gives them empty blocks): they skip the layer's GEMMs, transposes and
update, take part in its collectives with zero-length transfers, and add ``+0`` as their
partial of ``E`` (a one-term GEMM over zero constants), as the golden trainer does.

Layers may sit on their own segments; activations and deltas are then relayed between
segments over the chain links. ``dfa`` (one segment) computes each hidden layer's ``E`` from
the output delta through the fixed ``F_l`` instead of the layer above's ``W``: on one core
``F_l`` whole, on a ring the core's rows of it (its output rows of the last layer). Both
emit the arithmetic in the order :mod:`caterpillar.golden.trainer` documents.
"""

from __future__ import annotations

from caterpillar.contract.geometry import spad_span_regions, vector_words, words_spad_regions
from caterpillar.contract.isa import Layout, Opcode, VecOp, decode
from caterpillar.golden.collectives import ring_blocks, sample_rows
from caterpillar.software.compiler import collectives as coll
from caterpillar.software.compiler.program import (
    SCALAR_REGS,
    CoreProgram,
    Emitter,
    Region,
    Tensor,
    cdiv,
    ceil_to,
    check_capacity,
    input_name,
    output_bias_position,
    ring_emit,
)
from caterpillar.software.graph.model import TrainingGraph

__all__ = ["MbgdBuilder", "check_mbgd_memb", "mbgd_core_program", "mbgd_ring_core_program"]


def gemm_k_chunk(cfg) -> int:
    """Terms of the longest GEMM: it keeps two B panels of that many words per PE in MemB."""
    return cfg.memb_words // 2


def block_words(cfg, m: int, k: int) -> int:
    """MemA words per PE of one GEMM block holding all ``m`` rows of A (in row groups of ``nr
    Lacc``) over ``k`` terms (its first chunk of :func:`gemm_k_chunk`)."""
    nr = cfg.nr
    return ceil_to(m, nr * cfg.acc_lanes) // nr * cdiv(min(k, gemm_k_chunk(cfg)), nr)


class MembVectors:
    """The vectors :meth:`MbgdBuilder.preload_vector` keeps at MemB's top for one later
    chain each: ``resident`` (SPAD base -> MemB address, words), placed downwards from the
    top; every chain's buffers stay below ``free``, which only falls."""

    def __init__(self, words):
        self.free, self.resident = words, {}

    def place(self, spad, count, words) -> int:
        """The MemB address of ``words`` per PE for the SPAD vector at ``spad``, below the
        others."""
        assert spad not in self.resident, spad
        self.free -= words
        self.resident[spad] = (self.free, count)
        return self.free

    def take(self, spad) -> int:
        """The MemB address of the vector kept for ``spad``, no longer kept."""
        return self.resident.pop(spad)[0]


class MbgdBuilder:
    """Emits MBGD's building blocks: chunked GEMMs, elementwise passes, transposes.

    ``resident`` maps the SPAD address of a row-major A to the MemA base of its tile, loaded
    early by :meth:`preload` (while the array waits for the ring) and read there by
    :meth:`gemm_rows`; ``resident_t`` does the same for an A stored transposed (``A^T``, a
    forward's panel), read there by :meth:`gemm`. Such tiles sit above ``mema_free``, the
    MemA words every other A block and transpose stays below.
    """

    def __init__(self, cfg, emit, *, mema_free=None, resident=None, resident_t=None,
                 kept=None):
        self.cfg, self.e = cfg, emit
        nr = cfg.nr
        self.k_chunk = gemm_k_chunk(cfg)
        self.group = nr * cfg.acc_lanes
        self.mema_free = cfg.mema_words if mema_free is None else mema_free
        self.resident = {} if resident is None else resident
        self.resident_t = {} if resident_t is None else resident_t
        self.kept = MembVectors(cfg.memb_words) if kept is None else kept
        self.split_first = False

    def beside(self, emit, *, split_first=False) -> MbgdBuilder:
        """A builder for another emitter, sharing this one's MemA tiles and MemB vectors;
        ``split_first``: a GEMM on a tile emits its first panel of C's columns alone
        (:meth:`gemm_rows`)."""
        builder = MbgdBuilder(self.cfg, emit, mema_free=self.mema_free, resident=self.resident,
                              resident_t=self.resident_t, kept=self.kept)
        builder.split_first = split_first
        return builder

    def _gemm(self, phase, macs, **fields) -> None:
        """Emit a ``gemm``; its two B panels (MemB words ``0 .. 2 k - 1``) stay below the
        vectors :meth:`preload_vector` keeps."""
        assert not self.kept.resident or 2 * fields["k"] <= self.kept.free, fields
        self.e(phase, Opcode.GEMM, macs, **fields)

    def preload_vector(self, spad, count, emit=None) -> None:
        """Load the ``count`` SPAD words at ``spad`` into MemB (emitted to ``emit``, else
        here) for the next :meth:`elementwise_chain` that reads them (the same layout), above
        every chain and below the vectors kept so far (:class:`MembVectors`; the caller keeps
        every ``gemm``'s two B panels below until the chain has read them)."""
        layout = Layout.FULL if count % self.cfg.nr == 0 else Layout.DIAG
        at = self.kept.place(spad, count, vector_words(self.cfg.nr, layout.value, count))
        (emit or self.e)("transfer", Opcode.LDV, spad=spad, memb=at, len=count, layout=layout)

    def _check_mema(self, need: int, what: str, message) -> None:
        """Check that ``need`` MemA words per PE (``what``) fit below ``mema_free``, recorded
        with the tiles above it as the need of the whole MemA; ``message()``: the error."""
        above = self.cfg.mema_words - self.mema_free
        check_capacity("MemA", above + need, self.cfg.mema_words, message,
                       largest=[(what, need)] + ([("tiles loaded early", above)] if above
                                                 else []))

    def _block_rows(self, kk: int) -> int:
        """Rows of A one GEMM block holds in MemA for ``kk`` terms (checked: one row group)."""
        nr = self.cfg.nr
        need = self.group // nr * cdiv(kk, nr)
        self._check_mema(need, f"one row group of a GEMM over {kk} terms",
                         lambda: f"a GEMM with {kk} inner terms needs at least {need} MemA "
                                 f"words per PE for one row group; the config has "
                                 f"{self.cfg.mema_words}")
        return max(self.mema_free // cdiv(kk, nr) * nr // self.group, 1) * self.group

    def gemm(self, phase, *, c, a, b, m, n, k, lda, ldb, ldc, accumulate=False, macs=True,
             relu=False):
        """``C (+)= A B`` with ``A^T`` at ``a`` (streamed), in chunks of ``k_chunk`` terms, or
        read from its tile if :meth:`preload` loaded one (one block, one chunk: the same sums);
        ``relu``: C rectified as the last chunk stores it (``gemm``'s ``relu``)."""
        kc = self.k_chunk
        if a in self.resident_t:
            self._block(phase, m * n * k if macs else 0, c=c, b=b, m=m, n=n, k=k, ldb=ldb,
                        ldc=ldc, accumulate=accumulate, mema=self.resident_t[a], relu=relu)
            return
        for k0 in range(0, k, kc):
            kk = min(kc, k - k0)
            mc = min(self._block_rows(kk), ceil_to(m, self.group))
            self._gemm(phase, m * n * kk if macs else 0, c=c, a=a + k0 * lda,
                       b=b + k0 * ldb, m=m, n=n, k=kk, lda=lda, ldb=ldb, ldc=ldc, mc=mc,
                       accumulate=int(accumulate or k0 > 0), relu=int(relu and k0 + kc >= k))

    def gemm_rows(self, phase, *, c, a, b, m, n, k, lda, ldb, ldc, accumulate=False):
        """``C (+)= A B`` with ``A`` itself (row-major, ``m x k``) at ``a``: each chunk of
        ``k_chunk`` terms is a ``gemm`` with ``a_rows``, which loads each block's rows into
        MemA ahead of its compute, or, if A is a tile :meth:`preload` loaded, a ``gemm`` with
        ``a_mema`` on it; so no transpose of A is built in the SPAD. The sums are those of
        :meth:`gemm` (chunk by chunk in ``k``)."""
        nr, kc = self.cfg.nr, self.k_chunk
        tile = self.resident.get(a)             # one block, loaded by preload
        one_block = tile is not None or k <= kc and m <= self._block_rows(k)
        if one_block and self.split_first and n > nr:
            # Its first panel of C's columns goes alone, then the rest: the same sums, each B
            # panel streamed once (the ring's update puts the first where a load would go).
            # Without a tile the first loads A's rows (a_rows) and the rest reads them there.
            parts = [(0, nr), (nr, n)]
        elif tile is not None:
            parts = [(0, n)]
        else:
            for k0 in range(0, k, kc):
                kk = min(kc, k - k0)
                mc = min(self._block_rows(kk), ceil_to(m, self.group))
                self._gemm(phase, m * n * kk, c=c, a=a + k0, b=b + k0 * ldb, m=m, n=n, k=kk,
                           lda=lda, ldb=ldb, ldc=ldc, mc=mc,
                           accumulate=int(accumulate or k0 > 0), a_rows=1)
            return
        for n0, n1 in parts:
            loads = tile is None and n0 == 0
            self._block(phase, m * (n1 - n0) * k, c=c + n0, b=b + n0, m=m, n=n1 - n0, k=k,
                        ldb=ldb, ldc=ldc, accumulate=accumulate, mema=tile or 0,
                        rows=(a, lda) if loads else None)

    def _block(self, phase, macs, *, c, b, m, n, k, ldb, ldc, accumulate, mema, rows=None,
               relu=False):
        """A GEMM on one block of A (``m`` rows, ``k <= k_chunk`` terms) in MemA's tile at
        ``mema``: there already (``a_mema``), or loaded there from the row-major A at ``rows =
        (address, leading dimension)`` by the GEMM itself (``a_rows``)."""
        a, lda = rows or (0, ceil_to(m, self.cfg.nr))
        self._gemm(phase, macs, c=c, a=a, b=b, m=m, n=n, k=k, lda=lda, ldb=ldb, ldc=ldc,
                   mc=ceil_to(m, self.group), accumulate=int(accumulate),
                   a_mema=int(rows is None), a_rows=int(rows is not None), mema=mema,
                   relu=int(relu))

    def preload(self, *, a, m, k, lda, r0=0, r1=None, trans=False) -> None:
        """Load rows ``r0 .. r1 - 1`` (``r0`` a multiple of nr) of the row-major ``m x k`` A
        at ``a`` into its tile (``resident[a]``) for a later :meth:`gemm_rows` (one block:
        ``m <= mc``, ``k <= k_chunk``); ``trans``: ``a`` holds ``A^T`` (``k x m``), the tile
        is ``resident_t[a]``, for a later :meth:`gemm`."""
        nr = self.cfg.nr
        r1 = m if r1 is None else r1
        ldm = cdiv(k, nr)
        base = (self.resident_t if trans else self.resident)[a] + r0 // nr * ldm
        self.e("transfer", Opcode.LDA, spad=a + (r0 if trans else r0 * lda), mema=base,
               rows=r1 - r0, cols=k, lds=lda, ldm=ldm, trans=int(trans))

    def elementwise(self, phase, fn, z, x, y=None, *, count, alpha=0):
        """``z = fn(x, y)`` over ``count`` contiguous SPAD words, in MemB-sized chunks."""
        loads = {"x": x} if y is None else {"x": x, "y": y}
        self.elementwise_chain(phase, loads, [(fn, "z", "x", "y" if y is not None else "x",
                                               alpha)], {"z": z}, count=count)

    def elementwise_chain(self, phase, loads, ops, stores, *, count):
        """Elementwise VOPs over ``count`` contiguous SPAD words, in MemB-sized chunks, with
        each vector loaded and stored once per chunk. ``loads``: name -> SPAD base of the
        inputs; ``ops``: ``(fn, z, x, y, alpha)`` in order, each ``z`` a new name; ``stores``:
        name -> SPAD base of the results kept. Every name has a MemB buffer (in the order
        loads, then results), so the values are those of one pass per op."""
        nr, memb = self.cfg.nr, self.kept.free
        # An input preload_vector put in MemB is read there (a vector of one chunk), once.
        kept = {name: self.kept.take(base) for name, base in loads.items()
                if self.kept.resident.get(base, (0, None))[1] == count}
        names = [name for name in [*loads, *(op[1] for op in ops)] if name not in kept]
        # Whole SPAD rows spread over every PE (FULL): each VOP runs on nr^2 PEs, not nr.
        layout = Layout.FULL if count % nr == 0 else Layout.DIAG
        spread = nr * nr if layout == Layout.FULL else nr
        chunk = min(memb // len(names) * spread, 65535 // nr * nr)
        assert not kept or count <= chunk, (kept, count, chunk)
        buf = {name: index * vector_words(nr, layout.value, chunk)
               for index, name in enumerate(names)} | kept
        for s0 in range(0, count, chunk):
            length = min(chunk, count - s0)
            for name, base in loads.items():
                if name in kept:
                    continue
                self.e("transfer", Opcode.LDV, spad=base + s0, memb=buf[name], len=length,
                       layout=layout)
            for fn, z, x, y, alpha in ops:
                self.e(phase, Opcode.VOP, fn=fn, layout=layout, z=buf[z], x=buf[x],
                       y=buf[y], len=length, alpha=alpha)
            for name, base in stores.items():
                self.e("transfer", Opcode.STV, spad=base + s0, memb=buf[name], len=length,
                       layout=layout)

    def output_gradient(self, loss, *, logits, targets, out, batch, classes, plain):
        """The scaled output gradient of a batch: logits, targets and ``out`` batch-major
        (leading dimension ``ceil(classes, nr)``). ``softmax_ce``: ``nr`` samples at once, each
        in a PE row of its own (``smxce`` with ``rows``; the rows of
        :func:`~caterpillar.golden.collectives.sample_rows`)."""
        nr, e, r = self.cfg.nr, self.e, SCALAR_REGS
        ldc = ceil_to(classes, nr)
        per_pe = cdiv(classes, nr)
        d_vec, t_vec, x_rep, scr = 0, per_pe, 2 * per_pe, 3 * per_pe
        if loss == "softmax_ce":
            rows = sample_rows(batch, 1, nr)
            groups = [s for s in range(batch) if rows[s] == 0] + [batch]
            for g0, g1 in zip(groups, groups[1:]):
                for sample in range(g0, g1):
                    one = dict(len=classes, layout=Layout.COLREP, row=rows[sample] + 1)
                    e("transfer", Opcode.LDV, spad=logits + sample * ldc, memb=x_rep, **one)
                    e("transfer", Opcode.LDV, spad=targets + sample * ldc, memb=t_vec, **one)
                e("loss", Opcode.SMXCE, z=d_vec, x=x_rep, t=t_vec, scr=scr, len=classes,
                  rows=g1 - g0)
                for sample in range(g0, g1):
                    e("transfer", Opcode.STV, spad=out + sample * ldc, memb=d_vec,
                      len=classes, layout=Layout.COLREP, row=rows[sample] + 1)
        else:
            self.elementwise("loss", VecOp.MSEG, out, logits, targets, count=batch * ldc,
                             alpha=r["mse"])
        # The batch mean (and, without optimiser state, the step -lr) scales the output
        # gradient once; every delta and weight gradient below inherits it.
        self.elementwise("loss", VecOp.SCALE, out, out, count=batch * ldc,
                         alpha=r["step"] if plain else r["inv_batch"])

    def update(self, *, p, g, mom, x, d, rows, inputs, batch, use_wd, ldo, ldx,
               batch_major):
        """``[W | b]^T (+)= [A; 1] D`` for a panel of ``rows`` outputs, held transposed
        (``ldo``: its leading dimension and that of ``d``, batch-major), then the optimiser
        (``g``: gradient scratch, ``None`` without momentum and weight decay; ``mom``: the
        momentum panel or ``None``). The input ``x``: batch-major ``[A | 1]`` (streamed as
        A^T) if ``batch_major``, else ``[A; 1]`` features x batch (loaded into MemA); ``ldx``:
        its leading dimension. Either way the sums are those of ``[W | b] (+)= D^T [A^T |
        1]``: the same products in the same order."""
        r = SCALAR_REGS
        plain = g is None
        target = p if plain else g
        shape = dict(c=target, b=d, m=inputs + 1, n=rows, k=batch, lda=ldx, ldb=ldo, ldc=ldo,
                     accumulate=plain)
        if batch_major:
            self.gemm("update", a=x, **shape)
        else:
            self.gemm_rows("update", a=x, **shape)
        if plain:
            return
        # One pass through MemB: g (+)= wd p, m = mu m + g, p += -lr m; g is scratch.
        loads, ops, grad = {"g": g, "p": p}, [], "g"
        if use_wd:
            ops.append((VecOp.AXPY, "g'", "p", "g", r["wd"]))
            grad = "g'"
        if mom is not None:
            loads["m"] = mom
            ops.append((VecOp.AXPY, "m'", "m", grad, r["mu"]))
            grad = "m'"
        ops.append((VecOp.AXPY, "p'", grad, "p", r["neg_lr"]))
        stores = {"m'": mom} if mom is not None else {}
        self.elementwise_chain("update", loads, ops, {**stores, "p'": p},
                               count=(inputs + 1) * ldo)

    def transpose(self, src, rows, cols, lds, dst, ldd):
        """Write the transpose of the ``rows x cols`` SPAD matrix at ``src`` to ``dst``."""
        nr = self.cfg.nr
        ldm = cdiv(rows, nr)
        self._check_mema(ldm, f"one column of a {rows}-row transpose",
                         lambda: f"a transpose of a {rows}-row matrix passes {ldm} words per "
                                 f"PE through MemA; the config has {self.cfg.mema_words}: use "
                                 f"a config with mema_words >= {ldm} or a smaller batch or "
                                 f"layer")
        per_chunk = self.mema_free // ldm * nr
        for c0 in range(0, cols, per_chunk):
            cc = min(per_chunk, cols - c0)
            self.e("transfer", Opcode.LDA, spad=src + c0, mema=0, rows=cc, cols=rows, lds=lds,
                   ldm=ldm, trans=1)
            self.e("transfer", Opcode.STA, spad=dst + c0 * ldd, mema=0, rows=cc, cols=rows,
                   lds=ldd, ldm=ldm, trans=0)


def check_mbgd_memb(cfg, classes: int) -> None:
    """MemB must hold the mbgd kernels' chunks and one sample's softmax."""
    nr = cfg.nr
    check_capacity("MemB", 3 * nr, cfg.memb_words,
                   lambda: f"MemB has {cfg.memb_words} words per PE; the mbgd kernels need "
                           f"at least {3 * nr}", largest=[("elementwise chunks", 3 * nr)])
    # output_gradient: the gradient, target and logits vectors, then SMXCE's scratch.
    memb_need = 3 * cdiv(classes, nr) + 3 * cdiv(classes, nr) + 2
    check_capacity("MemB", memb_need, cfg.memb_words,
                   lambda: f"the softmax needs {memb_need} MemB words per PE; the config has "
                           f"{cfg.memb_words}", largest=[("one sample's softmax", memb_need)])


def mbgd_core_program(graph: TrainingGraph, cfg) -> CoreProgram:
    """The MBGD step of ``graph`` on one core (see the module docstring)."""
    nr = cfg.nr
    opt = graph.optimizer
    use_mom, use_wd = opt.momentum > 0, opt.weight_decay > 0
    plain = not (use_mom or use_wd)
    layers = graph.layers
    batch, classes = graph.batch, graph.sizes[-1]
    ldb = ceil_to(batch, nr)
    spad = Region("the SPAD", cfg.spad_words, align=nr)
    check_mbgd_memb(cfg, classes)

    # Every layer keeps [W | b] transposed: the forward streams it as A^T, the backward
    # loads W^T into MemA as A, and the update writes it.
    tensors, p_addr, mom_addr = [], [], []
    xt_addr, ht_addr, d_addr, dt_addr = [], [], [], []
    constants = []
    for index, (o, i) in enumerate(layers):
        ldo = ceil_to(o, nr)
        shape = (i + 1) * ldo
        p_addr.append(spad.alloc(f"[W{index} | b{index}]^T", shape))
        tensors.append(Tensor(f"P{index}", "spad", o, i + 1, p_addr[-1], ldo, transposed=True))
        if use_mom:
            mom_addr.append(spad.alloc(f"momentum {index}", shape))
            tensors.append(Tensor(f"M{index}", "spad", o, i + 1, mom_addr[-1], ldo,
                                  transposed=True))
        xt_addr.append(spad.alloc(f"[{input_name(index)}; 1] (features x batch)", (i + 1) * ldb))
        constants.append((xt_addr[-1] + i * ldb, 1, batch, ldb, "one"))
        last = index == len(layers) - 1
        # Hidden layers store relu(h) straight into the next input (gemm's relu): only the
        # logits have a buffer of their own.
        ht_addr.append(spad.alloc(f"h{index}", batch * ldo) if last else None)
        d_addr.append(spad.alloc(f"d{index} (batch x features)", batch * ldo))
        dt_addr.append(spad.alloc(f"d{index} (features x batch)", o * ldb))
    # DFA: F_l (outputs x width_l) of every hidden layer.
    f_addr = []
    if graph.algorithm == "dfa":
        for index, (o, i) in enumerate(layers[1:]):
            f_addr.append(spad.alloc(f"F{index}", classes * ceil_to(i, nr)))
            tensors.append(Tensor(f"F{index}", "spad", classes, i, f_addr[-1], ceil_to(i, nr)))
    x0_addr = spad.alloc("[x | 1] (batch x features)", batch * ceil_to(layers[0][1] + 1, nr))
    e_addr = spad.alloc("W^T d", max(graph.sizes[1:-1], default=1) * ldb)
    g_addr = None if plain else spad.alloc("gradient", max(
        (i + 1) * ceil_to(o, nr) for o, i in layers))
    t_spad = spad.alloc("targets", batch * ceil_to(classes, nr))
    spad.check("use a config with more spad_words or a smaller batch or model")

    e = Emitter()
    b = MbgdBuilder(cfg, e)
    last = len(layers) - 1
    for index, (o, i) in enumerate(layers):
        ldo = ceil_to(o, nr)
        if index < last:
            b.gemm("forward", c=xt_addr[index + 1], a=p_addr[index], b=xt_addr[index], m=o,
                   n=batch, k=i + 1, lda=ldo, ldb=ldb, ldc=ldb, relu=True)
        else:
            # Logits batch-major (one sample per SPAD row), for the per-sample softmax.
            b.gemm("forward", c=ht_addr[index], a=xt_addr[index], b=p_addr[index], m=batch,
                   n=o, k=i + 1, lda=ldb, ldb=ldo, ldc=ldo)
    ldc_ = ceil_to(classes, nr)
    b.output_gradient(graph.loss, logits=ht_addr[last], targets=t_spad, out=d_addr[last],
                      batch=batch, classes=classes, plain=plain)
    for index in reversed(range(len(layers))):
        o, i = layers[index]
        ldo = ceil_to(o, nr)
        if index > 0:
            if index == last or not f_addr:
                b.transpose(d_addr[index], batch, o, ldo, dt_addr[index], ldb)
            if f_addr:       # DFA: E = F^T D_out^T, from the output's delta
                b.gemm("delta", c=e_addr, a=f_addr[index - 1], b=dt_addr[last], m=i,
                       n=batch, k=classes, lda=ceil_to(i, nr), ldb=ldb, ldc=ldb)
            else:            # E = W^T D^T, W^T (the panel's first i rows) loaded as A
                b.gemm_rows("delta", c=e_addr, a=p_addr[index], b=dt_addr[index], m=i,
                            n=batch, k=o, lda=ldo, ldb=ldb, ldc=ldb)
            # d_prev (features x batch), then batch-major for its own layer.
            # relu(h) > 0 where h > 0: the rectified input selects as h would.
            b.elementwise("delta", VecOp.RELUD, dt_addr[index - 1], xt_addr[index],
                          e_addr, count=i * ldb)
            b.transpose(dt_addr[index - 1], i, batch, ldb, d_addr[index - 1], ceil_to(i, nr))
        first = index == 0
        b.update(p=p_addr[index], g=g_addr, x=x0_addr if first else xt_addr[index],
                 d=d_addr[index], mom=mom_addr[index] if use_mom else None, rows=o, inputs=i,
                 batch=batch, use_wd=use_wd, ldo=ldo,
                 ldx=ceil_to(i + 1, nr) if first else ldb, batch_major=first)
    e("transfer", Opcode.HALT)
    i0 = layers[0][1]
    io = {"inputs_t": xt_addr[0], "inputs": x0_addr, "targets": t_spad,
          "logits": ht_addr[last], "ld_batch": ldb, "ld_inputs": ceil_to(i0 + 1, nr),
          "ld_classes": ldc_}
    return CoreProgram(e.words, e.phases, e.macs, tensors, io, constants, k_chunk=b.k_chunk)


def _preload_tiles(cfg, *, layers, member, rows, widest_rows, gathered, columns, dfa,
                   batch) -> list:
    """The tiles the ring's MBGD step may load into MemA while the array waits for a gather
    of the forward, as ``(kind, layer, rows, terms, ready)`` (``kind`` ``w``: ``W_l^T``, A of
    the partial ``E`` of a layer that passes E down through its weights; ``x``: the gathered
    input ``[A_l; 1]``, A of layer ``l``'s update; ``f``: ``[W_l | b_l]``, A of layer ``l``'s
    forward, which then reads no ``A^T`` stream: last, and only where a wait has time left for
    it, :func:`_plan_preloads`; ``ready``: the layer whose gather completes its data), in the
    order the backward uses them, each a single GEMM block, as many as MemA
    has room for above what every other GEMM and transpose needs at the least: one row group
    of A over its terms (a block of more rows only saves streaming its B panels again, little
    beside a load; on N1 with b = 64 this rule measured 354,767 cycles against 363,113 with
    room for every streamed A whole) and one column of a transpose. Shapes only: the SPAD
    layout comes after (:func:`_plan_preloads`)."""
    nr, kc, group = cfg.nr, gemm_k_chunk(cfg), cfg.nr * cfg.acc_lanes
    last, classes = len(layers) - 1, layers[-1][0]
    terms = [i + 1 for o, i in layers] + [batch, classes, *widest_rows]
    room = cfg.mema_words - max(max(block_words(cfg, group, k) for k in terms),
                                cdiv(max(*widest_rows, batch, classes), nr))
    candidates = [("w", index, i, rows[index], 0) for index, (o, i) in enumerate(layers)
                  if index and not dfa and rows[index] <= kc]
    candidates += [("x", index, i + 1, batch, index) for index, (o, i) in enumerate(layers)
                   if index and batch <= kc and any(gathered[index + 1:])]
    candidates += [("f", index, rows[index], i + 1, 0) for index, (o, i) in enumerate(layers)
                   if index and i + 1 <= kc]
    tiles = []
    for tile in candidates:
        kind, index, m, k, ready = tile
        if member[index] and rows[index] and not (columns and index == last) and \
                block_words(cfg, m, k) <= room:
            room -= block_words(cfg, m, k)
            tiles.append(tile)
    return tiles


def _plan_preloads(b, cfg, tiles, *, layers, gathered, xt_addr, p_addr, widest_rows,
                   ldb, cores) -> dict:
    """Where :func:`_preload_tiles`' tiles load (input ``w``'s gather -> the ``preload`` fields
    of each tile loaded then) and their MemA bases (``b.resident`` or, for ``f`` tiles,
    ``b.resident_t``, from the top; the rest is ``b.mema_free``): each goes into the first
    wait after its data are complete whose gather shares no SPAD region with it, so its
    ``lda`` runs beside the ring (``ring_waits``); a tile without such a wait is left out. Each
    ``w`` or ``x`` tile saves a load by its GEMM in the backward (its first panel's A rows).
    An ``f`` tile, a forward's A, needs a wait before that forward with time left for its
    load beside the others (the gather's beats on ``cores`` cores against the loads' cycles):
    it only saves the stream's first panel its serial B panel, less than the load costs."""
    nr = cfg.nr
    plan, top, busy = {}, cfg.mema_words, {}
    for kind, index, m, k, ready in tiles:
        ld = ceil_to(widest_rows[index], nr)
        tile = dict(a=p_addr[index], m=m, k=k, lda=ld) if kind == "w" else \
            dict(a=p_addr[index], m=m, k=k, lda=ld, trans=True) if kind == "f" else \
            dict(a=xt_addr[index], m=m, k=k, lda=ldb)
        extent = (k - 1) * ld + ceil_to(m, nr) if kind == "f" else \
            (m - 1) * tile["lda"] + ceil_to(k, nr)
        regions = spad_span_regions(cfg, tile["a"], extent)
        # Load cycles (a SPAD row a cycle, lda's rows of A or, transposed, its columns).
        load = k * cdiv(m, nr) if kind == "f" else m * cdiv(k, nr)

        def fits(w):
            gather = (cores - 1) * cdiv(widest_rows[w - 1] * ldb, nr)
            return kind != "f" or busy.get(w, 0) + load <= gather

        last = index + 1 if kind == "f" else len(layers)
        window = next((w for w in range(ready + 1, last)
                       if gathered[w] and fits(w) and not regions
                       & spad_span_regions(cfg, xt_addr[w], (layers[w][1] + 1) * ldb)), None)
        if window is None:
            continue
        top -= block_words(cfg, m, k)
        (b.resident_t if kind == "f" else b.resident)[tile["a"]] = top
        busy[window] = busy.get(window, 0) + load
        plan.setdefault(window, []).append(tile)
    b.mema_free = top
    return plan


def _turns_text(kept, hidden) -> str:
    """The compact layout's line in the reports: of the ``hidden`` layers (above layer 0,
    below the last), ``kept`` have their input kept in MemA from the forward for their
    updates, the others' inputs are gathered again."""
    text = "the inputs above layer 0 taking turns in two SPAD buffers"
    if not kept:
        return text + " and gathered again for their updates"
    names = " and ".join(f"[{input_name(index)}; 1]" for index in kept)
    again = " and the others gathered again" if len(kept) < len(hidden) else ""
    return f"{text}, {names} kept in MemA for {'its' if len(kept) == 1 else 'their'} " \
           f"update{'s' * (len(kept) > 1)}{again}"


def mbgd_ring_core_program(graph, cfg, core, segments, blocks, splits=None) -> CoreProgram:
    """Core ``core``'s MBGD step on the ring (bucket algorithm; see the module docstring);
    ``splits``: :func:`~.program.layer_splits` (the output layer may be split by columns)."""
    nr = cfg.nr
    opt = graph.optimizer
    use_mom, use_wd = opt.momentum > 0, opt.weight_decay > 0
    plain = not (use_mom or use_wd)
    layers = graph.layers
    batch, classes = graph.batch, graph.sizes[-1]
    ldb, ldc = ceil_to(batch, nr), ceil_to(classes, nr)
    check_mbgd_memb(cfg, classes)
    member = [core in seg for seg in segments]
    # The core's (lo, hi) output rows of each layer it works on (possibly none).
    own = [parts[seg.index(core)] if core in seg else (0, 0)
           for parts, seg in zip(blocks, segments)]
    rows = [hi - lo for lo, hi in own]
    widest_rows = [max(hi - lo for lo, hi in parts) for parts in blocks]
    last = len(layers) - 1
    # Split by columns, the output layer's block on a core is its rows of the layer below
    # (``own[last]``), plus the bias column on one core (output_bias_position; in the compact
    # layout the segment's last, whose ones row is the input's own).
    columns = (splits or ["rows"] * len(layers))[last] == "columns"

    # Same addresses on every core: panels are sized for the largest share. Every panel is
    # held transposed, as on one core. The layers' gathered inputs are kept for the whole
    # step if the SPAD has room; else (``compact``, one segment) the inputs above layer 0 take
    # turns in two buffers, which also hold E, and each is gathered again for its update,
    # unless MemA keeps it as a tile loaded in the forward (then its turn is the upper one).
    compact_ok = len(set(segments)) == 1 and len(layers) > 1
    layouts = [(False, True), (False, False)] + [(True, False)] * compact_ok
    # Input l >= 1 is gathered in the forward unless it is the column-split output layer's.
    gathered = [0 < index and not (columns and index == last) for index in range(len(layers))]
    # While the array waits for the gather of input l + 1 it can load input l into MemA for
    # its update (MbgdBuilder.preload) if the two lie in different SPAD regions. An input is
    # in the upper region (apart from E's sums at the top in the backward, beside which its
    # update would read it) only if it is such a tile and the next gathered input is in the
    # lower region; the W^T tiles load while an input in the upper region is gathered.
    one_segment = len(set(segments)) == 1
    tiles = _preload_tiles(cfg, layers=layers, member=member, rows=rows,
                           widest_rows=widest_rows, gathered=gathered, columns=columns,
                           dfa=graph.algorithm == "dfa", batch=batch) if one_segment else []
    high_inputs, next_low = set(), False
    for index in reversed(range(1, len(layers))):
        if next_low and any(t[:2] == ("x", index) for t in tiles):
            high_inputs.add(index)
        next_low = gathered[index] and index not in high_inputs
    for attempt, (compact, stream_x0) in enumerate(layouts):
        bias_at = None
        if columns:
            bias_at = len(segments[last]) - 1 if compact else \
                output_bias_position(cfg, blocks[last])
        has_bias = columns and member[last] and core == segments[last][bias_at]
        out_cols = rows[last] + has_bias
        spad = Region("the SPAD", cfg.spad_words, align=nr)
        # First: with the update's other operands below and E's sums at the top
        # (alloc_high), the update runs beside the ring (ring_waits).
        # (Compact, with an input planned as a MemA tile: at the top, so that the update that
        # reads the tile runs beside the sums of E in the lower turn; on N1 the panels above
        # layer 0's input are up there too.)
        d_addr = (spad.alloc_high if compact and high_inputs else spad.alloc)(
            "d own (batch x features) of the layer in the update",
            batch * max(ceil_to(r, nr) for r in widest_rows))
        tensors, p_addr, mom_addr = [], [], []
        xt_addr, h_addr, dt_addr, panel_words = [], [], [], []
        constants, turns = [], []
        if compact:
            widest_in = max(i for o, i in layers[1:])
            for parity, name in enumerate(("even", "odd")):
                # A turn whose input MemA keeps for its update goes up, so that the tile
                # loads while the other turn is gathered.
                high = any(index % 2 == parity for index in high_inputs)
                base = (spad.alloc_high if high else spad.alloc)(
                    f"[a; 1] and E of the {name} layers (features x batch)",
                    (widest_in + 1) * ldb)
                turns.append(base + widest_in * ldb)            # the row of ones
                constants.append((turns[-1], 1, batch, ldb, "one"))
        for index, (o, i) in enumerate(layers):
            ldo = ceil_to(widest_rows[index], nr)
            block = index == last and columns
            if block:
                panel_words.append((widest_rows[index] + 1) * ldc)
                shape, what = panel_words[-1], "column block^T"
                shared = dict(rows=o, cols=out_cols, ld=ldc, transposed=True, bias=has_bias)
            else:
                panel_words.append((i + 1) * ldo)
                shape, what = panel_words[-1], "panel^T"
                shared = dict(rows=rows[index], cols=i + 1, ld=ldo, transposed=True)
            holds = member[index] and (out_cols > 0 if block else True)
            p_addr.append(spad.alloc(f"[W{index} | b{index}] {what}", shape))
            if holds:
                tensors.append(Tensor(f"P{index}", "spad", addr=p_addr[-1], **shared))
            if use_mom:
                mom_addr.append(spad.alloc(f"momentum {index}", shape))
                if holds:
                    tensors.append(Tensor(f"M{index}", "spad", addr=mom_addr[-1], **shared))
            if compact and index:
                xt_addr.append(turns[index % 2] - i * ldb)
            else:
                alloc = spad.alloc_high if index in high_inputs else spad.alloc
                xt_addr.append(alloc(f"[{input_name(index)}; 1] (features x batch)",
                                     (i + 1) * ldb))
                constants.append((xt_addr[-1] + i * ldb, 1, batch, ldb, "one"))
                if block and has_bias and own[last][1] < i:
                    # The bias core's ones row right after its rows, which the output
                    # layer's GEMMs read with them: no other core's rows come here (the
                    # output layer's input is not gathered).
                    constants.append((xt_addr[-1] + own[last][1] * ldb, 1, batch, ldb, "one"))
            # The logits are gathered whole (or, split by columns, summed in place of the
            # logits batch-major); hidden pre-activations stay the core's own rows.
            # (Outside the compact layout a hidden layer's GEMM stores relu(h) straight into
            # its rows of the next input: no h of its own.)
            h_addr.append(None if block or (index < last and not compact) else spad.alloc(
                f"h{index}", (o if index == last else widest_rows[index]) * ldb))
            # The output layer's deltas are the output gradient: no d of its own. In the
            # compact layout a hidden layer's d takes the place of its h, which the backward
            # reads for the last time (to gather the input above again) before d is written.
            dt_addr.append(None if index == last else h_addr[-1] if compact else spad.alloc(
                f"d{index} own (features x batch)", widest_rows[index] * ldb))
        # Layer 0's update streams the batch-major input the host writes, or, when the SPAD
        # has no room for that copy, loads [x; 1] into MemA.
        x0_addr = None if not stream_x0 else spad.alloc_high(
            "[x | 1] (batch x features)", batch * ceil_to(layers[0][1] + 1, nr))
        # DFA: the core's rows of F_l (its output rows of the last layer), every hidden layer;
        # with the output layer split by columns, the columns of F_l that match its rows of l.
        f_addr, ldf = [], []
        if graph.algorithm == "dfa":
            for index, (o, i) in enumerate(layers[1:]):
                if columns:
                    ldf.append(ceil_to(widest_rows[index], nr))
                    f_addr.append(spad.alloc(f"F{index} columns", classes * ldf[-1]))
                    if member[index] and rows[index]:
                        tensors.append(Tensor(f"F{index}", "spad", classes, rows[index],
                                              f_addr[-1], ldf[-1]))
                    continue
                f_addr.append(spad.alloc(f"F{index} rows", widest_rows[-1] * ceil_to(i, nr)))
                if member[-1]:
                    tensors.append(Tensor(f"F{index}", "spad", rows[-1], i, f_addr[-1],
                                          ceil_to(i, nr)))
        # Where each layer puts the E it passes down: compact, in the turn buffer the layer
        # above's input left free.
        if compact:
            # (layer 0 passes no E down)
            e_at = [None] + [turns[(index + 1) % 2] - i * ldb
                             for index, (o, i) in enumerate(layers) if index]
        else:
            e_at = [spad.alloc_high("W^T d partial sums",
                                    max(graph.sizes[1:-1], default=1) * ldb)] * len(layers)
        # A core without rows of a layer (more cores than outputs) still adds a partial of E
        # into the ring's sums: +0, the product of two zero vectors (a GEMM of one term).
        zero_addr = None
        if any(hi == lo for parts in blocks for lo, hi in parts):
            zero_words = max(ceil_to(max(graph.sizes[1:-1], default=1), nr), ldb, ldc)
            zero_addr = spad.alloc("zeros (the partial of a core without rows)", zero_words)
            constants.append((zero_addr, 1, zero_words, zero_words, 0))
        g_addr = None if plain else spad.alloc("gradient", max(panel_words))
        logits_addr = spad.alloc("logits (batch x classes)", batch * ldc)
        # (In the upper region: the ReLU derivative's inputs load beside its all-gather.)
        dfull_addr = spad.alloc_high("output gradient (batch x classes)", batch * ldc)
        dfull_t_addr = spad.alloc("output gradient (classes x batch)", classes * ldb)
        t_spad = spad.alloc("targets", batch * ldc)
        if spad.room >= 0 or attempt == len(layouts) - 1:
            break
    spad.check("use a config with more spad_words or a smaller batch or model")

    e = Emitter()
    b = MbgdBuilder(cfg, e)
    r = SCALAR_REGS
    cores = cfg.cores
    preloads = _plan_preloads(
        b, cfg, tiles, layers=layers, gathered=gathered, xt_addr=xt_addr, p_addr=p_addr,
        widest_rows=widest_rows, ldb=ldb, cores=len(segments[0]))

    def beside_posts(posted, tiles):
        """Load ``tiles`` in pieces between the RINGs posted from instruction ``posted`` on,
        one before each post that would wait for room in the engine's queue (and the rest
        after them), so the array loads while the engine drains its queue."""
        posts = [at for at in range(posted, len(e.words)) if decode(e.words[at]).op ==
                 Opcode.RING][max(cfg.ring_commands, 1):]
        if not tiles:
            return
        step = ceil_to(cdiv(sum(t["m"] for t in tiles), len(posts) + 1), nr)
        pieces = []
        for tile in tiles:
            for r0 in range(0, tile["m"], step):
                u = Emitter()
                b.beside(u).preload(**tile, r0=r0, r1=min(tile["m"], r0 + step))
                pieces.append(u)
        for at, piece in reversed(list(zip(posts + [len(e.words)] * len(pieces), pieces))):
            e.insert(at, piece)

    # Each hidden layer's ReLU derivative in the backward reads the core's rows of relu(h):
    # outside the compact layout its rows of the next input, which nothing writes after the
    # forward. In a plain step (no optimiser chain takes MemB) they load into MemB's top while
    # the array waits for the loss's collectives, each beside a collective whose SPAD regions
    # it does not share (keep_beside); the backward's GEMMs (two B panels of at most
    # max(batch, classes, rows) terms), its chains and the softmax stay below them.
    acts = []
    if not compact and plain and one_segment and member[last]:
        acts = [(xt_addr[index + 1] + own[index][0] * ldb, rows[index] * ldb)
                for index in range(last) if rows[index]]
        kept = sum(cdiv(count, nr * nr) for _, count in acts)
        below = max(2 * max(batch, classes, *widest_rows), 2 * cdiv(batch * ldc, nr * nr),
                    2 * max((cdiv(count, nr * nr) for _, count in acts), default=0),
                    6 * cdiv(classes, nr) + 2)
        if kept + below > cfg.memb_words:
            acts = []
        else:       # recorded for the fit table (it fits: else nothing is kept)
            check_capacity("MemB", kept + below, cfg.memb_words,
                           lambda: f"MemB has {cfg.memb_words} words per PE; keeping relu(h) "
                                   f"needs {kept + below}",
                           largest=[("relu(h) rows kept for the backward", kept),
                                    ("GEMM panels, chains and softmax below them", below)])

    def keep_beside(posted):
        """Load the activations (``acts``) that share no SPAD region with the RINGs posted
        from instruction ``posted`` on into MemB after the posts the engine's queue takes."""
        busy = words_spad_regions(e.words[posted:], cfg)
        u = Emitter()
        for spad_at, count in list(acts):
            if not spad_span_regions(cfg, spad_at, count) & busy:
                b.preload_vector(spad_at, count, emit=u)
                acts.remove((spad_at, count))
        e.insert(min(posted + max(cfg.ring_commands, 1), len(e.words)), u)

    def relay(holders, targets, addr, words):
        if holders != targets:
            source = coll.relay_source(holders, targets, cores)
            ring_emit(e, core, coll.relay(source, targets, addr, words, cores))

    def partial_e(inputs, a, b_, k, lda, *, loaded=False):
        """The core's partial ``E`` (``inputs x batch``) over ``k`` rows; +0 for none.
        ``loaded``: ``a`` holds A itself (``W^T``), loaded into MemA; else ``A^T``."""
        if k:
            (b.gemm_rows if loaded else b.gemm)("delta", c=e_addr, a=a, b=b_, m=inputs,
                                                 n=batch, k=k, lda=lda, ldb=ldb, ldc=ldb)
        else:
            b.gemm("delta", c=e_addr, a=zero_addr, b=zero_addr, m=inputs, n=batch, k=1,
                   lda=ceil_to(inputs, nr), ldb=ldb, ldc=ldb, macs=False)

    for index, (o, i) in enumerate(layers):
        seg = segments[index]
        ldo = ceil_to(widest_rows[index], nr)
        lo, m = own[index][0], rows[index]
        if member[index] and index == last and columns:
            # The core's partial logits over its columns (+0 without any), reduce-scattered
            # round the segment: each core ends with its samples' logits, which its output
            # gradient reads and the host reads back (no all-gather).
            if out_cols:
                b.gemm("forward", c=logits_addr, a=xt_addr[index] + lo * ldb, b=p_addr[index],
                       m=batch, n=o, k=out_cols, lda=ldb, ldb=ldc, ldc=ldc)
            else:
                b.gemm("forward", c=logits_addr, a=zero_addr, b=zero_addr, m=batch, n=o, k=1,
                       lda=ldb, ldb=ldc, ldc=ldc, macs=False)
            posted = len(e.words)
            ring_emit(e, core, coll.reduce_scatter(seg, logits_addr, batch * ldc, ldc))
            keep_beside(posted)
        elif member[index]:
            if index < last:
                if m and not compact:
                    b.gemm("forward", c=xt_addr[index + 1] + lo * ldb, a=p_addr[index],
                           b=xt_addr[index], m=m, n=batch, k=i + 1, lda=ldo, ldb=ldb, ldc=ldb,
                           relu=True)
                elif m:     # h kept: its turn buffer is reused before the backward
                    b.gemm("forward", c=h_addr[index], a=p_addr[index], b=xt_addr[index], m=m,
                           n=batch, k=i + 1, lda=ldo, ldb=ldb, ldc=ldb)
                    b.elementwise("forward", VecOp.MAXS, xt_addr[index + 1] + lo * ldb,
                                  h_addr[index], count=m * ldb, alpha=r["zero"])
                if not (columns and index + 1 == last):     # its own rows are its input
                    posted = len(e.words)
                    ring_emit(e, core, coll.all_gather(seg, xt_addr[index + 1], o * ldb, ldb))
                    beside_posts(posted, preloads.get(index + 1, []))
            else:
                if m:
                    b.gemm("forward", c=h_addr[index] + lo * ldb, a=p_addr[index],
                           b=xt_addr[index], m=m, n=batch, k=i + 1, lda=ldo, ldb=ldb, ldc=ldb)
                ring_emit(e, core, coll.all_gather(seg, h_addr[index], o * ldb, ldb))
        if index < last:
            relay(seg, segments[index + 1], xt_addr[index + 1], o * ldb)
    if member[last]:
        # The cores of the last segment share the samples' output gradients, then gather
        # them (whole rows of one sample each).
        seg = segments[last]
        s_lo, s_hi = ring_blocks(batch, len(seg), 1)[seg.index(core)]
        if not columns:
            b.transpose(h_addr[last], classes, batch, ldb, logits_addr, ldc)
        b.output_gradient(graph.loss, logits=logits_addr + s_lo * ldc,
                          targets=t_spad + s_lo * ldc, out=dfull_addr + s_lo * ldc,
                          batch=s_hi - s_lo, classes=classes, plain=plain)
        posted = len(e.words)
        ring_emit(e, core, coll.all_gather(seg, dfull_addr, batch * ldc, ldc))
        keep_beside(posted)
        b.transpose(dfull_addr, batch, classes, ldc, dfull_t_addr, ldb)

    def update(index, lo, m, block, b=b):
        """The update of the core's block of layer ``index`` (none without one)."""
        if block and member[index] and out_cols:
            b.update(p=p_addr[index], g=g_addr, x=xt_addr[index] + lo * ldb, d=dfull_addr,
                     mom=mom_addr[index] if use_mom else None, rows=layers[index][0],
                     inputs=out_cols - 1, batch=batch, use_wd=use_wd, ldo=ldc, ldx=ldb,
                     batch_major=False)
        if block or not member[index] or not m:
            return
        streamed = index == 0 and x0_addr is not None
        i = layers[index][1]
        b.update(p=p_addr[index], g=g_addr, x=x0_addr if streamed else xt_addr[index],
                 d=d_addr, mom=mom_addr[index] if use_mom else None, rows=m, inputs=i,
                 batch=batch, use_wd=use_wd, ldo=ceil_to(widest_rows[index], nr),
                 ldx=ceil_to(i + 1, nr) if streamed else ldb, batch_major=streamed)

    for index in reversed(range(len(layers))):
        o, i = layers[index]
        seg = segments[index]
        ldo = ceil_to(widest_rows[index], nr)
        lo, m = own[index][0], rows[index]
        dt_own = dfull_t_addr + lo * ldb if index == last else dt_addr[index]
        block = index == last and columns
        e_addr = e_at[index]
        # Its rows of the layer below's E are whole on the core (no ring sum): W's columns
        # (or DFA's F_l's) times every output's delta.
        local_e = index > 0 and columns and (block or bool(f_addr))
        if member[index] and block:
            if m and not f_addr:     # W^T: the block's first m rows, loaded as A
                b.gemm_rows("delta", c=e_addr + lo * ldb, a=p_addr[index], b=dfull_t_addr,
                            m=m, n=batch, k=o, lda=ldc, ldb=ldb, ldc=ldb)
        elif member[index]:
            if m:
                b.transpose(dt_own, m, batch, ldb, d_addr, ldo)
        if local_e and f_addr and member[index - 1] and rows[index - 1]:
            b.gemm("delta", c=e_addr + own[index - 1][0] * ldb, a=f_addr[index - 1],
                   b=dfull_t_addr, m=rows[index - 1], n=batch, k=classes, lda=ldf[index - 1],
                   ldb=ldb, ldc=ldb)
        if member[index] and not block and not local_e:
            if index > 0 and f_addr:
                # DFA (one segment): E = F^T D_out^T over the core's output rows.
                partial_e(i, f_addr[index - 1], dfull_t_addr + own[last][0] * ldb, rows[last],
                          ceil_to(i, nr))
            elif index > 0:          # W^T: the panel's first i rows, loaded as A
                partial_e(i, p_addr[index], dt_own, m, ldo, loaded=True)
        # The update runs beside the ring's sums of E unless (compact) its input must be
        # gathered again first: MemA keeps it for a hidden layer whose input is a tile.
        beside = index > 0 and (not compact or index < last and xt_addr[index] in b.resident)
        if index > 0:
            below = segments[index - 1]
            posted = len(e.words)
            if member[index] and not local_e:
                # The layer below's own rows of E; the whole E when it lives elsewhere.
                summed = coll.reduce_scatter if below == seg else coll.all_reduce
                ring_emit(e, core, summed(seg, e_addr, i * ldb, ldb))
            relay(seg, below, e_addr, i * ldb)
            if beside:
                # Beside the ring's sums of E: the update shares no SPAD row with them (its
                # operands are this layer's, E the layer below's), and ring_waits lets it run
                # where their regions differ. Its first load (with its input a tile, its
                # first GEMM panel, where that runs beside the RINGs) goes after the posts the
                # engine's queue takes, the rest after the others: the core would wait in a
                # post for room in the queue instead.
                queued = posted + max(cfg.ring_commands, 1)
                for split in (queued < len(e.words), False):
                    u = Emitter()
                    update(index, lo, m, block, b.beside(u, split_first=split))
                    lead = decode(u.words[0]).op if u.words else None
                    if lead != Opcode.GEMM or not split or not words_spad_regions(
                            u.words[:1], cfg) & words_spad_regions(e.words[posted:], cfg):
                        break
                first = int(queued < len(e.words) and (lead == Opcode.LDA or split and
                                                       lead == Opcode.GEMM))
                e.insert(queued, u.part(0, first))
                e.insert(len(e.words), u.part(first))
            below_lo, below_rows = own[index - 1][0], rows[index - 1]
            if compact and index < last and xt_addr[index] not in b.resident:
                # Its input left its turn buffer: the ReLU of the own rows again, gathered.
                b.elementwise("forward", VecOp.MAXS, xt_addr[index] + below_lo * ldb,
                              h_addr[index - 1], count=below_rows * ldb, alpha=r["zero"])
                ring_emit(e, core, coll.all_gather(seg, xt_addr[index], i * ldb, ldb))
            if member[index - 1]:
                # Outside the compact layout relu(h) (> 0 where h > 0) in the input it
                # gathered; in it, h, overwritten by d chunk by chunk.
                b.elementwise("delta", VecOp.RELUD, dt_addr[index - 1],
                              h_addr[index - 1] if compact else xt_addr[index] + below_lo * ldb,
                              e_addr + below_lo * ldb, count=below_rows * ldb)
        if not beside:
            update(index, lo, m, block)
    e("transfer", Opcode.HALT)
    i0 = layers[0][1]
    io = {"inputs_t": xt_addr[0], "inputs": x0_addr, "targets": t_spad,
          "logits": logits_addr, "ld_batch": ldb, "ld_inputs": ceil_to(i0 + 1, nr),
          "ld_classes": ldc}
    if columns:
        # Each core of the last segment holds its samples' logits only (the reduce-scatter's
        # block, ring_blocks(batch, cores, 1)): the host reads each core's.
        io["logits_scattered"] = True
        io["output_bias"] = bias_at
    # Same layout on every core (same addresses): what the SPAD's size changed, for reports.
    layout = (("layer 0's update loading [x; 1] into MemA",) if x0_addr is None else ()) + (
        (_turns_text([index for index in range(1, last) if xt_addr[index] in b.resident],
                     range(1, last)),)
        if compact else ())
    return CoreProgram(e.words, e.phases, e.macs, tensors, io, constants, k_chunk=b.k_chunk,
                       spad_layout=layout)
