"""Runs a compiled training step on a device: every working core's share, one start.

A :class:`Trainer` drives the :class:`~caterpillar.software.compiler.program.Compiled` step
through a :class:`~caterpillar.software.driver.ring.RingDriver`, so one core (a ring of one) and
a ring run the same code. Each working core is served by a :class:`CoreTrainer` through its
window of the host bus: its program stays in IMEM from instruction 0; parameters move through
its SPAD (for ``sgd`` each tensor is staged in the SPAD and moved into MemA/MemB, or back, by a
one-instruction transfer program written just after the step program; for ``mbgd`` the
parameters live in the SPAD already). A step writes the sample(s) and target(s) into the SPAD,
starts every core together, and reads the logits back: a handful of bulk host transfers per
step, never a call per cycle. Every core's cycle count must equal the compiler's prediction.
"""

from __future__ import annotations

import numpy as np

from caterpillar.contract.isa import Layout, Opcode, encode
from caterpillar.golden import numerics as gn
from caterpillar.golden.collectives import ring_blocks
from caterpillar.software.compiler.cp import cp_step_key
from caterpillar.software.compiler.cp_ring import cp_bias_blocks
from caterpillar.software.compiler.program import Compiled, CoreProgram, ceil_to
from caterpillar.software.driver.core import Driver
from caterpillar.software.driver.ring import RingDriver, RingRun

__all__ = ["Trainer", "CoreTrainer", "StepMismatch"]


class StepMismatch(AssertionError):
    """The device's cycles (or data) differ from what the compiler predicted."""


class CoreTrainer:
    """One core's share of a compiled step, through ``driver``.

    Parameters
    ----------
    core : CoreProgram
    compiled : Compiled
        The whole step (graph, config, scalar values).
    driver : Driver
        The core's driver (a window of a ring device, or a one-core device).
    """

    def __init__(self, core: CoreProgram, compiled: Compiled, driver: Driver):
        self.core, self.compiled = core, compiled
        self.cfg = cfg = compiled.config
        self.graph = compiled.graph
        self.driver = driver
        if driver.config.get("nr") != cfg.nr:
            raise ValueError(f"the device has nr={driver.config.get('nr')}, the program was "
                             f"compiled for nr={cfg.nr}")
        # An image in overlays (cp_image) starts with the first; pipeline steps load the others.
        self.overlay = 0 if core.io.get("overlays") else None
        self.driver.load_program(core.program if self.overlay is None
                                 else core.overlay_words(0))
        self.overlay_loads = 0
        self.transfer_pc = core.imem_need
        self.one = int(gn.from_float(1.0, cfg.operand))
        self._lr = None
        for addr, rows, cols, ld, what in core.constants:
            value = self.one if what == "one" else int(what)
            block = np.zeros((rows, ld), dtype=np.uint64)
            block[:, :cols] = value
            self.driver.write_spad(addr, block.ravel())

    # -- parameters ------------------------------------------------------------------------

    def start_pc(self, pc: int) -> int:
        """Where the step program at image address ``pc`` starts in IMEM, after loading its
        overlay if another one is there (an image in overlays, :func:`~caterpillar.software.
        compiler.cp.cp_image`)."""
        overlay, local = self.core.locate(pc, self.overlay)
        if overlay != self.overlay:
            self.driver.load_program(self.core.overlay_words(overlay))
            self.overlay = overlay
            self.overlay_loads += 1
        return local

    def _transfer(self, word):
        self.driver.load_program([word, encode(Opcode.HALT)], base=self.transfer_pc)
        self.driver.run(start_pc=self.transfer_pc)

    def _put(self, tensor, bits):
        nr = self.cfg.nr
        bits = np.asarray(bits, dtype=np.uint64)
        if len(tensor.row_order):
            bits = bits.reshape(tensor.rows, tensor.cols)[list(tensor.row_order)]
        if tensor.kind == "spad":
            matrix = bits.reshape(tensor.rows, tensor.cols)
            matrix = matrix.T if tensor.transposed else matrix
            block = np.zeros((matrix.shape[0], tensor.ld), dtype=np.uint64)
            block[:, :matrix.shape[1]] = matrix
            self.driver.write_spad(tensor.addr, block.ravel())
        elif tensor.kind == "mema":
            lds = ceil_to(tensor.cols, nr)
            block = np.zeros((tensor.rows, lds), dtype=np.uint64)
            block[:, :tensor.cols] = bits.reshape(tensor.rows, tensor.cols)
            for r0, r1 in self._chunks(tensor):
                self.driver.write_spad(self.core.staging, block[r0:r1].ravel())
                self._transfer(self._move_word(Opcode.LDA, tensor, self.core.staging, r0, r1))
        else:
            for r0, r1 in self._chunks(tensor):
                self.driver.write_spad(self.core.staging, bits.ravel()[r0:r1])
                self._transfer(self._move_word(Opcode.LDV, tensor, self.core.staging, r0, r1))

    def _chunks(self, tensor) -> list[tuple[int, int]]:
        """The ``[r0, r1)`` pieces (rows of a MemA tile, elements of a vector) in which
        ``tensor`` passes through the staging area: whole if it fits, else groups of ``nr``
        (the compiler's staging holds ``nr`` rows of the widest tensor at least)."""
        nr, room = self.cfg.nr, self.core.staging_words
        count = tensor.rows if tensor.kind == "mema" else tensor.cols
        per = ceil_to(tensor.cols, nr) if tensor.kind == "mema" else 1
        step = count if not room or count * per <= room else room // per // nr * nr
        # An empty tensor (a core without outputs of cp's last layer: no bias) moves nothing.
        return [(r0, min(count, r0 + step)) for r0 in range(0, count, step)] if count else []

    def _move_word(self, op, tensor, addr, r0, r1) -> int:
        """The ``lda``/``sta`` (rows ``r0:r1`` of a MemA tile) or ``ldv``/``stv`` (elements
        ``r0:r1`` of a diagonal vector; ``r0`` a multiple of ``nr``) between ``addr`` and
        ``tensor``'s place."""
        nr = self.cfg.nr
        if tensor.kind == "mema":
            return encode(op, spad=addr, mema=tensor.addr + r0 // nr * tensor.ld, rows=r1 - r0,
                          cols=tensor.cols, lds=ceil_to(tensor.cols, nr), ldm=tensor.ld)
        return encode(op, spad=addr, memb=tensor.addr + r0 // nr, len=r1 - r0,
                      layout=Layout.COLREP if tensor.kind == "colrep" else Layout.DIAG)

    def _dump_plan(self):
        """SPAD offsets for storing every PE-resident tensor with one program, or None: they
        must fit the staging area (the SPAD's free words: those after it may hold buffers
        allocated from the SPAD's end, as cp's relayed deltas, which a step in the middle of
        an epoch still needs); the dump program goes after the step program in IMEM."""
        if hasattr(self, "_dump"):
            return self._dump
        nr, words, plan = self.cfg.nr, [], {}
        addr = self.core.staging
        for t in self.core.tensors:
            if t.kind == "spad" or t.name.startswith(("F", "one")) or not t.rows * t.cols:
                continue        # they never change, or hold nothing
            size = t.rows * ceil_to(t.cols, nr) if t.kind == "mema" else ceil_to(t.cols, nr)
            plan[t.name] = addr
            words.append(self._store_word(t, addr))
            addr += size
        end = self.core.staging + self.core.staging_words if self.core.staging_words \
            else self.cfg.spad_words
        fits = addr <= end and self.transfer_pc + len(words) + 1 <= self.cfg.imem_words
        self._dump = (plan, words + [encode(Opcode.HALT)]) if plan and fits else None
        return self._dump

    def _store_word(self, tensor, addr, r0=0, r1=None) -> int:
        """The ``sta``/``stv`` of rows (elements) ``r0:r1`` of ``tensor`` (all by default)."""
        if r1 is None:
            r1 = tensor.rows if tensor.kind == "mema" else tensor.cols
        return self._move_word(Opcode.STA if tensor.kind == "mema" else Opcode.STV, tensor,
                               addr, r0, r1)

    def _read_staged(self, tensor, addr, r0=0, r1=None) -> np.ndarray:
        if tensor.kind == "mema":
            rows = (tensor.rows if r1 is None else r1) - r0
            lds = ceil_to(tensor.cols, self.cfg.nr)
            flat = self.driver.read_spad(addr, rows * lds)
            return flat.reshape(rows, lds)[:, :tensor.cols].copy()
        return self.driver.read_spad(addr, (tensor.cols if r1 is None else r1) - r0)

    def _get(self, tensor, staged=None) -> np.ndarray:
        stored = self._get_stored(tensor, staged)
        if not len(tensor.row_order):
            return stored
        logical = np.empty_like(stored)
        logical[list(tensor.row_order)] = stored
        return logical

    def _get_stored(self, tensor, staged=None) -> np.ndarray:
        if staged is not None and tensor.name in staged:
            return self._read_staged(tensor, staged[tensor.name])
        if tensor.kind == "spad":
            rows, cols = (tensor.cols, tensor.rows) if tensor.transposed else \
                (tensor.rows, tensor.cols)
            flat = self.driver.read_spad(tensor.addr, rows * tensor.ld)
            matrix = flat.reshape(rows, tensor.ld)[:, :cols]
            return (matrix.T if tensor.transposed else matrix).copy()
        pieces = []
        for r0, r1 in self._chunks(tensor):
            self._transfer(self._store_word(tensor, self.core.staging, r0, r1))
            pieces.append(self._read_staged(tensor, self.core.staging, r0, r1))
        return np.concatenate(pieces) if pieces else np.zeros(0, np.uint64)

    def load_parameters(self, weights, moments=None) -> None:
        """Write ``[(W, b), ...]`` and optionally the momentum ``[(mW, mb), ...]`` (bits);
        ``(None, None)`` skips a layer this core does not hold."""
        by_name = {t.name: t for t in self.core.tensors}
        moments = moments or [(None, None) if w is None else
                              (np.zeros_like(np.asarray(w, dtype=np.uint64)),
                               np.zeros_like(np.asarray(b, dtype=np.uint64)))
                              for w, b in weights]
        for index, ((w, b), (mw, mb)) in enumerate(zip(weights, moments)):
            if w is None:                   # a layer another core holds (a ring's share)
                continue
            w, b = np.asarray(w, dtype=np.uint64), np.asarray(b, dtype=np.uint64)
            if f"P{index}" in by_name:
                self._put(by_name[f"P{index}"], _with_bias(by_name[f"P{index}"], w, b))
                if f"M{index}" in by_name:
                    self._put(by_name[f"M{index}"], _with_bias(by_name[f"M{index}"], mw, mb))
                continue
            self._put(by_name[f"W{index}"], w)
            self._put(by_name[f"b{index}"], b)
            if f"mW{index}" in by_name:
                self._put(by_name[f"mW{index}"], mw)
                self._put(by_name[f"mb{index}"], mb)
        for t in self.core.tensors:
            if t.name.startswith("one"):    # the 1 after a block whose W holds the bias
                self._put(t, np.r_[np.zeros(t.cols - 1, np.uint64), np.uint64(self.one)])

    def load_feedback(self, feedback) -> None:
        """Write ``dfa``'s feedback matrices ``[F_0, ...]`` (bits; ``None`` skips one this core
        does not hold)."""
        by_name = {t.name: t for t in self.core.tensors}
        for index, f in enumerate(feedback):
            if f is not None and f"F{index}" in by_name:
                self._put(by_name[f"F{index}"], np.asarray(f, dtype=np.uint64))

    def read_parameters(self):
        """Return ``(weights, moments)`` as bit patterns (moments are zeros without momentum)."""
        by_name = {t.name: t for t in self.core.tensors}
        weights, moments = [], []
        dump = self._dump_plan()
        staged = None
        if dump is not None:
            staged, words = dump
            self.driver.load_program(words, base=self.transfer_pc)
            self.driver.run(start_pc=self.transfer_pc)
        get = lambda name: self._get(by_name[name], staged)  # noqa: E731
        for index, (o, i) in enumerate(self.graph.layers):
            if f"P{index}" not in by_name and f"W{index}" not in by_name:
                weights.append((None, None))        # held by other cores of a ring
                moments.append((None, None))
                continue
            if f"P{index}" in by_name:
                p = by_name[f"P{index}"]
                weights.append(_split_bias(p, self._get(p)))
                if f"M{index}" in by_name:
                    moments.append(_split_bias(p, self._get(by_name[f"M{index}"])))
                else:
                    moments.append(tuple(np.zeros_like(v) for v in weights[-1]))
                continue
            weights.append((get(f"W{index}"), get(f"b{index}")))
            if f"mW{index}" in by_name:
                moments.append((get(f"mW{index}"), get(f"mb{index}")))
            else:
                moments.append((np.zeros((o, i), np.uint64), np.zeros(o, np.uint64)))
        return weights, moments

    # -- steps -------------------------------------------------------------------------------

    def set_lr(self, lr: float) -> None:
        """Write the scalar registers for learning rate ``lr`` (skipped if unchanged)."""
        if lr == self._lr:
            return
        for reg, bits in self.compiled.scalar_values(lr).items():
            self.driver.set_scalar(reg, bits)
        self._lr = lr

    def _targets(self, targets) -> np.ndarray:
        classes = self.graph.sizes[-1]
        if self.graph.loss == "softmax_ce":
            labels = np.asarray(targets).reshape(-1)
            t = np.zeros((len(labels), classes), dtype=np.uint64)
            t[np.arange(len(labels)), labels.astype(np.int64)] = self.one
            return t
        return np.asarray(targets, dtype=np.uint64).reshape(-1, classes)

    def stage(self, x, targets) -> None:
        """Write inputs ``x`` (bits, ``batch x in``) and targets (labels for ``softmax_ce``,
        bit patterns ``batch x outputs`` for ``mse``) where the step program reads them."""
        io = self.core.io
        x = np.asarray(x, dtype=np.uint64).reshape(self.graph.batch, -1)
        t = self._targets(targets)
        classes = self.graph.sizes[-1]
        if self.graph.gemv:
            # One sample after the other, ld_inputs and ld_classes words apart.
            for k in range(x.shape[0]):
                self.driver.write_spad(io["inputs"] + k * io["ld_inputs"], x[k])
                self.driver.write_spad(io["targets"] + k * io["ld_classes"], t[k])
        else:
            ldb, ldc = io["ld_batch"], io["ld_classes"]
            xt = np.zeros((x.shape[1], ldb), dtype=np.uint64)
            xt[:, :x.shape[0]] = x.T
            self.driver.write_spad(io["inputs_t"], xt.ravel())
            # The batch-major copy [x | 1] too, where the step reads one: inputs are data, so
            # the host lays them out.
            if io["inputs"] is not None:
                xb = np.zeros((x.shape[0], io["ld_inputs"]), dtype=np.uint64)
                xb[:, :x.shape[1]] = x
                xb[:, x.shape[1]] = self.one
                self.driver.write_spad(io["inputs"], xb.ravel())
            tt = np.zeros((t.shape[0], ldc), dtype=np.uint64)
            tt[:, :classes] = t
            self.driver.write_spad(io["targets"], tt.ravel())

    def group_logits(self) -> np.ndarray:
        """Read a pipeline step's logits (``cp``, ``mbcp``: bits, ``batch x outputs``)."""
        io, classes = self.core.io, self.graph.sizes[-1]
        flat = self.driver.read_spad(io["logits"], self.graph.batch * io["ld_classes"])
        return flat.reshape(self.graph.batch, io["ld_classes"])[:, :classes]

    def logits(self, samples=None) -> np.ndarray:
        """Read the step's logits (bits, ``batch x outputs``), or those of the samples
        ``(lo, hi)`` only (a core of a ring holding its samples' logits:
        ``io["logits_scattered"]``)."""
        io, classes = self.core.io, self.graph.sizes[-1]
        if self.graph.gemv:
            return np.stack([self.driver.read_spad(io["logits"] + k * io["ld_classes"], classes)
                             for k in range(self.graph.batch)])
        ldc = io["ld_classes"]
        lo, hi = samples or (0, self.graph.batch)
        flat = self.driver.read_spad(io["logits"] + lo * ldc, (hi - lo) * ldc)
        return flat.reshape(hi - lo, ldc)[:, :classes]


def _check_host_words(counted: list, run: RingRun, planned: list, what: str) -> None:
    """Raise :class:`StepMismatch` unless every core's ``HOST_WORDS`` equals the words the
    compiled plan moves (:meth:`~caterpillar.software.compiler.program.Compiled.host_words`);
    then add them to the run's events as ``host_words`` (the energy model prices them)."""
    if counted != planned:
        raise StepMismatch(f"{what}: the host moved {counted} words per core; the plan moves "
                           f"{planned}")
    for events, words in zip(run.events, counted, strict=True):
        events["host_words"] = words


def _rows(rows, ld) -> np.ndarray:
    """``rows`` (bits) laid out one after the other ``ld`` words apart, zero-padded."""
    out = np.zeros((rows.shape[0], ld), dtype=np.uint64)
    out[:, :rows.shape[1]] = rows
    return out.ravel()


def _with_bias(tensor, w, b) -> np.ndarray:
    """``[W | b]`` as ``tensor`` holds it (``W`` alone for a column block without the bias)."""
    w = np.asarray(w, dtype=np.uint64)
    if not tensor.bias:
        return w
    return np.concatenate([w, np.asarray(b, dtype=np.uint64)[:, None]], axis=1)


def _split_bias(tensor, p) -> tuple:
    """``(W, b)`` of ``tensor``'s ``[W | b]`` (an empty ``b`` for a block without the bias)."""
    if not tensor.bias:
        return p.copy(), np.zeros(0, dtype=np.uint64)
    return p[:, :-1].copy(), p[:, -1].copy()


class Trainer:
    """Train through ``device`` with ``compiled`` (any number of cores).

    Parameters
    ----------
    compiled : Compiled
    device : Device
        A ring device whose config equals the compiled one, or a one-core device for a
        one-core step.
    """

    def __init__(self, compiled: Compiled, device):
        self.compiled = compiled
        self.graph = compiled.graph
        self.ring = RingDriver(device)
        if len(self.ring.cores) != compiled.config.cores:
            raise ValueError(f"the device has {len(self.ring.cores)} core(s); the step was "
                             f"compiled for {compiled.config.cores}")
        self.ring.set_sources(compiled.sources)
        self.trainers = {k: CoreTrainer(c, compiled, self.ring.cores[k])
                         for k, c in compiled.cores.items()}
        for k, program in enumerate(compiled.programs()):
            if k not in compiled.cores:
                self.ring.cores[k].load_program(program)
        self.predicted = compiled.predicted_cycles()
        self.start_pcs = [0] * compiled.config.cores
        # cp on a ring: each position of a layer's segment holds a block of its bias.
        self.bias_blocks = None
        if self.graph.pipelined and compiled.config.cores > 1:
            self.bias_blocks = cp_bias_blocks(self.graph, compiled.config, compiled.segments)

    @property
    def step_cycles(self) -> int:
        """Predicted cycles of one step (the last core's)."""
        return max(self.predicted)

    # -- parameters ----------------------------------------------------------------------

    def _shares(self, pairs, core):
        """Core ``core``'s share of ``[(W, b), ...]``; ``(None, None)`` for other layers."""
        c = self.compiled
        last, folds = len(c.blocks) - 1, c.bias_columns
        out = []
        for index, (w, b) in enumerate(pairs):
            seg = c.segments[index]
            if core not in seg:
                out.append((None, None))
                continue
            position = seg.index(core)
            w, b = np.asarray(w, dtype=np.uint64), np.asarray(b, dtype=np.uint64)
            lo, hi = c.blocks[index][position]
            if c.splits[index] == "columns" and c.split == "rows":
                # mbgd's output layer: a column block, the bias with one (Compiled.output_bias).
                out.append((w[:, lo:hi], b if position == c.output_bias else b[:0])
                           if hi > lo or position == c.output_bias else (None, None))
            elif c.splits[index] == "rows":
                out.append((w[lo:hi], b[lo:hi]))
            elif self.bias_blocks is not None:
                blo, bhi = self.bias_blocks[index][position]
                out.append((w[:, lo:hi], b[blo:bhi]))
            elif folds[index] is not None:
                # The bias is a column of one core's block (program.bias_columns).
                out.append((w[:, lo:hi], b if position == folds[index] else b[:0]))
            else:
                blo, bhi = c.blocks[index + 1][position] if index < last else (0, len(b))
                out.append((w[:, lo:hi], b[blo:bhi]))
        return out

    def load_parameters(self, weights, moments=None) -> None:
        """Write ``[(W, b), ...]`` (and the momentum) as each core's share (bits)."""
        for core, trainer in self.trainers.items():
            trainer.load_parameters(self._shares(weights, core),
                                    None if moments is None else self._shares(moments, core))

    def load_feedback(self, feedback) -> None:
        """Write ``dfa``'s feedback matrices ``[F_0, ...]`` (``F_l``: ``outputs x width_l``
        bits) as each core's share: the columns of the layer above's ``W`` (GEMV kernels) or
        the core's output rows of the last layer (GEMM kernels)."""
        c = self.compiled
        last = len(c.blocks) - 1
        for core, trainer in self.trainers.items():
            shares = []
            for index, f in enumerate(feedback):
                f = np.asarray(f, dtype=np.uint64)
                seg = c.segments[index + 1]
                if core not in seg:
                    shares.append(None)
                elif c.split == "columns":
                    lo, hi = c.blocks[index + 1][seg.index(core)]
                    shares.append(f[:, lo:hi])
                elif c.splits[-1] == "columns":     # the columns of its rows of layer index
                    lo, hi = c.blocks[index][c.segments[index].index(core)]
                    shares.append(f[:, lo:hi])
                else:
                    lo, hi = c.blocks[last][c.segments[last].index(core)]
                    shares.append(f[lo:hi])
            trainer.load_feedback(shares)

    def _assemble(self, parts):
        """Whole tensors from ``{core: [(W, b) share per layer]}``."""
        c = self.compiled
        last, folds = len(self.graph.layers) - 1, c.bias_columns
        out = []
        for index, seg in enumerate(c.segments):
            ws = [parts[k][index][0] for k in seg if parts[k][index][0] is not None]
            bs = [parts[k][index][1] for k in seg if parts[k][index][0] is not None]
            if c.splits[index] == "columns" and c.split == "rows":
                out.append((np.hstack(ws), parts[seg[c.output_bias]][index][1]))
                continue
            if c.splits[index] == "rows":
                out.append((np.vstack(ws), np.concatenate(bs)))
                continue
            if index == last and self.bias_blocks is None and folds[index] is None:
                for other in bs[1:]:        # every core updates the whole last bias
                    if not np.array_equal(other, bs[0]):
                        raise StepMismatch("the cores' copies of the last bias differ")
                bias = bs[0]
            else:
                bias = np.concatenate(bs)
            out.append((np.hstack(ws), bias))
        return out

    def read_parameters(self):
        """Return ``(weights, moments)`` gathered from every core (bit patterns)."""
        parts = {k: t.read_parameters() for k, t in self.trainers.items()}
        weights = self._assemble({k: p[0] for k, p in parts.items()})
        if self.graph.optimizer.momentum > 0:
            moments = self._assemble({k: p[1] for k, p in parts.items()})
        else:
            moments = [(np.zeros_like(w), np.zeros_like(b)) for w, b in weights]
        return weights, moments

    # -- steps -----------------------------------------------------------------------------

    def set_lr(self, lr: float) -> None:
        """Write every core's scalar registers for learning rate ``lr``."""
        for trainer in self.trainers.values():
            trainer.set_lr(lr)

    def pipeline_entry(self, t: int) -> dict:
        """``cp``: the programs of pipeline step ``t`` of an epoch: the ``key``, every core's
        ``pcs``, predicted ``cycles`` (per core; ``step_cycles`` the slowest), model ``macs``
        and the per-phase ``report`` (:meth:`Compiled.step_report`)."""
        c = self.compiled
        layers = len(self.graph.layers)
        key = cp_step_key(layers, c.cores[0].io["groups"], t)
        if not hasattr(self, "_entries"):
            self._entries = {}
            by_key = {}
            for k, core in c.cores.items():
                for phase, fwd, bwd, pc in core.io["entries"]:
                    masks = [tuple(bool(m >> b & 1) for b in range(layers)) for m in (fwd, bwd)]
                    by_key.setdefault((phase, *masks), {})[k] = pc
            for entry_key, pcs in by_key.items():
                start = [pcs.get(k, 0) for k in range(c.config.cores)]
                cycles, report = c.step_report(start)
                self._entries[entry_key] = {
                    "key": entry_key, "pcs": start, "cycles": cycles,
                    "step_cycles": max(cycles), "report": report,
                    "macs": sum(v["macs"] for v in report.values())}
        return self._entries[key]

    def pipeline_step(self, t: int, x, target, check_cycles: bool = True
                      ) -> tuple[np.ndarray | None, RingRun]:
        """``cp``, ``mbcp``: run pipeline step ``t`` of an epoch on every core; ``x``: the
        entering group (bits, ``batch x in``; one sample may be a vector) or None while
        draining; ``target``: the targets of the group whose forward leaves the output layer in
        this step (``batch`` labels, or rows for ``mse``), or None. Returns that group's logits
        (``batch x outputs``, or None) and the cores' counters, which must equal the prediction
        (``check_cycles``: off only while the links stall on purpose; the event counters are
        checked even then)."""
        c = self.compiled
        entry = self.pipeline_entry(t)
        first, last = c.segments[0], c.segments[-1]
        # Overlays load before the step's host words are counted: an epoch loads each once.
        pcs = [self.trainers[k].start_pc(pc) if k in self.trainers else pc
               for k, pc in enumerate(entry["pcs"])]
        self.ring.clear_host_words()
        if x is not None:
            x = np.asarray(x, dtype=np.uint64).reshape(self.graph.batch, -1)
            for position, core in enumerate(first):
                io, driver = self.trainers[core].core.io, self.trainers[core].driver
                lo, hi = c.blocks[0][position]
                driver.write_spad(io["inputs"][t % len(io["inputs"])],
                                  _rows(x[:, lo:hi], io["ld_inputs"]))
        if target is not None:
            for core in last:
                trainer = self.trainers[core]
                trainer.driver.write_spad(trainer.core.io["targets"],
                                          _rows(trainer._targets(target),
                                                trainer.core.io["ld_classes"]))
        run = self.ring.run(pcs, timeout_cycles=4 * entry["step_cycles"] + 10_000)
        _check_run(run, entry["cycles"] if check_cycles else None,
                   c.predicted_events(entry["pcs"]), f"pipeline step {t}")
        logits = self.trainers[last[0]].group_logits() if entry["key"][1][-1] else None
        _check_host_words(self.ring.host_words(), run,
                          c.host_words(entering=x is not None, leaving=target is not None),
                          f"pipeline step {t}")
        return logits, run

    def step(self, x, targets) -> tuple[np.ndarray, RingRun]:
        """Run one step on every core; return the logits and the cores' counters."""
        c = self.compiled
        x = np.asarray(x, dtype=np.uint64).reshape(self.graph.batch, -1)
        first, last = c.segments[0], c.segments[-1]
        self.ring.clear_host_words()
        for core, trainer in self.trainers.items():
            if core not in first and core not in last:
                continue
            if self.graph.gemv:
                lo, hi = c.sample_columns(core)
                trainer.stage(x[:, lo:hi], targets)
            else:
                trainer.stage(x, targets)
        run = self.ring.run(self.start_pcs, timeout_cycles=4 * self.step_cycles + 10_000)
        if self.trainers[last[0]].core.io.get("logits_scattered"):
            # Each core of the last segment holds its samples' logits only.
            blocks = ring_blocks(self.graph.batch, len(last), 1)
            logits = np.concatenate([self.trainers[k].logits(block)
                                     for k, block in zip(last, blocks, strict=True)])
        else:
            logits = self.trainers[last[0]].logits()
        _check_run(run, self.predicted, c.predicted_events(), "the step")
        _check_host_words(self.ring.host_words(), run, c.host_words(), "the step")
        return logits, run


def _check_run(run: RingRun, cycles: list | None, events: list, what: str) -> None:
    """Raise :class:`StepMismatch` unless every core's cycles (unless None: links stalled on
    purpose) and event counters (stalls move no more data) are the compiler's prediction."""
    if cycles is not None and run.cycles != cycles:
        raise StepMismatch(f"{what}: the cores took {run.cycles} cycles; the compiler "
                           f"predicted {cycles}")
    for core, (got, want) in enumerate(zip(run.events, events, strict=True)):
        if got != want:
            diff = {k: (got[k], want[k]) for k in want if got[k] != want[k]}
            raise StepMismatch(f"{what}: core {core}'s event counters differ from the "
                               f"prediction (counted, predicted): {diff}")
