"""What the training compiler produces: the step programs of every core and how to run them.

A :class:`Compiled` is the one program type: a single core is a ring of one. It holds, for every
core that works, a :class:`CoreProgram` (its instruction stream, the phase and model MACs of
every instruction, where its share of the parameters lives, where the host puts inputs and
finds logits), the layer-to-segment placement, the ``SRC`` registers that close each segment
into a sub-ring, and the partition of every layer over its segment. Cycles come from the ring
timing model (:func:`~caterpillar.software.isasim.ring.predict_ring`), which for one core
is the sum of the instructions' fixed durations, so they are known without a cycle-level
simulator. :meth:`Compiled.save` and :func:`load_compiled` write and read it (``.npz``, no
pickle), checking everything a hand-made file could get wrong.
"""

from __future__ import annotations

import bisect
import json
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field

import numpy as np

from caterpillar.contract.config import CaterpillarConfig, ConfigError
from caterpillar.contract.geometry import (
    MAC_SEGMENTS,
    RUN_START_CYCLES,
    word_cycles,
    word_mac_step_cycles,
)
from caterpillar.contract.isa import (
    INSTR_BITS,
    IsaError,
    Layout,
    LoopState,
    Opcode,
    VecOp,
    decode,
    encode,
    relocate_word,
    unpack,
)
from caterpillar.golden.collectives import ring_blocks
from caterpillar.golden.trainer import scalars
from caterpillar.software.graph.model import GraphError, TrainingGraph
from caterpillar.software.isasim.ring import predict_ring, ring_timeline
from caterpillar.software.storage import CheckpointError, atomic_savez, load_npz

__all__ = ["CompileError", "Compiled", "CoreProgram", "Tensor", "Emitter", "Region", "PHASES",
           "layer_splits",
           "SCALAR_REGS", "load_compiled", "cdiv", "ceil_to", "input_name", "ring_emit",
           "with_utilization",
           "check_capacity", "CAPACITY_SURVEY", "CapacitySurvey", "alloc_staging",
           "OVERLAY_IMEMS"]

#: Phases a step's cycles are reported in.
PHASES = ("forward", "loss", "delta", "update", "fused", "transfer", "ring")

#: Scalar register of each scalar operand (:func:`caterpillar.golden.trainer.scalars`).
SCALAR_REGS = {"zero": 0, "step": 1, "inv_batch": 2, "neg_lr": 3, "wd": 4, "mu": 5, "mse": 6}

#: Words of 64 bits per stored instruction.
_QWORDS = INSTR_BITS // 64
#: Most bytes the JSON ``meta`` member of a saved step may take.
_META_LIMIT = 1 << 24

#: An image run in overlays (``cp``'s, :func:`~.cp.cp_image`) holds at most this many IMEMs of
#: programs.
OVERLAY_IMEMS = 16


class CompileError(ValueError):
    """The graph cannot be compiled for the config; the message says what to change."""


def cdiv(a: int, b: int) -> int:
    """``ceil(a / b)``."""
    return -(-a // b)


def ceil_to(a: int, b: int) -> int:
    """``a`` rounded up to a multiple of ``b``."""
    return cdiv(a, b) * b


@dataclass
class CapacitySurvey:
    """What the capacity checks of a compile found (:func:`~caterpillar.software.compiler.
    fit.capacity_survey`): one record per check; with ``keep_going``, a ``survivable``
    shortage is recorded and passed over, so one compile measures every memory; a
    survivable shortage of a memory in ``pass_over`` is passed over too, its record keeping
    the error it would have raised (``error``)."""

    keep_going: bool = False
    records: list = field(default_factory=list)
    pass_over: frozenset = frozenset()


#: The survey the capacity checks of the running compile report to (``None``: none).
CAPACITY_SURVEY: ContextVar[CapacitySurvey | None] = ContextVar("capacity_survey",
                                                                default=None)


def check_capacity(memory, needed, available, message, *, largest=(), survivable=False) -> None:
    """Raise :class:`CompileError` (``message()``) if ``needed`` words of ``memory`` exceed
    ``available``, after recording the need in the running survey (:data:`CAPACITY_SURVEY`).
    ``survivable``: a shortage leaves only addresses past the memory's end, so a survey that
    keeps going may pass it over; ``largest``: the biggest items, ``(what, words)``."""
    survey = CAPACITY_SURVEY.get()
    if survey is not None:
        survey.records.append({"memory": memory, "needed": int(needed),
                               "available": int(available),
                               "largest": [[str(w), int(n)] for w, n in largest]})
        if survivable and survey.keep_going:
            return
        if survivable and memory in survey.pass_over:
            if needed > available:
                survey.records[-1]["error"] = message()
            return
    if needed > available:
        raise CompileError(message())


class Region:
    """A bump allocator over one memory, with the names of what it holds (for errors)."""

    def __init__(self, name, size, align=1):
        self.name, self.size, self.align, self.top = name, size, align, 0
        self.bottom = size      # where the last alloc_high put something (size: nothing yet)
        self.items = []
        self.slack = 0          # words allocated beyond the need (a staging area's extra room)

    def alloc(self, what, words, need=None):
        """Return the base of ``words`` more words (aligned) named ``what``; ``need``: the
        fewest of them it could do with (a staging area; the memory's need counts those)."""
        base = ceil_to(self.top, self.align)
        self.top = base + max(int(words), 1)
        need = words if need is None else need
        self.slack += words - need
        self.items.append((what, base, need))
        return base

    def alloc_high(self, what, words):
        """Return the base of ``words`` more words (aligned) named ``what``, taken from the end
        of the memory downwards: in the SPAD's upper region (:func:`~caterpillar.contract.
        geometry.spad_region`) while the memory has room, apart from :meth:`alloc`'s."""
        base = (self.bottom - max(int(words), 1)) // self.align * self.align
        self.bottom = base
        self.items.append((what, base, words))
        return base

    @property
    def need(self) -> int:
        """Words the memory must hold for what was allocated (a staging area's least)."""
        return self.top - self.slack + (self.size - self.bottom)

    @property
    def room(self) -> int:
        """Words between the last :meth:`alloc` and the last :meth:`alloc_high`."""
        return self.bottom - ceil_to(self.top, self.align)

    def check(self, fix):
        """Raise :class:`CompileError` (with ``fix``, what to change) if the memory cannot hold
        what it needs (a survey records the need: :func:`check_capacity`)."""
        biggest = sorted(self.items, key=lambda t: -t[2])[:3]
        listing = ", ".join(f"{w} {n}" for w, _, n in biggest)
        need = self.need
        check_capacity(self.name, need, self.size,
                       lambda: f"{self.name} needs {need} words but the config has "
                               f"{self.size} (largest: {listing}); {fix}",
                       largest=[(w, n) for w, _, n in biggest], survivable=True)


def alloc_staging(spad: Region, tensors, nr: int) -> tuple[int, int]:
    """Allocate the SPAD area through which the host moves parameters into MemA and MemB (and
    back): what the SPAD has left (between the buffers from its start and those from its end,
    :meth:`Region.alloc_high`), but at least ``nr`` rows of the widest tensor, since the host
    moves a tensor in chunks of ``nr``-row groups (:class:`~caterpillar.software.training.
    trainer.CoreTrainer`), and the host's one-program dump of every tensor stays inside it.
    Allocate it last. Returns ``(base, words)``."""
    rows = [(t.rows, ceil_to(t.cols, nr)) if t.kind == "mema" else (1, ceil_to(t.cols, nr))
            for t in tensors if t.kind in ("mema", "diag", "colrep")]
    least = max((nr * ld for r, ld in rows), default=nr)
    words = max(least, spad.room)
    return spad.alloc("parameter staging", words, need=least), words


def storing_y(cfg, op, fields: dict, spad: int) -> dict | None:
    """The fields of ``op`` (a GEMV, or a CPASS with ``fwd``) storing its whole ``y`` at SPAD
    word ``spad`` itself (``store``), if that costs fewer cycles than the STV of ``y``
    (diagonal) after it would; else ``None``. ``y`` then never reaches MemB."""
    stored = {**fields, "store": 1, "dst": spad}
    extra = word_cycles(encode(op, **stored), cfg) - word_cycles(encode(op, **fields), cfg)
    stv = encode(Opcode.STV, spad=spad, memb=fields["y"], len=fields["rows"],
                 layout=Layout.DIAG)
    return stored if extra < word_cycles(stv, cfg) else None


class Emitter:
    """Collects a core's instructions with the phase and model MACs of each."""

    def __init__(self):
        self.words, self.phases, self.macs = [], [], []

    def __call__(self, phase, op, macs=0, **fields):
        self.words.append(encode(op, **fields))
        self.phases.append(phase)
        self.macs.append(macs)

    def _fold_ldv(self, cfg, op, fields, vector, length, layout, refill=0) -> dict | None:
        """The fields of ``op`` loading its input itself (``load``), with the LDV before it
        dropped, if that LDV loads all of it (``length`` words into ``vector`` in
        ``layout``) and the load beside the kernel plus ``refill`` (cycles the caller must
        spend loading it for later readers instead) costs fewer cycles than the LDV; else
        ``None`` and nothing changes."""
        before = decode(self.words[-1]) if self.words else None
        if (before is None or before.op != Opcode.LDV or before.memb != vector
                or before.len != length or before.layout != layout):
            return None
        loaded = {**fields, "load": 1, "spad": before.spad}
        extra = word_cycles(encode(op, **loaded), cfg) - word_cycles(encode(op, **fields), cfg)
        if extra + refill >= word_cycles(self.words[-1], cfg):
            return None
        self.words.pop(), self.phases.pop(), self.macs.pop()
        return loaded

    def gemv(self, cfg, phase, op, macs, **fields) -> None:
        """Emit a GEMV or GEMVT. If the instruction before it is the LDV of its whole input
        into the replicated layout it reads, and the load beside its MACs (``load``) costs
        fewer cycles than the LDV, fold the LDV into it."""
        transposed = op == Opcode.GEMVT
        vector, length = (fields["d"], fields["rows"]) if transposed else \
            (fields["x"], fields["cols"])
        layout = Layout.ROWREP if transposed else Layout.COLREP
        fields = self._fold_ldv(cfg, op, fields, vector, length, layout) or fields
        self(phase, op, macs, **fields)

    def ger(self, cfg, phase, macs, *, refill=0, **fields) -> bool:
        """Emit a GER. If it is plain (no weight decay or momentum), the instruction before it
        is the LDV of its whole ``u`` into the row-replicated layout, and the load beside the
        update (``load``) and ``refill`` (the cycles of whatever the caller must then load for
        the readers of ``u`` after it) cost fewer cycles than the LDV, fold the LDV into it:
        ``u`` then goes into accumulator slots and never reaches MemB. Returns whether it
        folded."""
        loaded = None
        if not (fields["use_wd"] or fields["use_mom"]):
            loaded = self._fold_ldv(cfg, Opcode.GER, fields, fields["u"], fields["rows"],
                                    Layout.ROWREP, refill)
        self(phase, Opcode.GER, macs, **(loaded or fields))
        return loaded is not None

    def stv(self, cfg, phase, *, spad, memb, len, layout) -> None:  # noqa: A002
        """Emit an STV. If it stores all of the ``y`` of the GEMV just before it (diagonal),
        and the GEMV storing ``y`` itself (``store``) costs fewer cycles than the STV, fold
        the STV into it: ``y`` then never reaches MemB, so only for a ``y`` nothing reads
        later."""
        fields = dict(spad=spad, memb=memb, len=len, layout=layout)
        before = decode(self.words[-1]) if self.words else None
        if (before is not None and before.op == Opcode.GEMV and not before.store
                and before.y == memb and before.rows == len and layout == Layout.DIAG):
            stored = storing_y(cfg, Opcode.GEMV, before.args, spad)
            if stored is not None:
                self.words[-1] = encode(Opcode.GEMV, **stored)
                return
        self(phase, Opcode.STV, **fields)

    def insert(self, at: int, other: Emitter) -> None:
        """Insert ``other``'s instructions before instruction ``at``."""
        self.words[at:at] = other.words
        self.phases[at:at] = other.phases
        self.macs[at:at] = other.macs

    def part(self, lo: int, hi: int | None = None) -> Emitter:
        """A new emitter of instructions ``lo .. hi - 1`` (to the end without ``hi``)."""
        other = Emitter()
        other.words, other.phases, other.macs = (self.words[lo:hi], self.phases[lo:hi],
                                                 self.macs[lo:hi])
        return other


def layer_splits(graph: TrainingGraph, segments) -> list[str]:
    """How each layer is divided over its segment: ``columns`` (input columns per core) or
    ``rows`` (output rows per core).

    The GEMV kernels (sgd, dfa-1) split every layer by columns, except the first of ``sgd``
    and ``dfa`` when it is hidden and spans more than one core: the host stages the whole sample
    on every core, so split by rows (each core's rows are its input block of the next layer)
    the layer's forward needs no reduce-scatter and its update no gathered delta
    (docs/multicore.md). The GEMM kernels split by rows, except the output layer of mbgd and
    dfa when it shares the segment of the layer below, spans more than one core and has no
    more outputs than inputs: split by the columns that match each core's rows of the layer
    below, it needs neither that layer's gathered output nor a ring sum of its ``W^T D^T``
    (dfa: of any ``F_l^T D^T``), only an all-reduce of the ``B x outputs`` logits.
    """
    layers = graph.layers
    if graph.gemv:
        splits = ["columns"] * len(layers)
        if not graph.pipelined and len(layers) > 1 and len(segments[0]) > 1:
            splits[0] = "rows"
        return splits
    splits = ["rows"] * len(layers)
    (o, i), seg = layers[-1], segments[-1]
    if (graph.algorithm in ("mbgd", "dfa") and len(layers) > 1 and len(seg) > 1
            and segments[-2] == seg and o <= i):
        splits[-1] = "columns"
    return splits


def bias_columns(graph: TrainingGraph, cfg, segments, blocks) -> list:
    """Per layer, where the bias is one more column of ``W`` (``[W | b]`` against a ``1``
    after the layer's input) instead of added by VOPs: the position in the layer's segment of
    the core whose column block holds it, ``0`` for a layer split by rows (every core holds
    its rows' biases; the golden trainer sums such a layer as one core), or ``None``.

    Only the GEMV kernels on a ring (``sgd``, ``dfa`` batch 1) fold the bias. In a layer split
    by columns whose input is an activation, only where it is free: on a core whose block,
    one column longer, still needs no more words per PE than the layer's longest block (of
    those, the one with the most room, the last of equals). The GEMV and the rank-1 update of
    that core then take the bias at no extra cycles, and no core spends its ``VOP``s on it
    (the forward's ``add``, the update's). A layer split by rows (the first, on the whole
    sample) folds where its longer rows cost its cores fewer cycles (GEMV and update, one
    more word per PE if the input fills its last) than the ``VOP``s they save.
    (docs/multicore.md; the golden trainer's ``bias_columns``.)
    """
    out = [None] * len(graph.layers)
    if not graph.gemv or graph.pipelined:
        return out
    splits = layer_splits(graph, segments)
    for index, parts in enumerate(blocks):
        if len(parts) < 2:
            continue
        if splits[index] == "rows":
            rows = max(hi - lo for lo, hi in parts)
            if _fold_saves_cycles(graph, cfg, rows, graph.layers[index][1]):
                out[index] = 0
            continue
        if index == 0:
            continue
        units = [cdiv(hi - lo, cfg.nr) for lo, hi in parts]
        room = [(cdiv(hi - lo + 1, cfg.nr), -p) for p, (lo, hi) in enumerate(parts)
                if cdiv(hi - lo + 1, cfg.nr) <= max(units)]
        if room:
            out[index] = -min(room)[1]
    return out


def output_bias_position(cfg, parts) -> int:
    """The position, in its segment, of the core whose column block of a GEMM output layer
    split by columns (``mbgd``, ``dfa`` with a batch) holds the bias column: the last core
    whose block, one column longer, fills no more row groups (``nr acc_lanes`` rows) of its
    update's GEMM, so that the bias costs that GEMM no phase (N1 on 32 ``paper-n1`` cores: a
    15-row block, not the last core's 16); the segment's last core if none has room."""
    group = cfg.nr * cfg.acc_lanes
    room = [p for p, (lo, hi) in enumerate(parts) if (hi - lo) % group]
    return room[-1] if room else len(parts) - 1


def _fold_saves_cycles(graph: TrainingGraph, cfg, rows: int, cols: int) -> bool:
    """Whether ``rows`` outputs over ``cols`` inputs take fewer cycles with the bias as a
    column (GEMV and ``GER`` one column wider) than with its ``VOP``s (the forward's ``add``;
    the update's ``add``, or its ``axpy``s with weight decay and momentum)."""
    opt = graph.optimizer
    flags = {"use_wd": int(opt.weight_decay > 0), "use_mom": int(opt.momentum > 0)}
    wider = sum(word_cycles(encode(op, rows=rows, cols=cols + 1, ldw=cdiv(cols + 1, cfg.nr),
                                   **extra), cfg)
                - word_cycles(encode(op, rows=rows, cols=cols, ldw=cdiv(cols, cfg.nr),
                                     **extra), cfg)
                for op, extra in ((Opcode.GEMV, {}), (Opcode.GER, flags)))
    vops = [VecOp.ADD, VecOp.ADD] if not any(flags.values()) else \
        [VecOp.ADD] + [VecOp.AXPY] * (1 + sum(flags.values()))
    saved = sum(word_cycles(encode(Opcode.VOP, fn=fn, len=rows), cfg) for fn in vops)
    return wider < saved


def with_utilization(phases: dict, nr: int) -> dict:
    """``{phase: {"cycles", "core_cycles", "macs", ...}}`` with each phase's ``utilization``:
    its model MACs over the PE cycles the working cores spent in it (``nr^2 x core_cycles``),
    0 for a phase no core spent time in. Where the cores run the same work this is the MACs
    over the PEs times the phase's cycles; where they differ (``cp``'s layers) it never
    passes 100 %, as a mix of one core's cycles with every core's MACs could."""
    return {phase: {**v, "utilization": v["macs"] / (nr * nr * v["core_cycles"])
                    if v["core_cycles"] else 0.0} for phase, v in phases.items()}


def input_name(layer: int) -> str:
    """What a layer's input is called in messages: ``x`` for the first, ``a{i}`` (the ReLU of
    layer ``i``) for the others."""
    return "x" if layer == 0 else f"a{layer - 1}"


def ring_emit(e: Emitter, core: int, words_by_core: dict) -> None:
    """Append core ``core``'s share of a collective (``RING`` words) to ``e``."""
    for word in words_by_core.get(core, ()):
        e.words.append(word)
        e.phases.append("ring")
        e.macs.append(0)


@dataclass
class Tensor:
    """A parameter or optimiser-state tensor and where it lives.

    ``kind`` is ``mema`` (2D round-robin tile, loaded with ``lda``), ``diag`` (a diagonal vector
    in MemB, loaded with ``ldv``), ``colrep`` (a column-replicated one, ``ldv layout=colrep``:
    the constant ``1`` after a folded bias's input) or ``spad`` (a row-major matrix in the SPAD,
    leading dimension ``ld``; ``transposed``: the SPAD holds its ``cols x rows`` transpose).
    ``rows x cols`` is the logical shape (vectors: ``rows`` = 1). ``bias``: a ``[W | b]``
    tensor's last column is the bias (not so for a block of columns without it).
    ``row_order`` (``mema``): stored row ``r`` is logical row ``row_order[r]`` (empty: in order;
    the piped collectives' layout, :func:`~.collectives.piped_permutation`).
    """

    name: str
    kind: str
    rows: int
    cols: int
    addr: int
    ld: int = 0
    transposed: bool = False
    bias: bool = True
    row_order: tuple = ()

    def __post_init__(self):
        self.row_order = tuple(int(r) for r in self.row_order)      # from JSON: a list


#: The opcodes of the MAC kernels (:meth:`CoreProgram.kernel_cycles`).
_MAC_OPCODES = frozenset([Opcode.GEMM.value, *(op.value for op in MAC_SEGMENTS)])


@dataclass
class CoreProgram:
    """One core's share of a compiled step: its program and the host's view of it."""

    program: list                     # instruction words of one step, ending in HALT
    phases: list                      # phase of each instruction
    macs: list                        # model MACs of each instruction
    tensors: list                     # parameters and optimiser state (Tensor)
    io: dict                          # SPAD addresses: inputs, targets, logits, ...
    constants: list = field(default_factory=list)   # (spad addr, rows, cols, ld, value bits)
    staging: int = 0                  # SPAD base for parameter transfers (sgd)
    staging_words: int = 0            # its size (0: the largest tensor fits whole)
    k_chunk: int | None = None
    spad_layout: tuple = ()           # what a SPAD too small for the usual layout changed

    @property
    def imem_need(self) -> int:
        """Instructions IMEM must hold: the program, or its largest overlay (``cp``'s image,
        :func:`~.cp.cp_image`)."""
        overlays = self.io.get("overlays")
        if not overlays:
            return len(self.program)
        return max(len(self.overlay_words(k)) for k in range(len(overlays)))

    def _extent(self, pc: int) -> list:
        """The words of the program that starts at ``pc``, to its ``halt`` (the programs'
        ends found once: a pipeline step asks at every step)."""
        ends = self.__dict__.get("_ends")
        if ends is None:
            ends = self.__dict__["_ends"] = [i for i, w in enumerate(self.program)
                                             if w & 0xFF == Opcode.HALT.value]
        return self.program[pc:ends[bisect.bisect_left(ends, pc)] + 1]

    def overlay_words(self, k: int) -> list:
        """What the host loads into IMEM from instruction 0 for overlay ``k``: its programs,
        one after another."""
        return [w for pc in self.io["overlays"][k] for w in self._extent(pc)]

    def locate(self, pc: int, loaded: int | None) -> tuple[int | None, int]:
        """Where the program at image address ``pc`` runs from: ``(overlay, IMEM address)``,
        in overlay ``loaded`` if it holds the program, else in the first after it that does
        (round the list: the order an epoch runs them in, :func:`~.cp.cp_overlays`);
        ``(None, pc)`` for an image without overlays."""
        overlays = self.io.get("overlays")
        if not overlays:
            return None, pc
        first = loaded or 0
        order = [(first + i) % len(overlays) for i in range(len(overlays))]
        k = next(k for k in order if pc in overlays[k])
        before = overlays[k][:overlays[k].index(pc)]
        return k, sum(len(self._extent(start)) for start in before)

    def executed(self, start: int = 0):
        """The instructions a run from ``start`` executes, to its first ``halt``: ``(word,
        phase, macs)`` each, a ``LOOP``'s body once per repetition, its addresses moved as
        the core moves them (:class:`~caterpillar.contract.isa.LoopState`)."""
        loop, pc = LoopState(), start
        while pc < len(self.program):
            word = self.program[pc]
            op, values = unpack(word)
            yield (relocate_word(word, loop.offsets) if loop.active else word,
                   self.phases[pc], self.macs[pc])
            if op == Opcode.HALT:
                return
            following = loop.next_pc(pc)
            if op == Opcode.LOOP:
                loop.begin(pc, values)
            pc = following

    def local_phase_report(self, cfg, start: int = 0) -> dict:
        """Per phase: cycles (``RING`` instructions excluded: their time depends on the
        neighbours) and model MACs of one step: the instructions from ``start`` to the first
        ``halt`` (``cp``'s image holds one program per kind of pipeline step). The run's first
        fetch and decode count in the first instruction's phase."""
        out = {p: {"cycles": 0, "macs": 0} for p in PHASES}
        if self.phases[start] != "ring":
            out[self.phases[start]]["cycles"] += RUN_START_CYCLES
        for word, phase, macs in self.executed(start):
            if phase != "ring":
                out[phase]["cycles"] += word_cycles(word, cfg)
            out[phase]["macs"] += macs
        return out

    def kernel_cycles(self, cfg, start: int = 0) -> dict:
        """Cycles of one step's MAC kernels (``gemm`` and :data:`MAC_SEGMENTS`'s opcodes), the
        instructions from ``start`` to the first ``halt``: ``kernels``, their whole cycles;
        ``mac_steps``, their MAC steps alone (:func:`word_mac_step_cycles`)."""
        out = {"kernels": 0, "mac_steps": 0}
        for word, _, _ in self.executed(start):
            if word & 0xFF in _MAC_OPCODES:
                out["kernels"] += word_cycles(word, cfg)
                out["mac_steps"] += word_mac_step_cycles(word, cfg)
        return out

    def to_meta(self) -> dict:
        """The JSON-able part (everything but the program words)."""
        meta = asdict(self)
        del meta["program"]
        return meta


@dataclass
class Compiled:
    """A training graph compiled for the ring of ``config`` (one core is a ring of one)."""

    graph: TrainingGraph
    config: CaterpillarConfig
    segments: list                    # per layer: its cores in ring order
    cores: dict                       # core -> CoreProgram (cores that run more than HALT)
    sources: list                     # SRC{k} of every core of the ring
    blocks: list                      # per layer: [(lo, hi)] per position in its segment
    #: The candidates the compiler passed over because their programs do not fit IMEM although
    #: they step faster (:func:`~.training._fastest`), fastest first.
    over_imem: list[Compiled] = field(default_factory=list)
    #: With ``kernels: auto`` and a choice (:attr:`~.TrainingGraph.kernel_choice`): the other
    #: kernels' step (a :class:`Compiled`), or why it does not compile (a message).
    other_kernels: Compiled | str | None = None

    @property
    def split(self) -> str:
        """How the layers are divided over their segments: ``columns`` (sgd: input columns
        per core) or ``rows`` (mbgd: output rows per core; see :attr:`splits`)."""
        return "columns" if self.graph.gemv else "rows"

    @property
    def splits(self) -> list[str]:
        """Each layer's split over its segment (:func:`layer_splits`)."""
        return layer_splits(self.graph, self.segments)

    @property
    def bias_columns(self) -> list:
        """Per layer, the position of the core holding the bias as a column of ``W``
        (:func:`bias_columns`), or ``None``."""
        return bias_columns(self.graph, self.config, self.segments, self.blocks)

    def golden_options(self) -> dict:
        """The :class:`~caterpillar.golden.trainer.GoldenTrainer` keywords that make it sum
        as this step does: the GEMM chunk, each layer's cores, the output layer's split and sum,
        the order of each layer's rows."""
        # A GEMV layer split by rows sums as on one core.
        cores = [1 if self.graph.gemv and split == "rows" else len(seg)
                 for seg, split in zip(self.segments, self.splits)]
        return {"k_chunk": self.k_chunk, "cores": cores, "bias_columns": self.bias_columns,
                "output_columns": not self.graph.gemv and self.splits[-1] == "columns",
                "logits_chain": self.logits_chain,
                "row_orders": self.row_orders, "output_bias": self.output_bias}

    @property
    def logits_chain(self) -> tuple | bool:
        """``sgd`` (the GEMV kernels, not pipelined): the output layer's partials are chained,
        in segments of these lengths (its programs say: ``io["logits_segments"]``; ``True``
        on one core); otherwise ``False``."""
        if not self.graph.gemv or self.graph.pipelined:
            return False
        lengths = self.cores[self.segments[-1][0]].io.get("logits_segments")
        return tuple(lengths) if lengths else True

    @property
    def output_bias(self) -> int | None:
        """A GEMM output layer split by columns: the position in its segment of the core
        holding its bias column (its programs say: :func:`output_bias_position`, or the last
        core in the compact layout), else ``None``."""
        return self.cores[self.segments[-1][0]].io.get("output_bias")

    @property
    def row_orders(self) -> list:
        """Per layer, the order in which the cores store the rows of its ``W`` (``()``: in
        order; the same on every core that holds the layer)."""
        orders = [()] * len(self.graph.layers)
        for core in self.cores.values():
            for t in core.tensors:
                name = t.name.lstrip("PW")
                if t.name[:1] in "PW" and name.isdigit() and t.row_order:
                    orders[int(name)] = t.row_order
        return orders

    @property
    def working_cores(self) -> tuple:
        """Every core that holds a share of the model, in order of first appearance."""
        return tuple(dict.fromkeys(k for seg in self.segments for k in seg))

    @property
    def spad_layout(self) -> tuple:
        """What a SPAD too small for the usual layout changed (:attr:`CoreProgram.spad_layout`
        of every core, each note once)."""
        return tuple(dict.fromkeys(n for c in self.cores.values() for n in c.spad_layout))

    def placement_text(self) -> str:
        """``, C cores 0,1/2,3 (rows split)`` on a ring (``rows split, the output layer by
        columns`` where :attr:`splits` say so, which layers' biases are columns of ``W``,
        :attr:`bias_columns`, which layers use the piped collectives, :attr:`row_orders`, the
        segments of the logits' chain, :attr:`logits_chain`, and how the SPAD is laid out when
        it has no room for the usual layout, :attr:`spad_layout`, and which layers share a
        segment when there are several), nothing on one core: for messages."""
        if self.config.cores == 1:
            return ""
        where = "/".join(",".join(map(str, s)) for s in dict.fromkeys(self.segments))
        split = f"{self.split} split"
        if self.splits[0] != self.split:
            split += f", the first layer by {self.splits[0]}"
        if self.splits[-1] != self.split:
            split += f", the output layer by {self.splits[-1]}"
        folded = [str(index) for index, where in enumerate(self.bias_columns)
                  if where is not None]
        if folded:
            split += f", the biases of layers {','.join(folded)} as columns of W"
        piped = [str(index) for index, order in enumerate(self.row_orders) if order]
        if piped:
            split += (f", layer{'s' if len(piped) > 1 else ''} {','.join(piped)} summed and "
                      "gathered by piped collectives")
        chain = self.logits_chain
        if isinstance(chain, tuple) and len(chain) > 1:
            split += f", the logits chained in segments of {','.join(map(str, chain))} cores"
        split += "".join(f", {note}" for note in self.spad_layout)
        distinct = list(dict.fromkeys(self.segments))
        if 1 < len(distinct) < len(self.segments):
            for seg in distinct:
                held = [str(k) for k, other in enumerate(self.segments) if other == seg]
                if len(held) > 1:
                    split += f", layers {','.join(held)} on cores {','.join(map(str, seg))}"
        return f", {len(self.working_cores)} cores {where} ({split})"

    @property
    def k_chunk(self):
        """Longest GEMM (the same on every core)."""
        return next(iter(self.cores.values())).k_chunk

    @property
    def instructions(self) -> int:
        """Instructions IMEM must hold on the fullest core: its program, or its largest
        overlay (:attr:`CoreProgram.imem_need`)."""
        return max(c.imem_need for c in self.cores.values())

    def programs(self) -> list:
        """Every core's program (a lone HALT on idle cores)."""
        return [self.cores[k].program if k in self.cores else [encode(Opcode.HALT)]
                for k in range(self.config.cores)]

    def predicted_cycles(self, start_pcs=None) -> list[int]:
        """Every core's cycles per step, from the ring timing model (computed once per
        ``start_pcs``, instruction 0 of every core by default)."""
        return list(self._prediction(start_pcs)[0])

    def predicted_events(self, start_pcs=None) -> list[dict]:
        """Every core's event counters of a step (``{name: events}``, the names of
        :data:`~caterpillar.contract.isa.EVENT_COUNTERS`), from the same model."""
        return [dict(e) for e in self._prediction(start_pcs)[1]]

    def timeline(self, core: int | None = None, start_pcs=None) -> tuple[int, list]:
        """``core`` (by default the last to finish the step, the first of equals) and its
        :class:`~caterpillar.software.isasim.ring.TimelineEntry` list of the step from
        ``start_pcs`` (instruction 0 by default): where its cycles go, instruction by
        instruction, waits for the ring included."""
        predicted = self.predicted_cycles(start_pcs)
        if core is None:
            core = predicted.index(max(predicted))
        if not 0 <= core < self.config.cores:
            cores = self.config.cores
            which = "only core is 0" if cores == 1 else f"cores are 0-{cores - 1}"
            raise ValueError(f"core {core} is not on the ring of {self.config.name}, whose "
                             f"{which}; name one of them")
        return core, ring_timeline(self.programs(), self.config, self.sources, start_pcs)[core]

    def sample_columns(self, core: int) -> tuple[int, int]:
        """The columns ``(lo, hi)`` of a sample that the host stages on ``core`` for a step
        of the GEMV kernels: its input block of the first layer, the whole sample when that
        layer is split by rows, none on a core outside the first segment."""
        first = self.segments[0]
        if core not in first:
            return (0, 0)
        if self.splits[0] == "rows":
            return (0, self.graph.sizes[0])
        return self.blocks[0][first.index(core)]

    def host_words(self, *, entering: bool = True, leaving: bool = True) -> list[int]:
        """Every core's SPAD words the host writes and reads around one step (what its
        ``HOST_WORDS`` counter adds): the inputs and targets staged where the step reads them
        and the logits read back from the first core of the last segment (from each core its
        samples' where the logits are reduce-scattered: ``io["logits_scattered"]``). For ``cp`` and
        ``mbcp`` a pipeline step, with a group ``entering`` the first layer and one
        ``leaving`` the output layer (its targets staged, its logits read)."""
        graph, io_of = self.graph, {k: c.io for k, c in self.cores.items()}
        first, last = self.segments[0], self.segments[-1]
        batch, classes = graph.batch, graph.sizes[-1]
        words = [0] * self.config.cores
        for k, io in io_of.items():
            if graph.pipelined:
                staged = (batch * io["ld_inputs"] if entering and k in first else 0) + \
                    (batch * io["ld_classes"] if leaving and k in last else 0)
                read = batch * io["ld_classes"] if leaving and k == last[0] else 0
            elif graph.gemv:
                lo, hi = self.sample_columns(k)
                staged = batch * (hi - lo + classes) if k in first or k in last else 0
                read = batch * classes if k == last[0] else 0
            else:
                staged = 0
                if k in first or k in last:
                    staged = graph.sizes[0] * io["ld_batch"] + batch * io["ld_classes"] + (
                        batch * io["ld_inputs"] if io["inputs"] is not None else 0)
                read = batch * io["ld_classes"] if k == last[0] else 0
                if io.get("logits_scattered") and k in last:    # each core its samples'
                    lo, hi = ring_blocks(batch, len(last), 1)[last.index(k)]
                    read = (hi - lo) * io["ld_classes"]
            words[k] = staged + read
        return words

    def _prediction(self, start_pcs):
        start = tuple(start_pcs or [0] * self.config.cores)
        cache = self.__dict__.setdefault("_predictions", {})
        if start not in cache:
            cache[start] = predict_ring(self.programs(), self.config, self.sources, start)
        return cache[start]

    @property
    def step_cycles(self) -> int:
        """Predicted cycles of one step (until the last core halts)."""
        return max(self.predicted_cycles())

    def phase_report(self) -> dict:
        """Per phase: cycles on the critical core and model MACs summed over the cores.

        The critical core is the one with the most local work (its instructions but ``RING``,
        at their fixed cycles; the slowest to finish among equals): where cores run different
        work, as ``cp``'s layers do, the step cannot be shorter than its local work. Its
        ``ring`` phase is the rest of the step (collectives and waiting for neighbours)."""
        return self.step_report()[1]

    def phase_utilization(self) -> dict:
        """:meth:`phase_report` with each phase's utilization (:func:`with_utilization`)."""
        return with_utilization(self.phase_report(), self.config.nr)

    def kernel_cycles(self, start_pcs=None) -> dict:
        """The slowest core's :meth:`CoreProgram.kernel_cycles` of the step that starts at
        ``start_pcs`` (each count's own slowest core): the shortest step its MAC kernels, or
        their MAC steps alone, allow."""
        start_pcs = start_pcs or [0] * self.config.cores
        per_core = [c.kernel_cycles(self.config, start_pcs[k]) for k, c in self.cores.items()]
        return {key: max(c[key] for c in per_core) for key in ("kernels", "mac_steps")}

    def step_report(self, start_pcs=None) -> tuple[list, dict]:
        """Every core's predicted cycles of the step that starts at ``start_pcs`` (instruction
        0 by default; ``cp``'s images hold one step program per kind of pipeline step) and its
        :meth:`phase_report`, each phase with ``core_cycles``: the working cores' cycles in
        it, summed (for ``ring``, each core's step less its local work)."""
        start_pcs = start_pcs or [0] * self.config.cores
        predicted = self.predicted_cycles(start_pcs)
        reports = {k: c.local_phase_report(self.config, start_pcs[k])
                   for k, c in self.cores.items()}
        local = {k: sum(v["cycles"] for p, v in r.items() if p != "ring")
                 for k, r in reports.items()}
        critical = max(self.cores, key=lambda k: (local[k], predicted[k]))
        step = max(predicted)
        for k, r in reports.items():
            r["ring"]["cycles"] = step - local[k]
        report = reports[critical]
        working = [reports[k] for k in self.working_cores]
        for phase in report:
            report[phase]["core_cycles"] = sum(r[phase]["cycles"] for r in working)
            report[phase]["macs"] = sum(r[phase]["macs"] for r in reports.values())
        return predicted, report

    def scalar_values(self, lr: float) -> dict:
        """Scalar-register bit patterns for a step at learning rate ``lr``."""
        opt = self.graph.optimizer
        s = scalars(self.config.operand, lr=lr, batch=self.graph.batch,
                    momentum=opt.momentum, weight_decay=opt.weight_decay,
                    outputs=self.graph.sizes[-1])
        return {SCALAR_REGS[k]: v for k, v in s.items()}

    def disassemble(self) -> str:
        """Assembly text of every working core's step program, one instruction per line with
        its phase (a header line per core when there are several)."""
        lines = []
        for k, core in sorted(self.cores.items()):
            if len(self.cores) > 1:
                lines.append(f"; core {k}")
            lines += [f"{decode(w).text():<100s} ; {p}"
                      for w, p in zip(core.program, core.phases)]
        return "\n".join(lines)

    # -- files -----------------------------------------------------------------------------

    def save(self, path) -> None:
        """Write the compiled step to a ``.npz`` (no pickle), atomically."""
        meta = {"graph": self.graph.to_dict(), "config": self.config.to_dict(),
                "segments": [list(s) for s in self.segments], "sources": list(self.sources),
                "blocks": [[list(b) for b in parts] for parts in self.blocks],
                "cores": {str(k): c.to_meta() for k, c in self.cores.items()}}
        arrays = {f"program{k}": np.array([[(w >> (64 * q)) & ((1 << 64) - 1)
                                            for q in range(_QWORDS)] for w in c.program],
                                          dtype=np.uint64).reshape(-1, _QWORDS)
                  for k, c in self.cores.items()}
        atomic_savez(path, meta=np.array(json.dumps(meta)), **arrays)


def load_compiled(path) -> Compiled:
    """Read a step written by :meth:`Compiled.save`; raise :class:`CheckpointError` naming the
    file and what is wrong with it."""
    meta_array = load_npz(path, ("meta",), limits={"meta": _META_LIMIT})["meta"]

    def bad(what):
        return CheckpointError(f"{path} is not a compiled caterpillar program: {what}")

    if meta_array.dtype.kind != "U" or meta_array.shape != ():
        raise bad("its meta is not a JSON text")
    try:
        meta = json.loads(str(meta_array))
        graph = TrainingGraph.from_dict(meta["graph"])
        cfg = CaterpillarConfig.from_dict(meta["config"])
        segments = [tuple(int(k) for k in s) for s in meta["segments"]]
        sources = [int(s) for s in meta["sources"]]
        blocks = [[tuple(int(v) for v in b) for b in parts] for parts in meta["blocks"]]
        cores = {}
        for key, core_meta in meta["cores"].items():
            k = int(key)
            if not 0 <= k < cfg.cores:
                raise bad(f"core {k} is outside the config's {cfg.cores} cores")
            name = f"program{k}"
            # No program longer than IMEM (an image in overlays: OVERLAY_IMEMS of them) is
            # read at all.
            imems = OVERLAY_IMEMS if core_meta.get("io", {}).get("overlays") else 1
            words = load_npz(path, (name,), limits={
                name: imems * cfg.imem_words * INSTR_BITS // 8})[name]
            if words.dtype != np.uint64 or words.ndim != 2 or words.shape[1] != _QWORDS:
                raise bad(f"program{k} must be a uint64 array of shape (n, {_QWORDS})")
            program = [sum(int(v) << (64 * q) for q, v in enumerate(row)) for row in words]
            tensors = [Tensor(**t) for t in core_meta.pop("tensors")]
            core_meta["constants"] = [tuple(c) for c in core_meta["constants"]]
            core_meta["spad_layout"] = tuple(map(str, core_meta.get("spad_layout", ())))
            core = CoreProgram(program, tensors=tensors, **core_meta)
            _check_program(core, cfg, k, bad)
            cores[k] = core
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, GraphError, ConfigError) as e:
        raise bad(f"{type(e).__name__}: {e}") from None
    if not cores:
        raise bad("it holds no core's program")
    if len(segments) != len(graph.layers) or len(sources) != cfg.cores:
        raise bad("its placement does not match its graph and config")
    return Compiled(graph, cfg, segments, cores, sources, blocks)


def _check_program(core: CoreProgram, cfg, k: int, bad) -> None:
    n = len(core.program)
    if n == 0:
        raise bad(f"the program of core {k} is empty")
    overlays = core.io.get("overlays")
    if n > cfg.imem_words * (OVERLAY_IMEMS if overlays else 1):
        raise bad(f"the program of core {k} has {n} instructions; IMEM holds {cfg.imem_words}")
    if len(core.phases) != n or len(core.macs) != n:
        raise bad(f"core {k} has {n} instructions but {len(core.phases)} phases and "
                  f"{len(core.macs)} MAC counts")
    if any(p not in PHASES for p in core.phases):
        raise bad(f"core {k} names a phase outside {', '.join(PHASES)}")
    for pc, word in enumerate(core.program):
        try:
            decode(word)
        except IsaError as e:
            raise bad(f"core {k}, instruction {pc}: {e}") from None
    if decode(core.program[-1]).op != Opcode.HALT:
        raise bad(f"the program of core {k} does not end with halt")
    if overlays:
        starts = {0} | {pc + 1 for pc, w in enumerate(core.program[:-1])
                        if w & 0xFF == Opcode.HALT.value}
        if not all(isinstance(o, list) and o and all(pc in starts for pc in o)
                   for o in overlays):
            raise bad(f"core {k}'s overlays are not lists of its programs' first instructions")
        if core.imem_need > cfg.imem_words:
            raise bad(f"an overlay of core {k} has {core.imem_need} instructions; IMEM holds "
                      f"{cfg.imem_words}")
        if any(entry[3] not in {pc for o in overlays for pc in o}
               for entry in core.io.get("entries", [])):
            raise bad(f"core {k} has a step program in no overlay")
    for t in core.tensors:
        if t.row_order and sorted(t.row_order) != list(range(t.rows)):
            raise bad(f"core {k}'s tensor {t.name}: its row order is not an order of its "
                      f"{t.rows} rows")
    if not 0 <= core.staging <= core.staging + core.staging_words <= cfg.spad_words:
        raise bad(f"core {k}'s parameter staging area ({core.staging_words} words at "
                  f"{core.staging}) is outside the SPAD's {cfg.spad_words} words")
