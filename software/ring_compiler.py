"""The training compiler for a ring of cores: one instruction stream per core.

``compile_ring(graph, cfg, segments)`` spreads the model over the cores of the ring (one
segment for every layer, or one per layer) and returns a :class:`RingCompiled`: one
:class:`~caterpillar.software.compiler.Compiled` per working core (its program, its share of
the parameters, its SPAD plan; every core has the same addresses), the ``SRC`` registers that
close each segment into a sub-ring, and the partition.

``mbgd`` (the bucket algorithm, model parallel). Core ``k`` owns the output rows ``R_k`` of
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

``sgd`` (batch 1, GEMV, per-core reduction then pass-and-add). Core ``k`` owns the input
columns ``I_k`` of every ``W`` (``ring_blocks(in, C, nr)``) in MemA and the bias entries of its
output block: the forward partial ``W[:, I_k] a[I_k]`` is reduced inside the core by the
GEMV, then summed round the ring by a **reduce-scatter** that leaves core ``k`` exactly its
input block of the next layer. The logits are all-gathered, every core forms the output
gradient, and the backward ``W[:, I_k]^T d`` and the rank-1 update of its columns are local;
each delta below the top is **all-gathered** for the next layer down. Vectors move between
MemB and the SPAD around each collective.

The golden trainer with ``cores = C`` (:mod:`caterpillar.golden.trainer`) computes the same
sums in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass

from caterpillar.golden.collectives import ring_blocks
from caterpillar.rtl.isa import Layout, Opcode, VecOp, encode

from . import collectives as coll
from .compiler import (
    SCALAR_REGS,
    Compiled,
    CompileError,
    Tensor,
    _cdiv,
    _ceil,
    _check_mbgd_memb,
    _Emitter,
    _MbgdBuilder,
    _Region,
    _sgd_bias_update,
    _sgd_output_gradient,
)
from .graph import TrainingGraph
from .ring_sim import predict_ring_cycles

__all__ = ["RingCompiled", "compile_ring", "partition"]


@dataclass
class RingCompiled:
    """A training graph compiled for a ring: every core's program and share."""

    graph: TrainingGraph
    config: object
    segments: list                    # per layer: its cores in ring order
    compiled: dict                    # core -> Compiled (cores that run more than HALT)
    sources: list                     # SRC{k} of every core of the ring
    blocks: list                      # per layer: [(lo, hi)] per position in its segment

    @property
    def split(self) -> str:
        """``rows`` (mbgd: output rows per core) or ``columns`` (sgd: input columns)."""
        return "columns" if self.graph.algorithm == "sgd" else "rows"

    @property
    def segment(self) -> tuple:
        """Every core that holds a share of the model, in order of first appearance."""
        return tuple(dict.fromkeys(k for seg in self.segments for k in seg))

    @property
    def k_chunk(self):
        """Longest GEMM (the same on every core)."""
        return next(iter(self.compiled.values())).k_chunk

    @property
    def instructions(self) -> int:
        """Length of the longest core program."""
        return max(len(c.program) for c in self.compiled.values())

    def programs(self) -> list:
        """Every core's program (a lone HALT on idle cores)."""
        return [self.compiled[k].program if k in self.compiled else [encode(Opcode.HALT)]
                for k in range(self.config.cores)]

    def predicted_cycles(self) -> list[int]:
        """Every core's cycles per step, from the ring timing model (computed once)."""
        if getattr(self, "_predicted", None) is None:
            self._predicted = predict_ring_cycles(self.programs(), self.config, self.sources)
        return list(self._predicted)

    @property
    def step_cycles(self) -> int:
        """Predicted cycles of one step (until the last core halts)."""
        return max(self.predicted_cycles())

    def phase_report(self) -> dict:
        """Per phase: cycles on the slowest core and model MACs summed over the cores.

        A core's local instructions take their fixed cycles; its ``ring`` phase is the rest
        of its step (collectives, including waiting for its neighbours)."""
        predicted = self.predicted_cycles()
        slowest = max(self.compiled, key=lambda k: predicted[k])
        report = self.compiled[slowest].phase_report()
        local = sum(v["cycles"] for p, v in report.items() if p != "ring")
        report["ring"]["cycles"] = predicted[slowest] - local
        for phase in report:
            report[phase]["macs"] = sum(c.phase_report()[phase]["macs"]
                                        for c in self.compiled.values())
        return report


def partition(graph: TrainingGraph, cfg, cores) -> list:
    """Return each layer's split over its cores (see the module docstring); ``cores`` is a
    count for every layer or a list of counts, one per layer."""
    counts = [cores] * len(graph.layers) if isinstance(cores, int) else list(cores)
    if graph.algorithm == "sgd":
        return [ring_blocks(i, c, cfg.nr) for (o, i), c in zip(graph.layers, counts)]
    return [ring_blocks(o, c, 1) for (o, i), c in zip(graph.layers, counts)]


def _layer_segments(graph, cfg, segments) -> list:
    layers = len(graph.layers)
    if segments is None:
        segments = [tuple(range(cfg.cores))]
    elif segments and isinstance(segments[0], int):
        segments = [tuple(segments)]
    segments = [tuple(seg) for seg in segments]
    if len(segments) == 1:
        segments = segments * layers
    if len(segments) != layers:
        raise CompileError(f"{len(segments)} segments for {layers} layers; give one segment "
                           "for every layer, or one for all")
    for seg in segments:
        if not seg or len(set(seg)) != len(seg) or min(seg) < 0 or max(seg) >= cfg.cores:
            raise CompileError(f"segment {seg} must name distinct cores of the config's "
                               f"{cfg.cores}")
    distinct = list(dict.fromkeys(segments))
    for a in range(len(distinct)):
        for b in range(a):
            shared = set(distinct[a]) & set(distinct[b])
            if shared:
                raise CompileError(f"segments {distinct[b]} and {distinct[a]} share core "
                                   f"{min(shared)}; segments are sub-rings cut by the SRC "
                                   "registers, so they must be equal or disjoint")
    if graph.algorithm == "sgd" and len(distinct) > 1:
        raise CompileError("sgd spreads every layer over one segment; per-layer segments "
                           "need --algorithm mbgd")
    return segments


def compile_ring(graph: TrainingGraph, cfg, segments=None) -> RingCompiled:
    """Compile ``graph`` for the ring of ``cfg``.

    ``segments``: ``None`` (every layer on every core), one segment (cores in ring order) for
    every layer, or one segment per layer (``mbgd``; segments equal or disjoint). Each
    distinct segment is closed into a sub-ring; data pass between segments over the chain
    links.
    """
    segments = _layer_segments(graph, cfg, segments)
    blocks = partition(graph, cfg, [len(seg) for seg in segments])
    for index, parts in enumerate(blocks):
        if any(hi == lo for lo, hi in parts):
            what = "inputs" if graph.algorithm == "sgd" else "outputs"
            unit = f"{cfg.nr} " if graph.algorithm == "sgd" else ""
            raise CompileError(f"layer {index} has {parts[-1][1]} {what}, too few to give "
                               f"each of {len(parts)} cores {unit}one; use fewer cores or "
                               "wider layers")
    if graph.algorithm == "sgd":
        compiled = {k: _sgd_core(graph, cfg, segments[0], p, blocks)
                    for p, k in enumerate(segments[0])}
    else:
        compiled = {k: _mbgd_core(graph, cfg, k, segments, blocks) for k in range(cfg.cores)}
        compiled = {k: c for k, c in compiled.items() if len(c.program) > 1}
    for k, one in compiled.items():
        if len(one.program) > cfg.imem_words:
            raise CompileError(f"core {k}'s step program needs {len(one.program)} "
                               f"instructions but IMEM holds {cfg.imem_words}; use a config "
                               f"with imem_words >= {len(one.program)}")
    sources = coll.link_sources(list(dict.fromkeys(segments)), cfg.cores)
    return RingCompiled(graph, cfg, segments, compiled, sources, blocks)


def _ring_emit(e, core, words_by_core):
    for word in words_by_core.get(core, ()):
        e.words.append(word)
        e.phases.append("ring")
        e.macs.append(0)


# -- MBGD: row panels, bucket all-gather forward, reduce-scatter backward ---------------------

def _mbgd_core(graph, cfg, core, segments, blocks) -> Compiled:
    nr = cfg.nr
    opt = graph.optimizer
    use_mom, use_wd = opt.momentum > 0, opt.weight_decay > 0
    plain = not (use_mom or use_wd)
    layers = graph.layers
    batch, classes = graph.batch, graph.sizes[-1]
    ldb, ldc = _ceil(batch, nr), _ceil(classes, nr)
    spad = _Region("the SPAD", cfg.spad_words, align=nr)
    _check_mbgd_memb(cfg, classes)
    member = [core in seg for seg in segments]
    # The core's (lo, hi) output rows of each layer it works on.
    own = [parts[seg.index(core)] if core in seg else (0, 0)
           for parts, seg in zip(blocks, segments)]
    rows = [hi - lo for lo, hi in own]
    widest_rows = [max(hi - lo for lo, hi in parts) for parts in blocks]

    # Same addresses on every core: panels are sized for the largest share.
    tensors, p_addr, pt_addr, mom_addr = [], [], [], []
    xt_addr, x_addr, h_addr, d_addr, dt_addr = [], [], [], [], []
    constants = []
    for index, (o, i) in enumerate(layers):
        ldp, ldo = _ceil(i + 1, nr), _ceil(widest_rows[index], nr)
        first = index == 0
        shape = (i + 1) * ldo if first else widest_rows[index] * ldp
        p_addr.append(spad.alloc(f"[W{index} | b{index}] panel{'^T' if first else ''}", shape))
        if member[index]:
            tensors.append(Tensor(f"P{index}", "spad", rows[index], i + 1, p_addr[-1],
                                  ldo if first else ldp, transposed=first))
        pt_addr.append(p_addr[-1] if first else
                       spad.alloc(f"[W{index} | b{index}] panel^T", (i + 1) * ldo))
        if use_mom:
            mom_addr.append(spad.alloc(f"momentum {index}", shape))
            if member[index]:
                tensors.append(Tensor(f"M{index}", "spad", rows[index], i + 1, mom_addr[-1],
                                      ldo if first else ldp, transposed=first))
        xt_addr.append(spad.alloc(f"[a{index - 1}; 1] (features x batch)", (i + 1) * ldb))
        constants.append((xt_addr[-1] + i * ldb, 1, batch, ldb, "one"))
        x_addr.append(spad.alloc(f"[a{index - 1} | 1] (batch x features)", batch * ldp))
        last = index == len(layers) - 1
        # The logits are gathered whole; hidden pre-activations stay the core's own rows.
        h_addr.append(spad.alloc(f"h{index}", (o if last else widest_rows[index]) * ldb))
        d_addr.append(spad.alloc(f"d{index} own (batch x features)", batch * ldo))
        dt_addr.append(spad.alloc(f"d{index} own (features x batch)",
                                  widest_rows[index] * ldb))
    widest = max(graph.sizes)
    e_addr = spad.alloc("W^T d partial sums", widest * ldb)
    g_addr = None if plain else spad.alloc("gradient", max(
        (i + 1) * _ceil(widest_rows[index], nr) if index == 0
        else widest_rows[index] * _ceil(i + 1, nr) for index, (o, i) in enumerate(layers)))
    logits_addr = spad.alloc("logits (batch x classes)", batch * ldc)
    dfull_addr = spad.alloc("output gradient (batch x classes)", batch * ldc)
    dfull_t_addr = spad.alloc("output gradient (classes x batch)", classes * ldb)
    t_spad = spad.alloc("targets", batch * ldc)
    spad.check("use a config with more spad_words or a smaller batch or model")

    e = _Emitter()
    b = _MbgdBuilder(cfg, e)
    r = SCALAR_REGS
    last = len(layers) - 1
    cores = cfg.cores

    def relay(holders, targets, addr, words):
        if holders != targets:
            source = coll.relay_source(holders, targets, cores)
            _ring_emit(e, core, coll.relay(source, targets, addr, words, cores))

    for index, (o, i) in enumerate(layers):
        seg = segments[index]
        ldp, ldo = _ceil(i + 1, nr), _ceil(widest_rows[index], nr)
        lo, m = own[index][0], rows[index]
        if member[index]:
            if index > 0:
                b.transpose(p_addr[index], m, i + 1, ldp, pt_addr[index], ldo)
            if index < last:
                b.gemm("forward", c=h_addr[index], a=pt_addr[index], b=xt_addr[index], m=m,
                       n=batch, k=i + 1, lda=ldo, ldb=ldb, ldc=ldb)
                b.elementwise("forward", VecOp.MAXS, xt_addr[index + 1] + lo * ldb,
                              h_addr[index], count=m * ldb, alpha=r["zero"])
                _ring_emit(e, core, coll.all_gather(seg, xt_addr[index + 1], o * ldb, ldb))
            else:
                b.gemm("forward", c=h_addr[index] + lo * ldb, a=pt_addr[index],
                       b=xt_addr[index], m=m, n=batch, k=i + 1, lda=ldo, ldb=ldb, ldc=ldb)
                _ring_emit(e, core, coll.all_gather(seg, h_addr[index], o * ldb, ldb))
        if index < last:
            relay(seg, segments[index + 1], xt_addr[index + 1], o * ldb)
    if member[last]:
        # The cores of the last segment share the samples' output gradients, then gather
        # them (whole rows of one sample each).
        seg = segments[last]
        s_lo, s_hi = ring_blocks(batch, len(seg), 1)[seg.index(core)]
        b.transpose(h_addr[last], classes, batch, ldb, logits_addr, ldc)
        b.output_gradient(graph.loss, logits=logits_addr + s_lo * ldc,
                          targets=t_spad + s_lo * ldc, out=dfull_addr + s_lo * ldc,
                          batch=s_hi - s_lo, classes=classes, plain=plain)
        _ring_emit(e, core, coll.all_gather(seg, dfull_addr, batch * ldc, ldc))
        b.transpose(dfull_addr, batch, classes, ldc, dfull_t_addr, ldb)
    for index in reversed(range(len(layers))):
        o, i = layers[index]
        seg = segments[index]
        ldp, ldo = _ceil(i + 1, nr), _ceil(widest_rows[index], nr)
        lo, m = own[index][0], rows[index]
        dt_own = dfull_t_addr + lo * ldb if index == last else dt_addr[index]
        if member[index]:
            b.transpose(dt_own, m, batch, ldb, d_addr[index], ldo)
            if index > 0:
                b.gemm("delta", c=e_addr, a=p_addr[index], b=dt_own, m=i, n=batch, k=m,
                       lda=ldp, ldb=ldb, ldc=ldb)
        if index > 0:
            below = segments[index - 1]
            if member[index]:
                # The layer below's own rows of E; the whole E when it lives elsewhere.
                summed = coll.reduce_scatter if below == seg else coll.all_reduce
                _ring_emit(e, core, summed(seg, e_addr, i * ldb, ldb))
            relay(seg, below, e_addr, i * ldb)
            if member[index - 1]:
                below_lo, below_rows = own[index - 1][0], rows[index - 1]
                b.elementwise("delta", VecOp.RELUD, dt_addr[index - 1], h_addr[index - 1],
                              e_addr + below_lo * ldb, count=below_rows * ldb)
            if member[index]:
                b.transpose(xt_addr[index], i + 1, batch, ldb, x_addr[index], ldp)
        if not member[index]:
            continue
        b.update(index == 0, p=p_addr[index], g=g_addr, x=x_addr[index], d=d_addr[index],
                 mom=mom_addr[index] if use_mom else None, rows=m, inputs=i, batch=batch,
                 use_wd=use_wd, ldo=ldo)
    e("transfer", Opcode.HALT)
    i0 = layers[0][1]
    io = {"inputs_t": xt_addr[0], "inputs": x_addr[0], "targets": t_spad,
          "logits": logits_addr, "ld_batch": ldb, "ld_inputs": _ceil(i0 + 1, nr),
          "ld_classes": ldc}
    return Compiled(graph, cfg, e.words, e.phases, e.macs, tensors, io, constants,
                    k_chunk=b.k_chunk)


# -- SGD: input-column panels, reduce-scatter forward, all-gather of the deltas ---------------

def _sgd_core(graph, cfg, segment, position, blocks) -> Compiled:
    nr = cfg.nr
    opt = graph.optimizer
    use_mom, use_wd = opt.momentum > 0, opt.weight_decay > 0
    layers = graph.layers
    classes = graph.sizes[-1]
    last = len(layers) - 1
    mema = _Region("MemA", cfg.mema_words)
    memb = _Region("MemB", cfg.memb_words)
    spad = _Region("the SPAD", cfg.spad_words, align=nr)
    loc = lambda count: _cdiv(count, nr)  # noqa: E731  (words per PE of a vector)
    cols = [parts[position] for parts in blocks]           # input columns I_k per layer
    # The bias entries a core owns: its input block of the next layer (all of the last one).
    outs = [cols[index + 1] if index < last else (0, classes) for index in range(len(layers))]
    width = [hi - lo for lo, hi in cols]
    owned = [hi - lo for lo, hi in outs]

    tensors, w_addr, m_addr, b_addr, bm_addr = [], [], [], [], []
    for index, (o, i) in enumerate(layers):
        ldw = loc(width[index])
        w_addr.append(mema.alloc(f"W{index} columns", loc(o) * ldw))
        tensors.append(Tensor(f"W{index}", "mema", o, width[index], w_addr[-1], ldw))
        b_addr.append(memb.alloc(f"b{index} block", loc(owned[index])))
        tensors.append(Tensor(f"b{index}", "diag", 1, owned[index], b_addr[-1]))
        if use_mom:
            m_addr.append(mema.alloc(f"mW{index} columns", loc(o) * ldw))
            tensors.append(Tensor(f"mW{index}", "mema", o, width[index], m_addr[-1], ldw))
            bm_addr.append(memb.alloc(f"mb{index} block", loc(owned[index])))
            tensors.append(Tensor(f"mb{index}", "diag", 1, owned[index], bm_addr[-1]))
    mema.check("use a config with more mema_words, more cores, or --algorithm mbgd")
    widest = max(graph.sizes)
    x_diag = memb.alloc("x block", loc(width[0]))
    x_rep = [memb.alloc(f"a{index - 1} block (replicated)", loc(width[index]))
             for index in range(len(layers))]
    partial = memb.alloc("W x partial", loc(widest))
    h_raw = [memb.alloc(f"Wa{index}", loc(owned[index])) for index in range(len(layers))]
    h = [memb.alloc(f"h{index}", loc(owned[index])) for index in range(len(layers))]
    act = [memb.alloc(f"a{index}", loc(owned[index])) for index in range(last)]
    d_own = [memb.alloc(f"d{index} block", loc(owned[index])) for index in range(last)]
    d_full = memb.alloc("d", loc(widest))
    d_rep = memb.alloc("d (replicated)", loc(widest))
    z_buf = memb.alloc("W^T d block", loc(widest))
    g_buf = memb.alloc("bias gradient", loc(widest))
    psum = memb.alloc("partial sums", loc(widest))
    h_rep = memb.alloc("logits (replicated)", loc(classes))
    t_buf = memb.alloc("target", loc(classes))
    scr = memb.alloc("softmax scratch", 3 * loc(classes) + 2)
    memb.check("use a config with more memb_words or a smaller model")
    x_spad = spad.alloc("input block", _ceil(width[0], nr))
    t_spad = spad.alloc("target", _ceil(classes, nr))
    logits_spad = spad.alloc("logits", _ceil(classes, nr))
    vbuf = spad.alloc("ring vector", _ceil(widest, nr))
    staging = spad.alloc("parameter staging",
                         max(o * _ceil(width[index], nr) for index, (o, i) in enumerate(layers)))
    spad.check("use a config with more spad_words")

    e = _Emitter()
    r = SCALAR_REGS
    ring = lambda words: _ring_emit(e, segment[position], words)  # noqa: E731
    e("transfer", Opcode.LDV, spad=x_spad, memb=x_diag, len=width[0], layout=Layout.DIAG)
    e("forward", Opcode.BCAST, dst=x_rep[0], src=x_diag, len=width[0], layout=Layout.COLREP)
    for index, (o, i) in enumerate(layers):
        e("forward", Opcode.GEMV, o * width[index], y=partial, x=x_rep[index],
          w=w_addr[index], psum=psum, rows=o, cols=width[index], ldw=loc(width[index]))
        e("transfer", Opcode.STV, spad=vbuf, memb=partial, len=o, layout=Layout.DIAG)
        ring(coll.reduce_scatter(segment, vbuf, o, nr))
        if index == last:
            ring(coll.all_gather(segment, vbuf, o, nr))
        lo, n = outs[index][0], owned[index]
        e("transfer", Opcode.LDV, spad=vbuf + lo, memb=h_raw[index], len=n, layout=Layout.DIAG)
        e("forward", Opcode.VOP, fn=VecOp.ADD, layout=Layout.DIAG, z=h[index], x=h_raw[index],
          y=b_addr[index], len=n, alpha=0)
        if index < last:
            e("forward", Opcode.VOP, fn=VecOp.MAXS, layout=Layout.DIAG, z=act[index],
              x=h[index], y=h[index], len=n, alpha=r["zero"])
            e("forward", Opcode.BCAST, dst=x_rep[index + 1], src=act[index], len=n,
              layout=Layout.COLREP)
    e("transfer", Opcode.STV, spad=logits_spad, memb=h[last], len=classes, layout=Layout.DIAG)
    _sgd_output_gradient(e, graph.loss, classes, logits=h[last], out=d_full, t_spad=t_spad,
                         t_buf=t_buf, h_rep=h_rep, scr=scr)
    for index in reversed(range(len(layers))):
        o, i = layers[index]
        e("delta", Opcode.BCAST, dst=d_rep, src=d_full, len=o, layout=Layout.ROWREP)
        if index > 0:
            lo, n = cols[index][0], width[index]
            e("delta", Opcode.GEMVT, o * n, z=z_buf, d=d_rep, w=w_addr[index], psum=psum,
              rows=o, cols=n, ldw=loc(n))
            e("delta", Opcode.VOP, fn=VecOp.RELUD, layout=Layout.DIAG, z=d_own[index - 1],
              x=h[index - 1], y=z_buf, len=n, alpha=0)
        e("update", Opcode.GER, o * width[index], w=w_addr[index], u=d_rep, v=x_rep[index],
          mom=m_addr[index] if use_mom else 0, rows=o, cols=width[index],
          ldw=loc(width[index]), alpha=r["neg_lr"], wd=r["wd"], mu=r["mu"],
          use_wd=int(use_wd), use_mom=int(use_mom))
        # The bias block's gradient: the own block of d (the whole d for the last layer).
        grad = d_full if index == last else d_own[index]
        _sgd_bias_update(e, b_addr[index], grad, owned[index], g_buf=g_buf,
                         mom=bm_addr[index] if use_mom else None, use_wd=use_wd)
        if index > 0:
            # The next layer down needs all of its delta on every core.
            lo, n = cols[index][0], width[index]
            e("transfer", Opcode.STV, spad=vbuf + lo, memb=d_own[index - 1], len=n,
              layout=Layout.DIAG)
            ring(coll.all_gather(segment, vbuf, i, nr))
            e("transfer", Opcode.LDV, spad=vbuf, memb=d_full, len=i, layout=Layout.DIAG)
    e("transfer", Opcode.HALT)
    io = {"inputs": x_spad, "targets": t_spad, "logits": logits_spad}
    return Compiled(graph, cfg, e.words, e.phases, e.macs, tensors, io, staging=staging)
