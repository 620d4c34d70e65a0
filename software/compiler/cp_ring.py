"""Continuous propagation on the ring: a layer per segment, one fused pass per core and layer.

The schedule and the slots are :mod:`.cp`'s. Layer ``l`` lives on segment ``S_l`` (segments
equal or disjoint, cores in ring order; any layers may share one); position ``p`` of
``S_l`` holds the input columns ``I_p = ring_blocks(in, C, nr)[p]`` of ``W_l`` (as ``sgd``
splits a layer over a ring) and the bias entries ``R_p = ring_blocks(out, C, nr)[p]``. In a
pipeline step every core of ``S_l``

* runs ``cpass`` (``gemv`` while filling) over ``W_l[:, I_p]``: the backward's ``z`` for its
  columns, the update, and the forward's partial sum over its columns (every output);
* forward: the partial sums are reduce-scattered round ``S_l`` (core ``p`` gets the sums of
  ``R_p``, in the order of :func:`~caterpillar.golden.collectives.reduce_scatter`), biased,
  rectified below the output layer (the SPAD slots hold activations ``a_l = relu(h_l)``) and,
  for the output layer, all-gathered, so that each of its cores forms the whole output
  gradient;
* backward: ``relud`` of its block of ``z`` with its block of ``a_{l-1}`` (``a > 0`` exactly
  where ``h > 0``) gives its block of ``d_{l-1}``;
* then the relays over the chain links, the same list on every core (the output layer's loss,
  which touches only MemB, after its cores post their first ``ring_commands`` relays), layer
  by layer (the lower first): ``a_l`` from ``S_l`` to the cores of ``S_{l+1}`` (into their
  slot of that group), ``d_{l-1}`` from ``S_l`` to those of ``S_{l-1}`` (round the whole
  ring). Each is gathered from its segment's blocks in one pass along the chain
  (:func:`~.collectives.gather_relay`: the first core sends its block, the next forwards it
  and sends its own, ...), or, for a segment of two cores or one whose blocks are out of
  chain order, all-gathered round the segment and relayed from one core.

Layers sharing a segment interleave on each core (``cp``: every layer's inputs loaded first,
into MemB buffers of its own, then the layers from the highest down, each pass followed by the
rest of the forward of the layer above it and its own sums, so the collectives a layer posts
after its pass run beside the pass of the layer below; ``mbcp``: one after the other, lowest
first), sharing the other MemB pass buffers. Nothing moves up between neighbours on one
segment: core ``p``'s summed block ``R_p`` of the lower layer's output is the upper layer's
input block ``I_p`` (the same width split over the same cores). The upper layer's delta
blocks are all-gathered round the segment in its step instead of relayed. Layers that are not
neighbours relay to their neighbours on other segments as any layer does. An output layer
narrower than its segment leaves cores with an empty ``R_p``: no bias block.

So a layer's cores keep the activations of the layer below (slots ``g mod 2L`` in the SPAD,
the whole vector or, where the SPAD is short, only the core's input block: ``_layouts``) and
receive the deltas for their next backward (the same addresses on every core). The golden
CP trainer with each layer's core count computes the same bits
(:class:`~caterpillar.golden.pipelined.PipelinedTrainer` over a
:class:`~caterpillar.golden.trainer.GoldenTrainer` with ``cores``).
"""

from __future__ import annotations

from types import SimpleNamespace

from caterpillar.contract.geometry import word_cycles
from caterpillar.contract.isa import Layout, Opcode, VecOp, encode
from caterpillar.golden.collectives import ring_blocks
from caterpillar.software.compiler import collectives as coll
from caterpillar.software.compiler.cp import (
    alloc_pass_buffers,
    check_cp,
    cp_core_caps,
    cp_image,
    cp_layer_macs,
    cp_least_cores,
    cp_pass_cycles,
    plain_ger,
)
from caterpillar.software.compiler.program import (
    CompileError,
    CoreProgram,
    Emitter,
    Region,
    Tensor,
    alloc_staging,
    cdiv,
    ceil_to,
    ring_emit,
    storing_y,
)
from caterpillar.software.compiler.sgd import (
    relu,
    sgd_back_product,
    sgd_bias_update,
    sgd_load_target,
    sgd_output_gradient,
)

__all__ = ["cp_ring_core_program", "cp_placement", "cp_grouped_placements", "cp_bias_blocks"]


def cp_placement(graph, cfg, by="macs", share=False) -> list:
    """The segments of ``cp`` on ``cfg.cores`` cores: consecutive cores in ring order, layer 0
    first, each layer a share of the cores proportional to its weights (``by="weights"``) or to
    its MACs per sample (``by="macs"``: three per weight, two in layer 0, which has no
    backward), largest remainders first, or (``by="cycles"``) one core at a time to the
    segment whose layers' passes (:func:`~.cp.cp_pass_cycles` over each core's widest block
    of columns) take longest; at least one core; never more than give every core ``nr`` of
    its inputs and of its outputs; cores left over stay idle and relay. With
    ``share`` the output layer runs on the segment of the layer below (one stage with the
    sum of their shares): a narrow output layer then leaves no core to itself.
    :func:`~.training.compile_training` compiles each and keeps the fastest step."""
    layers, cores = graph.layers, cfg.cores
    stages = [[k] for k in range(len(layers))]
    if share and len(layers) > 1:
        stages[-2:] = [stages[-2] + stages[-1]]
    if cores < len(stages):
        if share:
            raise CompileError(f"cp on a ring: {len(stages)} segments need at least "
                               f"{len(stages)} cores, not {cores}; use --cores {len(stages)} "
                               "or more, or --cores 1")
        least = max(1, len(layers) - 1)
        raise CompileError(f"cp puts every layer on its own cores: {len(layers)} layers need "
                           f"at least {len(layers)} cores ({least} with the output layer on "
                           f"the cores of the layer below), not {cores}; use --cores {least} "
                           "or more, or --cores 1")
    # An output layer sharing a segment may leave cores without outputs, not without inputs.
    caps = cp_core_caps(graph, cfg)
    caps = [min(caps[k] if k < len(layers) - 1 or len(stage) == 1
                else cdiv(layers[k][1], cfg.nr) for k in stage) for stage in stages]
    if by == "cycles":
        counts = _counts_by_cycles(graph, cfg, stages, caps, cores)
    else:
        counts = _counts_by_share(graph, stages, caps, cores, by)
    segments, first = [], 0
    for stage, count in zip(stages, counts):
        segments += [tuple(range(first, first + count))] * len(stage)
        first += count
    return segments


def _counts_by_share(graph, stages, caps, cores, by) -> list:
    """Cores per stage proportional to its weights or MACs, largest remainders first."""
    layers = graph.layers
    share_of = {"weights": lambda k: layers[k][0] * layers[k][1],
                "macs": lambda k: cp_layer_macs(graph, k)}[by]
    weights = [sum(share_of(k) for k in stage) for stage in stages]
    spare = cores - len(stages)
    exact = [spare * w / sum(weights) for w in weights]
    counts = [min(cap, 1 + int(x)) for cap, x in zip(caps, exact)]
    by_remainder = sorted(range(len(stages)), key=lambda k: (int(exact[k]) - exact[k],
                                                             -weights[k]))
    while sum(counts) < cores:
        room = [k for k in by_remainder if counts[k] < caps[k]]
        if not room:
            break
        counts[room[0]] += 1
        by_remainder = by_remainder[1:] + by_remainder[:1]
    return counts


def _counts_by_cycles(graph, cfg, stages, caps, cores) -> list:
    """Cores per stage, one at a time to the stage whose passes take longest on its cores:
    whole windows of columns, not MACs, set a pass's cycles, so a share of MACs can leave one
    segment a window more per row group than a neighbour with a core to spare. Giving the
    slowest stage a core is the only move that can shorten the step's longest pass, so the
    counts minimise it (ties: the lower stage)."""
    def cycles(stage, count):
        return sum(cp_pass_cycles(graph, cfg, k, count) for k in stage)

    counts = [1] * len(stages)
    while sum(counts) < cores:
        room = [j for j in range(len(stages)) if counts[j] < caps[j]]
        if not room:
            break
        counts[max(room, key=lambda j: (cycles(stages[j], counts[j]), -j))] += 1
    return counts


def _set_partitions(items):
    """Every partition of ``items`` into non-empty groups, each group in order."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for partition in _set_partitions(rest):
        yield [[first]] + partition
        for k in range(len(partition)):
            yield partition[:k] + [[first] + partition[k]] + partition[k + 1:]


#: Deeper networks are not searched for placements of layers sharing segments at will: the
#: partitions of their layers grow too many (4,140 for 8 layers).
GROUPED_MAX_LAYERS = 8


def cp_grouped_placements(graph, cfg, count=3) -> list:
    """Placements in which any layers may share a segment, not only neighbours: the
    ``count`` with the highest whole-core bound of all partitions of the layers into groups.
    A group's segment is consecutive cores in ring order (the groups in the order of their
    lowest layer); it gets the fewest cores whose MemA holds its layers' weight columns,
    then cores go one at a time to the group with the most MACs per core (within each
    layer's :func:`~.cp.cp_core_caps`; an output layer sharing a segment need not give every
    core outputs). ``[]`` for more than :data:`GROUPED_MAX_LAYERS` layers."""
    layers, nr, cores = graph.layers, cfg.nr, cfg.cores
    if len(layers) > GROUPED_MAX_LAYERS:
        return []
    last = len(layers) - 1
    macs = [cp_layer_macs(graph, k) for k in range(len(layers))]
    caps = cp_core_caps(graph, cfg)

    ranked = []
    for groups in _set_partitions(list(range(len(layers)))):
        groups.sort(key=min)
        limit = [min(cdiv(layers[k][1], nr) if k == last and len(g) > 1 else caps[k]
                     for k in g) for g in groups]
        need = [cp_least_cores(graph, cfg, g, cap) for g, cap in zip(groups, limit)]
        if None in need or sum(need) > cores:
            continue
        work = [sum(macs[k] for k in g) for g in groups]
        split = list(need)
        while sum(split) < cores:
            room = [j for j in range(len(groups)) if split[j] < limit[j]]
            if not room:
                break
            split[max(room, key=lambda j: work[j] / split[j])] += 1
        bound = sum(macs) / (cores * max(w / c for w, c in zip(work, split)))
        segments, first = [None] * len(layers), 0
        for g, c in zip(groups, split):
            for k in g:
                segments[k] = tuple(range(first, first + c))
            first += c
        ranked.append((bound, segments))
    ranked.sort(key=lambda t: -t[0])
    return [segments for _, segments in ranked[:count]]


def cp_bias_blocks(graph, cfg, segments) -> list:
    """Per layer, the bias entries each position of its segment holds (``R_p``)."""
    return [ring_blocks(o, len(seg), cfg.nr) for (o, i), seg in zip(graph.layers, segments)]


def _layouts(graph, cfg, core, segments, blocks) -> list:
    """The core's buffers, one namespace per layer it holds (layers may share a segment),
    lowest layer first; the relayed deltas at the same address on every core, the SPAD's
    other buffers on the cores of a segment (``spad_plan``), MemA and MemB shared by the
    core's layers."""
    nr = cfg.nr
    layers = graph.layers
    L, slots = len(layers), 2 * len(layers)
    loc = lambda count: cdiv(count, nr)  # noqa: E731
    batch, classes = graph.batch, graph.sizes[-1]
    # Leading dimensions of the SPAD slots: a sample's input block, logits, each layer's output.
    ld_x = ceil_to(max(b - a for a, b in blocks[0]), nr)
    ld_c, ld_act = ceil_to(classes, nr), [ceil_to(o_k, nr) for o_k, i_k in layers]
    rblocks = cp_bias_blocks(graph, cfg, segments)
    mema = Region("MemA", cfg.mema_words)
    memb = Region("MemB", cfg.memb_words)
    lays, tensors = [], []
    held = [k for k, seg in enumerate(segments) if core in seg]
    widths = [hi - lo for lo, hi in (blocks[k][segments[k].index(core)] for k in held)]
    outs = [layers[k][0] for k in held]
    passes = None
    for index in held:
        position = segments[index].index(core)
        o, i = layers[index]
        lo, hi = blocks[index][position]
        r_lo, r_hi = rblocks[index][position]
        width, owned = hi - lo, r_hi - r_lo
        lay = SimpleNamespace(index=index, position=position, lo=lo, width=width, r_lo=r_lo,
                              owned=owned, tensors=tensors, blocks=blocks, rblocks=rblocks,
                              ld_x=ld_x, ld_c=ld_c, ld_act=ld_act)
        lay.w = mema.alloc(f"W{index} columns", loc(o) * loc(width))
        tensors.append(Tensor(f"W{index}", "mema", o, width, lay.w, loc(width)))
        lay.b = memb.alloc(f"b{index} block", loc(owned))
        tensors.append(Tensor(f"b{index}", "diag", 1, owned, lay.b))
        # The output layer's output gradients formed in MemB (its backward's input next
        # step); a hidden layer's deltas arrive relayed in the SPAD.
        if index == L - 1:
            lay.d = [memb.alloc(f"d{index} slot {k}", batch * loc(o)) for k in range(2)]
        # Nothing in these buffers outlives a layer's part of a step but, in a cp step, its
        # inputs: one set, sized for the widest, and inputs of their own for the others.
        if passes is None:
            passes = SimpleNamespace()
            alloc_pass_buffers(memb, passes, cfg, max(widths), max(widths), max(outs),
                               max(outs + widths), batch)
        lay.__dict__.update(passes.__dict__)
        if batch == 1 and lays:
            # A cp step loads every layer's inputs before the first pass (_interleave).
            lay.x_rep = memb.alloc(f"layer {index} forward input (replicated)", loc(width))
            lay.a_rep = memb.alloc(f"layer {index} backward input (replicated)", loc(width))
            lay.d_rep = memb.alloc(f"layer {index} delta (replicated)",
                                   ceil_to(loc(o), cfg.acc_lanes))
        if index == L - 1:
            # Every sample's logits and target apart: its loss runs after the step's relays
            # are under way (cp_ring_core_program).
            lay.logit_bufs = [memb.alloc(f"logits {s}", loc(classes)) for s in range(batch)]
            lay.t_buf = [memb.alloc(f"target {s}", loc(classes)) for s in range(batch)]
            lay.h_rep = memb.alloc("logits (replicated)", loc(classes))
            lay.scr = memb.alloc("softmax scratch", 3 * loc(classes) + 2)
        lays.append(lay)
    mema.check("use a config with more mema_words, more cores, or a smaller model")
    memb.check("use a config with more memb_words, more cores, or a smaller model")

    def spad_plan(compact):
        """The SPAD's buffers: a slot per group in flight of a hidden layer's output a_k on
        the cores of layer k + 1 (the same addresses on the cores of a segment: they hold the
        same layers), the whole vector or, ``compact``, only the core's input block (the
        relays keep no more); a buffer of the whole output for each layer's forward sums,
        which the step's collectives and relays empty; the relayed deltas whole."""
        spad = Region("the SPAD", cfg.spad_words, align=nr)
        shared = SimpleNamespace(compact=compact)
        shared.x = [spad.alloc(f"input block slot {k}", batch * ld_x) for k in range(slots)]
        shared.ld_in = [ceil_to(max(hi - lo for lo, hi in blocks[k + 1]), nr) if compact
                        else ld_act[k] for k in range(L - 1)]
        shared.act = [[spad.alloc(f"a{k} slot {s}", batch * shared.ld_in[k])
                       for s in range(slots)] if k + 1 in held else None for k in range(L - 1)]
        shared.sums = [spad.alloc(f"a{k} sums", batch * ld_act[k]) if k in held else None
                       for k in range(L - 1)]
        # The relayed deltas in the SPAD's other region: the array stores and loads the slots
        # (and sums the forward) while the engine relays the deltas (ring_waits).
        shared.dbuf = [spad.alloc_high(f"d{k} (relayed)", batch * ld_act[k])
                       for k in range(L - 1)]
        shared.logits = spad.alloc("logits", batch * ld_c)
        shared.t_spad = spad.alloc("targets", batch * ld_c)
        shared.staging, shared.staging_words = alloc_staging(spad, tensors, nr)
        return spad, shared

    # Whole vectors where the SPAD holds them: a relay's target then keeps the stream in one
    # RING, not in two (its block, then the words it passes on).
    spad, shared = spad_plan(False)
    if spad.need > cfg.spad_words:
        spad, shared = spad_plan(True)
    spad.check("use a config with more spad_words")
    for lay in lays:
        lay.__dict__.update(shared.__dict__)
    return lays


def _input_block(e, lay, group, slots, dst, sample=0):
    """The core's column block of its layer's input of ``group`` (its ``sample``),
    replicated into ``dst`` from its SPAD slot: ``x``, or ``relu(h)`` of the layer below
    (rectified where it was summed, :func:`_finish_forward`)."""
    spad = (lay.x[group % slots] + sample * lay.ld_x if lay.index == 0
            else _act_block(lay, group % slots, sample))
    e("transfer", Opcode.LDV, spad=spad, memb=dst, len=lay.width, layout=Layout.COLREP)


class _StepParts:
    """A layer's share of a ``cp`` pipeline step on one core, in the parts that
    :func:`_interleave` interleaves with those of the core's other layers: its
    loads into MemB (the delta left to the pass where that is cheaper and its pass comes
    first); its pass (``cpass``, or ``gemv`` while filling; storing the forward partial sums
    where that is cheaper), the bias update, and ``relud`` and the store of its block of the
    delta below; its sums (the forward partial sums stored, unless the pass did, and
    reduce-scattered round the segment, and the delta below all-gathered round it where no
    relay gathers it); and the finish of its forward (:func:`_finish_forward`)."""

    def __init__(self, lay, graph, cfg, core, segments, key):
        phase, forward, backward = key
        L = len(graph.layers)
        self.lay, self.graph, self.cfg, self.core, self.segments = lay, graph, cfg, core, segments
        self.slots, self.last, self.o = 2 * L, lay.index == L - 1, graph.layers[lay.index][0]
        self.g_f, self.g_b = phase - lay.index, phase - 2 * L + 1 + lay.index
        self.fwd, self.bwd = forward[lay.index], backward[lay.index]

    def loads(self, e, first=False):
        """The pass's inputs into MemB; ``first``: this layer's pass is the first after the
        loads (no RING between), so the pass may load its delta itself."""
        lay = self.lay
        self.d_load = None
        if self.bwd:
            # The delta replicated along the rows for the pass; its diagonal holds the own
            # block for the bias (r_lo is a multiple of nr).
            if not self.last:   # relayed, or gathered by the layer above, in the last step
                ldv = dict(spad=lay.dbuf[lay.index], memb=lay.d_rep, len=self.o,
                           layout=Layout.ROWREP)
                if first and self._loads_delta(ldv):
                    self.d_load = ldv
                else:
                    e("transfer", Opcode.LDV, **ldv)
            _input_block(e, lay, self.g_b, self.slots, lay.a_rep)
            if self.last:       # formed here, in MemB
                e("delta", Opcode.BCAST, dst=lay.d_rep, src=lay.d[self.g_b % 2], len=self.o,
                  layout=Layout.ROWREP)
        if self.fwd:
            _input_block(e, lay, self.g_f, self.slots, lay.x_rep)

    def _own_block(self, ldv):
        """The LDV of the delta's own block onto the diagonal (what the bias update reads)
        when the pass loads the delta itself, or ``None`` (no bias block here)."""
        lay, nr = self.lay, self.cfg.nr
        if not lay.owned:
            return None
        return dict(spad=ldv["spad"] + lay.r_lo, memb=ldv["memb"] + lay.r_lo // nr,
                    len=lay.owned, layout=Layout.DIAG)

    def _loads_delta(self, ldv) -> bool:
        """Whether the pass loading the delta beside its windows (``load``: a cycle more)
        and the LDV of the own block for the bias cost fewer cycles than the LDV."""
        own = self._own_block(ldv)
        extra = 1 + (word_cycles(encode(Opcode.LDV, **own), self.cfg) if own else 0)
        return extra < word_cycles(encode(Opcode.LDV, **ldv), self.cfg)

    def pass_(self, e):
        lay, nr, o = self.lay, self.cfg.nr, self.o
        ldw = cdiv(lay.width, nr)
        # The forward's sums go to the SPAD for the segment's reduce-scatter (sums): the
        # pass stores them itself where that is cheaper. Nothing before that reduce-scatter
        # touches them (the bias, the delta below and the layer above use other words).
        self.stored = False

        def storing(op, fields):
            if not self.fwd:
                return fields
            out = _sums_at(lay, self.graph, 0)
            stored = storing_y(self.cfg, op, fields, out)
            self.stored = stored is not None
            return stored or fields

        if self.bwd:
            prop = int(lay.index > 0)
            fields = dict(w=lay.w, d=lay.d_rep, a=lay.a_rep, x=lay.x_rep, y=lay.y, z=lay.z,
                          q=lay.q, fpsum=lay.fpsum, bpsum=lay.bpsum, rows=o, cols=lay.width,
                          ldw=ldw, prop=prop, fwd=int(self.fwd))
            if self.d_load:     # the delta from the SPAD into the pass's slots, not MemB
                fields.update(load=1, spad=self.d_load["spad"])
            e("fused", Opcode.CPASS, o * lay.width * (1 + prop + self.fwd),
              **storing(Opcode.CPASS, fields))
            if self.d_load and lay.owned:
                e("transfer", Opcode.LDV, **self._own_block(self.d_load))
            if lay.owned:
                sgd_bias_update(e, lay.b, lay.d_rep + lay.r_lo // nr, lay.owned, g_buf=None,
                                mom=None, use_wd=False)
            if prop:
                e("delta", Opcode.VOP, fn=VecOp.RELUD, layout=Layout.DIAG, z=lay.vec,
                  x=lay.a_rep, y=lay.z, len=lay.width, alpha=0)
                e("transfer", Opcode.STV, spad=lay.dbuf[lay.index - 1] + lay.lo,
                  memb=lay.vec, len=lay.width, layout=Layout.DIAG)
        elif self.fwd:
            fields = dict(y=lay.y, x=lay.x_rep, w=lay.w, psum=lay.fpsum, rows=o,
                          cols=lay.width, ldw=ldw)
            e.gemv(self.cfg, "forward", Opcode.GEMV, o * lay.width,
                   **storing(Opcode.GEMV, fields))

    def sums(self, e):
        lay, cfg = self.lay, self.cfg
        index, seg = lay.index, self.segments[lay.index]
        if self.fwd:
            _sum_forward(e, lay, self.graph, cfg, self.core, self.segments, 0,
                         stored=self.stored)
        below = lay.dbuf[index - 1] if index else None
        if (self.bwd and index
                and _gather(lay, self.segments, index, cfg.cores, below, up=False) is None):
            ring_emit(e, self.core, coll.all_gather(seg, below, self.graph.layers[index][1],
                                                    cfg.nr))

    def finish(self, e):
        if self.fwd:
            _finish_forward(e, self.lay, self.graph, self.cfg, self.core, self.segments,
                            self.g_f % self.slots, 0)


def _act_block(lay, slot, sample):
    """SPAD address of the core's column block of ``sample``'s activations of the layer
    below in ``slot``."""
    return lay.act[lay.index - 1][slot] + sample * lay.ld_in[lay.index - 1] + \
        (0 if lay.compact else lay.lo)


def _sums_at(lay, graph, sample):
    """SPAD address of ``sample``'s forward sums of the layer: in its sums buffer or, at the
    output layer, the logits."""
    if lay.index < len(graph.layers) - 1:
        return lay.sums[lay.index] + sample * lay.ld_act[lay.index]
    return lay.logits + sample * lay.ld_c


def _sum_forward(e, lay, graph, cfg, core, segments, sample, stored=False):
    """``sample``'s forward partial sums (``y``) stored (unless the kernel that computed them
    has: ``stored``) and reduce-scattered round the segment."""
    out, o = _sums_at(lay, graph, sample), graph.layers[lay.index][0]
    if not stored:
        # y is only stored: a gemv just before may store it itself.
        e.stv(cfg, "transfer", spad=out, memb=lay.y, len=o, layout=Layout.DIAG)
    ring_emit(e, core, coll.reduce_scatter(segments[lay.index], out, o, cfg.nr))


def _finish_forward(e, lay, graph, cfg, core, segments, slot, sample):
    """``sample``'s forward sums, reduce-scattered by :func:`_sum_forward`: the core's block
    biased, rectified below the output layer and stored into the input slot of the layer
    above on the same segment or back among the sums (whence the relays take it), and (for
    the output layer, or a segment that cannot gather) the sums all-gathered; at the output
    layer its scaled output gradient into MemB (``lay.loss``)."""
    index, o, nr = lay.index, graph.layers[lay.index][0], cfg.nr
    L, seg = len(graph.layers), segments[lay.index]
    ring = lambda words: ring_emit(e, core, words)  # noqa: E731
    out = _sums_at(lay, graph, sample)
    # The layer above on the same segment takes the core's own block as its input block.
    above = index < L - 1 and segments[index + 1] == seg
    if lay.owned:
        e("transfer", Opcode.LDV, spad=out + lay.r_lo, memb=lay.vec, len=lay.owned,
          layout=Layout.DIAG)
        e("forward", Opcode.VOP, fn=VecOp.ADD, layout=Layout.DIAG, z=lay.vec, x=lay.vec,
          y=lay.b, len=lay.owned, alpha=0)
        if index < L - 1:
            relu(e, lay.vec, lay.vec, lay.owned)
        e("transfer", Opcode.STV, memb=lay.vec, len=lay.owned, layout=Layout.DIAG,
          spad=(lay.act[index][slot] + sample * lay.ld_in[index]
                + (0 if lay.compact else lay.r_lo)) if above else out + lay.r_lo)
    if index == L - 1 or (not above
                          and _gather(lay, segments, index, cfg.cores, out, up=True) is None):
        ring(coll.all_gather(seg, out, o, nr))
    if index == L - 1:
        logits, t_buf = lay.logit_bufs[sample], lay.t_buf[sample]
        e("transfer", Opcode.LDV, spad=out, memb=logits, len=o, layout=Layout.DIAG)
        sgd_load_target(e, graph.loss, o, lay.t_spad + sample * lay.ld_c, t_buf)
        # Only MemB from here on: it runs beside the relays (cp_ring_core_program).
        sgd_output_gradient(lay.loss, graph.loss, o, logits=logits,
                            out=lay.d[slot % 2] + sample * cdiv(o, nr), t_spad=None,
                            t_buf=t_buf, h_rep=lay.h_rep, scr=lay.scr, plain=True)


def _mbcp_step(e, lay, graph, cfg, core, segments, key):
    """The core's share of an ``mbcp`` pipeline step: per sample of the group going back,
    ``W^T d`` of its columns (``gemvt``), ``relud`` with its block of ``h`` below and that
    block of the delta below all-gathered (or gathered by the relays); then every sample's
    rank-1 update of its columns and its bias block, in sample order; then per sample of
    the group going forward the partial sums, :func:`_sum_forward` and
    :func:`_finish_forward`. The golden MBCP
    trainer's order (golden/pipelined.py) with the layer's columns split over its segment."""
    phase, forward, backward = key
    layers, nr, batch = graph.layers, cfg.nr, graph.batch
    L, slots = len(layers), 2 * len(layers)
    index, seg = lay.index, segments[lay.index]
    o, i = layers[index]
    g_f, g_b = phase - index, phase - 2 * L + 1 + index
    ldw = cdiv(lay.width, nr)

    def delta(s):
        """Sample ``s``'s delta of this layer, replicated along the rows into ``d_rep`` (its
        diagonal holds the own block for the bias: r_lo is a multiple of nr)."""
        if index == L - 1:
            e("delta", Opcode.BCAST, dst=lay.d_rep, src=lay.d[g_b % 2] + s * cdiv(o, nr),
              len=o, layout=Layout.ROWREP)
        else:
            e("transfer", Opcode.LDV, spad=lay.dbuf[index] + s * lay.ld_act[index],
              memb=lay.d_rep, len=o, layout=Layout.ROWREP)
        return lay.d_rep

    if backward[index]:
        for s in range(batch if index > 0 else 0):
            below = lay.dbuf[index - 1] + s * lay.ld_act[index - 1]
            e("transfer", Opcode.LDV, spad=_act_block(lay, g_b % slots, s), memb=lay.a_below,
              len=lay.width, layout=Layout.DIAG)
            sgd_back_product(e, z=lay.z, psum=lay.bpsum, cols=lay.width, ldw=ldw,
                             operands=(lay.w, delta(s), o), cfg=cfg)
            e("delta", Opcode.VOP, fn=VecOp.RELUD, layout=Layout.DIAG, z=lay.vec,
              x=lay.a_below, y=lay.z, len=lay.width, alpha=0)
            e("transfer", Opcode.STV, spad=below + lay.lo, memb=lay.vec, len=lay.width,
              layout=Layout.DIAG)
            if _gather(lay, segments, index, cfg.cores, below, up=False) is None:
                ring_emit(e, core, coll.all_gather(seg, below, i, nr))
        for s in range(batch):
            _input_block(e, lay, g_b, slots, lay.a_rep, sample=s)
            d_rep = delta(s)
            # With the delta's LDV folded into the update, the bias, which reads its own
            # block on the diagonal, loads only that from the SPAD (a broadcast delta, the
            # output layer's, folds into nothing).
            own = index < L - 1 and lay.owned and dict(
                spad=lay.dbuf[index] + s * lay.ld_act[index] + lay.r_lo,
                memb=d_rep + lay.r_lo // nr, len=lay.owned, layout=Layout.DIAG)
            refill = word_cycles(encode(Opcode.LDV, **own), cfg) if own else 0
            if plain_ger(e, cfg, lay.w, d_rep, lay.a_rep, o, lay.width, ldw, refill) and own:
                e("transfer", Opcode.LDV, **own)
            if lay.owned:
                sgd_bias_update(e, lay.b, d_rep + lay.r_lo // nr, lay.owned, g_buf=None,
                                mom=None, use_wd=False)
    if forward[index]:
        for s in range(batch):
            _input_block(e, lay, g_f, slots, lay.x_rep, sample=s)
            e.gemv(cfg, "forward", Opcode.GEMV, o * lay.width, y=lay.y, x=lay.x_rep, w=lay.w,
                   psum=lay.fpsum, rows=o, cols=lay.width, ldw=ldw)
            _sum_forward(e, lay, graph, cfg, core, segments, s)
            _finish_forward(e, lay, graph, cfg, core, segments, g_f % slots, s)


def _relays(e, lay, graph, cfg, core, segments, key):
    """Core ``core``'s part of a step's relays, in one order on every core: per layer, its
    activations up (from the sums buffers of its cores, each core of the layer above keeping
    its input block in its slot of the group) and its delta of the layer below down (the
    delta buffers have one address everywhere). ``lay``: one of the core's layouts (an idle
    core's: any core's, whose addresses its relays, which only pass words on, do not use)."""
    phase, forward, backward = key
    layers = graph.layers
    L = len(layers)

    def send(k, up, base, ld, dst=None, ld_dst=0, ranges=None):
        """Layer ``k``'s vector of every sample of the group, gathered or relayed."""
        holders, targets = segments[k], segments[k + 1 if up else k - 1]
        if holders == targets:
            return      # summed in place (up) or all-gathered in the step (down)
        words = layers[k][0] if up else layers[k][1]
        for s in range(graph.batch):
            buf, to = base + s * ld, None if dst is None else dst + s * ld_dst
            gather = _gather(lay, segments, k, cfg.cores, buf, up=up, dst=to, ranges=ranges)
            if gather is None:
                source = coll.relay_source(holders, targets, cfg.cores)
                gather = coll.relay(source, targets, buf, words, cfg.cores, dst=to,
                                    ranges=ranges)
            ring_emit(e, core, gather)

    # In the order of the layers that produce them, the lower first: a lower layer's pass
    # (layer 0 has no backward) tends to end first, so its relays go while the others work.
    for k in range(L):
        if k < L - 1 and forward[k]:
            slot = lay.act[k][(phase - k) % (2 * L)] if lay.act[k] else 0
            send(k, True, lay.sums[k] or 0, lay.ld_act[k], slot, lay.ld_in[k],
                 dict(zip(segments[k + 1], lay.blocks[k + 1])) if lay.compact else None)
        if k > 0 and backward[k]:
            send(k, False, lay.dbuf[k - 1], lay.ld_act[k - 1])


#: What a core that keeps only its input blocks of the activations says of its SPAD layout
#: (:attr:`~.program.CoreProgram.spad_layout`).
COMPACT_NOTE = "activations kept as each core's input blocks"


#: Segments of this many cores all-gather and relay instead: their all-gather is one
#: exchange step, and on ``bench scaling``'s 4-core ring (layer 0 on two cores) the gather made
#: the steady-state step 6 cycles longer (52,983 against 52,977). One core's gather is its
#: relay.
ALL_GATHER_CORES = 2


def _gather(lay, segments, k, cores, buf, *, up, dst=None, ranges=None):
    """Layer ``k``'s vector gathered from its segment straight into a neighbour's
    (:func:`~.collectives.gather_relay`), or ``None``: then it is all-gathered round the
    segment and relayed. ``up``: a hidden layer's output, its blocks ``R_p``, to the layer
    above; else ``d_{k-1}``, its blocks ``I_p``, to the layer below. ``dst``, ``ranges``:
    where the targets keep which words (:func:`~.collectives.relay`; all, at ``buf``, by
    default)."""
    blocks, target = (lay.rblocks[k], k + 1) if up else (lay.blocks[k], k - 1)
    if len(segments[k]) == ALL_GATHER_CORES or segments[target] == segments[k]:
        return None
    return coll.gather_relay(segments[k], blocks, segments[target], buf, cores, dst=dst,
                             ranges=ranges)


def _interleave(e, parts):
    """A ``cp`` step of the core's layers (:class:`_StepParts`, lowest first): every layer's
    loads, then the layers from the highest down, each layer's pass followed by the finish
    of the layer above it and then its own sums. A layer's delta buffer is loaded before the
    layer above gathers the next one into it, and the collectives a layer posts after its
    pass (its sums, its delta's all-gather) run beside the pass of the layer below instead
    of holding up the next SPAD access; one layer gives the order of
    :func:`_StepParts`."""
    for part in parts:
        part.loads(e, first=part is parts[-1])
    above = None
    for part in reversed(parts):
        part.pass_(e)
        if above is not None:
            above.finish(e)
        part.sums(e)
        above = part
    if above is not None:
        above.finish(e)


def cp_ring_core_program(graph, cfg, core, segments, blocks, groups=None) -> CoreProgram:
    """Core ``core``'s image of ``cp`` pipeline steps on the ring (the module docstring); a
    core in no segment still takes part in the relays."""
    check_cp(graph, cfg)
    member = any(core in seg for seg in segments)
    # An idle core only relays: any working core's layout gives the relays' addresses.
    lays = _layouts(graph, cfg, core if member else segments[0][0], segments, blocks)
    lay = lays[0]
    held_lays = lays if member else []

    def emit(e, key):
        for held in held_lays:
            held.loss = Emitter()
        if graph.batch > 1:
            # Lowest layer first: it reads the delta relayed to it in the last step before
            # the layer above on the same segment gathers the next one into the same buffer.
            for held in held_lays:
                _mbcp_step(e, held, graph, cfg, core, segments, key)
        else:
            _interleave(e, [_StepParts(held, graph, cfg, core, segments, key)
                            for held in held_lays])
        start = len(e.words)
        _relays(e, lay, graph, cfg, core, segments, key)
        loss = lays[-1].loss if member else None
        if loss is not None and loss.words:
            # After the core's first ring_commands relays are posted (the engine's queue
            # takes them): the engine moves them beside the loss instead of after it. N1 on
            # paper-n1, cp: 6,624 -> 6,558 cycles, mbcp b = 4: 26,138 -> 24,929, against the
            # loss after the first relay; after all of them, mbcp b = 8 got 430 cycles slower
            # (52,850 -> 53,280): its later posts wait for room in the queue.
            e.insert(min(start + max(cfg.ring_commands, 1), len(e.words)), loss)

    e, entries, groups, overlays = cp_image(graph, cfg, groups, emit)
    if not member:
        io = {"entries": entries, "groups": groups, "overlays": overlays}
        return CoreProgram(e.words, e.phases, e.macs, [], io)
    io = {"inputs": lay.x, "targets": lay.t_spad, "logits": lay.logits, "entries": entries,
          "groups": groups, "ld_inputs": lay.ld_x, "ld_classes": lay.ld_c,
          "overlays": overlays}
    return CoreProgram(e.words, e.phases, e.macs, lay.tensors, io, staging=lay.staging,
                       staging_words=lay.staging_words,
                       spad_layout=(COMPACT_NOTE,) if lay.compact else ())
