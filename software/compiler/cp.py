"""Continuous propagation (``cp``) on one core: pipeline steps of fused passes.

The schedule is :mod:`caterpillar.golden.pipelined`'s. In pipeline step ``t`` of an epoch of
``N`` groups, layer ``l`` of ``L`` runs the backward and update of group ``t - 2L + 1 + l`` and
the forward of group ``t - l`` in one ``cpass`` over its weights in MemA (``gemv`` alone while
the pipeline fills, ``cpass`` without its forward while it drains). The layers of a step are
independent, so one core runs them one after the other.

What a group leaves between steps lives in slots indexed by the group, ``g mod 2L`` (the
activations ``relu(h_l)`` in the SPAD, which the layer above needs for its forward one step
later and for its backward and ``relud`` ``2(L - l) - 2`` steps later; the inputs ``x``,
written by the host) or ``g mod 2`` (the deltas in MemB, made by one layer's backward for the
next step's backward of the layer below). So a step's program depends on ``t mod 2L`` and on
which layers run their forward and backward: :func:`cp_schedule` gives that key for every step,
and the image the core holds is one program per distinct key of an epoch, each ending in
``halt``, the host starting every step at its key's entry. The first program of the image is a
steady-state step (so the compiled step's cycles and utilization are the pipeline's).

Only the plain update (no momentum, no weight decay: the fused pass updates by one MAC per
weight) runs as ``cp``; MemB holds the working vectors, the SPAD every slot.
"""

from __future__ import annotations

from types import SimpleNamespace

from caterpillar.contract.geometry import cpass_fits, word_cycles
from caterpillar.contract.isa import Layout, Opcode, VecOp, encode, unpack
from caterpillar.golden.collectives import ring_blocks
from caterpillar.software.compiler.loops import fold_loops, unfold_loops
from caterpillar.software.compiler.program import (
    OVERLAY_IMEMS,
    SCALAR_REGS,
    CompileError,
    CoreProgram,
    Emitter,
    Region,
    Tensor,
    alloc_staging,
    cdiv,
    ceil_to,
    check_capacity,
)
from caterpillar.software.compiler.sgd import (
    relu,
    sgd_back_product,
    sgd_bias_update,
    sgd_output_gradient,
)

__all__ = ["cp_schedule", "cp_core_program", "cp_step_key", "cp_weight_accesses", "plain_ger",
           "alloc_pass_buffers", "cp_layer_macs", "cp_steady_period", "priced_period",
           "cp_pipeline_report", "check_cp", "cp_image", "cp_core_caps", "cp_mema_words",
           "cp_least_cores", "cp_pass_cycles", "placement_bound", "kernel_bounds"]


def cp_schedule(layers: int, groups: int) -> list:
    """Every pipeline step of an epoch of ``groups`` groups through ``layers`` layers, as
    ``(t mod 2L, forward mask, backward mask)`` (a mask: which layers run that half)."""
    return [cp_step_key(layers, groups, t) for t in range(groups + 2 * layers - 1)]


def cp_step_key(layers: int, groups: int, t: int) -> tuple:
    """The key of pipeline step ``t`` (:func:`cp_schedule`)."""
    forward = tuple(0 <= t - layer < groups for layer in range(layers))
    backward = tuple(0 <= t - 2 * layers + 1 + layer < groups for layer in range(layers))
    return t % (2 * layers), forward, backward


def cp_weight_accesses(graph, algorithm: str) -> int:
    """MemA accesses to the weights in one steady-state step of ``graph.batch`` samples:
    ``sgd`` (and ``mbcp``, which runs ``sgd``'s kernels once per sample) reads every weight
    in the forward, the backward and the update and writes it once (4 per weight, 3 for the
    first layer, which has no backward); ``cp``'s fused pass reads it once and writes it once
    (2 per weight)."""
    total = 0
    for index, (o, i) in enumerate(graph.layers):
        per_weight = 2 if algorithm == "cp" else (3 if index == 0 else 4)
        total += per_weight * o * i
    return total * graph.batch


def _layout(graph, cfg):
    """Every buffer of the pipeline (the same for every step's program)."""
    nr = cfg.nr
    layers = graph.layers
    last = len(layers) - 1
    slots = 2 * len(layers)
    classes = graph.sizes[-1]
    loc = lambda count: cdiv(count, nr)  # noqa: E731
    mema = Region("MemA", cfg.mema_words)
    memb = Region("MemB", cfg.memb_words)
    spad = Region("the SPAD", cfg.spad_words, align=nr)
    batch = graph.batch
    lay = SimpleNamespace(tensors=[], w=[], b=[], d=[], act=[], x=[],
                          ld_x=ceil_to(graph.sizes[0], nr), ld_c=ceil_to(classes, nr),
                          ld_act=[ceil_to(o, nr) for o, i in layers],
                          ld_d=[loc(o) for o, i in layers])
    for index, (o, i) in enumerate(layers):
        lay.w.append(mema.alloc(f"W{index}", loc(o) * loc(i)))
        lay.tensors.append(Tensor(f"W{index}", "mema", o, i, lay.w[-1], loc(i)))
        lay.b.append(memb.alloc(f"b{index}", loc(o)))
        lay.tensors.append(Tensor(f"b{index}", "diag", 1, o, lay.b[-1]))
    mema.check("use a config with more mema_words or a smaller model")
    widest_in = max(i for o, i in layers)
    widest_out = max(o for o, i in layers)
    back_in = max([i for o, i in layers[1:]], default=1)
    for index, (o, i) in enumerate(layers):
        lay.d.append([memb.alloc(f"d{index} slot {k}", batch * loc(o)) for k in range(2)])
    alloc_pass_buffers(memb, lay, cfg, widest_in, back_in, widest_out, max(graph.sizes[1:]),
                       batch)
    lay.h_rep = memb.alloc("logits (replicated)", loc(classes))
    lay.t_buf = memb.alloc("target", loc(classes))
    lay.scr = memb.alloc("softmax scratch", 3 * loc(classes) + 2)
    memb.check("use a config with more memb_words or a smaller model")
    lay.x = [spad.alloc(f"input slot {k}", batch * lay.ld_x) for k in range(slots)]
    for index in range(last):
        lay.act.append([spad.alloc(f"a{index} slot {k}", batch * lay.ld_act[index])
                        for k in range(slots)])
    lay.t_spad = spad.alloc("targets", batch * lay.ld_c)
    lay.logits = spad.alloc("logits", batch * lay.ld_c)
    lay.staging, lay.staging_words = alloc_staging(spad, lay.tensors, nr)
    spad.check("use a config with more spad_words")
    return lay


def cp_layer_macs(graph, index: int) -> int:
    """Layer ``index``'s MACs in a steady-state step: per weight and sample one forward, one
    update and, above layer 0 (which has no backward), one backward."""
    o, i = graph.layers[index]
    return graph.batch * o * i * (2 if index == 0 else 3)


def cp_pass_cycles(graph, cfg, index: int, cores: int) -> int:
    """Cycles of layer ``index``'s pass over its weights in a steady-state step on a core of a
    segment of ``cores`` (the widest block of input columns, :func:`ring_blocks`): ``cpass``
    for ``cp``; per sample ``gemvt`` (above layer 0), ``ger`` and ``gemv`` for ``mbcp``."""
    o, i = graph.layers[index]
    nr = cfg.nr
    width = max(hi - lo for lo, hi in ring_blocks(i, cores, nr))
    shape = dict(rows=o, cols=width, ldw=cdiv(width, nr))
    if graph.algorithm == "cp":
        ops = [(Opcode.CPASS, dict(prop=int(index > 0), fwd=1))]
    else:
        ops = [(Opcode.GEMVT, {})] * (index > 0) + [(Opcode.GER, {}), (Opcode.GEMV, {})]
    # Addresses do not change a kernel's cycles: encode leaves them 0.
    return graph.batch * sum(word_cycles(encode(op, **shape, **extra), cfg)
                             for op, extra in ops)


def alloc_pass_buffers(memb, lay, cfg, ins, back, outs, vec, batch) -> None:
    """Allocate in ``memb`` (a MemB :class:`Region`) the buffers a layer's pass works in, as
    attributes of ``lay``: its inputs replicated (``ins`` words) for the forward and the
    update, the delta replicated and the forward's output and partial sums (``outs``), the
    backward's output, lane sums and partial sums and, with a ``batch`` above 1 (whose
    samples' ``relud`` runs before their inputs are loaded again), the activations below
    (``back``), and a ``vec``-word scratch vector. One core's layers in turn share one set
    sized for the widest."""
    nr, lanes = cfg.nr, cfg.acc_lanes
    lay.x_rep = memb.alloc("forward input (replicated)", cdiv(ins, nr))
    lay.a_rep = memb.alloc("backward input (replicated)", cdiv(ins, nr))
    lay.d_rep = memb.alloc("delta (replicated)", ceil_to(cdiv(outs, nr), lanes))
    lay.vec = memb.alloc("vector", cdiv(vec, nr))
    if batch > 1:
        lay.a_below = memb.alloc("activations below (diagonal)", cdiv(back, nr))
    lay.y = memb.alloc("W' x", cdiv(outs, nr))
    lay.z = memb.alloc("W^T d", cdiv(back, nr))
    lay.q = memb.alloc("W^T d lane sums", lanes * cdiv(back, nr))
    lay.fpsum = memb.alloc("forward partial sums", cdiv(outs, nr))
    lay.bpsum = memb.alloc("backward partial sums", cdiv(back, nr))


def _input(e, lay, graph, index, group, slots, dst, sample=0):
    """Layer ``index``'s input of ``group`` (its ``sample``) replicated along the columns into
    ``dst`` from its SPAD slot: ``x``, or the activations ``relu(h)`` of the layer below
    (rectified before they were stored, :func:`_biased_output`)."""
    spad = (lay.x[group % slots] + sample * lay.ld_x if index == 0
            else _act_at(lay, index - 1, group % slots, sample))
    e("transfer", Opcode.LDV, spad=spad, memb=dst, len=graph.layers[index][1],
      layout=Layout.COLREP)


def _act_at(lay, layer, slot, sample):
    """SPAD address of ``sample``'s activations of ``layer`` in ``slot``."""
    return lay.act[layer][slot] + sample * lay.ld_act[layer]


def _step(e, lay, graph, cfg, key):
    """One pipeline step with ``key`` (:func:`cp_step_key`), every layer from the top."""
    layer_step = _layer_step if graph.batch == 1 else _mbcp_layer_step
    for index in reversed(range(len(graph.layers))):
        layer_step(e, lay, graph, cfg, key, index)


def _mbcp_layer_step(e, lay, graph, cfg, key, index):
    """Layer ``index``'s share of an ``mbcp`` pipeline step with ``key``: the ``B`` samples'
    backward steps with the current weights (``gemvt``, ``relud``), then their rank-1 updates
    in sample order (``ger``), then the forward steps of the newer group with the updated
    weights (``gemv``): the golden MBCP trainer's order (golden/pipelined.py)."""
    phase, forward, backward = key
    layers, batch = graph.layers, graph.batch
    L, slots = len(layers), 2 * len(layers)
    loc = lambda count: cdiv(count, cfg.nr)  # noqa: E731
    o, i = layers[index]
    g_f, g_b = phase - index, phase - 2 * L + 1 + index   # groups, modulo 2L
    if backward[index]:
        deltas = lay.d[index][g_b % 2]
        for s in range(batch if index > 0 else 0):
            e("transfer", Opcode.LDV, spad=_act_at(lay, index - 1, g_b % slots, s),
              memb=lay.a_below, len=i, layout=Layout.DIAG)
            e("delta", Opcode.BCAST, dst=lay.d_rep, src=deltas + s * loc(o), len=o,
              layout=Layout.ROWREP)
            sgd_back_product(e, z=lay.z, psum=lay.bpsum, cols=i, ldw=loc(i),
                             operands=(lay.w[index], lay.d_rep, o), cfg=cfg)
            e("delta", Opcode.VOP, fn=VecOp.RELUD, layout=Layout.DIAG,
              z=lay.d[index - 1][g_b % 2] + s * loc(i), x=lay.a_below, y=lay.z, len=i,
              alpha=0)
        for s in range(batch):
            _input(e, lay, graph, index, g_b, slots, lay.a_rep, sample=s)
            e("delta", Opcode.BCAST, dst=lay.d_rep, src=deltas + s * loc(o), len=o,
              layout=Layout.ROWREP)
            plain_ger(e, cfg, lay.w[index], lay.d_rep, lay.a_rep, o, i, loc(i))
            sgd_bias_update(e, lay.b[index], deltas + s * loc(o), o, g_buf=None, mom=None,
                            use_wd=False)
    if not forward[index]:
        return
    for s in range(batch):
        _input(e, lay, graph, index, g_f, slots, lay.x_rep, sample=s)
        e.gemv(cfg, "forward", Opcode.GEMV, o * i, y=lay.y, x=lay.x_rep, w=lay.w[index],
               psum=lay.fpsum, rows=o, cols=i, ldw=loc(i))
        _biased_output(e, lay, graph, index, g_f % slots, s, o)


def plain_ger(e, cfg, w, u, v, rows, cols, ldw, refill=0) -> bool:
    """``W += u v`` by one MAC per weight (``u`` carries the step); an LDV of ``u`` just
    before it is folded into it where that, with ``refill`` cycles to load what later
    instructions read of ``u``, is faster (:meth:`Emitter.ger`: ``u`` then does not reach
    MemB; returns whether it was)."""
    return e.ger(cfg, "update", rows * cols, refill=refill, w=w, u=u, v=v, mom=0, rows=rows,
                 cols=cols, ldw=ldw, alpha=SCALAR_REGS["neg_lr"], wd=SCALAR_REGS["wd"],
                 mu=SCALAR_REGS["mu"], use_wd=0, use_mom=0)


def _biased_output(e, lay, graph, index, slot, sample, o):
    """The activations ``relu(y + b)`` of ``sample`` into its SPAD slot; at the output layer
    the logits ``y + b`` and the sample's scaled output gradient (into its delta slot)."""
    e("forward", Opcode.VOP, fn=VecOp.ADD, layout=Layout.DIAG, z=lay.vec, x=lay.y,
      y=lay.b[index], len=o, alpha=0)
    if index < len(graph.layers) - 1:
        relu(e, lay.vec, lay.vec, o)
        e("transfer", Opcode.STV, spad=_act_at(lay, index, slot, sample), memb=lay.vec,
          len=o, layout=Layout.DIAG)
        return
    e("transfer", Opcode.STV, spad=lay.logits + sample * lay.ld_c, memb=lay.vec, len=o,
      layout=Layout.DIAG)
    sgd_output_gradient(e, graph.loss, o, logits=lay.vec,
                        out=lay.d[index][slot % 2] + sample * lay.ld_d[index],
                        t_spad=lay.t_spad + sample * lay.ld_c, t_buf=lay.t_buf,
                        h_rep=lay.h_rep, scr=lay.scr, plain=True)


def _layer_step(e, lay, graph, cfg, key, index):
    """Layer ``index``'s share of the pipeline step with ``key``."""
    phase, forward, backward = key
    layers = graph.layers
    L, slots = len(layers), 2 * len(layers)
    loc = lambda count: cdiv(count, cfg.nr)  # noqa: E731
    o, i = layers[index]
    g_f, g_b = phase - index, phase - 2 * L + 1 + index   # groups, modulo 2L
    fwd, bwd = forward[index], backward[index]
    if not (fwd or bwd):
        return
    if bwd:
        # Its input again: relu(h) of the layer below, also relud's h.
        _input(e, lay, graph, index, g_b, slots, lay.a_rep)
        e("delta", Opcode.BCAST, dst=lay.d_rep, src=lay.d[index][g_b % 2], len=o,
          layout=Layout.ROWREP)
    if fwd:
        _input(e, lay, graph, index, g_f, slots, lay.x_rep)
    if bwd:
        prop = int(index > 0)
        e("fused", Opcode.CPASS, o * i * (1 + prop + fwd), w=lay.w[index], d=lay.d_rep,
          a=lay.a_rep, x=lay.x_rep, y=lay.y, z=lay.z, q=lay.q, fpsum=lay.fpsum,
          bpsum=lay.bpsum, rows=o, cols=i, ldw=loc(i), prop=prop, fwd=int(fwd))
        sgd_bias_update(e, lay.b[index], lay.d[index][g_b % 2], o, g_buf=None, mom=None,
                        use_wd=False)
        if prop:
            e("delta", Opcode.VOP, fn=VecOp.RELUD, layout=Layout.DIAG,
              z=lay.d[index - 1][g_b % 2], x=lay.a_rep, y=lay.z, len=i, alpha=0)
    else:
        e.gemv(cfg, "forward", Opcode.GEMV, o * i, y=lay.y, x=lay.x_rep, w=lay.w[index],
               psum=lay.fpsum, rows=o, cols=i, ldw=loc(i))
    if fwd:
        _biased_output(e, lay, graph, index, g_f % slots, 0, o)


def cp_core_program(graph, cfg, groups: int | None = None) -> CoreProgram:
    """The image of ``cp`` pipeline steps for epochs of ``groups`` groups (default: long
    enough that every phase of the steady state appears), one program per distinct key.

    ``io["entries"]`` lists ``[t mod 2L, forward mask, backward mask, pc]`` of each program
    (masks as bit fields, layer ``l`` in bit ``l``); ``io["groups"]`` is ``groups``;
    ``io["overlays"]`` the image's overlays (:func:`cp_image`), or ``None``.
    """
    check_cp(graph, cfg)
    lay = _layout(graph, cfg)
    e, entries, groups, overlays = cp_image(graph, cfg, groups,
                                            lambda e, key: _step(e, lay, graph, cfg, key))
    io = {"inputs": lay.x, "targets": lay.t_spad, "logits": lay.logits, "entries": entries,
          "groups": groups, "ld_inputs": lay.ld_x, "ld_classes": lay.ld_c,
          "overlays": overlays}
    return CoreProgram(e.words, e.phases, e.macs, lay.tensors, io, staging=lay.staging,
                       staging_words=lay.staging_words)


def check_cp(graph, cfg) -> None:
    """Raise :class:`CompileError` unless ``cp`` can train ``graph`` on ``cfg``."""
    opt = graph.optimizer
    if opt.momentum > 0 or opt.weight_decay > 0:
        how = ("in its fused pass" if graph.algorithm == "cp"
               else "per sample (one rank-1 ger each)")
        raise CompileError(f"{graph.algorithm} updates every weight by one MAC {how}, so it "
                           "takes plain SGD: use --momentum 0 --weight-decay 0, or "
                           "--algorithm sgd")
    if graph.algorithm == "cp" and graph.batch != 1:
        raise CompileError(f"cp trains one sample per pipeline step, not a batch of "
                           f"{graph.batch}; use --batch 1, or --algorithm mbcp")
    if graph.algorithm == "cp" and not cfg.cpass:
        raise CompileError(f"config {cfg.name} has no fused pass (cpass=false), which cp "
                           "runs on; use --algorithm mbcp --batch 2 (a rank-1 ger per "
                           "sample), or a config with cpass")
    if graph.algorithm == "cp" and not cpass_fits(cfg):
        raise CompileError(f"config {cfg.name}'s accumulator file cannot hold the fused "
                           f"pass's slots (2 x {cfg.acc_lanes} + {cfg.chain_lanes}); use a "
                           "preset")


def cp_image(graph, cfg, groups, emit_step):
    """One program per distinct key of an epoch of ``groups`` groups, a steady-state step
    first, each ending in ``halt``: ``(emitter, entries, groups, overlays)``;
    ``emit_step(e, key)`` emits a step. Keys whose programs are the same words on this core
    (a core sees only its own layer's halves and the relays that pass it) share one copy.

    An image longer than IMEM is run in overlays (:func:`cp_overlays`), ``None`` otherwise:
    each overlay's programs fit IMEM together, and the host loads the next one between two
    steps of an epoch, when a step's program is not in IMEM. If the steady state's programs
    alone are longer than IMEM, every program's repeated blocks run as ``LOOP`` s first
    (:func:`fold_step`)."""
    L = len(graph.layers)
    if groups is None:
        groups = 4 * L - 1
    schedule = cp_schedule(L, groups)
    keys = list(dict.fromkeys(schedule))
    steady = [k for k in keys if all(k[1]) and all(k[2])]
    keys = steady[:1] + [k for k in keys if k not in steady[:1]]
    steps, index = [], {}
    for key in keys:
        step = Emitter()
        emit_step(step, key)
        step("transfer", Opcode.HALT)
        index[key] = index.setdefault(tuple(step.words), len(steps))
        if index[key] == len(steps):
            steps.append(step)
    # A steady state past IMEM runs its repeated (per-sample) bodies as LOOPs, two cycles
    # each, and so do the other programs; else overlays, which cost a step nothing, suffice.
    steady_words = sum(len(steps[i].words) for i in {index[k] for k in steady})
    if steady_words > cfg.imem_words:
        steps = [fold_step(step) for step in steps]
    e, starts = Emitter(), []
    for step in steps:
        starts.append(len(e.words))
        e.words += step.words
        e.phases += step.phases
        e.macs += step.macs
    copies = {tuple(step.words): pc for step, pc in zip(steps, starts, strict=True)}
    pcs = {key: starts[index[key]] for key in keys}
    entries = [[key[0], _bits(key[1]), _bits(key[2]), pcs[key]] for key in keys]
    overlays = None
    # An image of more than OVERLAY_IMEMS IMEMs is not split: it does not compile.
    if cfg.imem_words < len(e.words) <= OVERLAY_IMEMS * cfg.imem_words:
        lengths = {pc: len(words) for words, pc in copies.items()}
        overlays = cp_overlays([pcs[k] for k in schedule], set(pcs[k] for k in steady),
                               lengths, cfg.imem_words)
    need = max(sum(lengths[pc] for pc in o) for o in overlays) if overlays else len(e.words)
    check_capacity("IMEM", need, cfg.imem_words,
                   lambda: f"{graph.algorithm}'s {len(copies)} distinct step programs need "
                           f"{len(e.words)} instructions"
                           + (f", in overlays of up to {need}," if overlays else "")
                           + f" but IMEM holds {cfg.imem_words}; use a config with more "
                           "imem_words or fewer layers"
                           + (", or a smaller batch" if graph.batch > 1 else ""),
                   survivable=True)
    return e, entries, groups, overlays


def fold_step(step: Emitter) -> Emitter:
    """``step``'s program with its repeated blocks folded into ``LOOP`` s
    (:func:`~.loops.fold_loops`): each body instruction keeps its phase and its MACs per run,
    a ``LOOP`` is a ``transfer`` of none. ``step`` itself if a body's repetitions differ in
    phase or MACs (the reports count the body's per repetition)."""
    folded, out = fold_loops(step.words), Emitter()
    at = i = 0          # where in the folded program, where in the step's
    while at < len(folded):
        op, values = unpack(folded[at])
        if op != Opcode.LOOP:
            out.words.append(folded[at])
            out.phases.append(step.phases[i])
            out.macs.append(step.macs[i])
            at, i = at + 1, i + 1
            continue
        body, count = values["body"], values["count"]
        tags = list(zip(step.phases[i:i + body * count], step.macs[i:i + body * count],
                        strict=True))
        if tags != tags[:body] * count:
            return step
        out.words += folded[at:at + 1 + body]
        out.phases += ["transfer", *step.phases[i:i + body]]
        out.macs += [0, *step.macs[i:i + body]]
        at, i = at + 1 + body, i + body * count
    return out


def cp_overlays(sequence, steady, lengths, capacity) -> list:
    """The overlays of an image too long for IMEM: lists of its programs (their first
    instructions) that the host loads in turn, each into IMEM from instruction 0.
    ``sequence``: the program of every step of an epoch, in order; ``steady``: the
    steady-state programs, which share one overlay (the steady state then loads none); the
    others go, in the order the epoch first runs them, into overlays of as many as fit
    ``capacity`` instructions (``lengths``: each program's), the steady-state one first, and
    after the steady state a new overlay starts, which takes again a program the fill had:
    fill and drain load one overlay after another, and an epoch loads each overlay once
    (:meth:`~.program.CoreProgram.locate` looks from the loaded overlay on)."""
    overlays = [[pc for pc in dict.fromkeys(sequence) if pc in steady]] if steady else []
    size = lambda overlay: sum(lengths[pc] for pc in overlay)  # noqa: E731
    current, seen = None, set()
    for pc in sequence:
        if pc in steady:
            current, seen = None, set()     # after the steady state a new overlay begins
            continue
        if pc in seen:
            continue
        seen.add(pc)
        if current is None or size(current) + lengths[pc] > capacity:
            current = []
            overlays.append(current)
        current.append(pc)
    return overlays


def _bits(mask) -> int:
    return sum(1 << k for k, on in enumerate(mask) if on)


def cp_pipeline_report(compiled) -> dict:
    """The pipeline of a compiled ``cp`` step: its placement, every layer's share of a
    steady-state step, every program of the image (key, predicted cycles of the slowest
    core, model MACs of all), an epoch's steps and cycles, the fill and drain share of them,
    the MemA weight accesses of a steady-state step against ``sgd``'s and, on a ring, the
    whole-core :func:`placement_bound` of the utilization."""
    graph, cfg = compiled.graph, compiled.config
    layers, groups = len(graph.layers), compiled.cores[0].io["groups"]
    pcs = {}
    for k, core in compiled.cores.items():
        for phase, fwd, bwd, pc in core.io["entries"]:
            pcs.setdefault((phase, fwd, bwd), {})[k] = pc
    programs = {}
    for key, where in pcs.items():
        cycles, report = compiled.step_report([where.get(k, 0) for k in range(cfg.cores)])
        programs[key] = {"t_mod_2L": key[0], "forward_layers": _layers(key[1], layers),
                         "backward_layers": _layers(key[2], layers), "pc": where[0],
                         "cycles": max(cycles),
                         "macs": sum(v["macs"] for v in report.values())}
    steps = [programs[(p, _bits(f), _bits(b))] for p, f, b in cp_schedule(layers, groups)]
    epoch = sum(s["cycles"] for s in steps)
    steady = sum(s["cycles"] for s in steps
                 if len(s["forward_layers"]) == len(s["backward_layers"]) == layers)
    per_layer = _per_layer(compiled)
    bound = None
    if cfg.cores > 1:
        caps, last = cp_core_caps(graph, cfg), len(graph.layers) - 1
        bound = placement_bound(
            [x["macs"] for x in per_layer], [len(seg) for seg in compiled.segments], caps,
            compiled.segments,
            least=[cp_least_cores(graph, cfg, [k], caps[k]) for k in range(last + 1)],
            least_shared=cp_least_cores(graph, cfg, [last - 1, last], caps[last - 1])
            if last else 1)
    return {"placement": {f"layer {k}": list(seg) for k, seg in enumerate(compiled.segments)},
            "layers": per_layer, "placement_bound": bound,
            "overlays": _overlay_report(compiled, layers, groups),
            "loops": _loop_report(compiled),
            "batch": graph.batch, "groups_per_epoch": groups,
            "steps_per_epoch": len(steps),
            "programs": list(programs.values()), "epoch_cycles": epoch,
            "fill_drain_cycles": epoch - steady,
            "fill_drain_share": (epoch - steady) / epoch if epoch else 0.0,
            "weight_accesses": {graph.algorithm: cp_weight_accesses(graph, graph.algorithm),
                                "sgd": cp_weight_accesses(graph, "sgd")}}


def _overlay_report(compiled, layers: int, groups: int) -> dict | None:
    """How an image in overlays (:func:`cp_image`) runs, on the core with the most: its
    ``image`` and largest overlay (``instructions``), how many ``overlays`` and the loads an
    epoch takes once the first is over (the host's IMEM writes, ``loads`` and ``words``);
    ``None`` when every core's image fits IMEM."""
    cores = [c for c in compiled.cores.values() if c.io.get("overlays")]
    if not cores:
        return None
    core = max(cores, key=lambda c: (len(c.io["overlays"]), len(c.program)))
    pcs = {(phase, fwd, bwd): pc for phase, fwd, bwd, pc in core.io["entries"]}
    loaded, loads, words = 0, 0, 0
    for epoch in range(2):
        for phase, fwd, bwd in cp_schedule(layers, groups):
            overlay, _ = core.locate(pcs[(phase, _bits(fwd), _bits(bwd))], loaded)
            if overlay != loaded and epoch:
                loads, words = loads + 1, words + len(core.overlay_words(overlay))
            loaded = overlay
    return {"image": len(core.program), "instructions": core.imem_need,
            "overlays": len(core.io["overlays"]), "loads": loads, "words": words}


def _loop_report(compiled) -> dict | None:
    """The ``LOOP`` s of an image whose steady state is longer than IMEM (:func:`cp_image`),
    on the core with the most: how many (``loops``), the image's instructions and what they
    would be unfolded (``image``, ``unfolded``); ``None`` when no core has one."""
    counts = {k: sum(w & 0xFF == Opcode.LOOP.value for w in c.program)
              for k, c in compiled.cores.items()}
    k = max(counts, key=lambda k: (counts[k], k))
    if not counts[k]:
        return None
    program = compiled.cores[k].program
    return {"core": k, "loops": counts[k], "image": len(program),
            "unfolded": len(unfold_loops(program))}


def cp_core_caps(graph, cfg) -> list:
    """The most cores each layer can use on a ring: every core keeps ``nr`` of its inputs and
    of its outputs."""
    return [min(cdiv(o, cfg.nr), cdiv(i, cfg.nr)) for o, i in graph.layers]


def cp_mema_words(graph, cfg, layers, cores: int) -> int:
    """MemA words per PE that the weight columns of ``layers`` (indices) take on a segment of
    ``cores`` cores: each layer's widest block of input columns (``ring_blocks``)."""
    nr = cfg.nr
    return sum(cdiv(graph.layers[k][0], nr)
               * cdiv(max(hi - lo for lo, hi in ring_blocks(graph.layers[k][1], cores, nr)), nr)
               for k in layers)


def cp_least_cores(graph, cfg, layers, most: int):
    """The fewest cores (at most ``most``) whose MemA holds the weight columns of ``layers``
    together, or ``None``."""
    return next((c for c in range(1, most + 1)
                 if cp_mema_words(graph, cfg, layers, c) <= cfg.mema_words), None)


def placement_bound(macs, cores, caps, segments=None, least=None, least_shared=1) -> dict:
    """The utilization a pipeline of segments cannot exceed when every segment owns whole
    cores: a steady-state step lasts at least the longest segment's MACs per core at full
    rate, ``max_s M_s / c_s``, so the step uses at most ``sum M / (C max_s M_s / c_s)`` of
    the ``C`` cores of the segments. ``macs``: each layer's MACs per step; ``cores``: its
    cores in the placement; ``segments``: each layer's segment (layers on equal ones share
    it; default: every layer its own). Returns the bound of that placement (``placement``),
    of the best placement that gives every layer its own cores within ``caps`` (``best``,
    and its ``best_cores``: from ``least`` cores each, the fewest whose MemA holds its
    weights, default 1, a core at a time to the layer with the most MACs per core, which
    minimises the largest) and of the best with the last layer on the cores of the layer
    below (``best_shared``, ``best_shared_cores``, per segment, the shared one from
    ``least_shared`` cores; ``None`` for one layer). A best that needs more cores than there
    are, or a ``least`` of ``None`` (MemA holds its layers on no segment), is ``None``."""
    segments = segments or [(k,) for k in range(len(macs))]
    stages = list(dict.fromkeys(segments))
    stage_macs = [sum(m for m, seg in zip(macs, segments) if seg == s) for s in stages]
    stage_cores = [cores[segments.index(s)] for s in stages]
    total, count = sum(macs), sum(stage_cores)

    def bound(work, split):
        return total / (count * max(m / c for m, c in zip(work, split)))

    def best(work, limits, start):
        if None in start or sum(start) > count:
            return None, None
        split = list(start)
        while sum(split) < count:
            slowest = max(range(len(work)), key=lambda k: work[k] / split[k])
            if split[slowest] >= limits[slowest]:
                break
            split[slowest] += 1
        return bound(work, split), split

    least = least or [1] * len(macs)
    own, own_cores = best(macs, caps, least)
    out = {"placement": bound(stage_macs, stage_cores), "best": own, "best_cores": own_cores,
           "best_shared": None, "best_shared_cores": None}
    if len(macs) > 1:
        shared, shared_cores = best(macs[:-2] + [macs[-2] + macs[-1]], caps[:-1],
                                    least[:-2] + [least_shared])
        out.update(best_shared=shared, best_shared_cores=shared_cores)
    return out


def cp_steady_period(compiled) -> dict:
    """A period of ``cp``'s steady state on the compiled image: its ``2 L`` pipeline steps
    (one per phase ``t mod 2L``, every layer forward and backward, one sample entering each),
    summed: ``steps``, ``cycles`` (of the slowest core of each step), every core's ``events``
    (the ring timing model's, :meth:`Compiled.predicted_events`), the model ``macs`` and
    ``kernel_cycles`` (:meth:`Compiled.kernel_cycles` of each step)."""
    layers = len(compiled.graph.layers)
    full = (1 << layers) - 1
    entries = [(k, ph, pc) for k, core in compiled.cores.items()
               for ph, fwd, bwd, pc in core.io["entries"] if fwd == bwd == full]
    phases = sorted({ph for _, ph, _ in entries})
    cycles, macs, events = 0, 0, None
    kernels = {"kernels": 0, "mac_steps": 0}
    for phase in phases:
        start = [0] * compiled.config.cores
        for k, ph, pc in entries:
            if ph == phase:
                start[k] = pc
        step_cycles, report = compiled.step_report(start)
        cycles += max(step_cycles)
        for key, value in compiled.kernel_cycles(start).items():
            kernels[key] += value
        macs += sum(v["macs"] for v in report.values())
        step_events = compiled.predicted_events(start)
        events = step_events if events is None else [
            {name: total[name] + e[name] for name in total}
            for total, e in zip(events, step_events)]
    return {"steps": len(phases), "cycles": cycles, "events": events, "macs": macs,
            "kernel_cycles": kernels}


def priced_period(compiled) -> dict:
    """What the energy and throughput reports price: one step, or for ``cp`` and ``mbcp`` a
    period of its steady state (:func:`cp_steady_period`; one program of the image may fill or
    drain the pipeline). Returns its ``cycles``, every core's ``events`` (with the host's
    words, ``host_words``), the model ``macs``, the ``samples`` it trains, its
    ``kernel_cycles`` (:meth:`Compiled.kernel_cycles`) and ``totals``, the events summed over
    the cores."""
    if compiled.graph.pipelined:
        period = cp_steady_period(compiled)
        cycles, events, macs, steps, kernels = (period["cycles"], period["events"],
                                                period["macs"], period["steps"],
                                                period["kernel_cycles"])
    else:
        _, phases = compiled.step_report()
        cycles, events = compiled.step_cycles, compiled.predicted_events()
        macs, steps, kernels = sum(v["macs"] for v in phases.values()), 1, \
            compiled.kernel_cycles()
    for core_events, words in zip(events, compiled.host_words(), strict=True):
        core_events["host_words"] = steps * words
    samples = steps * compiled.graph.batch
    return {"cycles": cycles, "events": events, "macs": macs, "samples": samples,
            "kernel_cycles": kernels,
            "totals": {name: sum(e[name] for e in events) for name in events[0]}}


def kernel_bounds(compiled, period=None) -> dict:
    """The utilization the step of :func:`priced_period` (``period``, computed if ``None``)
    could reach if it were only its MAC kernels (:meth:`Compiled.kernel_cycles`: ``kernels``,
    each kernel's whole cycles on the slowest core) or only their MAC steps (``mac_steps``:
    the padded shapes, every PE one MAC per cycle): what the shapes and kernels allow once
    every transfer, collective and wait is hidden, so a target above ``mac_steps`` needs other
    kernels or another placement."""
    cfg = compiled.config
    period = period or priced_period(compiled)
    pes = cfg.nr * cfg.nr * len(compiled.working_cores)
    return {key: period["macs"] / (pes * value) if value else 0.0
            for key, value in period["kernel_cycles"].items()}


def _per_layer(compiled) -> list:
    """Each layer's share of a steady-state step: on one core its instructions (the layers
    run one after the other), on a ring its segment's slowest core without the ring time
    (layers sharing a segment share those cycles: each has its own MACs, ``shared_with``
    the others)."""
    graph, cfg = compiled.graph, compiled.config
    layers, pes = len(graph.layers), cfg.nr * cfg.nr
    out = []
    for index, (o, i) in enumerate(graph.layers):
        seg = compiled.segments[index]
        if cfg.cores == 1:
            e = Emitter()
            _layer_step(e, _layout(graph, cfg), graph, cfg,
                        (0, (True,) * layers, (True,) * layers), index)
            cycles, macs = sum(word_cycles(w, cfg) for w in e.words), sum(e.macs)
        else:
            reports = [compiled.cores[k].local_phase_report(cfg) for k in seg]
            cycles = max(sum(v["cycles"] for p, v in r.items() if p != "ring")
                         for r in reports)
            macs = cp_layer_macs(graph, index)
        shared = [k for k, other in enumerate(compiled.segments)
                  if other == seg and k != index] if cfg.cores > 1 else []
        out.append({"layer": index, "rows": o, "cols": i, "cores": len(seg), "cycles": cycles,
                    "macs": macs, "utilization": macs / (len(seg) * pes * cycles),
                    "shared_with": shared})
    return out


def _layers(mask: int, layers: int) -> list:
    return [k for k in range(layers) if mask >> k & 1]
