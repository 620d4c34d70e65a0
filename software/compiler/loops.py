"""Hardware loops: fold repeated instruction blocks into ``LOOP`` s, and unfold them again.

Why: IMEM holds 4,096 instructions on the paper presets (``paper-n1``, ``paper-n3``), and a
pipelined minibatch program repeats one per-sample body (load the sample, the layers' kernels,
store the result) once per sample, each copy differing from the last only in its SPAD (and
MemB, MemA) addresses, which move by a fixed step per sample. A ``LOOP`` runs such a body
``count`` times, adding ``r * stride_k`` in repetition ``r`` to each address field whose
``rel`` selector is ``k`` (:class:`~caterpillar.contract.isa.LoopState`), so ``count`` copies
of an ``n``-instruction body take ``n + 1`` words instead of ``n * count``, for two cycles (a
``LOOP`` costs what a ``NOP`` does; the jump back is free).

:func:`fold_loops` finds such runs in a straight-line program and folds them, greedily from the
front; :func:`unfold_loops` is its inverse, the static expansion of every ``LOOP``:
``unfold_loops(fold_loops(words)) == words``. Both work on instruction words only and check no
more than the rules of the loop itself (the decoder's checks of each instruction are the
assembler's and the core's business).
"""

from __future__ import annotations

import numpy as np

from caterpillar.contract.isa import (
    ADDRESS_KINDS,
    LOOP_OFFSETS,
    OPCODE_BITS,
    OPERANDS,
    REL_BITS,
    Opcode,
    encode,
    field_offsets,
    relocate_word,
    unpack,
)

__all__ = ["fold_loops", "unfold_loops", "STRIDE_BITS", "MAX_COUNT", "MAX_BODY"]

#: Width of a ``LOOP``'s stride fields (two's complement).
STRIDE_BITS = next(f.width for f in OPERANDS[Opcode.LOOP] if f.name == "stride1")
_STRIDE_MASK = (1 << STRIDE_BITS) - 1
#: Largest ``count`` and ``body`` a ``LOOP`` encodes.
MAX_COUNT = (1 << next(f.width for f in OPERANDS[Opcode.LOOP] if f.name == "count")) - 1
MAX_BODY = (1 << next(f.width for f in OPERANDS[Opcode.LOOP] if f.name == "body")) - 1
_OPCODE_MASK = (1 << OPCODE_BITS) - 1


class _Layout:
    """Where an opcode's movable address fields and its ``rel`` selectors sit in its word.

    ``fields`` holds ``(offset, width)`` of each address field a ``rel`` selector can move, in
    selector order (empty for an opcode without ``rel``: its words must repeat verbatim);
    ``movable`` masks their bits and ``rel_*`` the selectors' (``rel_mask`` 0 without)."""

    __slots__ = ("fields", "movable", "rel_offset", "rel_bits", "rel_mask")

    def __init__(self, op: Opcode):
        self.fields, self.movable = [], 0
        self.rel_offset = self.rel_bits = self.rel_mask = 0
        fields, where = OPERANDS[op], field_offsets(op)
        has_rel = bool(fields) and fields[-1].name == "rel"
        for f in fields:
            offset = where[f.name]
            if has_rel and f.kind in ADDRESS_KINDS:
                self.fields.append((offset, f.width))
                self.movable |= ((1 << f.width) - 1) << offset
            elif f.name == "rel" and has_rel:
                self.rel_offset, self.rel_bits = offset, f.width
                self.rel_mask = ((1 << f.width) - 1) << offset
        # A field wider than a stride could not move by every step: keep it out of the loop's
        # reach (none is, today: SPAD addresses have 24 bits).
        assert all(width <= STRIDE_BITS for _, width in self.fields), op


_LAYOUTS = {op: _Layout(op) for op in Opcode}
#: The most movable address fields any opcode has.
_MAX_FIELDS = max(len(layout.fields) for layout in _LAYOUTS.values())


def _opcode(word: int) -> Opcode | None:
    try:
        return Opcode(word & _OPCODE_MASK)
    except ValueError:
        return None


def _signed(value: int, width: int) -> int:
    """``value`` (``width`` bits) read as two's complement."""
    return value - (1 << width) if value >> (width - 1) else value


def _runs(ok: np.ndarray, size: int) -> np.ndarray:
    """For each ``i < size``: how many of ``ok[i], ok[i + 1], ...`` are true in a row (0 past
    ``ok``'s end)."""
    runs = np.zeros(size, dtype=np.int64)
    m = len(ok)
    if m <= 0:
        return runs
    index = np.arange(m, dtype=np.int64)
    stops = np.where(ok, m, index)
    next_stop = np.minimum.accumulate(stops[::-1])[::-1]
    runs[:m] = next_stop - index
    return runs


#: Instructions :func:`_too_many_strides` looks at together.
_WINDOW = 4


def _too_many_strides(steps: np.ndarray, n: int) -> np.ndarray:
    """For each start ``p`` (of ``len(steps) + n`` instructions): whether the body of ``n``
    instructions from ``p`` has more than ``LOOP_OFFSETS`` distinct nonzero steps in some
    window of ``min(n, _WINDOW)`` consecutive instructions (``steps[i]``: the signed steps of
    instruction ``i``'s address fields to instruction ``i + n``). False says nothing."""
    size = len(steps) + n
    width = min(n, _WINDOW)
    rows = len(steps) - width + 1
    bad = np.zeros(size, dtype=bool)
    if rows <= 0:
        return bad
    window = np.sort(np.concatenate([steps[k:k + rows] for k in range(width)], axis=1), axis=1)
    new = window != 0
    new[:, 1:] &= window[:, 1:] != window[:, :-1]
    crowded = new.sum(axis=1) > LOOP_OFFSETS
    # The first crowded window at or after each i; the body from p holds windows p..p+n-width.
    index = np.arange(rows, dtype=np.int64)
    first = np.minimum.accumulate(np.where(crowded, index, size)[::-1])[::-1]
    bad[:rows] = first <= index + n - width
    return bad


def fold_loops(words, *, max_body: int = 64) -> list[int]:
    """Fold runs of repeated instruction blocks of a straight-line program into ``LOOP`` s.

    A stretch ``B_0 B_1 ... B_{c-1}`` of ``c`` blocks of ``n`` consecutive instructions is
    replaced by ``LOOP count=c body=n stride1..3`` followed by ``B_0`` with its ``rel``
    selectors set, when for every body position ``j < n`` the ``j``-th instructions of all
    blocks

    * have the same opcode and the same value in every field but the address fields a ``rel``
      selector can move (the fields of :data:`~caterpillar.contract.isa.ADDRESS_KINDS` of an
      opcode with a ``rel`` field), and the same reserved bits: instructions of an opcode
      without ``rel`` (``cpass``, and those without address fields) are identical;
    * move each such address field by a fixed step: ``value_r = value_0 + r * d`` modulo
      ``2**width``, with ``d`` read as a ``width``-bit two's complement number;

    and the body's nonzero steps number at most three distinct (signed) values: they become
    ``stride1``, ``stride2``, ``stride3`` in order of first use (``signed % 2**24``), a field
    with step 0 gets selector 0. A block never holds a ``halt``, a ``loop``, an illegal opcode
    or an instruction whose ``rel`` is already nonzero; a ``loop`` of the input and its body
    are kept as they are, so folding a folded program changes nothing. A stretch is folded only
    when it saves words (``n * c > n + 1``). The search is greedy from the front: at each
    instruction the ``(n, c)`` with ``1 <= n <= max_body`` and ``c`` as large as the run goes
    (at most 65,535) that saves the most words wins, the smaller ``n`` on a tie.

    Parameters
    ----------
    words : iterable of int
        The program: 256-bit instruction words, typically ending with ``halt``.
    max_body : int, optional
        The longest body to look for (1 to 65,535).

    Returns
    -------
    list of int
        The folded program; :func:`unfold_loops` of it is ``list(words)``. It runs to the
        same state, its busy cycles 2 more per ``LOOP`` and its retired instructions 1 more.

    Raises
    ------
    ValueError
        ``max_body`` is out of range.
    """
    words = [int(w) for w in words]
    if not 1 <= max_body <= MAX_BODY:
        raise ValueError(f"max_body must be in 1..{MAX_BODY}, not {max_body}")
    size = len(words)
    if size < 3:
        return words
    keys = np.empty(size, dtype=np.int64)
    values = np.zeros((size, _MAX_FIELDS), dtype=np.int64)
    masks = np.zeros((size, _MAX_FIELDS), dtype=np.int64)
    layouts = [None] * size
    interned: dict[int, int] = {}
    inside = -1                 # the last instruction of an input LOOP's body
    for i, word in enumerate(words):
        op = _opcode(word)
        layout = _LAYOUTS[op] if op is not None else None
        if (i <= inside or layout is None or op in (Opcode.HALT, Opcode.LOOP)
                or word & layout.rel_mask):
            keys[i] = -1 - i     # matches nothing: never in a block
            if op == Opcode.LOOP:
                inside = max(inside, i + unpack(word)[1]["body"])
            continue
        layouts[i] = layout
        keys[i] = interned.setdefault(word & ~layout.movable, len(interned))
        for k, (offset, width) in enumerate(layout.fields):
            values[i, k] = (word >> offset) & ((1 << width) - 1)
            masks[i, k] = (1 << width) - 1
    halves = (masks + 1) >> 1

    # saves[n - 1, p]: the words folding the longest run of n-blocks from p saves (<= 0: none).
    bodies = min(max_body, size // 2)
    saves = np.full((bodies, size), -1, dtype=np.int64)
    counts = np.ones((bodies, size), dtype=np.int64)
    for n in range(1, bodies + 1):
        same = keys[:-n] == keys[n:]
        steps = (values[n:] - values[:-n]) & masks[:-n]
        steps -= (steps & halves[:-n]) << 1
        linear = (steps[:-n] == steps[n:]).all(axis=1) if size > 2 * n else same[:0]
        count = np.minimum(_runs(same, size) // n + 1, _runs(linear, size) // n + 2)
        count = np.minimum(count, MAX_COUNT)
        save = n * count - n - 1
        if (save > 0).any():
            # Reject, all at once, the bodies some window of a few instructions of which
            # already takes more than LOOP_OFFSETS strides; _body checks the rest.
            save[_too_many_strides(steps, n)] = -1
        counts[n - 1] = count
        saves[n - 1] = save
    foldable = (saves > 0).any(axis=0)

    out: list[int] = []
    p = 0
    while p < size:
        if foldable[p]:
            column = saves[:, p]
            candidates = np.nonzero(column > 0)[0]
            candidates = candidates[np.argsort(-column[candidates], kind="stable")]
            for index in candidates:
                n, c = int(index) + 1, int(counts[index, p])
                body = _body(words, layouts, values, masks, p, n)
                if body is not None:
                    strides, body = body
                    strides += [0] * (LOOP_OFFSETS - len(strides))
                    out.append(encode(Opcode.LOOP, count=c, body=n, **{
                        f"stride{k + 1}": s % (1 << STRIDE_BITS)
                        for k, s in enumerate(strides)}))
                    out += body
                    p += n * c
                    break
            else:
                out.append(words[p])
                p += 1
        else:
            out.append(words[p])
            p += 1
    return out


def _body(words, layouts, values, masks, p: int, n: int):
    """``(strides, body words)`` of the loop whose body is ``words[p:p + n]`` and whose second
    repetition is the next ``n`` words, or None when its steps take more than
    :data:`~caterpillar.contract.isa.LOOP_OFFSETS` strides."""
    strides: list[int] = []
    body = []
    steps = (values[p + n:p + 2 * n] - values[p:p + n]) & masks[p:p + n]
    for j in range(n):
        word, layout = words[p + j], layouts[p + j]
        rel = 0
        for k, (_, width) in enumerate(layout.fields):
            step = int(steps[j, k])
            if not step:
                continue
            step = _signed(step, width)
            if step not in strides:
                if len(strides) == LOOP_OFFSETS:
                    return None
                strides.append(step)
            rel |= (strides.index(step) + 1) << (REL_BITS * k)
        body.append(word | (rel << layout.rel_offset))
    return strides, body


def unfold_loops(words) -> list[int]:
    """Expand every ``LOOP`` of a program into the instructions it runs.

    Each ``LOOP`` is replaced by its body repeated ``count`` times; in repetition ``r`` each
    address field whose ``rel`` selector is ``k`` holds ``(value + r * stride_k) mod
    2**width`` (as :class:`~caterpillar.contract.isa.LoopState` runs it) and the ``rel`` field
    is 0. Every other bit of a word is kept. Words outside loops are copied; the result has no
    ``LOOP``.

    Parameters
    ----------
    words : iterable of int
        A program, e.g. one :func:`fold_loops` returned.

    Returns
    -------
    list of int
        The straight-line program.

    Raises
    ------
    ValueError
        A ``LOOP`` has ``count`` or ``body`` 0, its body runs past the program's end, or holds
        a ``LOOP`` (loops do not nest) or a ``HALT``.
    """
    words = [int(w) for w in words]
    out: list[int] = []
    i = 0
    while i < len(words):
        word = words[i]
        if _opcode(word) != Opcode.LOOP:
            out.append(word)
            i += 1
            continue
        loop = unpack(word)[1]
        count, n = loop["count"], loop["body"]
        if count < 1 or n < 1:
            raise ValueError(f"loop at {i} has count {count} and body {n}; both must be >= 1")
        if i + n >= len(words):
            raise ValueError(f"loop at {i}: its body of {n} instructions runs past the "
                             f"program's end ({len(words)} instructions)")
        strides = [loop[f"stride{k}"] for k in range(1, LOOP_OFFSETS + 1)]
        body = words[i + 1:i + 1 + n]
        for j, w in enumerate(body):
            if _opcode(w) in (Opcode.LOOP, Opcode.HALT):
                raise ValueError(f"loop at {i}: its body holds a {_opcode(w).name.lower()} at "
                                 f"{i + 1 + j} (loops do not nest, a halt ends no body)")
        for r in range(count):
            offsets = [(r * s) & _STRIDE_MASK for s in strides]
            out += [relocate_word(w, offsets) for w in body]
        i += 1 + n
    return out
