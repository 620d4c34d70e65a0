"""Kernel geometry and timing: checks, loop nests, footprints and cycles of every instruction.

Written once, for two kinds of numbers: the plans take the operand fields either as Python ints
(the instruction-level simulator, the compiler and the assembler predict cycles and check ranges
with them) or as Amaranth values (the sequencer's decoder builds the same arithmetic in
hardware). Only ``+``, ``-``, ``*``, shifts, comparisons, ``&``, ``|`` and a two-way ``select``
are used, which both kinds support; the caller hands in the ``select`` of its kind (plain Python
here, ``Mux`` in the RTL), so this module imports no Amaranth. Divisors are powers of two.

Each opcode has one plan function in :data:`PLANS`; :func:`instruction_cycles` is the
sequencer's timing rule, the only one.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from types import SimpleNamespace

from caterpillar.contract.isa import ErrorCause, Layout, Opcode, VecOp, unpack

__all__ = ["cdiv", "log2", "python_select", "vector_words", "Segment", "Check", "KernelPlan",
           "PLANS", "kernel_plan", "cpass_fits", "INSTRUCTION_OVERHEAD", "SEQUENCER_OPCODES",
           "RUN_START_CYCLES", "RING_DRAINING_OPCODES", "RING_POST_CYCLES", "ring_waits",
           "SPAD_REGIONS", "spad_region_bit", "spad_region", "spad_region_rows",
           "spad_span_regions", "gemv_load_lead", "ger_load_lead", "GER_U_SLOTS",
           "instruction_cycles", "word_cycles", "words_spad_regions", "execution_cycles",
           "MAC_SEGMENTS", "word_mac_step_cycles",
           "drain_cycles", "TRANSFER_OPCODES",
           "TRANSFER_DRAIN_CYCLES", "GemmPhase", "GemmSchedule", "gemm_schedule",
           "gemm_a_rows_lead",
           "ring_queue_depth", "trailing_zeros", "bank_of", "bank_index", "bank_depth",
           "mema_bank_bit", "mema_bank_period", "mema_bank_words", "spad_bank_bit", "spad_bank",
           "spad_bank_index", "spad_bank_rows", "SMX_EXP_STEPS", "SMX_RECIP_STEPS"]

#: Cycles before an instruction's first micro-op: its check. The sequencer fetches the next
#: instruction in that cycle and decodes it in the cycle the instruction retires, so only the
#: run's first instruction waits for its fetch and decode (:data:`RUN_START_CYCLES`).
INSTRUCTION_OVERHEAD = 1

#: Cycles of the run's first fetch and decode, before its first check.
RUN_START_CYCLES = 2

#: Instructions the sequencer completes in its check cycle (no micro-ops, no engine). All but
#: ``halt`` take one cycle more: the decode of the next instruction, fetched in their check
#: (``loop``'s: its body's first; :class:`~caterpillar.contract.isa.LoopState`).
SEQUENCER_OPCODES = (Opcode.NOP, Opcode.HALT, Opcode.SYNC, Opcode.SETS, Opcode.LOOP)

#: A ``RING`` is posted: it hands its fields to the ring engine (which starts it, or queues it
#: behind the one it runs: ``cfg.ring_commands``) and retires in its check cycle, and the
#: instructions after it run while the engine moves the data. The SPAD is two regions, each
#: with its own ports (:func:`spad_region`): an instruction that uses the SPAD waits in its
#: check while a posted ``RING`` not yet finished (running or queued) uses one of its regions
#: (:func:`KernelPlan.spad_regions <KernelPlan>`), so the array and the engine never share a
#: region's ports; these wait until the engine is idle and its queue empty: ``rdcnt`` (the
#: counters it reads count the engine's events too), and ``sync`` and ``halt``, which wait for
#: the ring by definition; a ``RING`` waits only while the queue is full (without a queue,
#: while the engine is active).
RING_DRAINING_OPCODES = (Opcode.RDCNT, Opcode.SYNC, Opcode.HALT)


def ring_waits(op, regions: int, ring_regions: int, ring_busy: bool, queue_full: bool) -> bool:
    """Whether instruction ``op``, which uses the SPAD regions in the mask ``regions``, waits
    in its check (:data:`RING_DRAINING_OPCODES`): ``ring_regions`` is the mask of the regions
    the posted, unfinished ``RING`` s use, ``ring_busy`` whether there is one, ``queue_full``
    whether the engine's command queue is full. ``rtl/sequencer.py`` decides the same with
    Amaranth values."""
    if op == Opcode.RING:
        return queue_full
    if op in RING_DRAINING_OPCODES:
        return ring_busy
    return bool(regions & ring_regions)


#: Cycles a posted ``RING`` takes from the core: its check, then the next instruction's decode.
RING_POST_CYCLES = INSTRUCTION_OVERHEAD + 1

#: Instructions whose kernels issue transfer micro-ops only (no compute): each load (into MemA,
#: MemB or an accumulator slot, ``rtl/pe.py``) and store (into the SPAD, ``rtl/spad.py``)
#: writes at the end of the second cycle after it reaches the array, so their drain is
#: :data:`TRANSFER_DRAIN_CYCLES`, not the compute pipeline's ``write_back_latency``.
TRANSFER_OPCODES = (Opcode.RDCNT, Opcode.LDA, Opcode.STA, Opcode.LDV, Opcode.STV)

#: The drain after a transfer kernel's last micro-op. One cycle would let the next
#: instruction's first read see the last load; the second keeps a ring engine started right
#: after a store (it owns every SPAD port from the cycle after its check) clear of the store's
#: write; the third lets the next instruction's check, where ``rdcnt`` reads the counters,
#: see the last write counted, as the compute kernels' drain does for theirs.
TRANSFER_DRAIN_CYCLES = 3


def gemv_load_lead(cfg) -> int:
    """Steps (``acc_lanes`` cycles each) a GEMV or GEMVT with ``load`` runs its MACs behind its
    load: a word loaded in a step's first cycle is read :data:`TRANSFER_DRAIN_CYCLES` or more
    cycles later, as the next instruction's reads after an LDV are."""
    return -(-TRANSFER_DRAIN_CYCLES // cfg.acc_lanes)


def ger_load_lead(cfg) -> int:
    """Rows of ``u`` a GER with ``load`` loads before its first update (one SPAD row per
    cycle), and how many rows ahead of the update its later loads run (one in the first cycle
    of each row): every row lasts a cycle or more, so a word is loaded
    :data:`TRANSFER_DRAIN_CYCLES` or more cycles before the first update that reads it."""
    return TRANSFER_DRAIN_CYCLES


#: Accumulator slots (``0 ..``) that hold the rows of ``u`` a GER with ``load`` has loaded:
#: the row being updated and the :func:`ger_load_lead` rows loaded ahead of it. The load of
#: row ``i + lead`` (into the slot of row ``i - 1``) writes two cycles after row ``i``'s first
#: update, after row ``i - 1``'s last read.
GER_U_SLOTS = 1 << TRANSFER_DRAIN_CYCLES.bit_length()


#: Micro-op steps of SMXCE's exp sequence per element, and of its reciprocal (one PE).
SMX_EXP_STEPS = 12
SMX_RECIP_STEPS = 8


def python_select(cond, a, b):
    """``a if cond else b``: the select of Python numbers."""
    return a if cond else b


def vector_words(nr: int, layout, length, select=python_select):
    """MemB words per PE of a vector of ``length`` elements in ``layout`` (a
    :class:`~caterpillar.contract.isa.Layout` value; ints or, with ``select``, Amaranth values):
    ``ceil(length / nr)``, or ``ceil(length / nr^2)`` spread over every PE (``FULL``)."""
    return select(layout == Layout.FULL.value, cdiv(length, nr * nr), cdiv(length, nr))


def log2(n: int) -> int:
    """Return ``log2(n)`` for a power of two."""
    assert n > 0 and n & (n - 1) == 0, n
    return n.bit_length() - 1


def cdiv(x, n: int):
    """Return ``ceil(x / n)`` for a power of two ``n``."""
    return (x + (n - 1)) >> log2(n)


def trailing_zeros(distance: int) -> int:
    """The lowest set bit of ``distance > 0``: two addresses ``distance`` apart always differ
    in that bit, which makes it the bank bit of a memory whose two users are that far apart."""
    return (distance & -distance).bit_length() - 1


def bank_of(address, bit: int):
    """The bank (0 or 1) of ``address`` when bit ``bit`` picks it (Python ints or Amaranth
    values)."""
    return (address >> bit) & 1


def bank_index(address, bit: int):
    """Where ``address`` lives in its bank: ``address`` with bit ``bit`` removed."""
    return ((address >> (bit + 1)) << bit) | (address & ((1 << bit) - 1))


def bank_depth(size: int, bit: int) -> int:
    """Entries of each bank of a memory of ``size`` entries split by bit ``bit``."""
    step = 1 << (bit + 1)
    return cdiv(size, step) * (step >> 1)


def spad_bank_bit(cfg) -> int:
    """The row-address bit that picks a SPAD row's bank (docs/architecture.md section 1).

    The SPAD is two true dual-port banks. A ring engine adding received rows reads a row and
    writes the row it read ``La + 1`` cycles earlier; while beats arrive every cycle those
    rows are ``La + 1`` apart, so with :func:`trailing_zeros` of that distance as the bank
    bit the add's read and write sit in different banks and leave a port free for the row
    being sent.
    """
    return trailing_zeros(cfg.add_latency + 1)


def mema_bank_bit(cfg) -> int:
    """The address bit that picks a MemA word's bank (docs/architecture.md section 1).

    MemA is two single-port banks. The plain rank-1 update reads ``W`` at issue and writes
    ``W'`` ``write_back_latency - 1`` cycles later, one weight per cycle at consecutive
    addresses, so with :func:`trailing_zeros` of that distance as the bank bit every cycle's
    read and write sit in different banks (the SPAD's rule, :func:`spad_bank_bit`).
    """
    return trailing_zeros(cfg.write_back_latency - 1)


def mema_bank_period(cfg) -> int:
    """Addresses over which MemA's bank pattern repeats: arrays whose bases differ by a
    multiple of it (or rows whose stride does) keep the same banks word for word."""
    return 2 << mema_bank_bit(cfg)


def mema_bank_words(cfg) -> int:
    """Words of one MemA bank (word ``a`` is word ``bank_index(a, mema_bank_bit)`` of bank
    ``bank_of(a, mema_bank_bit)``)."""
    return bank_depth(cfg.mema_words, mema_bank_bit(cfg))


def spad_bank(cfg, row):
    """The bank (0 or 1) of its region (:func:`spad_region`) that holds SPAD row ``row``
    (Python ints or Amaranth values)."""
    return bank_of(row, spad_bank_bit(cfg))


def spad_bank_index(cfg, row):
    """The row of its region's bank that holds SPAD row ``row``: the row within its region,
    the bank bit removed (Python ints or Amaranth values)."""
    return bank_index(row & ((1 << spad_region_bit(cfg)) - 1), spad_bank_bit(cfg))


def spad_bank_rows(cfg, region: int) -> int:
    """Rows of each bank of SPAD region ``region``: every row ``r`` of the SPAD is row
    ``spad_bank_index(r)`` of bank ``spad_bank(r)`` of region ``spad_region(r)``."""
    return bank_depth(spad_region_rows(cfg, region), spad_bank_bit(cfg))


#: The SPAD's regions: two, each a pair of banks with their own ports, so the array and the
#: ring engine can use one each in the same cycle (:data:`RING_DRAINING_OPCODES`).
SPAD_REGIONS = 2


def spad_region_bit(cfg) -> int:
    """The row-address bit that picks a SPAD row's region: the top bit of a row address, so
    region 0 is the rows below ``1 << spad_region_bit`` (at least half of them) and region 1
    the rest."""
    return (cfg.spad_rows - 1).bit_length() - 1


def spad_region(cfg, row):
    """The region (0 or 1) of SPAD row ``row`` (Python ints or Amaranth values)."""
    return row >> spad_region_bit(cfg)


def spad_region_rows(cfg, region: int) -> int:
    """Rows of SPAD region ``region``: row ``r`` is row ``r - region * 2 ** spad_region_bit``
    of region :func:`spad_region`."""
    low = 1 << spad_region_bit(cfg)
    return low if region == 0 else cfg.spad_rows - low


def spad_span_regions(cfg, base, extent, select=python_select):
    """The mask of the regions (bit ``r``: region ``r``) the SPAD words ``base .. base +
    extent - 1`` touch (none when ``extent`` is 0; Python ints or Amaranth values)."""
    shift = spad_region_bit(cfg) + log2(cfg.nr)
    first, last = base >> shift, (base + extent - 1) >> shift
    return select(extent == 0, 0, (first == 0) | ((last != 0) << 1))


def ring_queue_depth(cfg) -> int:
    """Entries of a ring engine's outgoing queue: one beat per cycle through the add pipeline
    (docs/multicore.md)."""
    return cfg.add_latency + 4


@dataclass
class Segment:
    """A loop nest of a kernel's micro-op stream: ``top x outer x middle x inner`` cycles."""

    name: str
    top: object = 1
    outer: object = 1
    middle: object = 1
    inner: object = 1

    @property
    def cycles(self):
        """Cycles the segment lasts."""
        return self.top * self.outer * self.middle * self.inner


@dataclass
class Check:
    """One condition an instruction must meet, and the error cause if it does not."""

    ok: object
    cause: ErrorCause
    what: str


@dataclass
class KernelPlan:
    """Segments of an instruction's micro-op stream, its checks and named quantities.

    ``schedule`` (ints only) replaces the segments for kernels with their own engine (GEMM).
    ``skip_first``: the first segment has no cycles and the sequencer starts at the second.
    ``spad_regions``: the mask of the SPAD regions (:func:`spad_region`) the instruction's
    SPAD operands touch, from the extents its range checks name.
    """

    segments: list
    checks: list
    values: dict
    schedule: object = None
    skip_first: object = 0
    spad_regions: object = 0

    @property
    def stream_cycles(self):
        """Cycles of micro-ops (ints only)."""
        if self.schedule is not None:
            return self.schedule.cycles
        return sum(s.cycles for s in self.segments)


class _Context:
    """What a plan function computes with: the config, the ``select`` of the number kind and
    the checks every kernel shares."""

    def __init__(self, cfg, select):
        self.cfg, self.select = cfg, select
        self.nr = cfg.nr
        self.spad_regions = 0   # the regions of the SPAD extents checked so far

    def in_range(self, base, extent, size: int, cause: ErrorCause, what: str) -> Check:
        # extent 0 never touches memory: it is always in range.
        return Check(self.select(extent == 0, 1, base + extent <= size), cause, what)

    def spad(self, base, extent, what: str, touched=None) -> Check:
        """The range check of the SPAD words ``base .. base + extent - 1``; the instruction
        uses their regions, or only those of the first ``touched`` of them."""
        used = extent if touched is None else touched
        self.spad_regions = self.spad_regions | spad_span_regions(self.cfg, base, used,
                                                                  self.select)
        return self.in_range(base, extent, self.cfg.spad_words, ErrorCause.SPAD_RANGE, what)

    def mema(self, base, extent, what: str) -> Check:
        return self.in_range(base, extent, self.cfg.mema_words, ErrorCause.MEMA_RANGE, what)

    def memb(self, base, extent, what: str) -> Check:
        return self.in_range(base, extent, self.cfg.memb_words, ErrorCause.MEMB_RANGE, what)

    def aligned(self, value, what: str) -> Check:
        return Check((value & (self.nr - 1)) == 0, ErrorCause.BAD_SHAPE,
                     f"{what} must be a multiple of nr")

    @staticmethod
    def positive(value, what: str) -> Check:
        return Check(value != 0, ErrorCause.BAD_SHAPE, f"{what} must be positive")

    def full_whole_rows(self, layout, length) -> Check:
        """A vector spread over every PE (``FULL``) fills whole SPAD rows: its PEs' bounds
        are rows, so no element past the end is computed."""
        return Check(self.select(layout == Layout.FULL.value, (length & (self.nr - 1)) == 0, 1),
                     ErrorCause.BAD_SHAPE, "len must be a multiple of nr with layout full")

    def vector_words(self, layout, length):
        """MemB words per PE of a vector of ``length`` elements in ``layout``."""
        return vector_words(self.nr, layout, length, self.select)


def _plan_none(f, c: _Context) -> KernelPlan:
    return KernelPlan([], [], {})


def _plan_ring(f, c: _Context) -> KernelPlan:
    nr = c.nr
    send_rows, recv_rows = cdiv(f.slen, nr), cdiv(f.rlen, nr)
    wraps, stores = f.wlen != 0, f.keep | f.add
    inside = (f.dst >= f.wbase) & (f.dst < f.wbase + f.wlen) & (f.rlen <= f.wlen)
    checks = [
        c.aligned(f.src, "src"), c.aligned(f.dst, "dst"), c.aligned(f.hold, "hold"),
        c.aligned(f.wbase, "wbase"), c.aligned(f.wlen, "wlen"),
        Check(c.select(f.fwd, 1, f.hold == 0), ErrorCause.ILLEGAL_FIELD, "hold needs fwd"),
        Check(f.hold <= f.rlen, ErrorCause.BAD_SHAPE, "hold must not exceed rlen"),
        # The received rows wait for the sent ones: those must leave room in the queue for
        # a received row, or two neighbours would wait on each other.
        Check(c.select(f.fwd, send_rows < ring_queue_depth(c.cfg), 1), ErrorCause.BAD_SHAPE,
              "with fwd, slen must leave a row of the ring queue free (ring_queue_depth)"),
        Check(c.select(wraps, inside, 1), ErrorCause.BAD_SHAPE,
              "dst must lie in wbase .. wbase + wlen, and rlen must not exceed wlen"),
        c.spad(f.src, send_rows * nr, "src"),
        # Received rows only forwarded (neither kept nor added to) touch no SPAD row.
        Check(c.select(wraps, c.spad(f.wbase, f.wlen, "wbase", c.select(stores, f.wlen, 0)).ok,
                       c.spad(f.dst, recv_rows * nr, "dst",
                              c.select(stores, recv_rows * nr, 0)).ok),
              ErrorCause.SPAD_RANGE, "dst (or the wrapped vector wbase .. wbase + wlen)"),
    ]
    # The ring engine times itself (docs/multicore.md): no micro-op segments.
    return KernelPlan([], checks, {"send_rows": send_rows, "recv_rows": recv_rows})


def _plan_rdcnt(f, c: _Context) -> KernelPlan:
    words = cdiv(64, c.cfg.word_width)
    return KernelPlan([Segment("store", inner=words)], [c.spad(f.spad, words, "spad")],
                      {"words": words})


def _plan_vector_move(f, c: _Context) -> KernelPlan:
    """LDV and STV: a vector between the SPAD and MemB, one SPAD row per cycle."""
    rows = cdiv(f.len, c.nr)
    checks = [c.positive(f.len, "len"), c.aligned(f.spad, "spad"),
              c.spad(f.spad, rows * c.nr, "spad"),
              c.memb(f.memb, c.vector_words(f.layout, f.len), "memb"),
              c.full_whole_rows(f.layout, f.len),
              Check((f.row == 0) | ((f.layout == Layout.COLREP.value) & (f.row <= c.nr)),
                    ErrorCause.ILLEGAL_FIELD, "row needs layout colrep and must not exceed nr")]
    return KernelPlan([Segment("rows", inner=rows)], checks, {"rows": rows})


def _plan_bcast(f, c: _Context) -> KernelPlan:
    rows = cdiv(f.len, c.nr)
    checks = [c.positive(f.len, "len"), c.memb(f.src, rows, "src"), c.memb(f.dst, rows, "dst"),
              Check((f.layout == Layout.COLREP.value) | (f.layout == Layout.ROWREP.value),
                    ErrorCause.ILLEGAL_FIELD, "layout must be colrep or rowrep")]
    return KernelPlan([Segment("rows", inner=rows)], checks, {"rows": rows})


def _plan_tile_move(f, c: _Context) -> KernelPlan:
    """LDA and STA: a matrix between the SPAD and MemA (2D round-robin), one SPAD row chunk
    per cycle."""
    nr, select = c.nr, c.select
    tile_rows, tile_chunks = cdiv(f.rows, nr), cdiv(f.cols, nr)
    # trans: the SPAD holds the transpose (cols x rows), one SPAD row per tile column.
    spad_rows = select(f.trans, f.cols, f.rows)
    spad_chunks = select(f.trans, cdiv(f.rows, nr), tile_chunks)
    spad_width = select(f.trans, f.rows, f.cols)
    checks = [
        c.positive(f.rows, "rows"), c.positive(f.cols, "cols"),
        c.aligned(f.spad, "spad"), c.aligned(f.lds, "lds"),
        Check(f.lds >= spad_width, ErrorCause.BAD_SHAPE, "lds must cover a SPAD row"),
        Check(f.ldm >= tile_chunks, ErrorCause.BAD_SHAPE, "ldm must be >= ceil(cols / nr)"),
        c.spad(f.spad, (spad_rows - 1) * f.lds + spad_chunks * nr, "spad"),
        c.mema(f.mema, (tile_rows - 1) * f.ldm + tile_chunks, "mema"),
    ]
    return KernelPlan([Segment("rows", middle=spad_rows, inner=spad_chunks)], checks,
                      {"spad_rows": spad_rows, "spad_chunks": spad_chunks})


def _store_checks(c: _Context, f, store, out_loc) -> list[Check]:
    """The checks of GEMV's and CPASS's ``store`` of ``out_loc`` SPAD rows of ``y`` at
    ``dst``."""
    return [Check(c.select(store, (f.dst & (c.nr - 1)) == 0, 1), ErrorCause.BAD_SHAPE,
                  "dst must be a multiple of nr"),
            c.spad(f.dst, c.select(store, out_loc * c.nr, 0), "dst")]


def _plan_gemv(f, c: _Context, transposed: bool) -> KernelPlan:
    cfg, nr = c.cfg, c.nr
    m_loc, k_loc = cdiv(f.rows, nr), cdiv(f.cols, nr)
    out_loc, red_loc = (k_loc, m_loc) if transposed else (m_loc, k_loc)
    groups = cdiv(out_loc, cfg.acc_lanes)
    in_field = "d" if transposed else "x"
    # With load, every row group's steps start gemv_load_lead steps late: the loads (one SPAD
    # row per step, in the first group) stay that far ahead of the MACs reading their words.
    lead = c.select(f.load, gemv_load_lead(cfg), 0)
    checks = [
        c.positive(f.rows, "rows"), c.positive(f.cols, "cols"),
        Check(f.ldw >= k_loc, ErrorCause.BAD_SHAPE, "ldw must be >= ceil(cols / nr)"),
        c.mema(f.w, (m_loc - 1) * f.ldw + k_loc, "w"),
        c.memb(getattr(f, in_field), red_loc, in_field),
        c.memb(f.psum, out_loc, "psum"),
        Check(c.select(f.load, (f.spad & (nr - 1)) == 0, 1), ErrorCause.BAD_SHAPE,
              "spad must be a multiple of nr"),
        c.spad(f.spad, c.select(f.load, red_loc * nr, 0), "spad"),
    ]
    # With store (GEMV), y's sums land in accumulator slots and each SPAD row is stored
    # write_back_latency cycles after its sums were issued: the chain runs that much longer.
    store = 0 if transposed else f.store
    tail = c.select(store, cfg.write_back_latency, 0)
    if transposed:
        checks.append(c.memb(f.z, out_loc, "z"))
    else:
        checks += [c.memb(f.y, c.select(store, 0, out_loc), "y"),
                   *_store_checks(c, f, store, out_loc)]
    segments = [Segment("partial", outer=groups, middle=red_loc + lead, inner=cfg.acc_lanes),
                Segment("gap", inner=cfg.write_back_latency),
                Segment("chain", inner=out_loc + (nr - 1) * (cfg.add_latency + 1) + tail)]
    return KernelPlan(segments, checks, {"m_loc": m_loc, "k_loc": k_loc,
                                         "out_loc": out_loc, "red_loc": red_loc, "lead": lead})


def ger_issue_run(cfg) -> int:
    """Weights the plain rank-1 update issues back to back before as many idle cycles.

    Its one micro-op per weight reads ``W`` from MemA at issue (the addend) and writes ``W'``
    ``write_back_latency - 1`` cycles later. With runs of ``q`` issues and ``q`` idle cycles,
    ``q`` the largest power of two dividing ``write_back_latency - 1`` (an odd multiple of
    ``q``), every write lands in an idle cycle: MemA's one port is busy every cycle, two
    cycles per weight.
    """
    gap = cfg.write_back_latency - 1
    return gap & -gap


def _plan_ger(f, c: _Context) -> KernelPlan:
    nr, lanes, select = c.nr, c.cfg.chain_lanes, c.select
    m_loc, k_loc = cdiv(f.rows, nr), cdiv(f.cols, nr)
    # Without weight decay and momentum one micro-op per weight, W += u v with W read at
    # issue: one per cycle while the rows follow each other in MemA's banks (every read and
    # the write of the weight issued write_back_latency - 1 cycles earlier in different banks,
    # also across rows: ldw - k_loc a multiple of twice the bank bit's weight), else in runs
    # of ger_issue_run issues and idle cycles.
    # With flags: g = u v, [g += wd W], [m = g + mu m, to MemA too], W += alpha g (or m), W and
    # m read at issue, lanes weights per step: the write-backs of a step land in the next
    # step's reads of the other array, or in the next group's first step, in different banks
    # while the momentum buffer sits in W's bank pattern (mom - w a multiple of twice the bank
    # bit's weight); otherwise W goes through a slot and m is stored by a move (two more steps).
    # With flags and rows of lanes / 2 words (ldw), a step takes two rows (``paired``): its
    # lanes then read and write the same run of lanes MemA words as one row of ldw = lanes
    # would (so the same banks), and a PE's few columns (a layer split by columns) fill them.
    plain = (f.use_wd == 0) & (f.use_mom == 0)
    run = ger_issue_run(c.cfg)
    bank_period = mema_bank_period(c.cfg) - 1
    banked = (f.use_mom == 0) | (((f.mom - f.w) & bank_period) == 0)
    steps = select(banked, 2 + f.use_wd + f.use_mom, 3 + f.use_wd + 2 * f.use_mom)
    streams = plain & (((f.ldw - k_loc) & bank_period) == 0)
    paired = (plain == 0) & (2 * f.ldw == lanes)
    checks = [
        c.positive(f.rows, "rows"), c.positive(f.cols, "cols"),
        Check(f.ldw >= k_loc, ErrorCause.BAD_SHAPE, "ldw must be >= ceil(cols / nr)"),
        c.mema(f.w, (m_loc - 1) * f.ldw + k_loc, "w"),
        c.mema(f.mom, c.select(f.use_mom, (m_loc - 1) * f.ldw + k_loc, 0), "mom"),
        c.memb(f.u, select(f.load, 0, m_loc), "u"), c.memb(f.v, k_loc, "v"),
        Check(select(f.load, plain, 1), ErrorCause.ILLEGAL_FIELD,
              "load needs use_wd = use_mom = 0"),
        Check(select(f.load, (f.spad & (nr - 1)) == 0, 1), ErrorCause.BAD_SHAPE,
              "spad must be a multiple of nr"),
        c.spad(f.spad, select(f.load, m_loc * nr, 0), "spad"),
    ]
    # With load the first rows of u are loaded first (a segment of no cycles without it,
    # which the sequencer skips), then each row's first cycle loads the row lead rows ahead.
    lead = ger_load_lead(c.cfg)
    segments = [Segment("load", inner=select(f.load, lead, 0)),
                Segment("update", top=select(paired, cdiv(m_loc, 2), m_loc),
                        outer=select(streams, k_loc,
                                     select(plain, cdiv(k_loc, run),
                                            select(paired, 1, cdiv(k_loc, lanes)))),
                        middle=select(streams, 1, select(plain, 2, steps)),
                        inner=select(streams, 1, select(plain, run, lanes)))]
    return KernelPlan(segments, checks, {"m_loc": m_loc, "k_loc": k_loc, "steps": steps,
                                         "streams": streams, "banked": banked, "lead": lead,
                                         "paired": paired},
                      skip_first=select(f.load, 0, 1))


def cpass_fits(cfg) -> bool:
    """Whether config ``cfg`` can run ``cpass``: it has the kernel (``cfg.cpass``), its slots
    (``acc_lanes`` deltas and forward sums, ``chain_lanes`` weights) fit the two accumulator
    banks, the next group's deltas fill before the forward's partial sums come back
    (``acc_lanes < write_back_latency``), and without ``prop`` a weight's forward step reads
    its slot before the next window's update overwrites it (``ger_issue_run <
    write_back_latency - 1``). The RTL builds the kernel and the PEs' side fill only then."""
    lacc, lanes, wb = cfg.acc_lanes, cfg.chain_lanes, cfg.write_back_latency
    return (cfg.cpass and 2 * lacc + lanes <= 2 * max(lacc, lanes) and lacc < wb
            and lanes % lacc == 0
            and ger_issue_run(cfg) < wb - 1 and lanes % ger_issue_run(cfg) == 0
            and cpass_fill_cycles(cfg) is not None)


def cpass_fill_cycles(cfg) -> list | None:
    """Cycles of a window (``2 L`` long) without ``prop`` in which the next row group's deltas
    fill their slots, one per slot ``rho``, in the group's last window: at or after the
    window's last update that reads slot ``rho`` (its read, in the cycle after issue, sees the
    slot before the fill's write at the end of that cycle), and in no cycle where a forward sum
    lands in MemB (a final forward step issues in the last ``Lacc`` weights' forward slots of
    a group's first window; with the update's or the forward step's read and the fill's read,
    a landing would be MemB's third user). ``None`` if a slot has no such cycle."""
    lacc, lanes, wb = cfg.acc_lanes, cfg.chain_lanes, cfg.write_back_latency
    run = ger_issue_run(cfg)
    window = 2 * lanes

    def issue(k, forward):
        """Cycle of weight ``k``'s update (or forward step) in a window."""
        return (k // run) * 2 * run + k % run + (run if forward else 0)

    finals = [issue(k, True) for k in range(lanes - lacc, lanes)]
    landings = {(c + wb - 1) % window for c in finals}
    cycles = []
    for rho in range(lacc):
        free = [c for c in range(issue(lanes - lacc + rho, False), window) if c not in landings]
        if not free:
            return None
        cycles.append(free[0])
    return cycles


def _plan_cpass(f, c: _Context) -> KernelPlan:
    """The fused pass of continuous propagation (docs/architecture.md section 4): per window
    of ``chain_lanes`` weights (``acc_lanes`` rows x ``chain_lanes / acc_lanes`` columns) the
    backward step of every weight, then its update, then its forward step (``3 L`` cycles).
    Without ``prop`` a window is ``2 L`` cycles, runs of ``ger_issue_run`` updates of its
    weights alternating with as many forward steps of the previous window's (across row groups:
    a group's first window runs the last forward steps of the group before), the next group's
    deltas filling in its last window (:func:`cpass_fill_cycles`), and one window more at the
    end (the last group's last forward steps; with ``fwd``). With ``store`` the forward chain
    runs ``write_back_latency`` cycles longer (GEMV's store); with ``load`` the deltas come
    from the SPAD a cycle before each fill, the first group's in a cycle more."""
    cfg, nr, select = c.cfg, c.nr, c.select
    lacc, lanes, wb = cfg.acc_lanes, cfg.chain_lanes, cfg.write_back_latency
    m_loc, k_loc = cdiv(f.rows, nr), cdiv(f.cols, nr)
    groups, windows = cdiv(m_loc, lacc), cdiv(k_loc, lanes // lacc)
    chain = (nr - 1) * (cfg.add_latency + 1)
    run = ger_issue_run(cfg)
    checks = [
        Check(cpass_fits(cfg), ErrorCause.ILLEGAL_OPCODE,
              "this config has no cpass (cpass=false), or its accumulator file cannot hold "
              "cpass's slots"),
        c.positive(f.rows, "rows"), c.positive(f.cols, "cols"),
        Check(f.ldw >= k_loc, ErrorCause.BAD_SHAPE, "ldw must be >= ceil(cols / nr)"),
        c.mema(f.w, (m_loc - 1) * f.ldw + k_loc, "w"),
        c.memb(f.d, select(f.load, 0, groups * lacc), "d"), c.memb(f.a, k_loc, "a"),
        c.memb(f.x, select(f.fwd, k_loc, 0), "x"),
        c.memb(f.y, select(f.fwd & (f.store == 0), m_loc, 0), "y"),
        c.memb(f.fpsum, select(f.fwd, m_loc, 0), "fpsum"),
        Check(select(f.store, f.fwd, 1), ErrorCause.ILLEGAL_FIELD, "store needs fwd"),
        *_store_checks(c, f, f.store, m_loc),
        c.memb(f.z, select(f.prop, k_loc, 0), "z"),
        c.memb(f.q, select(f.prop, k_loc * lacc, 0), "q"),
        c.memb(f.bpsum, select(f.prop, k_loc, 0), "bpsum"),
        Check(select(f.load, (f.spad & (nr - 1)) == 0, 1), ErrorCause.BAD_SHAPE,
              "spad must be a multiple of nr"),
        c.spad(f.spad, select(f.load, m_loc * nr, 0), "spad"),
    ]
    # With load each delta comes from the SPAD a cycle before its fill would read MemB (the
    # load writes its slot a cycle later): the first group's take a cycle more.
    segments = [
        Segment("deltas", inner=lacc + select(f.load, 1, 0)),
        Segment("windows", top=groups, outer=windows,
                middle=select(f.prop, 3, lanes // run), inner=select(f.prop, lanes, 2 * run)),
        # With prop the combine of z's partial sums; without, the last forward steps.
        Segment("combine", outer=select(f.prop, cdiv(k_loc, lacc), 1),
                middle=select(f.prop, lacc, select(f.fwd, lanes // run, 1)),
                inner=select(f.prop, lacc, select(f.fwd, 2 * run, 1))),
        Segment("gap", inner=wb),
        Segment("fchain", inner=select(f.fwd, m_loc + chain + select(f.store, wb, 0), 1)),
        Segment("bchain", inner=select(f.prop, k_loc + chain, 1)),
    ]
    return KernelPlan(segments, checks, {"m_loc": m_loc, "k_loc": k_loc, "groups": groups,
                                         "windows": windows})


def _plan_vop(f, c: _Context) -> KernelPlan:
    select, lanes = c.select, c.cfg.chain_lanes
    per_pe = c.vector_words(f.layout, f.len)
    # One-input functions stream one element per cycle. Two-input ones first move y into
    # an accumulator slot (MemB's two ports cannot serve two reads and a write-back in one
    # cycle), in a barrel over `lanes` elements; mseg then scales in a third step.
    single = (f.fn == VecOp.COPY.value) | (f.fn == VecOp.SCALE.value) \
        | (f.fn == VecOp.MAXS.value)
    steps = select(single, 1, select(f.fn == VecOp.MSEG.value, 3, 2))
    checks = [
        Check(f.fn <= max(v.value for v in VecOp), ErrorCause.ILLEGAL_FIELD,
              "fn is not a VecOp"),
        c.positive(f.len, "len"), c.full_whole_rows(f.layout, f.len),
        c.memb(f.z, per_pe, "z"), c.memb(f.x, per_pe, "x"), c.memb(f.y, per_pe, "y"),
    ]
    segments = [Segment("elements", outer=select(single, per_pe, cdiv(per_pe, lanes)),
                        middle=steps, inner=select(single, 1, lanes))]
    return KernelPlan(segments, checks, {"per_pe": per_pe})


def _plan_smxce(f, c: _Context) -> KernelPlan:
    cfg, lanes, wb = c.cfg, c.cfg.chain_lanes, c.cfg.write_back_latency
    per_pe = cdiv(f.len, c.nr)
    groups = cdiv(per_pe, lanes)
    chain = (c.nr - 1) * (cfg.add_latency + 1) + 1
    checks = [
        c.positive(f.len, "len"),
        c.memb(f.x, per_pe, "x"), c.memb(f.t, per_pe, "t"), c.memb(f.z, per_pe, "z"),
        c.memb(f.scr, 3 * per_pe + 2, "scr"),
        Check(f.rows <= c.nr, ErrorCause.BAD_SHAPE, "rows must not exceed nr"),
    ]
    segments = [
        Segment("localmax", outer=per_pe + 1, inner=lanes),
        Segment("maxchain", inner=chain + wb),
        Segment("maxbcast", inner=1 + wb),
        Segment("exp", outer=groups, middle=SMX_EXP_STEPS, inner=lanes),
        Segment("gap", inner=wb),
        Segment("localsum", outer=per_pe + 1, inner=lanes),
        Segment("sumchain", inner=chain + wb),
        Segment("recip", outer=SMX_RECIP_STEPS, inner=lanes),
        Segment("rbcast", inner=1 + wb),
        Segment("out", outer=groups, middle=3, inner=lanes),
    ]
    return KernelPlan(segments, checks, {"per_pe": per_pe, "chain": chain})


def _plan_gemm(f, c: _Context) -> KernelPlan:
    cfg, nr = c.cfg, c.nr
    group_rows = nr * cfg.acc_lanes
    lda_local = cdiv(f.k, nr)
    checks = [
        c.positive(f.m, "m"), c.positive(f.n, "n"), c.positive(f.k, "k"),
        c.positive(f.mc, "mc"),
        Check((f.mc & (group_rows - 1)) == 0, ErrorCause.BAD_SHAPE,
              "mc must be a multiple of nr * Lacc"),
        c.aligned(f.a, "a"), c.aligned(f.b, "b"), c.aligned(f.c, "c"),
        c.aligned(f.lda, "lda"), c.aligned(f.ldb, "ldb"), c.aligned(f.ldc, "ldc"),
        Check(c.select(f.a_rows, f.lda >= f.k, f.lda >= f.m), ErrorCause.BAD_SHAPE,
              "lda must be >= m (>= k with a_rows)"),
        Check(c.select(f.a_mema, f.a_rows == 0, 1), ErrorCause.ILLEGAL_FIELD,
              "a_rows needs a_mema = 0 (with a_mema A is in MemA already)"),
        Check(f.ldb >= f.n, ErrorCause.BAD_SHAPE, "ldb must be >= n"),
        Check(f.ldc >= f.n, ErrorCause.BAD_SHAPE, "ldc must be >= n"),
        c.mema(f.mema, (f.mc >> log2(nr)) * lda_local,
               "mc rows of A (mc / nr * ceil(k / nr) words per PE)"),
        Check(c.select(f.a_mema, f.m <= f.mc, 1), ErrorCause.BAD_SHAPE,
              "with a_mema, m must be <= mc (A is one block in MemA)"),
        c.memb(0, 2 * f.k, "two B panels (2 k words per PE)"),
        c.spad(f.a, c.select(f.a_mema, 0,
                             c.select(f.a_rows, (f.m - 1) * f.lda + cdiv(f.k, nr) * nr,
                                      (f.k - 1) * f.lda + cdiv(f.m, nr) * nr)), "a"),
        c.spad(f.b, (f.k - 1) * f.ldb + cdiv(f.n, nr) * nr, "b"),
        c.spad(f.c, (f.m - 1) * f.ldc + cdiv(f.n, nr) * nr, "c"),
    ]
    exact = all(isinstance(v, int) for v in (f.m, f.n, f.k, f.mc))
    schedule = gemm_schedule(f, cfg) if exact and f.mc and f.m and f.n and f.k else None
    return KernelPlan([], checks, {"lda_local": lda_local, "group_rows": group_rows},
                      schedule)


#: The plan function of every opcode: ``plan(fields, context) -> KernelPlan``.
PLANS = {
    Opcode.NOP: _plan_none,
    Opcode.HALT: _plan_none,
    Opcode.SYNC: _plan_none,
    Opcode.SETS: _plan_none,
    Opcode.LOOP: _plan_none,
    Opcode.RDCNT: _plan_rdcnt,
    Opcode.LDA: _plan_tile_move,
    Opcode.STA: _plan_tile_move,
    Opcode.LDV: _plan_vector_move,
    Opcode.STV: _plan_vector_move,
    Opcode.BCAST: _plan_bcast,
    Opcode.GEMV: lambda f, c: _plan_gemv(f, c, transposed=False),
    Opcode.GEMVT: lambda f, c: _plan_gemv(f, c, transposed=True),
    Opcode.GER: _plan_ger,
    Opcode.GEMM: _plan_gemm,
    Opcode.CPASS: _plan_cpass,
    Opcode.VOP: _plan_vop,
    Opcode.SMXCE: _plan_smxce,
    Opcode.RING: _plan_ring,
}


def kernel_plan(op: Opcode, f, cfg, select=python_select) -> KernelPlan:
    """Return the :class:`KernelPlan` of instruction ``op`` with operand fields ``f``.

    ``f`` gives attribute access to the fields (ints, or the decoder's Amaranth view);
    ``select(cond, a, b)`` is the two-way choice of that kind of number. The segments are, in
    order, the loop nests the sequencer runs; docs/architecture.md describes the micro-ops of
    each. A plan of int fields (``select`` is :func:`python_select`) is made once per opcode,
    config and field values and shared (the last :data:`PLAN_CACHE_SIZE` of them): callers
    read it and never change it.
    """
    if select is not python_select:
        return _make_plan(op, f, cfg, select)
    return _int_plan(op, cfg, tuple(vars(f).items()))


#: Int plans kept (about 3 KB each): the simulators and the compiler ask for the same
#: instructions millions of times (N1 MBCP b = 8: 1.1 M requests, 36 k distinct plans).
PLAN_CACHE_SIZE = 1 << 13


@functools.lru_cache(maxsize=PLAN_CACHE_SIZE)
def _int_plan(op: Opcode, cfg, items: tuple) -> KernelPlan:
    return _make_plan(op, SimpleNamespace(**dict(items)), cfg, python_select)


def _make_plan(op: Opcode, f, cfg, select) -> KernelPlan:
    context = _Context(cfg, select)
    plan = PLANS[op](f, context)
    plan.spad_regions = context.spad_regions
    return plan


def drain_cycles(op: Opcode, cfg) -> int:
    """Cycles of drain after the last micro-op of ``op`` so the next instruction sees every
    result: :data:`TRANSFER_DRAIN_CYCLES` after a transfer kernel
    (:data:`TRANSFER_OPCODES`), else the compute pipeline's ``write_back_latency``."""
    return TRANSFER_DRAIN_CYCLES if op in TRANSFER_OPCODES else cfg.write_back_latency


def execution_cycles(op: Opcode, plan: KernelPlan, cfg) -> int:
    """Cycles after the check of an instruction that issues micro-ops: its stream, then its
    :func:`drain_cycles`."""
    return plan.stream_cycles + drain_cycles(op, cfg)


def instruction_cycles(op: Opcode, f, cfg) -> int:
    """Cycles the core spends on a legal instruction whose checks pass (the sequencer's rule):
    :data:`INSTRUCTION_OVERHEAD`, then its :func:`execution_cycles`, or, for one of
    :data:`SEQUENCER_OPCODES` but ``halt``, one cycle for the next instruction's decode. A
    run adds :data:`RUN_START_CYCLES`. A ``RING`` takes :data:`RING_POST_CYCLES`, and the next
    of :data:`RING_ORDERED_OPCODES` waits for its engine: the ring simulator times that."""
    if op == Opcode.RING:
        raise ValueError("a RING instruction's cycles depend on its neighbours; use the ring "
                         "simulator (caterpillar.software.isasim.ring)")
    if op in SEQUENCER_OPCODES:
        return INSTRUCTION_OVERHEAD + (op != Opcode.HALT)
    return INSTRUCTION_OVERHEAD + execution_cycles(op, kernel_plan(op, f, cfg), cfg)


def word_cycles(word: int, cfg) -> int:
    """:func:`instruction_cycles` of an instruction word (a legal one)."""
    op, values = unpack(word)
    return instruction_cycles(op, SimpleNamespace(**values), cfg)


#: The segment of each MAC kernel's plan that issues its multiply-accumulates (every PE one
#: per cycle over the kernel's padded shape: whole row groups, panels and windows); ``gemm``'s
#: are the compute loops of its schedule's phases (``K Lacc`` cycles each).
MAC_SEGMENTS = {Opcode.GEMV: "partial", Opcode.GEMVT: "partial", Opcode.GER: "update",
                Opcode.CPASS: "windows"}


def word_mac_step_cycles(word: int, cfg) -> int:
    """Cycles of an instruction word's MAC steps (:data:`MAC_SEGMENTS`; 0 for the others):
    its kernel's cycles without the prologue, transfers, chains and drain, so a step of MAC
    kernels alone can be no shorter than these summed, whatever hides the rest."""
    op, values = unpack(word)
    f = SimpleNamespace(**values)
    if op == Opcode.GEMM:
        return len(kernel_plan(op, f, cfg).schedule.phases) * f.k * cfg.acc_lanes
    if op not in MAC_SEGMENTS:
        return 0
    plan = kernel_plan(op, f, cfg)
    return sum(s.cycles for s in plan.segments if s.name == MAC_SEGMENTS[op])


def words_spad_regions(words, cfg) -> int:
    """The mask of the SPAD regions instruction words use (their plans' ``spad_regions``, what
    :func:`ring_waits` compares)."""
    mask = 0
    for word in words:
        op, values = unpack(word)
        mask |= kernel_plan(op, SimpleNamespace(**values), cfg).spad_regions
    return mask


@dataclass
class GemmPhase:
    """One row group of one panel of one A block: the unit of GEMM's schedule.

    The phase computes the ``nr * Lacc`` rows from ``row0`` of the ``nr`` columns from ``n0``
    (``K * Lacc`` cycles) in accumulator bank ``bank``, using the B panel in MemB buffer
    ``buf``. Meanwhile (after the compute, in the first panel of a block, whose A values stream
    from the SPAD; after the A rows' load with ``a_rows``) the SPAD port moves the C rows of the
    previous phase out, those of the next phase in (``accumulate`` only) and, in a panel's
    first phase, the next panel's B.
    """

    index: int
    block: int
    panel: int
    group: int
    row0: int
    n0: int
    bank: int
    buf: int
    astream: bool
    has_cout: bool
    has_cin: bool
    next_panel: tuple | None
    length: int


@dataclass
class GemmSchedule:
    """GEMM's prologue, phases and epilogue, and the cycles they take."""

    prologue: int
    phases: list
    epilogue: int
    first_panel: tuple

    @property
    def cycles(self) -> int:
        """Micro-op stream cycles."""
        return self.prologue + sum(p.length for p in self.phases) + self.epilogue


def gemm_a_rows_lead(cfg) -> int:
    """Cycles from the start of an ``a_rows`` GEMM phase's load of A to its first compute.

    The load of item ``t`` (k-block ``t // (nr Lacc)``, then PE row, then lane) writes MemA
    at the end of ``t + 2``; the compute reads item ``c`` (the same order) at issue. A lead of
    ``2 + 2^b nr Lacc`` (``b``: :func:`mema_bank_bit`) puts the write that shares a cycle with
    a read ``2^b`` k-blocks ahead of it, at an address ``2^b`` higher in the same PE row's
    tile: always the other bank. The last write of a k-block precedes its first read.
    """
    return 2 + (1 << mema_bank_bit(cfg)) * cfg.nr * cfg.acc_lanes


def gemm_schedule(f, cfg) -> GemmSchedule:
    """Return the exact GEMM schedule for int operand fields ``f`` (see :class:`GemmPhase`).

    Prologue: the first B panel (``K`` cycles), the first phase's C rows (``accumulate``),
    2 guard cycles. A phase in a block's first panel (unless ``a_mema``: A is in MemA already)
    lasts ``max(K Lacc, W) + T + 2`` (compute,
    then transfers ``T``); any other phase ``max(K Lacc, W + T + 2)`` (transfers after ``W``
    idle cycles, beside the compute). ``T = nr Lacc`` per C transfer plus ``K`` for a B panel.
    With ``a_rows`` a first panel's phase loads its rows of A, ``L = ceil(K / nr) nr Lacc``
    cycles (k-block by k-block, in each the PE rows in the compute's order), computes from
    :func:`gemm_a_rows_lead` cycles on and runs its transfers after the load: it lasts
    ``max(lead + K Lacc, L + max(W - L, 0) + T + 2)``.
    Epilogue: ``W`` idle cycles and the last phase's C rows out.
    """
    nr, lanes, wb = cfg.nr, cfg.acc_lanes, cfg.write_back_latency
    group_rows = nr * lanes
    k = f.k
    compute = k * lanes
    panels = cdiv(f.n, nr)
    blocks = -(-f.m // f.mc)
    order = []
    for b in range(blocks):
        rows = min(f.mc, f.m - b * f.mc)
        for n in range(panels):
            for g in range(-(-rows // group_rows)):
                order.append((b, n, g))
    phases = []
    for index, (b, n, g) in enumerate(order):
        if g == 0 and n + 1 < panels:
            nxt = (b, n + 1)
        elif g == 0 and b + 1 < blocks:
            nxt = (b + 1, 0)
        else:
            nxt = None
        has_cout = index > 0
        has_cin = bool(f.accumulate) and index + 1 < len(order)
        transfers = group_rows * (has_cout + has_cin) + (k if nxt else 0)
        astream = n == 0 and not f.a_mema
        if astream and f.a_rows:
            load = cdiv(k, nr) * group_rows
            length = max(gemm_a_rows_lead(cfg) + compute, load + max(wb - load, 0) + transfers + 2)
        elif astream:
            length = max(compute, wb) + transfers + 2
        else:
            length = max(compute, wb + transfers + 2)
        panel_index = b * panels + n
        phases.append(GemmPhase(index, b, n, g, b * f.mc + g * group_rows, n * nr, index % 2,
                                panel_index % 2, astream, has_cout, has_cin, nxt, length))
    prologue = k + (group_rows if f.accumulate else 0) + 2
    return GemmSchedule(prologue, phases, wb + group_rows, (0, 0))
