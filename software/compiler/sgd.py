"""SGD (batch 1) on one core and over a ring, and a small batch over a ring, lowered to GEMV
kernels.

One core: weights and momentum stay in MemA (2D round-robin), biases and vectors in MemB; the
sample and its target enter through the SPAD, the logits leave through it.

A ring (per-core reduction, then pass-and-add): core ``k`` owns the input columns ``I_k`` of
every ``W`` (``ring_blocks(in, C, nr)``) in MemA and the bias entries of its output block. The
forward partial ``W[:, I_k] a[I_k]`` is reduced inside the core by the GEMV, then summed round
the ring by a **reduce-scatter** that leaves core ``k`` exactly its input block of the next
layer. The logits' partials are chain-reduced to the last core (a few words in one pipelined
pass, not ``2 (C - 1)`` bucket steps) and broadcast from it, every core forms the output
gradient, and the backward ``W[:, I_k]^T d`` and the rank-1 update of its columns are local;
each delta below the top is **all-gathered** for the next layer down, its first ``RING``
posted before the layer's update, which runs meanwhile (with ``interleave`` split by rows into
one piece under each step of the gather). Vectors move between MemB and the SPAD around each
collective. With ``first_rows`` (:func:`~.program.layer_splits`) the first layer is split by
rows instead: the host stages the whole sample, core ``k`` holds the rows of ``W_0`` of its
input block of the next layer and sums them alone (no reduce-scatter), and its update takes
its own block of ``d_0`` (no all-gather). Where a core's column block has room for one
more column at no extra word per PE (:func:`~.program.bias_columns`), the layer's bias is
that column of the core's ``W`` (``[W_k | b]``, tensors ``P``/``M``) against a ``1`` after its
input block (staged once, tensor ``one``): the GEMV adds it as the last term of the core's
partial, the rank-1 update updates it, and no core spends a ``VOP`` on the bias in the
forward or the update. The first layer, split by rows, folds every core's rows' biases the
same way where that saves cycles.

``dfa`` (batch 1) is the same step with each hidden layer's ``W^T d`` replaced by ``F_l^T
d_out``: the feedback matrix in MemA (on a ring, the core's columns of it, those of the layer
above's ``W``) and the output delta broadcast once; on a ring every hidden delta block is
formed right after the top one's gather is posted, while it moves. With ``load_gathered``
every gathered delta has a SPAD buffer of its own and every gather is posted before the
updates that load their delta from there (a ``ger`` with ``load``); the output layer's update
and those of layers split by rows, which touch no SPAD, run under the gathers.

A batch on a ring (``mbgd`` or ``dfa`` on the GEMV kernels, ``graph.batched_gemv``): every
sample's forward, layer by layer (each sample's GEMV in turn, or with ``overlap`` each under
the ring sum of the sample before it), then its output gradient; then, from the top, every
sample's delta below (``dfa``: at the top, every hidden layer's from the sample's output delta)
and each sample's rank-1 update, its delta below's all-gather posted before it. The samples'
inputs, targets, logits and ring vectors lie one after the other in the SPAD; a sample keeps
its inputs of the layers above the first, its pre-activations and deltas in MemB until its
updates, its replicated delta is loaded again for each use (the gathered ones from two SPAD
sets that alternate by layer), and its first-layer input is kept in MemB where there is room,
else loaded again for its update.

Both emit the arithmetic in the order :mod:`caterpillar.golden.trainer` documents.
"""

from __future__ import annotations

from caterpillar.contract.geometry import mema_bank_period
from caterpillar.contract.isa import Layout, Opcode, VecOp
from caterpillar.golden.collectives import ring_blocks
from caterpillar.software.compiler import collectives as coll
from caterpillar.software.compiler.program import (
    SCALAR_REGS,
    CoreProgram,
    Emitter,
    Region,
    Tensor,
    alloc_staging,
    cdiv,
    ceil_to,
    input_name,
    ring_emit,
)
from caterpillar.software.graph.model import TrainingGraph

__all__ = ["sgd_core_program", "sgd_ring_core_program", "sgd_output_gradient", "sgd_load_target",
           "sgd_back_product", "sgd_bias_update", "relu_replicated", "relu"]


def relu(e, z, x, length, layout=Layout.DIAG):
    """``z = relu(x)`` (``vop maxs`` with zero) of ``length`` elements in ``layout``."""
    e("forward", Opcode.VOP, fn=VecOp.MAXS, layout=layout, z=z, x=x, y=x, len=length,
      alpha=SCALAR_REGS["zero"])


def relu_replicated(e, spad, dst, width):
    """``relu(h)`` of the ``width`` pre-activations at SPAD address ``spad``, replicated along
    the columns into ``dst``: loaded there (``colrep``) and rectified in place by every PE,
    in the cycles of a diagonal ``maxs`` and without the ``bcast`` that a diagonal copy
    needs (every PE's ``maxs`` reads and writes MemB, the ``bcast`` only writes it).
    ``dst`` then also serves ``relud`` as its ``h``: a column-replicated vector holds the
    diagonal one at the same addresses, and ``relu(h) > 0`` exactly when ``h > 0`` (NaN
    included), so the delta is the same bit for bit."""
    e("transfer", Opcode.LDV, spad=spad, memb=dst, len=width, layout=Layout.COLREP)
    relu(e, dst, dst, width, Layout.COLREP)


def sgd_core_program(graph: TrainingGraph, cfg) -> CoreProgram:
    """The SGD step of ``graph`` on one core (see the module docstring)."""
    nr = cfg.nr
    opt = graph.optimizer
    use_mom, use_wd = opt.momentum > 0, opt.weight_decay > 0
    layers = graph.layers
    classes = graph.sizes[-1]
    # Every MemA tensor starts a bank period apart, so each momentum buffer keeps its W's bank
    # pattern (ger's banked steps, contract/geometry.py).
    mema = Region("MemA", cfg.mema_words, align=mema_bank_period(cfg))
    memb = Region("MemB", cfg.memb_words)
    spad = Region("the SPAD", cfg.spad_words, align=nr)
    loc = lambda count: cdiv(count, nr)  # noqa: E731  (words per PE of a vector)

    tensors, w_addr, m_addr, b_addr, bm_addr = [], [], [], [], []
    for index, (o, i) in enumerate(layers):
        ldw = loc(i)
        w_addr.append(mema.alloc(f"W{index}", loc(o) * ldw))
        tensors.append(Tensor(f"W{index}", "mema", o, i, w_addr[-1], ldw))
        b_addr.append(memb.alloc(f"b{index}", loc(o)))
        tensors.append(Tensor(f"b{index}", "diag", 1, o, b_addr[-1]))
        if use_mom:
            m_addr.append(mema.alloc(f"mW{index}", loc(o) * ldw))
            tensors.append(Tensor(f"mW{index}", "mema", o, i, m_addr[-1], ldw))
            bm_addr.append(memb.alloc(f"mb{index}", loc(o)))
            tensors.append(Tensor(f"mb{index}", "diag", 1, o, bm_addr[-1]))
    # DFA: F_l (outputs x width_l) of every hidden layer, tiled like W_{l+1}.
    f_addr = []
    if graph.algorithm == "dfa":
        for index, (o, i) in enumerate(layers[1:]):
            f_addr.append(mema.alloc(f"F{index}", loc(classes) * loc(i)))
            tensors.append(Tensor(f"F{index}", "mema", classes, i, f_addr[-1], loc(i)))
    mema.check("use a config with more mema_words, a smaller model, or --algorithm mbgd")

    x_rep = [memb.alloc(f"{input_name(index)} (replicated)", loc(i))
             for index, (o, i) in enumerate(layers)]
    h_raw = [memb.alloc(f"Wa{index}", loc(o)) for index, (o, i) in enumerate(layers)]
    h = [memb.alloc(f"h{index}", loc(o)) for index, (o, i) in enumerate(layers)]
    act = [memb.alloc(f"a{index}", loc(o)) for index, (o, i) in enumerate(layers[:-1])]
    delta = [memb.alloc(f"d{index}", loc(o)) for index, (o, i) in enumerate(layers)]
    widest = max(graph.sizes)
    d_rep = memb.alloc("d (replicated)", loc(widest))
    dout_rep = memb.alloc("output d (replicated)", loc(classes)) if f_addr else None
    e_buf = memb.alloc("W^T d", loc(widest))
    g_buf = memb.alloc("bias gradient", loc(widest))
    psum = memb.alloc("partial sums", loc(widest))
    h_rep = memb.alloc("logits (replicated)", loc(classes))
    t_buf = memb.alloc("target", loc(classes))
    scr = memb.alloc("softmax scratch", 3 * loc(classes) + 2)
    memb.check("use a config with more memb_words or a smaller model")

    x_spad = spad.alloc("input", ceil_to(graph.sizes[0], nr))
    t_spad = spad.alloc("target", ceil_to(classes, nr))
    logits_spad = spad.alloc("logits", ceil_to(classes, nr))
    staging, staging_words = alloc_staging(spad, tensors, nr)
    spad.check("use a config with more spad_words")

    e = Emitter()
    r = SCALAR_REGS
    n_in = graph.sizes[0]
    # The sample goes straight into its column-replicated copy, the operand of gemv and ger.
    e("transfer", Opcode.LDV, spad=x_spad, memb=x_rep[0], len=n_in, layout=Layout.COLREP)
    last = len(layers) - 1
    for index, (o, i) in enumerate(layers):
        e.gemv(cfg, "forward", Opcode.GEMV, o * i, y=h_raw[index], x=x_rep[index],
               w=w_addr[index], psum=psum, rows=o, cols=i, ldw=loc(i))
        e("forward", Opcode.VOP, fn=VecOp.ADD, layout=Layout.DIAG, z=h[index], x=h_raw[index],
          y=b_addr[index], len=o, alpha=0)
        if index < last:
            relu(e, act[index], h[index], o)
            e("forward", Opcode.BCAST, dst=x_rep[index + 1], src=act[index], len=o,
              layout=Layout.COLREP)
    e("transfer", Opcode.STV, spad=logits_spad, memb=h[last], len=classes, layout=Layout.DIAG)
    sgd_output_gradient(e, graph.loss, classes, logits=h[last], out=delta[last],
                         t_spad=t_spad, t_buf=t_buf, h_rep=h_rep, scr=scr,
                         plain=not (use_mom or use_wd))
    if f_addr:
        e("delta", Opcode.BCAST, dst=dout_rep, src=delta[last], len=classes,
          layout=Layout.ROWREP)
    for index in reversed(range(len(layers))):
        o, i = layers[index]
        u = dout_rep if f_addr and index == last else d_rep
        if u == d_rep:
            e("delta", Opcode.BCAST, dst=d_rep, src=delta[index], len=o, layout=Layout.ROWREP)
        if index > 0:
            sgd_back_product(e, z=e_buf, psum=psum, cols=i, ldw=loc(i),
                             operands=(f_addr[index - 1], dout_rep, classes) if f_addr else
                             (w_addr[index], d_rep, o), cfg=cfg)
            e("delta", Opcode.VOP, fn=VecOp.RELUD, layout=Layout.DIAG, z=delta[index - 1],
              x=h[index - 1], y=e_buf, len=i, alpha=0)
        e("update", Opcode.GER, o * i, w=w_addr[index], u=u, v=x_rep[index],
          mom=m_addr[index] if use_mom else 0, rows=o, cols=i, ldw=loc(i), alpha=r["neg_lr"],
          wd=r["wd"], mu=r["mu"], use_wd=int(use_wd), use_mom=int(use_mom))
        sgd_bias_update(e, b_addr[index], delta[index], o, g_buf=g_buf,
                         mom=bm_addr[index] if use_mom else None, use_wd=use_wd)
    e("transfer", Opcode.HALT)
    io = {"inputs": x_spad, "targets": t_spad, "logits": logits_spad,
          "ld_inputs": ceil_to(graph.sizes[0], nr), "ld_classes": ceil_to(classes, nr)}
    return CoreProgram(e.words, e.phases, e.macs, tensors, io, staging=staging,
                       staging_words=staging_words)


def sgd_load_target(e, loss, classes, t_spad, t_buf):
    """Load one sample's target from the SPAD into ``t_buf`` in the layout ``loss`` reads."""
    layout = Layout.COLREP if loss == "softmax_ce" else Layout.DIAG
    e("transfer", Opcode.LDV, spad=t_spad, memb=t_buf, len=classes, layout=layout)


def sgd_output_gradient(e, loss, classes, *, logits, out, t_spad, t_buf, h_rep, scr, plain,
                        logits_spad=None):
    """The output gradient of one sample from the logits (MemB diagonal, or with
    ``logits_spad`` the SPAD, loaded in the layout the loss reads) into ``out``; with ``plain``
    (no momentum, no weight decay) scaled by the step ``-lr``, which every delta below and
    every update inherits. ``t_spad=None``: the target is in ``t_buf`` already
    (:func:`sgd_load_target`), so nothing touches the SPAD without ``logits_spad``."""
    if loss == "softmax_ce":
        if logits_spad is None:
            e("loss", Opcode.BCAST, dst=h_rep, src=logits, len=classes, layout=Layout.COLREP)
        else:
            e("transfer", Opcode.LDV, spad=logits_spad, memb=h_rep, len=classes,
              layout=Layout.COLREP)
        if t_spad is not None:
            sgd_load_target(e, loss, classes, t_spad, t_buf)
        e("loss", Opcode.SMXCE, z=out, x=h_rep, t=t_buf, scr=scr, len=classes)
    else:
        if logits_spad is not None:
            e("transfer", Opcode.LDV, spad=logits_spad, memb=logits, len=classes,
              layout=Layout.DIAG)
        if t_spad is not None:
            sgd_load_target(e, loss, classes, t_spad, t_buf)
        e("loss", Opcode.VOP, fn=VecOp.MSEG, layout=Layout.DIAG, z=out, x=logits, y=t_buf,
          len=classes, alpha=SCALAR_REGS["mse"])
    if plain:
        e("loss", Opcode.VOP, fn=VecOp.SCALE, layout=Layout.DIAG, z=out, x=out, y=out,
          len=classes, alpha=SCALAR_REGS["step"])


def sgd_back_product(e, *, z, psum, cols, ldw, operands, cfg=None):
    """``z = M^T v`` for the layer below's delta; ``operands = (M, v, rows)``: the layer's ``W`` and
    its replicated delta (backpropagation), or ``dfa``'s ``F`` and the output delta. With
    ``cfg``, an LDV of ``v`` just before it is folded into it where that is faster
    (:meth:`~.program.Emitter.gemv`)."""
    matrix, vector, rows = operands
    fields = dict(z=z, d=vector, w=matrix, psum=psum, rows=rows, cols=cols, ldw=ldw)
    if cfg is None:
        e("delta", Opcode.GEMVT, rows * cols, **fields)
    else:
        e.gemv(cfg, "delta", Opcode.GEMVT, rows * cols, **fields)


def sgd_bias_update(e, bias, grad, count, *, g_buf, mom, use_wd):
    """``b -= lr (mu m + (g + wd b))`` by VOPs, in :func:`ger`'s order (momentum if ``mom``);
    without weight decay and momentum ``b += g`` (``g`` carries the step)."""
    r = SCALAR_REGS
    if not use_wd and mom is None:
        e("update", Opcode.VOP, fn=VecOp.ADD, layout=Layout.DIAG, z=bias, x=bias, y=grad,
          len=count, alpha=0)
        return
    if use_wd:
        e("update", Opcode.VOP, fn=VecOp.AXPY, layout=Layout.DIAG, z=g_buf, x=bias, y=grad,
          len=count, alpha=r["wd"])
        grad = g_buf
    if mom is not None:
        e("update", Opcode.VOP, fn=VecOp.AXPY, layout=Layout.DIAG, z=mom, x=mom, y=grad,
          len=count, alpha=r["mu"])
        grad = mom
    e("update", Opcode.VOP, fn=VecOp.AXPY, layout=Layout.DIAG, z=bias, x=grad, y=bias,
      len=count, alpha=r["neg_lr"])




def sgd_ring_core_program(graph, cfg, segment, position, blocks, *,
                          first_rows: bool = False, interleave: bool = False,
                          bias_columns=None, piped: bool = True,
                          load_gathered: bool = False, pad_rows: bool = True,
                          overlap: bool = False, segmented: bool = True) -> CoreProgram:
    """Core ``segment[position]``'s SGD step (or a batch's on the GEMV kernels) on the ring
    (see the module docstring); with
    ``first_rows`` the first layer is split by rows (``blocks[0]``), on the whole sample; with
    ``interleave`` each layer's update is split by rows between the steps of the all-gather
    it runs under; ``bias_columns`` (:func:`~.program.bias_columns`): per layer, the position
    of the core that holds the bias as a column of its ``W`` block, or ``None``; ``piped``:
    use the piped collectives where they fit; ``load_gathered`` (``dfa`` without
    ``interleave``): every gathered delta in a SPAD buffer of its own, loaded by its update
    after the updates that touch no SPAD; ``pad_rows``: pad a narrow ``W``'s MemA rows for
    paired updates (below) where MemA has the room; ``overlap`` (a batch): each sample's
    forward GEMV of a layer split by columns runs while the sample before it is summed round
    the ring; ``segmented``: the logits' chain runs in the segments of
    :func:`~.collectives.chain_segments` (else in one)."""
    nr = cfg.nr
    opt = graph.optimizer
    use_mom, use_wd = opt.momentum > 0, opt.weight_decay > 0
    layers = graph.layers
    classes = graph.sizes[-1]
    last = len(layers) - 1
    mema = Region("MemA", cfg.mema_words, align=mema_bank_period(cfg))
    memb = Region("MemB", cfg.memb_words)
    spad = Region("the SPAD", cfg.spad_words, align=nr)
    loc = lambda count: cdiv(count, nr)  # noqa: E731  (words per PE of a vector)
    cols = [parts[position] for parts in blocks]           # input columns I_k per layer
    if first_rows:
        cols[0] = (0, graph.sizes[0])
    # The bias entries a core owns: its input block of the next layer (all of the last one).
    outs = [cols[index + 1] if index < last else (0, classes) for index in range(len(layers))]
    width = [hi - lo for lo, hi in cols]
    owned = [hi - lo for lo, hi in outs]
    # The rows of W a core holds: all, but its own block of a layer split by rows.
    rows = [owned[0] if first_rows and index == 0 else o
            for index, (o, i) in enumerate(layers)]
    # A folded layer's bias is a column of one core's W block (P, M: [W | b] tensors, the
    # bias column only on that core) against a 1 after its input block; no core adds it.
    folded = list(bias_columns or [None] * len(layers))
    here = [where is not None and (rows[index] < layers[index][0] or where == position)
            for index, where in enumerate(folded)]
    wcols = [width[index] + here[index] for index in range(len(layers))]
    # A layer split by columns below the top has its outputs reduce-scattered and its delta
    # all-gathered; where the blocks allow, each in one RING per core (the piped
    # collectives), with the layer's W rows, and so its outputs and delta, in their layout.
    piped_layer = [piped and index < last and rows[index] == o and
                   coll.piped_fits(o, len(segment), nr, cfg)
                   for index, (o, i) in enumerate(layers)]
    order = [tuple(coll.piped_permutation(o, len(segment), nr)) if piped_layer[index] else ()
             for index, (o, i) in enumerate(layers)]
    # Where the core's own block of a layer's outputs lies in the ring vector.
    own_at = [coll.piped_places(o, len(segment), nr)[position][0] if piped_layer[index]
              else outs[index][0] for index, (o, i) in enumerate(layers)]

    # W's MemA rows: with weight decay or momentum a row of fewer than chain_lanes / 2 words
    # per PE is padded to that, so its ger takes two rows a step (geometry's ``paired``).
    pair = cfg.chain_lanes // 2
    ld_w = [pair if pad_rows and (use_mom or use_wd) and loc(c) < pair else loc(c)
            for c in wcols]
    tensors, w_addr, m_addr, b_addr, bm_addr = [], [], [], [], []
    for index, o in enumerate(rows):
        ldw = ld_w[index]
        part = "rows" if o < layers[index][0] else "columns"
        if folded[index] is not None:
            what = f"[W{index} | b{index}]" if here[index] else f"W{index}"
            w_addr.append(mema.alloc(f"{what} {part}", loc(o) * ldw))
            tensors.append(Tensor(f"P{index}", "mema", o, wcols[index], w_addr[-1], ldw,
                                  bias=here[index], row_order=order[index]))
            b_addr.append(None)
            if use_mom:
                m_addr.append(mema.alloc(f"m{what} {part}", loc(o) * ldw))
                tensors.append(Tensor(f"M{index}", "mema", o, wcols[index], m_addr[-1], ldw,
                                      bias=here[index], row_order=order[index]))
                bm_addr.append(None)
            continue
        w_addr.append(mema.alloc(f"W{index} {part}", loc(o) * ldw))
        tensors.append(Tensor(f"W{index}", "mema", o, width[index], w_addr[-1], ldw,
                              row_order=order[index]))
        b_addr.append(memb.alloc(f"b{index} block", loc(owned[index])))
        tensors.append(Tensor(f"b{index}", "diag", 1, owned[index], b_addr[-1]))
        if use_mom:
            m_addr.append(mema.alloc(f"mW{index} {part}", loc(o) * ldw))
            tensors.append(Tensor(f"mW{index}", "mema", o, width[index], m_addr[-1], ldw,
                                  row_order=order[index]))
            bm_addr.append(memb.alloc(f"mb{index} block", loc(owned[index])))
            tensors.append(Tensor(f"mb{index}", "diag", 1, owned[index], bm_addr[-1]))
    # DFA: the core's columns of F_l (outputs x width_l), those of W_{l+1}.
    f_addr = []
    if graph.algorithm == "dfa":
        for index in range(1, len(layers)):
            f_addr.append(mema.alloc(f"F{index - 1} columns", loc(classes) * loc(width[index])))
            tensors.append(Tensor(f"F{index - 1}", "mema", classes, width[index], f_addr[-1],
                                  loc(width[index])))
    if mema.room < 0 and ld_w != [loc(c) for c in wcols]:
        # The padded rows do not fit: the unpadded ones (unpaired updates) may.
        return sgd_ring_core_program(graph, cfg, segment, position, blocks,
                                     first_rows=first_rows, interleave=interleave,
                                     bias_columns=bias_columns, piped=piped,
                                     load_gathered=load_gathered, pad_rows=False,
                                     overlap=overlap)
    mema.check("use a config with more mema_words, more cores, or --algorithm mbgd")
    widest = max(graph.sizes)
    x_part = "" if first_rows else " block"
    # Per sample (mbgd on the GEMV kernels: every sample's forward and backward, then the
    # updates), the buffers a sample keeps until its updates; sample 0's where batch 1 has
    # them, the others' after every other buffer.
    batch = graph.batch if graph.batched_gemv else 1
    samples = range(batch)
    x_rep = [[memb.alloc(f"{input_name(index)}{x_part if index == 0 else ' block'} "
                         "(replicated)", loc(wcols[index])) for index in range(len(layers))]]
    # Sized to their use: a GEMV's outputs and scratch (ceil(rows / nr) words), a GEMVT's
    # scratch (ceil(cols / nr)), a replicated delta.
    widest_out = max(o for o, i in layers)
    partial = memb.alloc("W x partial", loc(widest_out))
    h_raw = [memb.alloc(f"Wa{index}", loc(owned[index])) for index in range(len(layers))]
    # A hidden layer split by columns with its bias folded is rectified in the next layer's
    # input copy (relu_replicated), which is also its relud's h.
    in_copy = [index < last and rows[index] >= o and folded[index] is not None
               for index, (o, i) in enumerate(layers)]

    def pre_activations(k, suffix=""):
        return [x_rep[k][index + 1] if in_copy[index] else
                memb.alloc(f"h{index}{suffix}", loc(owned[index]))
                for index in range(len(layers))]

    h = [pre_activations(0)]
    act = [None if in_copy[index] else memb.alloc(f"a{index}", loc(owned[index]))
           for index in range(last)]
    d_own = [[memb.alloc(f"d{index} block", loc(owned[index])) for index in range(last)]]
    d_full = [memb.alloc("d", loc(classes))]
    d_rep = memb.alloc("d (replicated)", loc(widest_out))
    dout_rep = memb.alloc("output d (replicated)", loc(classes)) if f_addr else None
    z_buf = memb.alloc("W^T d block", loc(max(width[1:] or [1])))
    g_buf = memb.alloc("bias gradient", loc(max(owned))) if use_wd else None
    psum = memb.alloc("partial sums", loc(max([widest_out] + width[1:])))
    h_rep = memb.alloc("logits (replicated)", loc(classes))
    t_buf = memb.alloc("target", loc(classes))
    scr = memb.alloc("softmax scratch", 3 * loc(classes) + 2)
    for k in samples[1:]:
        # The replicated delta is loaded for each use; the first layer's input (the widest
        # vector) is kept below where MemB has room, else loaded again for the update.
        suffix = f", sample {k}"
        x_rep.append(x_rep[0][:1] + [memb.alloc(f"{input_name(index)} block (replicated)"
                                                f"{suffix}", loc(wcols[index]))
                                     for index in range(1, len(layers))])
        h.append(pre_activations(k, suffix))
        d_own.append([memb.alloc(f"d{index} block{suffix}", loc(owned[index]))
                      for index in range(last)])
        d_full.append(memb.alloc(f"d{suffix}", loc(classes)))
    kept = min(batch - 1, max(memb.room, 0) // loc(wcols[0]))
    for k in samples[1:kept + 1]:
        x_rep[k][0] = memb.alloc(f"{input_name(0)}{x_part} (replicated), sample {k}",
                                 loc(wcols[0]))
    # The 1 after the input of a layer whose bias this core holds, staged once: the step's
    # loads and broadcasts of the input never reach it.
    tensors += [Tensor(f"one{index}" + (f".{k}" if k else ""), "colrep", 1, wcols[index],
                       x_rep[k][index])
                for k in samples for index in range(len(layers))
                if here[index] and (k == 0 or x_rep[k][index] != x_rep[0][index])]
    memb.check("use a config with more memb_words or a smaller model"
               + (", or kernels gemm" if batch > 1 else ""))
    # With the first layer's bias here, the 1 after the input waits in the SPAD too (staged
    # once), so the step's load of the input can be the first gemv's own (Emitter.gemv).
    # A batch's samples lie ld_inputs (targets, logits: ld_classes) words apart.
    ld_x, ld_c, ld_v = ceil_to(wcols[0], nr), ceil_to(classes, nr), ceil_to(widest, nr)
    x_spad = spad.alloc(f"input{x_part}", batch * ld_x)
    constants = [(x_spad + k * ld_x + width[0], 1, 1, 1, "one") for k in samples] \
        if here[0] else []
    t_spad = spad.alloc("target", batch * ld_c)
    logits_spad = spad.alloc("logits", batch * ld_c)
    # A batch's ring vectors are two sets, one in each SPAD region (a SPAD access waits only
    # for ring work in its own region): the forward's alternate by sample, so one sample's
    # GEMV stores its partial sums while the sample before it is summed round the ring; the
    # gathered deltas alternate by layer, so a layer's updates load theirs while the deltas
    # below move into the other set.
    vbuf = spad.alloc("ring vector", batch * ld_v)
    vbuf_high = spad.alloc_high("ring vector (the other region)", batch * ld_v) \
        if batch > 1 else vbuf

    def ring_vector(which, k):
        """Sample ``k``'s ring vector of set ``which`` (0 or 1)."""
        return (vbuf_high if which else vbuf) + k * ld_v

    # dfa: the deltas of the layers below the top split by columns are all-gathered, each into
    # a buffer of its own, where the updates load them after the updates that need no SPAD.
    gathered = [load_gathered and bool(f_addr) and not interleave and batch == 1
                and index < last and rows[index] == o for index, (o, i) in enumerate(layers)]
    dbuf = [spad.alloc(f"d{index} (gathered)", ceil_to(layers[index][0], nr))
            if gathered[index] else None for index in range(len(layers))]
    staging, staging_words = alloc_staging(spad, tensors, nr)
    spad.check("use a config with more spad_words")

    e = Emitter()
    r = SCALAR_REGS
    ring = lambda words: ring_emit(e, segment[position], words)  # noqa: E731
    # With the output layer's bias folded the chained, broadcast logits are complete where the
    # ring leaves them: in the host's logits area, read from there by the loss.
    spad_logits = folded[last] is not None
    # The logits' partials are short: their chain is latency-bound, so it runs in segments.
    logits_segments = (coll.chain_segments(cfg, len(segment), layers[last][0]) if segmented
                       else (len(segment),))

    def forward_gemv(index, k):
        """Sample ``k``'s GEMV of layer ``index`` (its input loaded first in the first
        layer)."""
        o, n = layers[index][0], owned[index]
        if index == 0:
            e("transfer", Opcode.LDV, spad=x_spad + k * ld_x, memb=x_rep[k][0], len=wcols[0],
              layout=Layout.COLREP)
        if rows[index] < o:
            # Split by rows: the core's outputs are whole sums, no ring.
            e.gemv(cfg, "forward", Opcode.GEMV, n * width[index], x=x_rep[k][index],
                   w=w_addr[index], y=h_raw[index] if folded[index] is None else h[k][index],
                   psum=psum, rows=n, cols=wcols[index], ldw=ld_w[index])
            return
        e.gemv(cfg, "forward", Opcode.GEMV, o * width[index], y=partial, x=x_rep[k][index],
               w=w_addr[index], psum=psum, rows=o, cols=wcols[index], ldw=ld_w[index])

    def forward_buffer(index, k):
        """Where sample ``k``'s partials of layer ``index`` are summed round the ring."""
        if spad_logits and index == last:
            return logits_spad + k * ld_c
        return ring_vector(k % 2, k)

    def forward_store(index, k):
        """Sample ``k``'s partials of layer ``index`` (split by columns) stored where the ring
        sums them: the gemv just before may store them itself."""
        e.stv(cfg, "transfer", spad=forward_buffer(index, k), memb=partial,
              len=layers[index][0], layout=Layout.DIAG)

    def forward_sum(index, k):
        """Sample ``k``'s partials of layer ``index`` summed round the ring."""
        o, buf = layers[index][0], forward_buffer(index, k)
        if index == last:
            ring(coll.segmented_chain_reduce(segment, buf, o, logits_segments))
            ring(coll.broadcast(segment, buf, o, len(segment) - 1))
        else:
            scatter = coll.piped_reduce_scatter if piped_layer[index] else coll.reduce_scatter
            ring(scatter(segment, buf, o, nr))

    def forward_finish(index, k):
        """The rest of sample ``k``'s layer ``index``: its sum into MemB, the bias, ReLU and
        the broadcast of the activation for the layer above."""
        o, n = layers[index][0], owned[index]
        if rows[index] >= o:
            if in_copy[index]:
                relu_replicated(e, forward_buffer(index, k) + own_at[index], h[k][index], n)
                return
            if not (spad_logits and index == last):
                e("transfer", Opcode.LDV, spad=forward_buffer(index, k) + own_at[index],
                  memb=h_raw[index] if folded[index] is None else h[k][index], len=n,
                  layout=Layout.DIAG)
        if folded[index] is None:
            e("forward", Opcode.VOP, fn=VecOp.ADD, layout=Layout.DIAG, z=h[k][index],
              x=h_raw[index], y=b_addr[index], len=n, alpha=0)
        if index < last:
            relu(e, act[index], h[k][index], n)
            e("forward", Opcode.BCAST, dst=x_rep[k][index + 1], src=act[index], len=n,
              layout=Layout.COLREP)

    # The first layer's forward leaves the shared input buffer with the first sample the
    # updates load from it (the samples are independent until their updates, which run in
    # sample order), so that one is not loaded again.
    shared = [k for k in samples if x_rep[k][0] == x_rep[0][0]]
    first_order = [k for k in samples if k not in shared] + shared[::-1]
    for index in range(len(layers)):
        order = first_order if index == 0 else list(samples)
        if rows[index] < layers[index][0] or not overlap:
            for k in order:
                forward_gemv(index, k)
                if rows[index] >= layers[index][0]:
                    forward_store(index, k)
                    forward_sum(index, k)
                forward_finish(index, k)
            continue
        # overlap: each sample's GEMV (storing its partial sums in the other region) runs
        # while the sample before it is summed round the ring.
        for j, k in enumerate(order):
            forward_gemv(index, k)
            forward_store(index, k)
            if j:
                forward_finish(index, order[j - 1])
            forward_sum(index, k)
        forward_finish(index, order[-1])
    for k in samples:
        if not spad_logits:
            e("transfer", Opcode.STV, spad=logits_spad + k * ld_c, memb=h[k][last],
              len=classes, layout=Layout.DIAG)
        sgd_output_gradient(e, graph.loss, classes, logits=h[k][last], out=d_full[k],
                             t_spad=t_spad + k * ld_c, t_buf=t_buf, h_rep=h_rep, scr=scr,
                             plain=not (use_mom or use_wd),
                             logits_spad=logits_spad + k * ld_c if spad_logits else None)
    if f_addr and batch == 1:
        e("delta", Opcode.BCAST, dst=dout_rep, src=d_full[0], len=classes,
          layout=Layout.ROWREP)

    def delta_below(index, k=0):
        """The core's block of sample ``k``'s delta of layer ``index - 1``, into ``d_own``."""
        n = width[index]
        sgd_back_product(e, z=z_buf, psum=psum, cols=n,
                         ldw=loc(n) if f_addr else ld_w[index],
                         operands=(f_addr[index - 1], dout_rep, classes) if f_addr else
                         (w_addr[index], d_rep, layers[index][0]), cfg=cfg)
        e("delta", Opcode.VOP, fn=VecOp.RELUD, layout=Layout.DIAG, z=d_own[k][index - 1],
          x=h[k][index - 1], y=z_buf, len=n, alpha=0)

    def update_rows(index, u, a, b, k=0):
        """Rows ``a`` to ``b`` of layer ``index``'s update with sample ``k``'s replicated
        delta ``u`` (its LDV, just before, may fold into the GER: nothing reads ``u`` after
        it)."""
        ldw = ld_w[index]
        at = a // nr * ldw
        e.ger(cfg, "update", (b - a) * width[index], w=w_addr[index] + at, u=u + a // nr,
              v=x_rep[k][index], mom=m_addr[index] + at if use_mom else 0, rows=b - a,
              cols=wcols[index], ldw=ldw, alpha=r["neg_lr"], wd=r["wd"], mu=r["mu"],
              use_wd=int(use_wd), use_mom=int(use_mom))

    def update_bias(index, k=0):
        """Layer ``index``'s bias block by sample ``k``: its own block of d (the whole d for
        the last layer)."""
        if folded[index] is None:
            grad = d_full[k] if index == last else d_own[k][index]
            sgd_bias_update(e, b_addr[index], grad, owned[index], g_buf=g_buf,
                             mom=bm_addr[index] if use_mom else None, use_wd=use_wd)

    def update(index, u):
        """Layer ``index``'s whole update with the replicated delta ``u``, and its bias's."""
        update_rows(index, u, 0, rows[index])
        update_bias(index)

    def delta_gather(index, buf, k=0):
        """Store the core's block of sample ``k``'s delta of layer ``index`` at its place in
        ``buf`` and return the all-gather of it into ``buf`` (each core's RINGs, not yet
        posted)."""
        e("transfer", Opcode.STV, spad=buf + own_at[index], memb=d_own[k][index],
          len=owned[index], layout=Layout.DIAG)
        collective = coll.piped_all_gather if piped_layer[index] else coll.all_gather
        return collective(segment, buf, layers[index][0], nr)

    if any(gathered):
        # dfa: the deltas below come from the output's. The first gather runs under the other
        # deltas and the output layer's update, the later ones (each STV waits for the gather
        # before it) under the updates of layers split by rows; then the others load their
        # gathered delta themselves (a ger with load waits for the ring engine, as any SPAD
        # user does).
        below = list(range(last - 1, -1, -1))
        delta_below(last)
        if gathered[last - 1]:
            ring(delta_gather(last - 1, dbuf[last - 1]))
        for index in below[1:]:
            delta_below(index + 1)
        update(last, dout_rep)
        for index in below[1:]:
            if gathered[index]:
                ring(delta_gather(index, dbuf[index]))
        for index in below:
            if not gathered[index]:
                e("delta", Opcode.BCAST, dst=d_rep, src=d_own[0][index], len=rows[index],
                  layout=Layout.ROWREP)
                update(index, d_rep)
        for index in below:
            if gathered[index]:
                e("transfer", Opcode.LDV, spad=dbuf[index], memb=d_rep,
                  len=layers[index][0], layout=Layout.ROWREP)
                update(index, d_rep)

    def load_delta(index, k):
        """Sample ``k``'s delta of layer ``index``, replicated by rows, into ``d_rep``
        (the samples' one copy): from the output gradient, the own block of a layer split by
        rows, or the gathered delta in the SPAD (an LDV a GEMVT or GER just after may fold)."""
        o = layers[index][0]
        if index == last or rows[index] < o:
            e("delta", Opcode.BCAST, dst=d_rep,
              src=d_full[k] if index == last else d_own[k][index], len=rows[index],
              layout=Layout.ROWREP)
        else:
            e("transfer", Opcode.LDV, spad=ring_vector(index % 2, k),
              memb=d_rep, len=o, layout=Layout.ROWREP)

    def batched_layer(index):
        """Layer ``index`` of a batch: every sample's delta below (dfa: at the top, every
        hidden layer's, from the sample's output delta), then each sample's update (the first
        layer's input loaded again), its delta below's gather moving under it."""
        i = layers[index][1]
        if index > 0 and not f_addr:
            for k in samples:
                load_delta(index, k)
                delta_below(index, k)
        if f_addr and index == last:
            for k in samples:
                e("delta", Opcode.BCAST, dst=dout_rep, src=d_full[k], len=classes,
                  layout=Layout.ROWREP)
                for below in range(last, 0, -1):
                    delta_below(below, k)
        for k in samples:
            gather = {}
            if index > 0 and rows[index - 1] == i:
                gather = delta_gather(index - 1, ring_vector((index - 1) % 2, k), k)
                ring({core: words[:1] for core, words in gather.items()})
            if index == 0 and k in shared[1:]:
                # Another sample's input took this one's place.
                e("transfer", Opcode.LDV, spad=x_spad + k * ld_x, memb=x_rep[k][0],
                  len=wcols[0], layout=Layout.COLREP)
            load_delta(index, k)
            update_rows(index, d_rep, 0, rows[index], k)
            update_bias(index, k)
            if gather:
                ring({core: words[1:] for core, words in gather.items()})

    # Every other step (sgd, a batch; dfa without load_gathered): layer by layer, from the
    # top.
    for index in [] if any(gathered) else reversed(range(len(layers))):
        if batch > 1:
            batched_layer(index)
            continue
        o, i = layers[index]
        u = dout_rep if f_addr and index == last else d_rep
        if index == last and u == d_rep:
            # The layers below load their gathered delta into d_rep straight from the SPAD.
            e("delta", Opcode.BCAST, dst=d_rep, src=d_full[0], len=o, layout=Layout.ROWREP)
        if index > 0 and (index == last or not f_addr):
            delta_below(index)
        gather = {}
        if index > 0 and rows[index - 1] == i:
            # The next layer down needs all of its delta on every core. The gather's first
            # RING is posted: the update below runs while it moves (it touches no SPAD).
            gather = delta_gather(index - 1, vbuf)
            ring({core: words[:1] for core, words in gather.items()})
        if f_addr and index == last:
            # dfa: every delta below comes from the output's, so the other blocks are formed
            # while the first gather moves (they touch no SPAD).
            for below in range(last - 1, 0, -1):
                delta_below(below)
        # One piece of the update per step of the gather, each under a posted RING (a RING
        # waits for the one before it, so the sequencer needs work between them).
        steps = max((len(words) for words in gather.values()), default=1)
        pieces = [(a, b) for a, b in ring_blocks(rows[index], steps if interleave else 1, nr)
                  if b > a]
        for k, (a, b) in enumerate(pieces):
            if k:
                ring({core: words[k:k + 1] for core, words in gather.items()})
            update_rows(index, u, a, b)
        update_bias(index)
        if gather:
            ring({core: words[len(pieces):] for core, words in gather.items()})
            e("transfer", Opcode.LDV, spad=vbuf, memb=d_rep, len=i, layout=Layout.ROWREP)
        elif index > 0:
            # The layer below is split by rows: its update needs only the own block.
            e("delta", Opcode.BCAST, dst=d_rep, src=d_own[0][index - 1],
              len=rows[index - 1], layout=Layout.ROWREP)
    e("transfer", Opcode.HALT)
    io = {"inputs": x_spad, "targets": t_spad, "logits": logits_spad, "ld_inputs": ld_x,
          "ld_classes": ld_c, "logits_segments": list(logits_segments)}
    return CoreProgram(e.words, e.phases, e.macs, tensors, io, constants, staging=staging,
                       staging_words=staging_words)
