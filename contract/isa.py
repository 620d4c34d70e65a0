"""The instruction set of a CATERPILLAR core, defined once.

Every instruction is 256 bits: an 8-bit :class:`Opcode` and the opcode's operand fields, packed
from bit 8 upwards in the order :data:`OPERANDS` lists them. The RTL decoder views instruction
words through a layout built from :data:`OPERANDS` (:mod:`caterpillar.rtl.instruction`), the
assembler and the instruction-level simulator use :func:`encode`, :func:`decode` and
:func:`unpack`, and ``docs/isa.md`` is generated from :data:`OPERANDS`. Nothing else states a bit
position.

Pure Python (the hardware contract imports no Amaranth): the enumerations are standard
:class:`enum.Enum` s, whose values Amaranth accepts as constants and as signal shapes.
"""

from __future__ import annotations

import enum
import functools
import inspect
from dataclasses import dataclass

__all__ = [
    "INSTR_BITS", "INSTR_WORDS", "OPCODE_BITS", "Opcode", "ErrorCause", "Layout", "VecOp",
    "Counter", "COUNTER_MEANING", "EVENT_COUNTERS", "Field", "OPERANDS", "field_enum",
    "encode", "decode", "unpack", "reserved_bits", "Instruction", "IsaError", "isa_markdown",
    "ADDRESS_KINDS", "LOOP_OFFSETS", "REL_BITS", "field_offsets", "address_fields", "relocate",
    "relocate_word", "LoopState",
]

#: Width of one instruction, and the number of 32-bit host words it occupies.
INSTR_BITS = 256
INSTR_WORDS = INSTR_BITS // 32
#: Width of the opcode (bits 0-7 of an instruction).
OPCODE_BITS = 8


class Opcode(enum.Enum):
    """Macro-instructions; the sequencer expands each into per-cycle micro-ops."""

    NOP = 0x00
    HALT = 0x01
    SYNC = 0x02
    SETS = 0x03
    RDCNT = 0x04
    LOOP = 0x05
    LDA = 0x10
    STA = 0x11
    LDV = 0x12
    STV = 0x13
    BCAST = 0x14
    GEMV = 0x20
    GEMVT = 0x21
    GER = 0x22
    GEMM = 0x23
    CPASS = 0x24
    VOP = 0x30
    SMXCE = 0x31
    RING = 0x40


class ErrorCause(enum.Enum):
    """Why the core halted with an error (``ERROR_CAUSE``)."""

    NONE = 0
    ILLEGAL_OPCODE = 1
    ILLEGAL_FIELD = 2
    SPAD_RANGE = 3
    MEMA_RANGE = 4
    MEMB_RANGE = 5
    IMEM_RANGE = 6
    BAD_SHAPE = 7
    HAZARD = 8
    HOST_ACCESS = 9  # the host wrote IMEM or the SPAD, or read the SPAD, while the core was busy


class Layout(enum.Enum):
    """Where the elements of a vector live (see docs/architecture.md section 3)."""

    DIAG = 0
    COLREP = 1
    ROWREP = 2
    FULL = 3    # one copy spread over every PE: element e in PE (e / nr mod nr, e mod nr)


class VecOp(enum.Enum):
    """Elementwise operations of ``VOP`` (``a`` is the scalar register ``alpha``)."""

    COPY = 0    # z = x
    ADD = 1     # z = x + y
    SUB = 2     # z = x - y
    MUL = 3     # z = x * y
    AXPY = 4    # z = a * x + y
    SCALE = 5   # z = a * x
    MAX = 6     # z = max(x, y)
    MAXS = 7    # z = max(x, a); ReLU is MAXS with a = +0
    RELUD = 8   # z = y if x > 0 else +0 (ReLU derivative mask applied to y)
    MSEG = 9    # z = a * (x - y)


class Counter(enum.Enum):
    """Performance counters (readable as CSRs, and by ``RDCNT``); :data:`COUNTER_MEANING`
    says what each counts. The event counters (``OPS`` on) feed the energy model
    (:mod:`caterpillar.software.energy`)."""

    CYCLES = 0
    BUSY = 1
    INSTRET = 2
    MACS = 3
    STALLS = 4
    RING = 5
    OPS = 6
    MEMA_READS = 7
    MEMA_WRITES = 8
    MEMB_READS = 9
    MEMB_WRITES = 10
    SPAD_READS = 11
    SPAD_WRITES = 12
    LINK_WORDS = 13
    RING_ADDS = 14
    HOST_WORDS = 15


#: The counters of hardware events a run causes (the energy model's inputs), as opposed to time
#: and to the host's traffic (``HOST_WORDS``, which moves between runs).
EVENT_COUNTERS = (Counter.MACS, *(c for c in Counter
                                  if Counter.OPS.value <= c.value < Counter.HOST_WORDS.value))

#: What each counter adds up, from its last clear.
COUNTER_MEANING = {
    Counter.CYCLES: "clock cycles",
    Counter.BUSY: "cycles a program ran",
    Counter.INSTRET: "instructions retired",
    Counter.MACS: "multiply-adds with a real product (not a chain's reduction adds)",
    Counter.STALLS: "cycles spent draining the PE pipeline after a kernel",
    Counter.RING: "cycles the ring engine was active (RING runs behind later instructions)",
    Counter.OPS: "PE operations: micro-ops a PE executes, each one slot of its FPU",
    Counter.MEMA_READS: "MemA words read, summed over the PEs",
    Counter.MEMA_WRITES: "MemA words written, summed over the PEs",
    Counter.MEMB_READS: "MemB words read, summed over the PEs",
    Counter.MEMB_WRITES: "MemB words written, summed over the PEs",
    Counter.SPAD_READS: "SPAD words read by the array and the ring engine (nr per row read)",
    Counter.SPAD_WRITES: "SPAD words written by the array and the ring engine",
    Counter.LINK_WORDS: "words sent on the core's outgoing link (nr per beat)",
    Counter.RING_ADDS: "additions by the ring engine's adders (nr per beat added)",
    Counter.HOST_WORDS: "SPAD and IMEM words the host bus wrote or read at this core; "
                        "cleared by `CTRL.clear_host_words` only, not by `clear_counters` "
                        "(the host moves its words between runs)",
}


@dataclass(frozen=True)
class Field:
    """One operand field: its name, width in bits, kind and meaning.

    ``kind`` is one of ``spad``, ``mema``, ``memb`` (an address in that memory), ``count``,
    ``ld`` (a leading dimension), ``sreg`` (a scalar register index), ``imm``, ``flag``,
    ``rel`` (a ``LOOP`` body's relocation selectors), ``pe_row`` (PE rows an instruction
    works on, 0 its one-row or replicated form) or the name of an enum in this module
    (``Layout``, ``VecOp``, ``Counter``). ``flag``, ``rel`` and ``pe_row`` fields may be left
    out of assembly (0); ``rel`` and ``pe_row`` fields are left out of its text when 0.
    """

    name: str
    width: int
    kind: str
    doc: str


def _f(name, width, kind, doc):
    return Field(name, width, kind, doc)


#: Operands of LDA and STA (a matrix between the SPAD and MemA).
_TILE = (
    _f("spad", 24, "spad", "first element of the row-major matrix in the SPAD"),
    _f("mema", 16, "mema", "MemA base of the 2D round-robin tile"),
    _f("rows", 16, "count", "matrix rows"),
    _f("cols", 16, "count", "matrix columns"),
    _f("lds", 16, "ld", "SPAD leading dimension in words (multiple of nr)"),
    _f("ldm", 16, "ld", "MemA leading dimension (>= ceil(cols / nr))"),
    _f("trans", 1, "flag", "the SPAD holds the transpose (cols x rows, leading dim lds)"),
)


def _gemv_load(vector: str, length: str, layout: str) -> tuple[Field, ...]:
    """The fields of GEMV's and GEMVT's load of their input ``vector`` from the SPAD."""
    return (
        _f("load", 1, "flag", f"load {vector} ({length} words from spad) into MemB as LDV with "
           f"layout {layout} would, while computing (waits for the ring engine as LDV does)"),
        _f("spad", 24, "spad", f"first element of {vector} in the SPAD (with load; multiple of "
           "nr)"),
    )


def _store_y(needs: str = "") -> tuple[Field, ...]:
    """The fields of GEMV's and CPASS's store of their forward output ``y`` to the SPAD."""
    return (
        _f("store", 1, "flag", f"{needs}y goes to the SPAD from dst as STV with layout DIAG "
           "would store it, not to MemB (waits for the ring engine as STV does)"),
        _f("dst", 24, "spad", "first element of y in the SPAD (with store; multiple of nr)"),
    )


#: Field kinds that hold a memory address: a ``LOOP`` body moves them (``rel``).
ADDRESS_KINDS = ("spad", "mema", "memb")
#: Offsets a running ``LOOP`` keeps (``rel`` selectors 1 to 3; 0 keeps a field as it is).
LOOP_OFFSETS = 3
#: Bits of one ``rel`` selector (0, or the offset 1 to ``LOOP_OFFSETS`` it adds).
REL_BITS = LOOP_OFFSETS.bit_length()


#: Operand fields of every opcode, in encoding order.
OPERANDS: dict[Opcode, tuple[Field, ...]] = {
    Opcode.NOP: (),
    Opcode.HALT: (),
    Opcode.SYNC: (),
    Opcode.SETS: (
        _f("reg", 4, "sreg", "scalar register to write"),
        _f("value", 32, "imm", "bit pattern (operand format, LSB-aligned)"),
    ),
    Opcode.RDCNT: (
        _f("counter", 4, "Counter", "performance counter to read"),
        _f("spad", 24, "spad", "first SPAD word receiving the 64-bit value, low word first"),
    ),
    Opcode.LOOP: (
        _f("count", 16, "count", "times the body runs (>= 1)"),
        _f("body", 16, "count", "instructions of the body: the ones after the LOOP (>= 1)"),
        *(_f(f"stride{k}", 24, "imm", f"added per repetition to every address field of the "
             f"body whose rel selector is {k} (two's complement, modulo the field's width)")
          for k in range(1, LOOP_OFFSETS + 1)),
    ),
    Opcode.LDA: _TILE,
    Opcode.STA: _TILE,
    Opcode.LDV: (
        _f("spad", 24, "spad", "first element in the SPAD (multiple of nr)"),
        _f("memb", 16, "memb", "MemB base"),
        _f("len", 16, "count", "vector length"),
        _f("layout", 2, "Layout", "destination layout (FULL: len a multiple of nr, SPAD row r "
                                  "to PE row r mod nr at word r / nr)"),
        _f("row", 5, "pe_row", "with COLREP: 0 every PE row's copy, r + 1 PE row r's only "
                               "(r < nr; another layout: 0)"),
    ),
    Opcode.STV: (
        _f("spad", 24, "spad", "first element in the SPAD (multiple of nr)"),
        _f("memb", 16, "memb", "MemB base"),
        _f("len", 16, "count", "vector length"),
        _f("layout", 2, "Layout", "source layout (DIAG: the diagonal, COLREP: row 0, ROWREP: "
                                  "column 0, FULL: every PE, len a multiple of nr)"),
        _f("row", 5, "pe_row", "with COLREP: 0 or 1 PE row 0's copy, r + 1 PE row r's (r < "
                               "nr; another layout: 0)"),
    ),
    Opcode.BCAST: (
        _f("dst", 16, "memb", "MemB base of the replicated copy"),
        _f("src", 16, "memb", "MemB base of the diagonal vector"),
        _f("len", 16, "count", "vector length"),
        _f("layout", 2, "Layout", "COLREP (column buses) or ROWREP (row buses); DIAG and FULL "
                                  "are illegal"),
    ),
    Opcode.GEMV: (
        _f("y", 16, "memb", "output y = W x (diagonal)"),
        _f("x", 16, "memb", "input x (column-replicated)"),
        _f("w", 16, "mema", "W (2D round-robin, rows x cols)"),
        _f("psum", 16, "memb", "scratch for the partial sums (ceil(rows / nr) words)"),
        _f("rows", 16, "count", "rows of W (outputs)"),
        _f("cols", 16, "count", "columns of W (inputs)"),
        _f("ldw", 16, "ld", "MemA leading dimension of W"),
        *_gemv_load("x", "cols", "COLREP"),
        *_store_y(),
    ),
    Opcode.GEMVT: (
        _f("z", 16, "memb", "output z = W^T d (diagonal)"),
        _f("d", 16, "memb", "input d (row-replicated)"),
        _f("w", 16, "mema", "W (2D round-robin, rows x cols)"),
        _f("psum", 16, "memb", "scratch for the partial sums (ceil(cols / nr) words)"),
        _f("rows", 16, "count", "rows of W (length of d)"),
        _f("cols", 16, "count", "columns of W (length of z)"),
        _f("ldw", 16, "ld", "MemA leading dimension of W"),
        *_gemv_load("d", "rows", "ROWREP"),
    ),
    Opcode.GER: (
        _f("w", 16, "mema", "W, updated in place (2D round-robin)"),
        _f("u", 16, "memb", "u (row-replicated, length rows)"),
        _f("v", 16, "memb", "v (column-replicated, length cols)"),
        _f("mom", 16, "mema", "momentum buffer, same tiling as W (used if use_mom)"),
        _f("rows", 16, "count", "rows of W"),
        _f("cols", 16, "count", "columns of W"),
        _f("ldw", 16, "ld", "MemA leading dimension of W and of the momentum buffer"),
        _f("alpha", 4, "sreg", "scalar register: step (-learning rate); without use_wd and "
           "use_mom unused: W += u v, u carries the step"),
        _f("wd", 4, "sreg", "scalar register: weight decay (used if use_wd)"),
        _f("mu", 4, "sreg", "scalar register: momentum (used if use_mom)"),
        _f("use_wd", 1, "flag", "g += wd * W"),
        _f("use_mom", 1, "flag", "m = g + mu * m; step with m"),
        _f("load", 1, "flag", "u (rows words from spad, the words LDV with layout ROWREP would "
           "load) goes from the SPAD into accumulator slots beside the update, not into MemB "
           "(u unused); needs use_wd = use_mom = 0; waits for the ring engine as LDV does"),
        _f("spad", 24, "spad", "first element of u in the SPAD (with load; multiple of nr)"),
    ),
    Opcode.CPASS: (
        _f("w", 16, "mema", "W (2D round-robin, rows x cols), updated in place"),
        _f("d", 16, "memb", "delta of the backward's sample (row-replicated; its extent is "
           "ceil(rows / nr) rounded up to a multiple of acc_lanes words, the tail read, unused; "
           "unused with load)"),
        _f("a", 16, "memb", "input of the backward's sample (column-replicated, length cols)"),
        _f("x", 16, "memb", "input of the forward's sample (column-replicated, length cols)"),
        _f("y", 16, "memb", "forward output y = W' x (diagonal; if fwd and not store)"),
        _f("z", 16, "memb", "backward output z = W^T d (diagonal; if prop)"),
        _f("q", 16, "memb", "scratch: acc_lanes ceil(cols / nr) partial sums of z (if prop)"),
        _f("fpsum", 16, "memb", "scratch for y's partial sums (ceil(rows / nr) words)"),
        _f("bpsum", 16, "memb", "scratch for z's partial sums (ceil(cols / nr) words)"),
        _f("rows", 16, "count", "rows of W"),
        _f("cols", 16, "count", "columns of W"),
        _f("ldw", 16, "ld", "MemA leading dimension of W"),
        _f("prop", 1, "flag", "compute z = W^T d with W before the update"),
        _f("fwd", 1, "flag", "compute y = W' x with W' after the update"),
        *_store_y("needs fwd; "),
        _f("load", 1, "flag", "d (rows words from spad, the words LDV with layout ROWREP would "
           "load) goes from the SPAD into accumulator slots beside the pass, not into MemB (d "
           "unused); waits for the ring engine as LDV does"),
        _f("spad", 24, "spad", "first element of d in the SPAD (with load; multiple of nr)"),
    ),
    Opcode.GEMM: (
        _f("c", 24, "spad", "C (row-major M x N) in the SPAD"),
        _f("a", 24, "spad", "A, transposed: A^T (row-major K x M) in the SPAD (with a_rows A "
                            "itself, row-major M x K; unused with a_mema)"),
        _f("b", 24, "spad", "B (row-major K x N) in the SPAD"),
        _f("m", 16, "count", "rows of A and C"),
        _f("n", 16, "count", "columns of B and C"),
        _f("k", 16, "count", "columns of A, rows of B"),
        _f("lda", 16, "ld", "SPAD leading dimension of A^T (multiple of nr, >= M; with a_rows "
                            "of A, >= K)"),
        _f("ldb", 16, "ld", "SPAD leading dimension of B (multiple of nr, >= N)"),
        _f("ldc", 16, "ld", "SPAD leading dimension of C (multiple of nr, >= N)"),
        _f("mc", 16, "count", "rows of A resident in MemA per block (multiple of nr * Lacc)"),
        _f("accumulate", 1, "flag", "C += A B (else C = A B)"),
        _f("a_mema", 1, "flag", "A is in MemA already (2D round-robin M x K from mema, "
                                "leading dimension ceil(K / nr), e.g. by lda; M <= mc): no A "
                                "stream, every panel reads MemA"),
        _f("mema", 16, "mema", "MemA base of A's tile: where a_mema finds A, else where each "
                               "streamed block of mc rows is kept for the later panels"),
        _f("relu", 1, "flag", "C rectified as it is stored: max(C, +0) of the rounded sums, "
                              "as vop maxs with +0 (-0 and negatives +0, NaN canonical)"),
        _f("a_rows", 1, "flag", "the SPAD holds A itself (row-major M x K, leading dimension "
                                "lda), not A^T; not with a_mema: each block's first panel loads "
                                "its rows into MemA's tile, one SPAD row per cycle, and "
                                "multiplies them there from 2 + 2^b nr Lacc cycles later (b: "
                                "MemA's bank bit), so no transpose of A is built in the SPAD"),
    ),
    Opcode.VOP: (
        _f("fn", 4, "VecOp", "elementwise operation"),
        _f("layout", 2, "Layout", "DIAG, COLREP or ROWREP (all PEs of the replicated layout) "
                                  "or FULL (every PE its own elements: nr^2 at once; len a "
                                  "multiple of nr)"),
        _f("z", 16, "memb", "output"),
        _f("x", 16, "memb", "first input"),
        _f("y", 16, "memb", "second input"),
        _f("len", 16, "count", "vector length"),
        _f("alpha", 4, "sreg", "scalar register a"),
    ),
    Opcode.SMXCE: (
        _f("z", 16, "memb", "output softmax(x) - t (rows 0: diagonal; else in each sample's "
                            "row, as x)"),
        _f("x", 16, "memb", "logits (column-replicated; row 0's copies are used, or each row "
                            "its sample's)"),
        _f("t", 16, "memb", "target distribution, e.g. one-hot (as x)"),
        _f("scr", 16, "memb", "scratch: 3 ceil(len / nr) + 2 words in the sample rows' PEs"),
        _f("len", 16, "count", "number of classes"),
        _f("rows", 5, "pe_row", "samples: 0 one in PE row 0, z on the diagonal; R in 1..nr: "
                                "sample r in PE row r (LDV and STV COLREP with row r + 1), "
                                "all at once"),
    ),
    Opcode.RING: (
        _f("src", 24, "spad", "first SPAD word sent to the next core (multiple of nr)"),
        _f("slen", 24, "count", "words sent first (0: send nothing; with fwd, the received "
           "words follow them, and they must leave a row of the ring queue free: fewer than "
           "ring_queue_depth rows)"),
        _f("dst", 24, "spad", "first SPAD word of the received vector (multiple of nr)"),
        _f("rlen", 24, "count", "words received from the previous core (0: receive nothing)"),
        _f("keep", 1, "flag", "write the received words (or sums) to dst"),
        _f("add", 1, "flag", "the received words are added to the words at dst"),
        _f("fwd", 1, "flag", "send every received word (or sum) on to the next core, after "
           "the slen sent ones and except the last hold"),
        _f("chain", 1, "flag", "use the chain links (core k-1 to k, the whole ring) instead of "
                               "the segment links (SRC registers), both ways"),
        _f("hold", 24, "count", "with fwd: the last hold received words (or sums) are not "
           "sent on (multiple of nr)"),
        _f("wbase", 24, "spad", "first SPAD word of the vector the received words wrap round "
           "(with wlen; multiple of nr)"),
        _f("wlen", 24, "count", "words of that vector: a received row past wbase + wlen goes to "
           "wbase (0: no wrap; multiple of nr)"),
    ),
}

def _with_relocation(op: Opcode, fields: tuple) -> tuple:
    """``fields`` and, where the instruction has room, a ``rel`` field: a selector per address
    field, in order (``cpass`` has none: its fields fill the word)."""
    addresses = [f.name for f in fields if f.kind in ADDRESS_KINDS]
    width = REL_BITS * len(addresses)
    if not addresses or OPCODE_BITS + sum(f.width for f in fields) + width > INSTR_BITS:
        return fields
    return (*fields, _f("rel", width, "rel", f"in a LOOP's body, per address field ("
                        f"{', '.join(addresses)}; {REL_BITS} bits each, the first lowest): "
                        "0 leaves it, k (1 to 3) adds r * stride k of the running LOOP in "
                        "repetition r of its body (0 when not given)"))


OPERANDS = {op: _with_relocation(op, fields) for op, fields in OPERANDS.items()}


@functools.cache
def field_offsets(op: Opcode) -> dict:
    """``{field name: its lowest bit in the instruction word}`` of ``op``'s operands."""
    offsets, offset = {}, OPCODE_BITS
    for f in OPERANDS[op]:
        offsets[f.name] = offset
        offset += f.width
    return offsets


def address_fields(op: Opcode) -> list:
    """The address fields of ``op`` that its ``rel`` selectors name, in selector order (empty
    when the opcode has no ``rel``: nothing of it moves in a loop)."""
    fields = OPERANDS[op]
    if not fields or fields[-1].name != "rel":
        return []
    return [f for f in fields if f.kind in ADDRESS_KINDS]


def relocate(op: Opcode, values: dict, offsets) -> dict:
    """The operand values of an instruction in a ``LOOP``'s body: each address field plus the
    offset its ``rel`` selector names (``offsets[k - 1]``, modulo the field's width); the
    values themselves when no selector is set."""
    rel = values.get("rel", 0)
    if not rel:
        return values
    moved = dict(values)
    mask = (1 << REL_BITS) - 1
    for i, f in enumerate(address_fields(op)):
        sel = (rel >> (REL_BITS * i)) & mask
        if sel:
            moved[f.name] = (values[f.name] + offsets[sel - 1]) & ((1 << f.width) - 1)
    return moved


def relocate_word(word: int, offsets) -> int:
    """Instruction ``word`` as a loop with ``offsets`` runs it: :func:`relocate`'s fields and
    ``rel`` cleared, every other bit kept (a word without ``rel`` selectors as it is)."""
    op, values = unpack(word)
    if op is None or not values.get("rel"):
        return word
    moved, where = relocate(op, values, offsets), field_offsets(op)
    for f in OPERANDS[op]:
        new = 0 if f.name == "rel" else moved[f.name]
        word ^= (values[f.name] ^ new) << where[f.name]
    return word


class LoopState:
    """The sequencer's ``LOOP``, as the core runs it (``rtl/sequencer.py``) and the simulators
    model it.

    A ``LOOP`` at ``pc`` runs the ``body`` instructions after it ``count`` times; in
    repetition ``r`` (from 0) each address field a body instruction's ``rel`` selects with
    ``k`` is ``r * stride_k`` further (modulo the field's width; ``cpass``, whose fields fill
    its word, has no ``rel`` and runs as it is in every repetition). The jump from the body's
    last instruction back to its first costs no cycle (the check of the last fetches the
    first); after the last repetition the instruction after the body follows. A ``LOOP`` in a
    running loop's body stops the core with ``illegal_field``, as do ``count`` or ``body``
    0. A run's start forgets any loop (a ``halt`` may end one early)."""

    _MASK = (1 << next(f.width for f in OPERANDS[Opcode.LOOP] if f.name == "stride1")) - 1

    def __init__(self):
        self.reset()

    def reset(self):
        """No loop runs (a run's start)."""
        self.start = self.end = -1
        self.left = 0
        self.offsets = (0,) * LOOP_OFFSETS
        self.strides = (0,) * LOOP_OFFSETS

    @property
    def active(self) -> bool:
        return self.end >= 0

    def legal(self, values: dict) -> bool:
        """Whether a ``LOOP`` with operand ``values`` may begin now."""
        return not self.active and values["count"] >= 1 and values["body"] >= 1

    def begin(self, pc: int, values: dict):
        """Start the loop of the (legal) ``LOOP`` at ``pc``."""
        self.start, self.end = pc + 1, pc + values["body"]
        self.left = values["count"] - 1
        self.offsets = (0,) * LOOP_OFFSETS
        self.strides = tuple(values[f"stride{k}"] for k in range(1, LOOP_OFFSETS + 1))

    def operands(self, op: Opcode, values: dict) -> dict:
        """The values the instruction to run next executes with (:func:`relocate`d while a
        loop runs: only its body runs then)."""
        return relocate(op, values, self.offsets) if self.active else values

    def next_pc(self, pc: int) -> int:
        """Where the run goes after the instruction at ``pc`` retires (and the loop moves on:
        call once per instruction)."""
        if self.active and pc == self.end:
            if self.left:
                self.left -= 1
                self.offsets = tuple((o + s) & self._MASK
                                     for o, s in zip(self.offsets, self.strides, strict=True))
                return self.start
            self.reset()
        return pc + 1


class IsaError(ValueError):
    """An instruction cannot be encoded or decoded; the message names the field."""


#: Enumerations a field's ``kind`` can name.
ENUMS = {e.__name__: e for e in (Layout, VecOp, Counter)}


def field_enum(field: Field) -> type[enum.Enum] | None:
    """Return the enumeration a field holds (``Layout``, ``VecOp``, ``Counter``), or None."""
    return ENUMS.get(field.kind)


@dataclass(frozen=True)
class Instruction:
    """A decoded instruction: opcode and operand values (enum fields as enum members)."""

    op: Opcode
    args: dict

    def __getattr__(self, name):
        try:
            return self.args[name]
        except KeyError:
            raise AttributeError(name) from None

    def text(self) -> str:
        """Return the assembly text of this instruction."""
        parts = [self.op.name.lower()]
        for f in OPERANDS[self.op]:
            value = self.args[f.name]
            if f.kind in ("rel", "pe_row") and not value:
                continue
            if isinstance(value, enum.Enum):
                parts.append(f"{f.name}={value.name.lower()}")
            elif f.kind in ("spad", "mema", "memb", "imm"):
                parts.append(f"{f.name}={value:#x}")
            else:
                parts.append(f"{f.name}={value}")
        return " ".join(parts)


def encode(op: Opcode, *, strict: bool = True, **args) -> int:
    """Return the 256-bit instruction word of ``op`` with the given operands.

    Missing operands are 0 (enum fields: their 0 member). Raises :class:`IsaError` naming the
    field when a value is unknown, not an integer, negative or too wide. ``strict=False``
    accepts any integer that fits an enum field (to build illegal instructions for tests).
    """
    # A compile encodes the same few instructions (ring commands above all) again and again:
    # N1 cp, 1.26 M calls. The cache's key holds the values' types, so 1 and True stay apart.
    try:
        return _encode_cached(op, strict, **args)
    except TypeError:   # an unhashable value: no cache, the same checks
        return _encode(op, strict, args)


@functools.lru_cache(maxsize=1 << 16, typed=True)
def _encode_cached(op, strict: bool, **args) -> int:
    return _encode(op, strict, args)


def _encode(op, strict: bool, args: dict) -> int:
    op = Opcode(op)
    fields = {f.name: f for f in OPERANDS[op]}
    unknown = sorted(set(args) - set(fields))
    if unknown:
        raise IsaError(f"{op.name.lower()} has no field {unknown[0]!r}; its fields are "
                       f"{', '.join(fields) or 'none'}")
    word, where = op.value, field_offsets(op)
    for name, f in fields.items():
        value = args.get(name, 0)
        shape = field_enum(f)
        if shape is not None and (strict or not isinstance(value, int)):
            try:
                value = shape(value).value
            except ValueError:
                choices = ", ".join(m.name.lower() for m in shape)
                raise IsaError(f"field {name!r} of {op.name.lower()} must be one of "
                               f"{choices}, not {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise IsaError(f"field {name!r} of {op.name.lower()} must be an integer, "
                           f"not {value!r}")
        if not 0 <= value < (1 << f.width):
            raise IsaError(f"field {name!r} of {op.name.lower()} must be in "
                           f"0..{(1 << f.width) - 1} ({f.width} bits), not {value}")
        word |= value << where[name]
    return word


def unpack(word: int) -> tuple[Opcode | None, dict]:
    """Return ``(opcode, {field: int})`` of an instruction word, checking nothing else.

    The opcode is None when bits 0-7 name no :class:`Opcode` (the fields are then empty);
    enumeration fields are returned as the integers they hold, legal or not. The hardware's
    decoder sees an instruction this way: what is illegal is for its checks to say.
    """
    op, items = _unpacked(word)
    return op, dict(items)


@functools.lru_cache(maxsize=1 << 16)
def _unpacked(word: int) -> tuple:
    """:func:`unpack` as ``(opcode, ((field, value), ...))``, cached: simulators decode the
    same words of a program again and again."""
    try:
        op = Opcode(word & ((1 << OPCODE_BITS) - 1))
    except ValueError:
        return None, ()
    where = field_offsets(op)
    return op, tuple((f.name, (word >> where[f.name]) & ((1 << f.width) - 1))
                     for f in OPERANDS[op])


def reserved_bits(word: int) -> int:
    """Return the bits of an instruction word no field of its opcode covers (0 if none are
    set; every bit above the opcode for an illegal opcode)."""
    op, _ = unpack(word)
    used = OPCODE_BITS + (sum(f.width for f in OPERANDS[op]) if op is not None else 0)
    return word >> used


def decode(word: int) -> Instruction:
    """Decode a 256-bit instruction word; raise :class:`IsaError` for an unknown opcode, an
    enumeration field holding no member, or nonzero bits outside every field."""
    op, values = unpack(word)
    if op is None:
        raise IsaError(f"illegal opcode {word & ((1 << OPCODE_BITS) - 1):#04x}")
    if reserved_bits(word):
        raise IsaError(f"{op.name.lower()} has nonzero reserved bits (above bit "
                       f"{OPCODE_BITS + sum(f.width for f in OPERANDS[op]) - 1})")
    args = {}
    for f in OPERANDS[op]:
        value, shape = values[f.name], field_enum(f)
        if shape is not None:
            try:
                value = shape(value)
            except ValueError:
                raise IsaError(f"field {f.name!r} of {op.name.lower()} holds {value}, "
                               f"which is not a {shape.__name__}") from None
        args[f.name] = value
    return Instruction(op, args)


def isa_markdown() -> str:
    """Return the ISA reference table (Markdown) for ``docs/isa.md``."""
    lines = ["# Instruction set", "",
             f"Every instruction is {INSTR_BITS} bits: bits 0-7 hold the opcode, the operand "
             "fields follow from bit 8 in the order listed. Generated from "
             "`caterpillar.contract.isa`; do not edit.", ""]
    for op in Opcode:
        lines += [f"## `{op.name.lower()}` (opcode {op.value:#04x})", ""]
        if not OPERANDS[op]:
            lines += ["No operands.", ""]
            continue
        lines += ["| field | bits | kind | meaning |", "|---|---|---|---|"]
        where = field_offsets(op)
        for f in OPERANDS[op]:
            offset = where[f.name]
            lines.append(f"| `{f.name}` | {offset}-{offset + f.width - 1} | {f.kind} | "
                         f"{f.doc} |")
        lines.append("")
        if op == Opcode.LOOP:
            rule = inspect.cleandoc(LoopState.__doc__).split("\n\n", 1)[1]
            lines += [rule.replace("``", "`"), ""]
    for enum_type in (ErrorCause, Layout, VecOp):
        lines += [f"## `{enum_type.__name__}`", "", "| value | name |", "|---|---|"]
        lines += [f"| {m.value} | `{m.name.lower()}` |" for m in enum_type]
        lines.append("")
    lines += ["## `Counter`", "", "| value | name | counts |", "|---|---|---|"]
    lines += [f"| {c.value} | `{c.name.lower()}` | {COUNTER_MEANING[c]} |" for c in Counter]
    lines.append("")
    return "\n".join(lines)
