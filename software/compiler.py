"""The training compiler: lowers an MLP training graph to one core's instruction stream.

``compile_training(graph, cfg)`` places every tensor (weights, optimiser state, activations,
partial sums, scratch) in MemA, MemB or the SPAD, emits the step program (one sample for
``sgd``, one batch for ``mbgd``) in the arithmetic order :mod:`caterpillar.golden.trainer`
documents, and describes how the host moves parameters and data in and out. Every instruction
carries its phase and model MACs, and its cycles are predicted exactly by the kernel geometry
the sequencer uses, so a run's cycles per phase are known without a cycle-level simulator.

``sgd``: weights and momentum stay in MemA (2D round-robin), biases and vectors in MemB; the
sample and its target enter through the SPAD, the logits leave through it. ``mbgd``: every
matrix lives in the SPAD (``[W | b]`` and its transpose, activations in both orientations,
gradients); GEMMs read and write the SPAD, elementwise steps stream chunks through MemB, and
transposes pass through MemA (``lda`` with ``trans``, then ``sta``).

Anything that does not fit raises :class:`CompileError` saying what was needed, what exists
and what to change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from caterpillar.golden.trainer import scalars
from caterpillar.rtl.isa import Layout, Opcode, VecOp, decode, encode

from .graph import TrainingGraph
from .isasim import instruction_cycles

__all__ = ["CompileError", "Compiled", "Tensor", "compile_training", "instruction_cycles",
           "PHASES", "SCALAR_REGS", "load_compiled"]

#: Phases a step's cycles are reported in.
PHASES = ("forward", "loss", "delta", "update", "transfer", "ring")

#: Scalar register of each scalar operand (:func:`caterpillar.golden.trainer.scalars`).
SCALAR_REGS = {"zero": 0, "step": 1, "inv_batch": 2, "neg_lr": 3, "wd": 4, "mu": 5, "mse": 6}


class CompileError(ValueError):
    """The graph cannot be compiled for the config; the message says what to change."""


def _cdiv(a, b):
    return -(-a // b)


def _ceil(a, b):
    return _cdiv(a, b) * b


class _Region:
    """A bump allocator over one memory, with the names of what it holds (for errors)."""

    def __init__(self, name, size, align=1):
        self.name, self.size, self.align, self.top = name, size, align, 0
        self.items = []

    def alloc(self, what, words):
        base = _ceil(self.top, self.align)
        self.top = base + max(int(words), 1)
        self.items.append((what, base, words))
        return base

    def check(self, fix):
        if self.top > self.size:
            biggest = sorted(self.items, key=lambda t: -t[2])[:3]
            listing = ", ".join(f"{w} {n}" for w, _, n in biggest)
            raise CompileError(f"{self.name} needs {self.top} words but the config has "
                               f"{self.size} (largest: {listing}); {fix}")


@dataclass
class Tensor:
    """A parameter or optimiser-state tensor and where it lives.

    ``kind`` is ``mema`` (2D round-robin tile, loaded with ``lda``), ``diag`` (a diagonal
    vector in MemB, loaded with ``ldv``) or ``spad`` (a row-major matrix in the SPAD, leading
    dimension ``ld``; ``transposed``: the SPAD holds its ``cols x rows`` transpose). ``rows x
    cols`` is the logical shape (vectors: ``rows`` = 1).
    """

    name: str
    kind: str
    rows: int
    cols: int
    addr: int
    ld: int = 0
    transposed: bool = False


@dataclass
class Compiled:
    """A compiled training graph: the step program, the memory plan and the host's view."""

    graph: TrainingGraph
    config: object
    program: list                     # instruction words of one step, ending in HALT
    phases: list                      # phase of each instruction
    macs: list                        # model MACs of each instruction
    tensors: list                     # parameters and optimiser state (Tensor)
    io: dict                          # SPAD addresses: inputs, targets, logits, ...
    constants: list = field(default_factory=list)   # (spad addr, rows, cols, ld, value bits)
    staging: int = 0                  # SPAD base for parameter transfers (sgd)
    k_chunk: int | None = None

    # -- analysis ------------------------------------------------------------------------

    def cycles(self) -> list[int]:
        """Predicted cycles of every instruction (computed once)."""
        key = (tuple(self.program), self.config)
        if getattr(self, "_cycles_key", None) != key:
            self._cycles = [instruction_cycles(w, self.config) for w in self.program]
            self._cycles_key = key
        return list(self._cycles)

    def phase_report(self) -> dict:
        """Per phase: predicted cycles and model MACs of one step."""
        out = {p: {"cycles": 0, "macs": 0} for p in PHASES}
        for phase, cycles, macs in zip(self.phases, self.cycles(), self.macs):
            out[phase]["cycles"] += cycles
            out[phase]["macs"] += macs
        return out

    @property
    def step_cycles(self) -> int:
        """Predicted cycles of one step."""
        return sum(self.cycles())

    def disassemble(self) -> str:
        """Assembly text of the step program, one instruction per line with its phase."""
        return "\n".join(f"{decode(w).text():<100s} ; {p}"
                         for w, p in zip(self.program, self.phases))

    def scalar_values(self, lr: float) -> dict:
        """Scalar-register bit patterns for a step at learning rate ``lr``."""
        opt = self.graph.optimizer
        s = scalars(self.config.operand, lr=lr, batch=self.graph.batch,
                    momentum=opt.momentum, weight_decay=opt.weight_decay,
                    outputs=self.graph.sizes[-1])
        return {SCALAR_REGS[k]: v for k, v in s.items()}

    # -- files -----------------------------------------------------------------------------

    def save(self, path) -> None:
        """Write the compiled program and its plan to a ``.npz`` (no pickle), atomically."""
        from .checkpoint import atomic_savez

        meta = {"graph": self.graph.to_dict(), "config": self.config.to_dict(),
                "phases": self.phases, "macs": self.macs, "io": self.io,
                "tensors": [t.__dict__ for t in self.tensors],
                "constants": self.constants, "staging": self.staging,
                "k_chunk": self.k_chunk}
        words = np.array([[(w >> (64 * k)) & ((1 << 64) - 1) for k in range(4)]
                          for w in self.program], dtype=np.uint64)
        atomic_savez(path, program=words, meta=np.array(json.dumps(meta)))


def load_compiled(path) -> Compiled:
    """Read a program written by :meth:`Compiled.save`."""
    from caterpillar.rtl.config import CaterpillarConfig

    from .checkpoint import CheckpointError, load_npz

    data = load_npz(path, ("program", "meta"))
    try:
        meta = json.loads(str(data["meta"]))
        words = [sum(int(v) << (64 * k) for k, v in enumerate(row)) for row in data["program"]]
        return Compiled(TrainingGraph.from_dict(meta["graph"]),
                        CaterpillarConfig.from_dict(meta["config"]), words, meta["phases"],
                        meta["macs"], [Tensor(**t) for t in meta["tensors"]], meta["io"],
                        [tuple(c) for c in meta["constants"]], meta["staging"],
                        meta["k_chunk"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path} is not a compiled caterpillar program ({e})") from None


class _Emitter:
    def __init__(self):
        self.words, self.phases, self.macs = [], [], []

    def __call__(self, phase, op, macs=0, **fields):
        self.words.append(encode(op, **fields))
        self.phases.append(phase)
        self.macs.append(macs)


def compile_training(graph: TrainingGraph, cfg) -> Compiled:
    """Compile ``graph`` for one core of ``cfg`` (see the module docstring)."""
    if graph.algorithm == "sgd":
        compiled = _compile_sgd(graph, cfg)
    else:
        compiled = _compile_mbgd(graph, cfg)
    if len(compiled.program) > cfg.imem_words:
        raise CompileError(f"the step program needs {len(compiled.program)} instructions but "
                           f"IMEM holds {cfg.imem_words}; use a config with imem_words >= "
                           f"{len(compiled.program)}, a smaller batch or fewer layers")
    return compiled


# -- SGD: batch 1, GEMV kernels, weights resident in MemA -------------------------------------

def _compile_sgd(graph: TrainingGraph, cfg) -> Compiled:
    nr = cfg.nr
    opt = graph.optimizer
    use_mom, use_wd = opt.momentum > 0, opt.weight_decay > 0
    layers = graph.layers
    classes = graph.sizes[-1]
    mema = _Region("MemA", cfg.mema_words)
    memb = _Region("MemB", cfg.memb_words)
    spad = _Region("the SPAD", cfg.spad_words, align=nr)
    loc = lambda count: _cdiv(count, nr)  # noqa: E731  (words per PE of a vector)

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
    mema.check("use a config with more mema_words, a smaller model, or --algorithm mbgd")

    x_diag = memb.alloc("x", loc(graph.sizes[0]))
    x_rep = [memb.alloc(f"a{index - 1} (replicated)", loc(i))
             for index, (o, i) in enumerate(layers)]
    h_raw = [memb.alloc(f"Wa{index}", loc(o)) for index, (o, i) in enumerate(layers)]
    h = [memb.alloc(f"h{index}", loc(o)) for index, (o, i) in enumerate(layers)]
    act = [memb.alloc(f"a{index}", loc(o)) for index, (o, i) in enumerate(layers[:-1])]
    delta = [memb.alloc(f"d{index}", loc(o)) for index, (o, i) in enumerate(layers)]
    widest = max(graph.sizes)
    d_rep = memb.alloc("d (replicated)", loc(widest))
    e_buf = memb.alloc("W^T d", loc(widest))
    g_buf = memb.alloc("bias gradient", loc(widest))
    psum = memb.alloc("partial sums", loc(widest))
    h_rep = memb.alloc("logits (replicated)", loc(classes))
    t_buf = memb.alloc("target", loc(classes))
    scr = memb.alloc("softmax scratch", 3 * loc(classes) + 2)
    memb.check("use a config with more memb_words or a smaller model")

    x_spad = spad.alloc("input", _ceil(graph.sizes[0], nr))
    t_spad = spad.alloc("target", _ceil(classes, nr))
    logits_spad = spad.alloc("logits", _ceil(classes, nr))
    staging = spad.alloc("parameter staging",
                         max(o * _ceil(i, nr) for o, i in layers))
    spad.check("use a config with more spad_words")

    e = _Emitter()
    r = SCALAR_REGS
    n_in = graph.sizes[0]
    e("transfer", Opcode.LDV, spad=x_spad, memb=x_diag, len=n_in, layout=Layout.DIAG)
    e("forward", Opcode.BCAST, dst=x_rep[0], src=x_diag, len=n_in, layout=Layout.COLREP)
    last = len(layers) - 1
    for index, (o, i) in enumerate(layers):
        e("forward", Opcode.GEMV, o * i, y=h_raw[index], x=x_rep[index], w=w_addr[index],
          psum=psum, rows=o, cols=i, ldw=loc(i))
        e("forward", Opcode.VOP, fn=VecOp.ADD, layout=Layout.DIAG, z=h[index], x=h_raw[index],
          y=b_addr[index], len=o, alpha=0)
        if index < last:
            e("forward", Opcode.VOP, fn=VecOp.MAXS, layout=Layout.DIAG, z=act[index],
              x=h[index], y=h[index], len=o, alpha=r["zero"])
            e("forward", Opcode.BCAST, dst=x_rep[index + 1], src=act[index], len=o,
              layout=Layout.COLREP)
    e("transfer", Opcode.STV, spad=logits_spad, memb=h[last], len=classes, layout=Layout.DIAG)
    _sgd_output_gradient(e, graph.loss, classes, logits=h[last], out=delta[last],
                         t_spad=t_spad, t_buf=t_buf, h_rep=h_rep, scr=scr)
    for index in reversed(range(len(layers))):
        o, i = layers[index]
        e("delta", Opcode.BCAST, dst=d_rep, src=delta[index], len=o, layout=Layout.ROWREP)
        if index > 0:
            e("delta", Opcode.GEMVT, o * i, z=e_buf, d=d_rep, w=w_addr[index], psum=psum,
              rows=o, cols=i, ldw=loc(i))
            e("delta", Opcode.VOP, fn=VecOp.RELUD, layout=Layout.DIAG, z=delta[index - 1],
              x=h[index - 1], y=e_buf, len=i, alpha=0)
        e("update", Opcode.GER, o * i, w=w_addr[index], u=d_rep, v=x_rep[index],
          mom=m_addr[index] if use_mom else 0, rows=o, cols=i, ldw=loc(i), alpha=r["neg_lr"],
          wd=r["wd"], mu=r["mu"], use_wd=int(use_wd), use_mom=int(use_mom))
        _sgd_bias_update(e, b_addr[index], delta[index], o, g_buf=g_buf,
                         mom=bm_addr[index] if use_mom else None, use_wd=use_wd)
    e("transfer", Opcode.HALT)
    io = {"inputs": x_spad, "targets": t_spad, "logits": logits_spad}
    return Compiled(graph, cfg, e.words, e.phases, e.macs, tensors, io, staging=staging)


def _sgd_output_gradient(e, loss, classes, *, logits, out, t_spad, t_buf, h_rep, scr):
    """The output gradient of one sample from the logits (MemB diagonal) into ``out``."""
    if loss == "softmax_ce":
        e("loss", Opcode.BCAST, dst=h_rep, src=logits, len=classes, layout=Layout.COLREP)
        e("transfer", Opcode.LDV, spad=t_spad, memb=t_buf, len=classes, layout=Layout.COLREP)
        e("loss", Opcode.SMXCE, z=out, x=h_rep, t=t_buf, scr=scr, len=classes)
    else:
        e("transfer", Opcode.LDV, spad=t_spad, memb=t_buf, len=classes, layout=Layout.DIAG)
        e("loss", Opcode.VOP, fn=VecOp.MSEG, layout=Layout.DIAG, z=out, x=logits, y=t_buf,
          len=classes, alpha=SCALAR_REGS["mse"])


def _sgd_bias_update(e, bias, grad, count, *, g_buf, mom, use_wd):
    """``b -= lr (mu m + (g + wd b))`` by VOPs, in :func:`ger`'s order (momentum if ``mom``)."""
    r = SCALAR_REGS
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


# -- MBGD: GEMM kernels on SPAD-resident matrices -------------------------------------------

class _MbgdBuilder:
    """Emits MBGD's building blocks: chunked GEMMs, elementwise passes, transposes."""

    def __init__(self, cfg, emit):
        self.cfg, self.e = cfg, emit
        nr = cfg.nr
        # GEMM keeps two B panels of k words per PE in MemB.
        self.k_chunk = cfg.memb_words // 2
        self.group = nr * cfg.acc_lanes

    def gemm(self, phase, *, c, a, b, m, n, k, lda, ldb, ldc, accumulate=False, macs=True):
        """``C (+)= A B`` with ``A^T`` at ``a``, in chunks of ``k_chunk`` terms."""
        nr, kc = self.cfg.nr, self.k_chunk
        for k0 in range(0, k, kc):
            kk = min(kc, k - k0)
            per_pe_rows = self.cfg.mema_words // _cdiv(kk, nr)
            mc = (per_pe_rows * nr) // self.group * self.group
            if mc == 0:
                raise CompileError(f"a GEMM with {kk} inner terms needs at least "
                                   f"{self.group // nr * _cdiv(kk, nr)} MemA words per PE for "
                                   f"one row group; the config has {self.cfg.mema_words}")
            mc = min(mc, _ceil(m, self.group))
            self.e(phase, Opcode.GEMM, m * n * kk if macs else 0, c=c, a=a + k0 * lda,
                   b=b + k0 * ldb, m=m, n=n, k=kk, lda=lda, ldb=ldb, ldc=ldc, mc=mc,
                   accumulate=int(accumulate or k0 > 0))

    def elementwise(self, phase, fn, z, x, y=None, *, count, alpha=0):
        """``z = fn(x, y)`` over ``count`` contiguous SPAD words, in MemB-sized chunks."""
        nr, memb = self.cfg.nr, self.cfg.memb_words
        inputs = 1 if y is None else 2
        chunk = min(memb // (inputs + 1) * nr, 65535 // nr * nr)
        bx, by, bz = 0, chunk // nr, (inputs) * (chunk // nr)
        for s0 in range(0, count, chunk):
            length = min(chunk, count - s0)
            self.e("transfer", Opcode.LDV, spad=x + s0, memb=bx, len=length, layout=Layout.DIAG)
            if y is not None:
                self.e("transfer", Opcode.LDV, spad=y + s0, memb=by, len=length,
                       layout=Layout.DIAG)
            self.e(phase, Opcode.VOP, fn=fn, layout=Layout.DIAG, z=bz, x=bx,
                   y=by if y is not None else bx, len=length, alpha=alpha)
            self.e("transfer", Opcode.STV, spad=z + s0, memb=bz, len=length, layout=Layout.DIAG)

    def output_gradient(self, loss, *, logits, targets, out, batch, classes, plain):
        """The scaled output gradient of a batch: logits, targets and ``out`` batch-major
        (leading dimension ``ceil(classes, nr)``)."""
        nr, e, r = self.cfg.nr, self.e, SCALAR_REGS
        ldc = _ceil(classes, nr)
        per_pe = _cdiv(classes, nr)
        d_vec, t_vec, x_rep, scr = 0, per_pe, 2 * per_pe, 3 * per_pe
        if loss == "softmax_ce":
            for sample in range(batch):
                e("transfer", Opcode.LDV, spad=logits + sample * ldc, memb=x_rep, len=classes,
                  layout=Layout.COLREP)
                e("transfer", Opcode.LDV, spad=targets + sample * ldc, memb=t_vec, len=classes,
                  layout=Layout.COLREP)
                e("loss", Opcode.SMXCE, z=d_vec, x=x_rep, t=t_vec, scr=scr, len=classes)
                e("transfer", Opcode.STV, spad=out + sample * ldc, memb=d_vec, len=classes,
                  layout=Layout.DIAG)
        else:
            self.elementwise("loss", VecOp.MSEG, out, logits, targets, count=batch * ldc,
                             alpha=r["mse"])
        # The batch mean (and, without optimiser state, the step -lr) scales the output
        # gradient once; every delta and weight gradient below inherits it.
        self.elementwise("loss", VecOp.SCALE, out, out, count=batch * ldc,
                         alpha=r["step"] if plain else r["inv_batch"])

    def update(self, first, *, p, g, mom, x, d, rows, inputs, batch, use_wd, ldo=None):
        """``[W | b] (+)= D^T [A | 1]`` for a panel of ``rows`` outputs (the first layer's
        panel is transposed; ``ldo``: its leading dimension and that of ``d``, by default
        ``ceil(rows, nr)``), then the optimiser (``g``: gradient scratch, ``None`` without
        momentum and weight decay; ``mom``: the momentum panel or ``None``)."""
        nr, r = self.cfg.nr, SCALAR_REGS
        ldp, ldo = _ceil(inputs + 1, nr), ldo or _ceil(rows, nr)
        plain = g is None
        target = p if plain else g
        if first:
            # [W0 | b0]^T (+)= [a | 1]^T d: the same products, summed in the same order.
            self.gemm("update", c=target, a=x, b=d, m=inputs + 1, n=rows, k=batch, lda=ldp,
                      ldb=ldo, ldc=ldo, accumulate=plain)
            words = (inputs + 1) * ldo
        else:
            self.gemm("update", c=target, a=d, b=x, m=rows, n=inputs + 1, k=batch, lda=ldo,
                      ldb=ldp, ldc=ldp, accumulate=plain)
            words = rows * ldp
        if plain:
            return
        if use_wd:
            self.elementwise("update", VecOp.AXPY, g, p, g, count=words, alpha=r["wd"])
        grad = g
        if mom is not None:
            self.elementwise("update", VecOp.AXPY, mom, mom, g, count=words, alpha=r["mu"])
            grad = mom
        self.elementwise("update", VecOp.AXPY, p, grad, p, count=words, alpha=r["neg_lr"])

    def transpose(self, src, rows, cols, lds, dst, ldd):
        """Write the transpose of the ``rows x cols`` SPAD matrix at ``src`` to ``dst``."""
        nr = self.cfg.nr
        ldm = _cdiv(rows, nr)
        per_chunk = max(self.cfg.mema_words // ldm, 1) * nr
        for c0 in range(0, cols, per_chunk):
            cc = min(per_chunk, cols - c0)
            self.e("transfer", Opcode.LDA, spad=src + c0, mema=0, rows=cc, cols=rows, lds=lds,
                   ldm=ldm, trans=1)
            self.e("transfer", Opcode.STA, spad=dst + c0 * ldd, mema=0, rows=cc, cols=rows,
                   lds=ldd, ldm=ldm, trans=0)


def _check_mbgd_memb(cfg, classes: int) -> None:
    """MemB must hold the mbgd kernels' chunks and one sample's softmax."""
    nr = cfg.nr
    if 3 * nr > cfg.memb_words:
        raise CompileError(f"MemB has {cfg.memb_words} words per PE; the mbgd kernels need "
                           f"at least {3 * nr}")
    memb_need = 3 * _cdiv(classes, nr) + 2 + 2 * _cdiv(classes, nr)
    if memb_need > cfg.memb_words:
        raise CompileError(f"the softmax needs {memb_need} MemB words per PE; the config has "
                           f"{cfg.memb_words}")


def _compile_mbgd(graph: TrainingGraph, cfg) -> Compiled:
    nr = cfg.nr
    opt = graph.optimizer
    use_mom, use_wd = opt.momentum > 0, opt.weight_decay > 0
    plain = not (use_mom or use_wd)
    layers = graph.layers
    batch, classes = graph.batch, graph.sizes[-1]
    ldb = _ceil(batch, nr)
    spad = _Region("the SPAD", cfg.spad_words, align=nr)
    _check_mbgd_memb(cfg, classes)

    # Layer 0 keeps [W | b] transposed (its forward operand; its update writes it directly and
    # no backward pass needs W0), the other layers row-major (the backward operand) plus a
    # transposed copy refreshed every step for the forward pass.
    tensors, p_addr, pt_addr, mom_addr = [], [], [], []
    xt_addr, x_addr, ht_addr, d_addr, dt_addr = [], [], [], [], []
    constants = []
    for index, (o, i) in enumerate(layers):
        ldp, ldo = _ceil(i + 1, nr), _ceil(o, nr)
        first = index == 0
        shape = ((i + 1) * ldo) if first else o * ldp
        p_addr.append(spad.alloc(f"[W{index} | b{index}]{'^T' if first else ''}", shape))
        tensors.append(Tensor(f"P{index}", "spad", o, i + 1, p_addr[-1], ldo if first else ldp,
                              transposed=first))
        pt_addr.append(p_addr[-1] if first else
                       spad.alloc(f"[W{index} | b{index}]^T", (i + 1) * ldo))
        if use_mom:
            mom_addr.append(spad.alloc(f"momentum {index}", shape))
            tensors.append(Tensor(f"M{index}", "spad", o, i + 1, mom_addr[-1],
                                  ldo if first else ldp, transposed=first))
        xt_addr.append(spad.alloc(f"[a{index - 1}; 1] (features x batch)", (i + 1) * ldb))
        constants.append((xt_addr[-1] + i * ldb, 1, batch, ldb, "one"))
        x_addr.append(spad.alloc(f"[a{index - 1} | 1] (batch x features)", batch * ldp))
        last = index == len(layers) - 1
        ht_addr.append(spad.alloc(f"h{index}", (batch * ldo) if last else o * ldb))
        d_addr.append(spad.alloc(f"d{index} (batch x features)", batch * ldo))
        dt_addr.append(spad.alloc(f"d{index} (features x batch)", o * ldb))
    widest = max(graph.sizes)
    e_addr = spad.alloc("W^T d", widest * ldb)
    g_addr = None if plain else spad.alloc("gradient", max(
        (i + 1) * _ceil(o, nr) if index == 0 else o * _ceil(i + 1, nr)
        for index, (o, i) in enumerate(layers)))
    t_spad = spad.alloc("targets", batch * _ceil(classes, nr))
    spad.check("use a config with more spad_words or a smaller batch or model")

    e = _Emitter()
    b = _MbgdBuilder(cfg, e)
    r = SCALAR_REGS
    last = len(layers) - 1
    for index, (o, i) in enumerate(layers):
        ldp, ldo = _ceil(i + 1, nr), _ceil(o, nr)
        if index > 0:
            b.transpose(p_addr[index], o, i + 1, ldp, pt_addr[index], ldo)
        if index < last:
            b.gemm("forward", c=ht_addr[index], a=pt_addr[index], b=xt_addr[index], m=o,
                   n=batch, k=i + 1, lda=ldo, ldb=ldb, ldc=ldb)
            b.elementwise("forward", VecOp.MAXS, xt_addr[index + 1], ht_addr[index],
                          count=o * ldb, alpha=r["zero"])
        else:
            # Logits batch-major (one sample per SPAD row), for the per-sample softmax.
            b.gemm("forward", c=ht_addr[index], a=xt_addr[index], b=pt_addr[index], m=batch,
                   n=o, k=i + 1, lda=ldb, ldb=ldo, ldc=ldo)
    ldc_ = _ceil(classes, nr)
    b.output_gradient(graph.loss, logits=ht_addr[last], targets=t_spad, out=d_addr[last],
                      batch=batch, classes=classes, plain=plain)
    for index in reversed(range(len(layers))):
        o, i = layers[index]
        ldp, ldo = _ceil(i + 1, nr), _ceil(o, nr)
        if index > 0:
            b.transpose(d_addr[index], batch, o, ldo, dt_addr[index], ldb)
            b.gemm("delta", c=e_addr, a=p_addr[index], b=dt_addr[index], m=i, n=batch, k=o,
                   lda=ldp, ldb=ldb, ldc=ldb)
            # d_prev (features x batch), then batch-major for its own layer.
            b.elementwise("delta", VecOp.RELUD, dt_addr[index - 1], ht_addr[index - 1],
                          e_addr, count=i * ldb)
            b.transpose(dt_addr[index - 1], i, batch, ldb, d_addr[index - 1], _ceil(i, nr))
            b.transpose(xt_addr[index], i + 1, batch, ldb, x_addr[index], ldp)
        b.update(index == 0, p=p_addr[index], g=g_addr, x=x_addr[index], d=d_addr[index],
                 mom=mom_addr[index] if use_mom else None, rows=o, inputs=i, batch=batch,
                 use_wd=use_wd)
    e("transfer", Opcode.HALT)
    i0 = layers[0][1]
    io = {"inputs_t": xt_addr[0], "inputs": x_addr[0], "targets": t_spad,
          "logits": ht_addr[last], "ld_batch": ldb, "ld_inputs": _ceil(i0 + 1, nr),
          "ld_classes": ldc_}
    return Compiled(graph, cfg, e.words, e.phases, e.macs, tensors, io, constants,
                    k_chunk=b.k_chunk)

