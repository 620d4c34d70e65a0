"""Collectives as ``RING`` instruction sequences, one list per core of a segment.

A segment is a tuple of cores in ring order: position ``i`` sends to ``i + 1`` and, on a
sub-ring, the last position to the first (:func:`link_sources` gives the ``SRC`` registers
that wire it). Every function returns ``{core: [instruction words]}``; the cores must run their
lists in the same collective order (the links pair each send with the matching receive). Each
core's vector sits at SPAD word ``buf`` (a multiple of nr) and has ``n`` words. Bucket
collectives split it into blocks of whole units of ``unit`` words (a multiple of nr: nr for a
vector, the leading dimension to keep a matrix's rows whole), as
:func:`caterpillar.golden.collectives.ring_blocks` says; the results equal
:mod:`caterpillar.golden.collectives` bit for bit. Costs (docs/multicore.md): a chain
collective of ``n`` words takes about ``ceil(n / nr)`` beats plus one cycle per hop; a bucket
collective ``c - 1`` steps of one block each.

The *piped* bucket collectives (:func:`piped_reduce_scatter`, :func:`piped_all_gather`) are one
``RING`` per core: the core sends its first block, then forwards every block it receives but
the last (``fwd`` with ``slen`` and ``hold``), so the blocks stream round the ring without an
instruction between steps. A core receives the blocks in descending order, so the vector is
stored with its blocks in reverse order (:func:`piped_places`: block ``c - 1`` first, each
block's words in order), which makes the received blocks consecutive words, wrapping round the
vector (``wbase``, ``wlen``). The sums and their order are the bucket collectives'.
"""

from __future__ import annotations

import functools

from caterpillar.contract.geometry import cdiv, ring_queue_depth
from caterpillar.contract.isa import Opcode, encode
from caterpillar.golden.collectives import ring_blocks

__all__ = ["ring", "link_sources", "broadcast", "chain_reduce", "chain_segments",
           "segmented_chain_reduce", "all_gather",
           "reduce_scatter", "all_reduce", "barrier", "relay", "relay_source", "gather_relay",
           "piped_places", "piped_permutation", "piped_fits", "piped_all_gather",
           "piped_reduce_scatter"]


@functools.lru_cache(maxsize=1 << 16)
def ring(*, src=0, slen=0, dst=0, rlen=0, keep=False, add=False, fwd=False,
         chain=False, hold=0, wbase=0, wlen=0) -> int:
    """Return one ``RING`` instruction word (cached: a compile emits the same few thousand
    millions of times)."""
    return encode(Opcode.RING, src=src, slen=slen, dst=dst, rlen=rlen, keep=int(keep),
                  add=int(add), fwd=int(fwd), chain=int(chain), hold=hold, wbase=wbase,
                  wlen=wlen)


def link_sources(segments, cores: int) -> list[int]:
    """Return ``SRC{k}`` for every core: each segment closed into a sub-ring.

    Cores in no segment keep the full ring's default (``k - 1``).
    """
    sources = [(k - 1) % cores for k in range(cores)]
    seen = set()
    for segment in segments:
        for i, core in enumerate(segment):
            if core in seen or not 0 <= core < cores:
                raise ValueError(f"core {core} is out of range or in two segments")
            seen.add(core)
            sources[core] = segment[i - 1]
    return sources


def _empty(segment):
    return {core: [] for core in segment}


def broadcast(segment, buf: int, n: int, root: int = 0) -> dict:
    """Position ``root`` sends its vector down the chain root, root + 1, ... (pipelined)."""
    out = _empty(segment)
    c = len(segment)
    if c == 1 or n == 0:
        return out
    for t in range(c):
        core = segment[(root + t) % c]
        if t == 0:
            out[core].append(ring(src=buf, slen=n))
        else:
            out[core].append(ring(dst=buf, rlen=n, keep=True, fwd=t < c - 1))
    return out


def chain_reduce(segment, buf: int, n: int, root: int = 0) -> dict:
    """Pass-and-add down the chain root + 1, ..., root; the root's ``buf`` becomes the sum.

    Cores other than the root keep their vectors (the running sums are only forwarded).
    """
    out = _empty(segment)
    c = len(segment)
    if c == 1 or n == 0:
        return out
    for t in range(1, c + 1):
        core = segment[(root + t) % c]
        if t == 1:
            out[core].append(ring(src=buf, slen=n))
        elif t < c:
            out[core].append(ring(dst=buf, rlen=n, add=True, fwd=True))
        else:
            out[core].append(ring(dst=buf, rlen=n, add=True, keep=True))
    return out


def chain_segments(cfg, cores: int, n: int) -> tuple[int, ...]:
    """The segment lengths with which :func:`segmented_chain_reduce` of ``n`` words over
    ``cores`` positions, followed by a :func:`broadcast` from the last, should end first.

    Why: a hop that adds costs ``add_latency + 2`` cycles (the beat is accepted, the local row
    read, the sum written and queued: ``RingEngine``), a hop that only forwards one, so for a
    short vector a chain of ``c`` cores is latency-bound at ``(c - 1)(add_latency + 2)``.
    Segments sum at once, and the running total then crosses each later one at one cycle a
    hop, adding that segment's sum at its end. An estimate of the engine's timing (the first
    beat's, the rest follow one a cycle) chooses the lengths by dynamic programming; later
    segments are longer, as their sums are needed later. Segments of one core each are one
    chain and returned as ``(cores,)``.
    """
    beats, lat = cdiv(n, cfg.nr), cfg.add_latency
    hop = lat + 2

    def ready(length):
        """Cycle a segment's last position holds its sum (and its engine is free)."""
        return (length - 1) * hop + beats + lat + 2 if length > 1 else 0

    # leave[p]: the earliest cycle the running total over positions 0..p-1 leaves position p-1
    # (its segment's end) for position p; choice[p]: that last segment's length.
    leave, choice = [None] * (cores + 1), [0] * (cores + 1)
    for end in range(1, cores + 1):
        for length in range(1, end + 1):
            start = end - length
            if start == 0:
                arrive = ready(length)
            else:
                arrive = max(leave[start] + length - 1, ready(length)) + hop
            if leave[end] is None or arrive < leave[end]:
                leave[end], choice[end] = arrive, length
    lengths, end = [], cores
    while end:
        lengths.append(choice[end])
        end -= choice[end]
    # Segments of one core each are one chain, written so.
    return (cores,) if max(lengths) == 1 else tuple(reversed(lengths))


def segmented_chain_reduce(segment, buf: int, n: int, lengths) -> dict:
    """Chain-reduce to the last position in segments of ``lengths`` (in position order).

    Each segment passes and adds from its first position to its last, which keeps the
    segment's sum in ``buf``; then the first segment's last position sends that sum on, each
    later segment's positions forward the running total, and its last position adds its sum
    (the last one keeps the total). The order is
    :func:`~caterpillar.golden.collectives.segmented_chain_reduce`'s. Positions that are no
    segment's last keep their vectors; one segment is :func:`chain_reduce` to the last
    position.
    """
    out = _empty(segment)
    c = len(segment)
    if sum(lengths) != c or min(lengths, default=0) < 1:
        raise ValueError(f"segment lengths {tuple(lengths)} do not cover {c} positions")
    if c == 1 or n == 0:
        return out
    start = 0
    for j, length in enumerate(lengths):
        members = segment[start:start + length]
        start += length
        # Within the segment: first sends, the middle pass and add, the last keeps the sum.
        for i, core in enumerate(members[:-1]):
            out[core].append(ring(src=buf, slen=n) if i == 0
                             else ring(dst=buf, rlen=n, add=True, fwd=True))
        if length > 1:
            out[members[-1]].append(ring(dst=buf, rlen=n, add=True, keep=True))
        # The running total: sent by the first segment's last, crossing the later segments.
        if j == 0:
            if len(lengths) > 1:
                out[members[-1]].append(ring(src=buf, slen=n))
            continue
        for core in members[:-1]:
            out[core].append(ring(dst=buf, rlen=n, fwd=True))
        last = j == len(lengths) - 1
        out[members[-1]].append(ring(dst=buf, rlen=n, add=True, keep=last, fwd=not last))
    return out


def _bucket(segment, buf: int, n: int, unit: int, *, reduce: bool) -> dict:
    out = _empty(segment)
    c = len(segment)
    blocks = ring_blocks(n, c, unit)
    for step in range(1, c):
        for i, core in enumerate(segment):
            # All-gather: pass on the block received in the last step. Reduce-scatter: pass
            # the running sum of block i - step, add the own part of block i - step - 1.
            send = blocks[(i - step + (0 if reduce else 1)) % c]
            recv = blocks[(i - step - (1 if reduce else 0)) % c]
            if send[0] == send[1] and recv[0] == recv[1]:
                continue    # an empty block both ways (fewer nr-units than cores): no step
            out[core].append(ring(src=buf + send[0], slen=send[1] - send[0],
                                  dst=buf + recv[0], rlen=recv[1] - recv[0], keep=True,
                                  add=reduce))
    return out


def all_gather(segment, buf: int, n: int, unit: int) -> dict:
    """Bucket all-gather: position ``i`` starts with block ``i``; every core ends with all."""
    return _bucket(segment, buf, n, unit, reduce=False)


def reduce_scatter(segment, buf: int, n: int, unit: int) -> dict:
    """Bucket reduce-scatter: position ``i`` ends with the summed block ``i`` (other blocks
    hold partial sums)."""
    return _bucket(segment, buf, n, unit, reduce=True)


def all_reduce(segment, buf: int, n: int, unit: int) -> dict:
    """Reduce-scatter, then all-gather: every core ends with the whole sum."""
    first = reduce_scatter(segment, buf, n, unit)
    second = all_gather(segment, buf, n, unit)
    return {core: first[core] + second[core] for core in segment}


def piped_places(n: int, c: int, unit: int) -> list[tuple[int, int]]:
    """Where block ``j`` of :func:`~caterpillar.golden.collectives.ring_blocks` lies in the
    piped layout of an ``n``-word vector: blocks in reverse order, ``(start, stop)`` words."""
    return [(n - hi, n - lo) for lo, hi in ring_blocks(n, c, unit)]


def piped_permutation(n: int, c: int, unit: int) -> list[int]:
    """``order[w]``: the element of the natural vector at word ``w`` of the piped layout."""
    order = []
    for lo, hi in reversed(ring_blocks(n, c, unit)):
        order.extend(range(lo, hi))
    return order


def piped_fits(n: int, c: int, unit: int, cfg) -> bool:
    """Whether the piped collectives can run on ``n`` words over ``c`` cores: more than one
    core, every block whole rows of ``nr`` (the received rows are consecutive only then) and
    fewer rows than the ring queue holds (a core queues its block before it receives)."""
    nr = cfg.nr
    return (c > 1 and n % nr == 0 and unit % nr == 0
            and max(hi - lo for lo, hi in ring_blocks(n, c, unit)) < nr * ring_queue_depth(cfg))


def _piped(segment, buf: int, n: int, unit: int, *, reduce: bool) -> dict:
    c = len(segment)
    places = piped_places(n, c, unit)
    out = _empty(segment)
    if c == 1 or n == 0:
        return out
    for i, core in enumerate(segment):
        # Reduce-scatter: send the own part of block i - 1, receive (and add to) blocks
        # i - 2, ..., i, keeping the sum of block i. All-gather: send block i, receive
        # blocks i - 1, ..., i + 1.
        first = (i - 1) % c if reduce else i
        last = i if reduce else (i + 1) % c
        lo, hi = places[first]
        hold = places[last][1] - places[last][0]
        out[core].append(ring(src=buf + lo, slen=hi - lo, dst=buf + hi % n, rlen=n - (hi - lo),
                              keep=True, add=reduce, fwd=True, hold=hold, wbase=buf, wlen=n))
    return out


def piped_all_gather(segment, buf: int, n: int, unit: int) -> dict:
    """:func:`all_gather` in one ``RING`` per core, on the piped layout (:func:`piped_places`):
    position ``i`` starts with block ``i`` at its place; every core ends with all. Needs
    :func:`piped_fits`."""
    return _piped(segment, buf, n, unit, reduce=False)


def piped_reduce_scatter(segment, buf: int, n: int, unit: int) -> dict:
    """:func:`reduce_scatter` in one ``RING`` per core, on the piped layout: position ``i``
    ends with the summed block ``i`` at its place (:func:`piped_places`), the same sums in the
    same order. Needs :func:`piped_fits`."""
    return _piped(segment, buf, n, unit, reduce=True)


def barrier(segment, scratch: int) -> dict:
    """No core leaves before every core of the segment has arrived: ``c - 1`` token steps
    (one word from ``scratch``, received and dropped)."""
    out = _empty(segment)
    for _ in range(len(segment) - 1):
        for core in segment:
            out[core].append(ring(src=scratch, slen=1, rlen=1))
    return out


def relay_source(holders, targets, cores: int) -> int:
    """The core of ``holders`` from which the chain links reach every core of ``targets``
    in the fewest hops (the first such core in ``holders`` order)."""
    def reach(source):
        return max(((t - source) % cores for t in targets if t != source), default=0)
    return min(holders, key=reach)


def relay(source: int, targets, buf: int, n: int, cores: int, *, dst=None,
          ranges=None) -> dict:
    """Broadcast ``source``'s vector over the chain links (core k to k + 1, round the whole
    ring, whatever the segments) to every core of ``targets``; the cores between relay it.
    The targets keep it at ``dst`` (default ``buf``); with ``ranges`` (``{target: (lo,
    hi)}``) a target keeps only its words ``lo .. hi`` there and passes on only what the
    targets beyond it keep.

    Returns ``{core: [words]}`` for the source and every core on the path. Pipelined: about
    ``ceil(n / nr)`` cycles plus one per hop.
    """
    reach = max(((t - source) % cores for t in targets if t != source), default=0)
    if reach == 0 or n == 0:
        return {}
    out = {source: [ring(src=buf, slen=n, chain=True)]}
    path = [(source + hop) % cores for hop in range(1, reach + 1)]
    for core, words in zip(path, _receives(path, targets, (0, n), buf, dst, ranges)):
        out[core] = words
    return out


def _receives(path, targets, coming, buf, dst, ranges) -> list:
    """The receives of the cores of ``path`` (in chain order) from a stream of the vector's
    words ``coming = (lo, hi)``: every target keeps the whole vector at ``dst`` (default
    ``buf``); or, with ``ranges``, its own words at ``dst``, and every core passes on the
    words from the lowest to the highest that a target beyond it keeps and drops the rest
    (every range a whole number of ``nr``-word rows but at the vector's end)."""
    dst = buf if dst is None else dst
    if ranges is None:
        n = coming[1]
        return [[ring(dst=dst, rlen=n - coming[0], keep=core in targets,
                      fwd=k < len(path) - 1, chain=True)] for k, core in enumerate(path)]
    out = []
    for k, core in enumerate(path):
        later = [ranges[t] for t in path[k + 1:] if t in ranges]
        passed = (min(a for a, _ in later), max(b for _, b in later)) if later else (0, 0)
        own = ranges.get(core, (0, 0))
        cuts = sorted({coming[0], coming[1], *[min(max(x, coming[0]), coming[1])
                                                for x in (*own, *passed)]})
        words = []
        for lo, hi in zip(cuts, cuts[1:]):
            keep = own[0] <= lo and hi <= own[1]
            fwd = passed[0] <= lo and hi <= passed[1]
            words.append(ring(dst=dst + lo - own[0] if keep else 0, rlen=hi - lo, keep=keep,
                              fwd=fwd, chain=True))
        out.append(words)
        coming = passed
        if coming[1] <= coming[0]:
            break
    return out


def gather_relay(holders, blocks, targets, buf: int, cores: int, *, dst=None,
                 ranges=None) -> dict | None:
    """Gather a vector spread over ``holders`` into every core of ``targets`` in one pass
    over the chain links: holder ``p`` has the words ``blocks[p] = (lo, hi)`` at ``buf + lo``.

    The first holder sends its block; every later holder forwards the words before its own
    and then sends its own; the cores on the way forward, the targets keep the whole vector
    (with ``ranges``, each only its words, at ``dst``: :func:`relay`).
    Pipelined: about ``ceil(n / nr)`` cycles, one per hop and two instructions per holder,
    where an all-gather round the holders and a :func:`relay` take ``len(holders) - 1`` steps
    and the relay. It needs the holders in chain order from the first with their blocks
    consecutive from word 0, and every target beyond the last holder on the way round;
    returns ``None`` otherwise (use the all-gather and the relay).
    """
    start = holders[0]

    def dist(core):
        return (core - start) % cores

    ends = [dist(h) for h in holders]
    n = blocks[-1][1] if blocks else 0
    if (any(b <= a for a, b in zip(ends, ends[1:])) or blocks[0][0] != 0
            or any(a[1] != b[0] for a, b in zip(blocks, blocks[1:]))
            or not targets or any(dist(t) <= ends[-1] for t in targets) or n == 0):
        return None
    reach = max(dist(t) for t in targets)
    position = {h: p for p, h in enumerate(holders)}
    out = {}
    for d in range(ends[-1] + 1):
        core = (start + d) % cores
        words = []
        if core in position:
            lo, hi = blocks[position[core]]
            if lo:
                words.append(ring(dst=buf, rlen=lo, fwd=True, chain=True))
            if hi > lo:
                words.append(ring(src=buf + lo, slen=hi - lo, chain=True))
        else:
            before = max(b for h, (a, b) in zip(holders, blocks) if dist(h) < d)
            if before:
                words.append(ring(dst=buf, rlen=before, fwd=True, chain=True))
        if words:
            out[core] = words
    path = [(start + d) % cores for d in range(ends[-1] + 1, reach + 1)]
    for core, words in zip(path, _receives(path, targets, (0, n), buf, dst, ranges)):
        out[core] = words
    return out
