"""Training graphs: validation of every field, the optimiser's schedule, --model parsing."""

import pytest

from caterpillar.software.graph.model import GraphError, Optimizer, TrainingGraph, parse_model


@pytest.mark.parametrize("bad, message", [
    (dict(sizes=(5,)), "at least one layer"),
    (dict(sizes=(5, 0)), r"sizes\[1\] must be in"),
    (dict(sizes=(5, 3.0)), r"sizes\[1\] must be an integer"),
    (dict(sizes="5-3"), "sizes must be a list"),
    (dict(sizes=(5, 3), loss="hinge"), "loss must be one of"),
    (dict(sizes=(5, 3), algorithm="sgd", batch=4), "batch 1"),
    (dict(sizes=(5, 3), algorithm="mbgd", batch=0), "batch must be in"),
    (dict(sizes=(5, 3), algorithm="mbgd", batch=True), "batch must be an integer"),
    (dict(sizes=(5, 1)), "at least 2 outputs"),
    (dict(sizes=(5, 3), optimizer="fast"), "optimizer must be an Optimizer"),
])
def test_bad_graphs(bad, message):
    with pytest.raises(GraphError, match=message):
        TrainingGraph(**bad)


def test_bad_optimizer_values():
    with pytest.raises(GraphError, match="momentum must be in"):
        Optimizer(momentum=1.5)
    with pytest.raises(GraphError, match="lr must be positive"):
        Optimizer(lr=0.0)
    with pytest.raises(GraphError, match="lr must be a number"):
        Optimizer(lr="0.1")
    with pytest.raises(GraphError, match="schedule must be one of"):
        Optimizer(schedule="cosine")


def test_step_schedule_and_round_trip():
    opt = Optimizer(lr=0.4, schedule="step", step=2, gamma=0.5)
    assert [opt.lr_at(e) for e in range(5)] == [0.4, 0.4, 0.2, 0.2, 0.1]
    g = TrainingGraph((8, 4, 3), loss="mse", optimizer=opt, algorithm="mbgd", batch=6)
    assert TrainingGraph.from_dict(g.to_dict()) == g
    assert g.layers == [(4, 8), (3, 4)]


def test_from_dict_names_unknown_keys():
    with pytest.raises(GraphError, match="unknown graph key.*'size'"):
        TrainingGraph.from_dict({"size": [3, 2]})
    with pytest.raises(GraphError, match="unknown optimizer key.*'rate'"):
        TrainingGraph.from_dict({"sizes": [3, 2], "optimizer": {"rate": 1}})
    with pytest.raises(GraphError, match="needs 'sizes'"):
        TrainingGraph.from_dict({})


def test_parse_model():
    assert parse_model("64-32-10") == (64, 32, 10)
    with pytest.raises(GraphError, match="--model must be layer widths"):
        parse_model("64-x")
    with pytest.raises(GraphError, match="at least two widths"):
        parse_model("64")


def test_the_kernel_family_follows_the_algorithm_and_batch():
    # GEMV kernels (weights in MemA) for one sample, GEMM kernels on the SPAD for a batch.
    assert TrainingGraph((5, 3)).gemv
    assert TrainingGraph((5, 3), algorithm="dfa").gemv
    assert not TrainingGraph((5, 3), algorithm="dfa", batch=8).gemv
    assert not TrainingGraph((5, 3), algorithm="mbgd", batch=1).gemv
    g = TrainingGraph((8, 4, 3), algorithm="dfa", batch=8)
    assert TrainingGraph.from_dict(g.to_dict()) == g
    assert TrainingGraph((5, 3), algorithm="cp").gemv
    # mbcp runs the GEMV kernels once per sample of a group of 2 or more.
    mbcp = TrainingGraph((5, 3), algorithm="mbcp", batch=4)
    assert mbcp.gemv and mbcp.pipelined and not TrainingGraph((5, 3)).pipelined
    assert TrainingGraph.from_dict(mbcp.to_dict()) == mbcp
    with pytest.raises(GraphError, match="mbcp pipelines groups of 2 or more samples, not "
                                         "batch 1; use --batch 2"):
        TrainingGraph((5, 3), algorithm="mbcp")
    with pytest.raises(GraphError, match="algorithm must be one of sgd, mbgd, dfa, cp, mbcp, "
                                         "not 'bp'"):
        TrainingGraph((5, 3), algorithm="bp")


def test_mbgd_names_its_kernels():
    # mbgd's kernels: auto (the compiler picks for a small batch without momentum), or named;
    # gemv with a batch updates once per sample, so it takes no momentum or weight decay.
    plain = Optimizer(momentum=0.0)
    auto = TrainingGraph((5, 3), algorithm="mbgd", batch=4, optimizer=plain)
    assert auto.kernel_choice and not auto.gemv and not auto.batched_gemv
    gemv = auto.replace(kernels="gemv")
    assert gemv.gemv and gemv.batched_gemv and not gemv.pipelined and not gemv.kernel_choice
    assert TrainingGraph.from_dict(gemv.to_dict()) == gemv
    assert not auto.replace(kernels="gemm").gemv
    assert not auto.replace(batch=9).kernel_choice                      # beyond SMALL_BATCH
    assert not auto.replace(optimizer=Optimizer(momentum=0.9)).kernel_choice
    dfa = TrainingGraph((5, 3), algorithm="dfa", batch=4, optimizer=plain)
    assert dfa.kernel_choice and dfa.replace(kernels="gemv").batched_gemv
    assert not dfa.replace(batch=1).kernel_choice and dfa.replace(batch=1).gemv
    assert TrainingGraph((5, 3), algorithm="sgd", kernels="gemv").gemv
    assert not TrainingGraph((5, 3), algorithm="mbcp", batch=2, kernels="gemv").batched_gemv
    with pytest.raises(GraphError, match="kernels must be one of auto, gemv, gemm, not 'gemmv'"):
        auto.replace(kernels="gemmv")
    with pytest.raises(GraphError, match="algorithm sgd with batch 1 runs on the GEMV kernels, "
                                         "not gemm; only mbgd and dfa with a batch of 2 or "
                                         "more choose"):
        TrainingGraph((5, 3), kernels="gemm")
    with pytest.raises(GraphError, match="algorithm mbgd with batch 1 runs on the GEMM kernels, "
                                         "not gemv"):
        TrainingGraph((5, 3), algorithm="mbgd", kernels="gemv")
    with pytest.raises(GraphError, match=r"mbgd on the GEMV kernels updates once per sample, "
                                         r"so it takes no momentum or weight decay \(momentum "
                                         r"0.9, weight_decay 0.0\); set both to 0 \(--momentum "
                                         r"0\), or use kernels gemm"):
        TrainingGraph((5, 3), algorithm="mbgd", batch=4, kernels="gemv",
                      optimizer=Optimizer(momentum=0.9))
