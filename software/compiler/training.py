"""The training compiler's entry point: a graph and a config in, a :class:`Compiled` step out.

:func:`compile_training` places the layers on the cores of the ring (one segment for every
layer, or one per layer; a single core is a ring of one), partitions every layer over its
segment (:func:`partition`) and asks :mod:`.sgd` or :mod:`.mbgd` for each working core's
program. Every tensor (weights, optimiser state, activations, partial sums, scratch) is placed
in MemA, MemB or the SPAD; anything that does not fit raises :class:`CompileError` saying what
was needed, what exists and what to change. Every instruction carries its phase and model MACs,
and the cycles of every core are predicted exactly by the ring timing model, which uses the
kernel geometry the sequencer uses. The golden trainer with the same placement
(:mod:`caterpillar.golden.trainer`) computes the same sums in the same order.
"""

from __future__ import annotations

from caterpillar.golden.collectives import ring_blocks
from caterpillar.software.compiler import collectives as coll
from caterpillar.software.compiler.cp import cp_core_program
from caterpillar.software.compiler.cp_ring import (
    cp_bias_blocks,
    cp_grouped_placements,
    cp_placement,
    cp_ring_core_program,
)
from caterpillar.software.compiler.mbgd import mbgd_core_program, mbgd_ring_core_program
from caterpillar.software.compiler.program import (
    CAPACITY_SURVEY,
    CapacitySurvey,
    Compiled,
    CompileError,
    bias_columns,
    check_capacity,
    layer_splits,
)
from caterpillar.software.compiler.sgd import sgd_core_program, sgd_ring_core_program
from caterpillar.software.graph.model import TrainingGraph

__all__ = ["compile_training", "partition", "layer_segments", "compiled_for_groups"]


def partition(graph: TrainingGraph, cfg, cores, splits=None) -> list:
    """Return each layer's split over its cores: by default input columns (GEMV kernels, units
    of ``nr``) or output rows (GEMM kernels, units of one); ``cores`` is a count for every layer
    or a list of counts, one per layer. ``splits`` (:func:`~.program.layer_splits`) names the
    exceptions: a GEMV layer split by rows, a GEMM layer by columns (the bias column goes with
    the last block)."""
    counts = [cores] * len(graph.layers) if isinstance(cores, int) else list(cores)
    splits = splits or ["columns" if graph.gemv else "rows"] * len(counts)
    unit = cfg.nr if graph.gemv else 1
    return [ring_blocks(i if split == "columns" else o, c, unit)
            for (o, i), c, split in zip(graph.layers, counts, splits)]


def layer_segments(graph, cfg, segments) -> list:
    """Every layer's segment (its cores in ring order), checked: ``segments`` as
    :func:`compile_training` takes it."""
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
    if graph.algorithm in ("sgd", "dfa") and len(distinct) > 1:
        raise CompileError(f"{graph.algorithm} spreads every layer over one segment; "
                           "per-layer segments need --algorithm mbgd")
    if graph.batched_gemv and len(distinct) > 1:
        raise CompileError(f"{graph.algorithm} on the GEMV kernels spreads every layer over "
                           "one segment; per-layer segments need kernels gemm")
    return segments


def _fastest(builds, cfg, fallback=None) -> Compiled:
    """The candidate of ``builds`` (callables returning a :class:`Compiled`) that steps
    fastest of those that fit IMEM (the first on a tie; the first built if none fits), or, if
    none compiles, of ``fallback()``'s. Each is compiled in a capacity survey of its own: only
    the chosen one's checks reach the running survey (the fit table is that compile's), or
    every one's if none compiles (only the fallback's, if it has any), whose first error is
    raised. A survey that keeps going (the fit table's) lets a candidate past a shortage: it
    counts as not compiling, but, if no candidate compiles, the first of the last ones tried
    to get that far is returned, so the table shows what it lacks. The candidates that step
    faster than the chosen one but do not fit IMEM go to its :attr:`~.Compiled.over_imem`."""
    outer = CAPACITY_SURVEY.get()
    keep_going = outer is not None and outer.keep_going
    built, short, errors = [], [], []

    def fits(candidate):
        return candidate[0].instructions <= cfg.imem_words

    def attempt(candidates):
        for build in candidates:
            # An IMEM shortage is passed over: the candidate's cycles still count, for the
            # report of what a larger IMEM would buy (over_imem).
            survey = CapacitySurvey(keep_going, pass_over=frozenset({"IMEM"}))
            token = CAPACITY_SURVEY.set(survey)
            try:
                compiled = build()
                lacking = any(r["needed"] > r["available"] for r in survey.records
                              if r["memory"] != "IMEM")
                (short if lacking else built).append((compiled, survey.records))
            except CompileError as error:
                errors.append((error, survey.records))
            finally:
                CAPACITY_SURVEY.reset(token)

    attempt(builds)
    if not any(map(fits, built)) and fallback is not None:
        tried = (len(errors), len(short), len(built))
        attempt(fallback())
        errors, short = errors[tried[0]:] or errors, short[tried[1]:] or short
        if any(map(fits, built[tried[2]:])):
            built = built[tried[2]:]
    if not built and short:
        built = short[:1]
    if not built:
        if outer is not None:
            for _, failed in errors:
                outer.records.extend(failed)
        raise errors[0][0]
    fitting = [k for k, candidate in enumerate(built) if fits(candidate)]
    imem_error = next((r["error"] for r in built[0][1] if "error" in r), None)
    if not fitting and not keep_going and imem_error is not None:
        raise CompileError(imem_error)
    chosen = min(fitting or [0], key=lambda k: built[k][0].step_cycles)
    if outer is not None:
        outer.records.extend(built[chosen][1])
    compiled = built[chosen][0]
    if fitting:
        faster = [c for c, _ in built if c.instructions > cfg.imem_words
                  and c.step_cycles < compiled.step_cycles]
        # One per placement (the fallback's may repeat one the first round tried).
        unique = {tuple(c.segments): c for c in reversed(faster + compiled.over_imem)}
        compiled.over_imem = sorted(unique.values(), key=lambda c: c.step_cycles)
    return compiled


def compile_training(graph: TrainingGraph, cfg, segments=None, groups=None) -> Compiled:
    """Compile ``graph`` for the ring of ``cfg``.

    ``segments``: ``None`` (every layer on every core; ``cp``: a placement), one segment
    (cores in ring order) for every layer, or one segment per layer (``mbgd``, ``cp``;
    segments equal or disjoint). Each
    distinct segment is closed into a sub-ring; data pass between segments over the chain
    links. ``groups``: ``cp``'s samples per epoch (its image holds the fill and drain steps
    of such an epoch; :meth:`Compiled.for_groups` recompiles for another count).
    """
    if graph.pipelined:
        return _compile_cp(graph, cfg, segments, groups)
    if graph.kernel_choice and cfg.cores > 1:
        # A small batch: the GEMM kernels (the status quo on a tie) or sgd's, whichever the
        # cycle model finds faster; the compiled step's graph names the kernels it runs on,
        # and its other_kernels the other's step or why it does not compile.
        tried = {}

        def build(kernels):
            try:
                tried[kernels] = compile_training(graph.replace(kernels=kernels), cfg, segments)
            except CompileError as error:
                tried[kernels] = str(error)
                raise
            return tried[kernels]

        chosen = _fastest([lambda k=k: build(k) for k in ("gemm", "gemv")], cfg)
        chosen.other_kernels = next(c for c in tried.values() if c is not chosen)
        return chosen
    if graph.batched_gemv and cfg.cores == 1:
        raise CompileError(f"{graph.algorithm} on the GEMV kernels with a batch runs on a ring "
                           "of 2 or more cores; on one core use kernels gemm (or auto)")
    segments = layer_segments(graph, cfg, segments)
    splits = layer_splits(graph, segments)
    blocks = partition(graph, cfg, [len(seg) for seg in segments], splits)
    for index, parts in enumerate(blocks):
        # GEMM kernels leave a core without rows idle in that layer (mbgd's module
        # docstring); the GEMV kernels split inputs, and every core must hold some.
        if graph.gemv and any(hi == lo for lo, hi in parts):
            what = "inputs" if splits[index] == "columns" else "outputs"
            instead = ("kernels gemm" if graph.batched_gemv else
                       "mbgd or dfa with a batch of 2 or more")
            raise CompileError(f"layer {index} has {parts[-1][1]} {what}, too few to give "
                               f"each of {len(parts)} cores {cfg.nr}; use fewer cores, wider "
                               f"layers, or {instead}")
    sources = coll.link_sources(list(dict.fromkeys(segments)), cfg.cores)
    if cfg.cores == 1:
        # A lone core needs no collectives: its own programs, with no ring traffic at all.
        one = sgd_core_program if graph.gemv else mbgd_core_program
        compiled = Compiled(graph, cfg, segments, {0: one(graph, cfg)}, sources, blocks)
    elif graph.gemv:
        # The piped collectives (one RING per core) against the bucket ones, and the update
        # split between a bucket gather's steps (a kernel's fixed cycles per piece for each
        # step it hides) or not: the ring timing model picks whichever steps fastest of those
        # that fit IMEM (the first on a tie: piped, then unsplit, have fewer instructions).
        folds = bias_columns(graph, cfg, segments, blocks)
        # The logits' chain in segments posts more RINGs: where a later sample's work hides
        # the chain's latency (a batch), one chain may step faster, so both are tried unless
        # the segments are one chain anyway.
        c = len(segments[0])
        chains = (False, True) if coll.chain_segments(cfg, c, graph.sizes[-1]) != (c,) \
            else (False,)

        def sgd(piped, interleave, load_gathered=False, overlap=False, segmented=False):
            programs = {k: sgd_ring_core_program(graph, cfg, segments[0], p, blocks,
                                                 first_rows=splits[0] == "rows",
                                                 interleave=interleave, bias_columns=folds,
                                                 piped=piped, load_gathered=load_gathered,
                                                 overlap=overlap, segmented=segmented)
                        for p, k in enumerate(segments[0])}
            return Compiled(graph, cfg, segments, programs, sources, blocks)

        # dfa: also every gathered delta loaded by its update, after those that need no SPAD.
        # A batch updates in one piece per sample (nothing to interleave), and its forward
        # may overlap the samples' GEMVs and ring sums.
        pieces = (False,) if graph.batched_gemv else (False, True)
        overlaps = (False, True) if graph.batched_gemv else (False,)
        compiled = _fastest([lambda p=piped, i=interleave, o=overlap, s=seg:
                             sgd(p, i, overlap=o, segmented=s)
                             for piped in (True, False) for interleave in pieces
                             for overlap in overlaps for seg in chains]
                            + [lambda p=piped, s=seg: sgd(p, False, True, segmented=s)
                               for piped in (True, False) for seg in chains
                               if graph.algorithm == "dfa" and not graph.batched_gemv], cfg)
    else:
        cores = {k: mbgd_ring_core_program(graph, cfg, k, segments, blocks, splits)
                 for k in range(cfg.cores)}
        compiled = Compiled(graph, cfg, segments,
                            {k: c for k, c in cores.items() if len(c.program) > 1}, sources,
                            blocks)
    for k, core in compiled.cores.items():
        check_capacity("IMEM", len(core.program), cfg.imem_words,
                       lambda: f"core {k}'s step program needs {len(core.program)} "
                               f"instructions but IMEM holds {cfg.imem_words}; use a config "
                               f"with imem_words >= {len(core.program)}, a smaller batch or "
                               "fewer layers", survivable=True)
    return compiled


def _compile_cp(graph, cfg, segments, groups) -> Compiled:
    """``cp``: every layer on core 0 of a one-core config, else on its own segment or layers
    sharing one (``segments``; by default whichever :func:`~.cp_ring.cp_placement`, the
    output layer on its own cores or on those of the layer below, steps fastest, or, if there
    is none or none compiles, whichever of :func:`~.cp_ring.cp_grouped_placements`)."""
    if cfg.cores == 1:
        return Compiled(graph, cfg, layer_segments(graph, cfg, segments),
                        {0: cp_core_program(graph, cfg, groups)}, [0],
                        partition(graph, cfg, 1))
    if segments is None:
        # Shares by MACs, by weights or by the passes' modeled cycles, the output layer on its
        # own cores or on those of the layer below: the stages' pace also depends on how the
        # ring traffic falls, so the cycle model picks (ties go to the first: own cores, MAC
        # shares).
        placements, errors = [], []
        for share in (False, True):
            for by in ("macs", "weights", "cycles"):
                try:
                    placements.append(tuple(cp_placement(graph, cfg, by, share)))
                except CompileError as error:      # too few cores for every layer's own
                    errors.append(error)
        # Chosen on the image of a full epoch (None: 4L - 1 groups), whose first program is
        # a steady-state step; an epoch of fewer than 2L groups never reaches one.
        # If there is none, or none fits (N3 on paper-n3: every one needs more MemA than 8
        # cores have), any layers may share a segment.
        def grouped():
            return [lambda p=p: _compile_cp(graph, cfg, p, None)
                    for p in cp_grouped_placements(graph, cfg, 6)]

        if not placements and not cp_grouped_placements(graph, cfg, 1):
            raise errors[0]
        chosen = _fastest([lambda p=p: _compile_cp(graph, cfg, list(p), None)
                           for p in dict.fromkeys(placements)], cfg, fallback=grouped)
        return compiled_for_groups(chosen, groups) if groups is not None else chosen
    segments = layer_segments(graph, cfg, segments)
    distinct = list(dict.fromkeys(segments))
    blocks = partition(graph, cfg, [len(seg) for seg in segments])
    outs = cp_bias_blocks(graph, cfg, segments)
    last = len(segments) - 1
    for index, (parts, owned) in enumerate(zip(blocks, outs)):
        # The output layer's outputs may leave cores without any (their bias block is empty).
        checked = (("inputs", parts),) + ((("outputs", owned),) if index < last else ())
        for what, split in checked:
            if any(hi == lo for lo, hi in split):
                raise CompileError(f"layer {index} has {split[-1][1]} {what}, too few to give "
                                   f"each of {len(split)} cores {cfg.nr}; use fewer cores for "
                                   "it")
    cores = {k: cp_ring_core_program(graph, cfg, k, segments, blocks, groups)
             for k in range(cfg.cores)}
    sources = coll.link_sources(distinct, cfg.cores)
    return Compiled(graph, cfg, segments, cores, sources, blocks)


def compiled_for_groups(compiled: Compiled, groups: int) -> Compiled:
    """``compiled``, or for ``cp`` compiled again if its image is for epochs of another number
    of samples than ``groups`` (the fill and drain steps depend on it)."""
    core = compiled.cores.get(0)
    if not compiled.graph.pipelined or core.io["groups"] == groups:
        return compiled
    again = compile_training(compiled.graph, compiled.config, compiled.segments, groups=groups)
    again.over_imem = compiled.over_imem
    return again
