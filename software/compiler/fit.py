"""The fit table: what a training step needs of every memory, beside what the config has.

Two verdicts, side by side:

* **The paper's criteria** (``reference/caterpillar-paper-notes.md`` sections 4.2 and 6.6,
  the recommended reading). The whole network fits on chip when its weights, stored once, and
  the activations and partial sums of every sample in flight,
  ``sum_i [(L - i + 1)(m_i + n_i + max(m_i, n_i)) + m_i n_i]`` words spread over every PE of
  the machine, fit each PE's local SRAM (MemA + MemB). This gives the paper's verdicts: N1 fits
  ``paper-n1``, N2 does not, N3 fits ``paper-n3``. A second row asks whether the weights fit
  on chip at all, in the PEs' local SRAM and the SPAD together (the room the paper's "does not
  fit" mode streams them from): N2's 373,907 words per ``paper-n1`` core of 393,216 leave
  19,309 for everything else, so N2 can keep its weights on chip only by spreading them over
  MemA, MemB and the SPAD. With a batch ``b > 1`` a third row applies the paper's minibatch
  rule: the activations kept for the backward pass,
  ``sum_i (L - i + 1)(m_i + n_i) b`` words spread over the cores' SPADs, fit there, or else
  the paper recomputes them from saved ones (reverse checkpointing).
* **This compile's**: the step is compiled with every capacity check recording its need
  (:data:`~caterpillar.software.compiler.program.CAPACITY_SURVEY`); each memory's row is its
  fullest core (MemA and MemB per PE, the SPAD and IMEM per core). :func:`fit_table` passes
  over the shortages a compile survives (addresses past a memory's end), so one compile
  measures every memory. The ``mbgd``/``dfa`` GEMM kernels stream their operands through MemA
  and MemB in chunks sized to the memory, so those rows hold the least those kernels can work
  with. A check that cannot be passed over (a GEMM with no room for one row group, say) ends
  the survey: the rows it did not reach say so.
"""

from __future__ import annotations

from contextlib import contextmanager

from caterpillar.contract.isa import IsaError
from caterpillar.software.compiler.program import (
    CAPACITY_SURVEY,
    CapacitySurvey,
    CompileError,
    cdiv,
)
from caterpillar.software.compiler.training import compile_training
from caterpillar.software.graph.model import TrainingGraph

__all__ = ["MEMORIES", "capacity_survey", "fit_table", "fit_lines", "paper_criteria",
           "tabulate"]

#: The memories of the table: key, what one unit of it serves, unit of its size, config field.
MEMORIES = (("MemA", "PE", "words", "mema_words"), ("MemB", "PE", "words", "memb_words"),
            ("SPAD", "core", "words", "spad_words"), ("IMEM", "core", "instructions",
                                                     "imem_words"))


def _memory_key(name: str) -> str:
    return name.removeprefix("the ")


def paper_criteria(graph: TrainingGraph, cfg) -> list[dict]:
    """The paper's fit criteria for ``graph`` on ``cfg`` (see the module docstring): the
    network in the PEs' local SRAM (per PE), the weights anywhere on chip (per core) and, for
    a batch above 1, the batch's activations in the SPADs (per core)."""
    layers = [(i, o) for o, i in graph.layers]           # (m_i inputs, n_i outputs), in order
    count = len(layers)
    weights = sum(m * n for m, n in layers)
    in_flight = sum((count - i) * (m + n + max(m, n)) for i, (m, n) in enumerate(layers))
    pes = cfg.cores * cfg.nr * cfg.nr
    rows = [{"criterion": "weights and one sample's activations in the PEs' local SRAM",
             "per": "PE", "needed": cdiv(weights + in_flight, pes),
             "available": cfg.mema_words + cfg.memb_words},
            {"criterion": "the weights anywhere on chip (every PE's local SRAM and the SPAD)",
             "per": "core", "needed": cdiv(weights, cfg.cores),
             "available": (cfg.mema_words + cfg.memb_words) * cfg.nr * cfg.nr
             + cfg.spad_words}]
    if graph.batch > 1:
        acts = sum((count - i) * (m + n) for i, (m, n) in enumerate(layers)) * graph.batch
        rows.append({"criterion": f"a batch of {graph.batch}'s activations in the SPADs "
                                  "(else reverse checkpointing)", "per": "core",
                     "needed": cdiv(acts, cfg.cores), "available": cfg.spad_words})
    for row in rows:
        row["fits"] = row["needed"] <= row["available"]
    return rows


@contextmanager
def capacity_survey(keep_going: bool = False):
    """Record every capacity check of the compiles run inside (yields the
    :class:`~caterpillar.software.compiler.program.CapacitySurvey`); ``keep_going``: pass
    over the shortages a compile can survive, to measure every memory."""
    survey = CapacitySurvey(keep_going)
    token = CAPACITY_SURVEY.set(survey)
    try:
        yield survey
    finally:
        CAPACITY_SURVEY.reset(token)


def tabulate(records: list, graph: TrainingGraph, cfg, error: str | None = None) -> dict:
    """The fit table of a survey's ``records`` (``error``: the compile error that stopped the
    survey, if any): see :func:`fit_table`."""
    memories = []
    for key, per, unit, field in MEMORIES:
        mine = [r for r in records if _memory_key(r["memory"]) == key]
        fullest = max(mine, key=lambda r: r["needed"], default=None)
        available = getattr(cfg, field)
        needed = None if fullest is None else fullest["needed"]
        memories.append({"memory": key, "per": per, "unit": unit, "needed": needed,
                         "available": available,
                         "fits": None if needed is None else needed <= available,
                         "largest": [] if fullest is None else fullest["largest"]})
    return {"word_bits": cfg.word_width, "paper": paper_criteria(graph, cfg),
            "memories": memories,
            "fits": error is None and all(m["fits"] is not False for m in memories),
            "error": error}


def fit_table(graph: TrainingGraph, cfg, segments=None, groups=None) -> dict:
    """What compiling ``graph`` for ``cfg`` (``segments`` and ``groups`` as
    :func:`~caterpillar.software.compiler.training.compile_training` takes them) needs of
    every memory, measured by one compile that passes over shortages. Returns
    ``{"word_bits", "paper": paper_criteria rows, "memories": one row per memory of MEMORIES
    (``needed`` None if the compile stopped before it; ``largest``: the biggest items of the
    fullest core, as [name, words]), "fits": every memory holds its need and the compile
    went through, "error": the compile error that stopped it, or None}``."""
    error = None
    with capacity_survey(keep_going=True) as survey:
        try:
            compile_training(graph, cfg, segments, groups=groups)
        except (CompileError, IsaError) as e:
            error = str(e)
    return tabulate(survey.records, graph, cfg, error)


def _verdict(fits) -> str:
    return "not reached" if fits is None else ("fits" if fits else "DOES NOT FIT")


def fit_lines(table: dict) -> list[str]:
    """``caterpillar compile``'s fit table as text lines."""
    kb = table["word_bits"] / 8 / 1024
    lines = ["  fit (the paper's criteria, notes 4.2 and 6.6):"]
    for row in table["paper"]:
        lines.append(f"    {row['criterion']}: {row['needed']:,} of {row['available']:,} "
                     f"words per {row['per']} ({row['available'] * kb:,.0f} KB): "
                     f"{_verdict(row['fits'])}")
    lines.append("  fit (this compile, the fullest core):")
    for m in table["memories"]:
        needed = "-" if m["needed"] is None else f"{m['needed']:,}"
        largest = ", ".join(f"{name} {words:,}" for name, words in m["largest"])
        lines.append((f"    {m['memory']:<5s} {needed:>10s} of {m['available']:>9,} "
                      f"{m['unit']} per {m['per']:<4s} {_verdict(m['fits']):<12s}"
                      + (f" (largest: {largest})" if largest else "")).rstrip())
    if table["error"] is not None:
        lines.append(f"    stopped: {table['error']}")
    return lines
