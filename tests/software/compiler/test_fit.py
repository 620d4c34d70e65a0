"""The fit table (:mod:`caterpillar.software.compiler.fit`): the paper's criteria give the
paper's verdicts, and a compile that passes over shortages measures what every memory needs,
the same numbers a compile that fits allocates."""

import pytest

from caterpillar.contract.config import preset
from caterpillar.software.compiler.fit import fit_lines, fit_table, paper_criteria
from caterpillar.software.compiler.program import CompileError, cdiv
from caterpillar.software.compiler.training import compile_training
from caterpillar.software.graph.model import Optimizer, TrainingGraph

N1 = (784, 500, 500, 500, 10)
N2 = (784, 2500, 2000, 1500, 1000, 500, 10)


def graph(sizes, algorithm="sgd", batch=1, momentum=0.0):
    return TrainingGraph(sizes, algorithm=algorithm, batch=batch,
                         optimizer=Optimizer(lr=0.01, momentum=momentum))


@pytest.mark.parametrize("sizes, config, fits", [
    (N1, "paper-n1", True), (N2, "paper-n1", False), (N2, "paper-n3", True)],
    ids=["N1", "N2", "N3"])
def test_the_papers_criterion_gives_the_papers_verdicts(sizes, config, fits):
    row, anywhere = paper_criteria(graph(sizes), preset(config))
    assert row["fits"] is fits and row["available"] == 8192 and row["per"] == "PE"
    # Every case's weights fit on chip somewhere: N2's only with MemA, MemB and the SPAD.
    assert anywhere["fits"] and anywhere["per"] == "core"


def test_the_papers_criterion_by_hand():
    # N1 on 32 x 16 PEs: 897,000 weights; (L - i + 1)(m + n + max(m, n)) per layer.
    in_flight = 4 * (784 + 500 + 784) + 3 * 1500 + 2 * 1500 + 1 * (500 + 10 + 500)
    local, anywhere, batch = paper_criteria(graph(N1, "mbgd", 50), preset("paper-n1"))
    assert local["needed"] == cdiv(897_000 + in_flight, 512) == 1785
    # N2's 11,965,000 weights over 32 cores, against 16 x 8,192 local words and the SPAD.
    n2 = paper_criteria(graph(N2), preset("paper-n1"))[1]
    assert (n2["needed"], n2["available"]) == (cdiv(11_965_000, 32), 16 * 8192 + 262144)
    assert anywhere["needed"] == cdiv(897_000, 32)
    # A batch's activations, (L - i + 1)(m + n) b, over 32 SPADs.
    acts = (4 * 1284 + 3 * 1000 + 2 * 1000 + 1 * 510) * 50
    assert batch["needed"] == cdiv(acts, 32) and batch["available"] == 262144
    assert batch["fits"]


def test_a_compile_that_fits_reports_what_it_allocated():
    cfg = preset("tiny").replace(cores=2)
    g = graph((9, 7, 5), momentum=0.9)
    table = fit_table(g, cfg)
    assert table["fits"] and table["error"] is None and table["word_bits"] == 32
    rows = {m["memory"]: m for m in table["memories"]}
    cores = compile_training(g, cfg).cores.values()
    nr = cfg.nr
    assert rows["IMEM"]["needed"] == max(len(c.program) for c in cores)
    assert rows["MemA"]["needed"] == max(t.addr + cdiv(t.rows, nr) * t.ld for c in cores
                                         for t in c.tensors if t.kind == "mema")
    # The parameter staging area is the SPAD's last region; it needs nr rows of the widest
    # tensor and takes more room when the SPAD has it.
    least = [nr * max(-(-t.cols // nr) * nr for t in c.tensors if t.kind == "mema")
             for c in cores]
    assert rows["SPAD"]["needed"] == max(c.staging + w for c, w in zip(cores, least))
    assert all(c.staging_words > w for c, w in zip(cores, least))
    assert all(m["fits"] and m["needed"] <= m["available"] for m in rows.values())
    # The largest MemA tensor (with momentum a narrow W's rows are padded to chain_lanes / 2
    # words: here W1's block of columns).
    name, words = rows["MemA"]["largest"][0]
    assert words == max(cdiv(t.rows, nr) * t.ld for c in cores for t in c.tensors
                        if t.kind == "mema")
    assert name.startswith(("W", "[W", "mW", "m[W"))


def test_every_shortage_is_measured_and_the_survey_ends_with_its_compile():
    cfg = preset("paper-n1")
    table = fit_table(graph(N2), cfg)
    rows = {m["memory"]: m for m in table["memories"]}
    # A plain compile stops at MemA; the survey goes on to MemB, the SPAD and IMEM.
    assert not rows["MemA"]["fits"] and rows["MemA"]["needed"] > 3 * 6144
    assert not rows["MemB"]["fits"] and rows["SPAD"]["fits"] and rows["IMEM"]["fits"]
    assert table["error"] is None and not table["fits"]
    text = "\n".join(fit_lines(table))
    assert "DOES NOT FIT" in text and "23,584 of 8,192 words per PE" in text
    with pytest.raises(CompileError, match="MemA needs"):
        compile_training(graph(N2), cfg)


def test_a_shortage_a_compile_cannot_pass_over_ends_the_survey():
    # mbgd's GEMM needs a row group (4 lanes) x 32 words per PE of a chunk of 64 inner terms
    # (MemB's k chunk) in MemA. The SPAD's shortage, found before, is measured too; IMEM's
    # check comes after the program, which the survey did not reach.
    table = fit_table(graph((64, 40, 10), "mbgd", 4), preset("tiny").replace(mema_words=64))
    rows = {m["memory"]: m for m in table["memories"]}
    assert table["error"] is not None and "MemA words per PE" in table["error"]
    assert rows["MemA"]["needed"] == 4 * 32 and not rows["MemA"]["fits"]
    assert not rows["SPAD"]["fits"] and rows["IMEM"]["needed"] is None
    assert rows["IMEM"]["fits"] is None and not table["fits"]
    assert any(line.startswith("    stopped: a GEMM") for line in fit_lines(table))
