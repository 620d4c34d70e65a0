"""The compiler's entry point: placement, partition, one program type for one core and a ring,
and errors that say what to change."""

import pytest

from caterpillar.contract.config import preset
from caterpillar.contract.geometry import RUN_START_CYCLES, word_cycles
from caterpillar.contract.isa import Opcode, decode
from caterpillar.software.compiler.program import Compiled, CompileError
from caterpillar.software.compiler.training import compile_training, layer_segments, partition
from caterpillar.software.graph.model import Optimizer, TrainingGraph


@pytest.mark.parametrize("algorithm, batch", [("sgd", 1), ("mbgd", 4)])
def test_one_core_is_a_ring_of_one(algorithm, batch):
    graph = TrainingGraph((20, 12, 10), algorithm=algorithm, batch=batch)
    compiled = compile_training(graph, preset("small"))
    assert isinstance(compiled, Compiled)
    assert list(compiled.cores) == [0] and compiled.sources == [0]
    assert compiled.segments == [(0,), (0,)] and compiled.working_cores == (0,)
    program = compiled.cores[0].program
    assert not any(decode(w).op == Opcode.RING for w in program)
    # For one core the ring timing model is the sum of the instructions' fixed cycles after
    # the run's first fetch and decode.
    assert compiled.step_cycles == RUN_START_CYCLES + sum(word_cycles(w, compiled.config)
                                                          for w in program)
    report = compiled.phase_report()
    assert report["ring"]["cycles"] == 0
    assert sum(v["cycles"] for v in report.values()) == compiled.step_cycles


def test_compile_errors_say_what_to_change():
    with pytest.raises(CompileError, match=r"MemA needs \d+ words but the config has 256.*"
                                           r"mema_words"):
        compile_training(TrainingGraph((64, 64, 10)), preset("tiny"))
    with pytest.raises(CompileError, match="SPAD needs .*spad_words"):
        compile_training(TrainingGraph((784, 256, 10), algorithm="mbgd", batch=32),
                         preset("small"))
    with pytest.raises(CompileError, match="IMEM holds 256.*imem_words"):
        compile_training(TrainingGraph((64, 32, 10), algorithm="mbgd", batch=100),
                         preset("tiny").replace(spad_words=1 << 20))


@pytest.mark.parametrize("batch, kernels", [(2, "gemv"), (4, "gemm")])
def test_a_small_batch_runs_on_whichever_kernels_step_faster(batch, kernels):
    # kernels auto: mbgd of 2 to 8 samples without momentum on a ring compiles on both and
    # keeps the faster; the compiled step's graph names the kernels.
    graph = TrainingGraph((64, 32, 10), algorithm="mbgd", batch=batch,
                          optimizer=Optimizer(momentum=0.0))
    cfg = preset("small").replace(cores=2)
    chosen = compile_training(graph, cfg)
    both = {k: compile_training(graph.replace(kernels=k), cfg) for k in ("gemv", "gemm")}
    assert chosen.graph.kernels == kernels
    other = {"gemv": "gemm", "gemm": "gemv"}[kernels]
    assert chosen.other_kernels.graph.kernels == other
    assert chosen.other_kernels.step_cycles == both[other].step_cycles
    assert both[other].other_kernels is None
    assert chosen.step_cycles == min(c.step_cycles for c in both.values()) \
        == both[kernels].step_cycles < both[{"gemv": "gemm", "gemm": "gemv"}[kernels]].step_cycles
    # One core, or momentum: the GEMM kernels, as before.
    assert compile_training(graph, preset("small")).graph.kernels == "auto"
    assert not compile_training(graph.replace(optimizer=Optimizer(momentum=0.9)), cfg).graph.gemv


def test_the_gemv_kernels_with_a_batch_need_one_segment_of_a_ring():
    graph = TrainingGraph((64, 32, 10), algorithm="mbgd", batch=2, kernels="gemv",
                          optimizer=Optimizer(momentum=0.0))
    with pytest.raises(CompileError, match="mbgd on the GEMV kernels with a batch runs on a "
                                           "ring of 2 or more cores; on one core use kernels "
                                           "gemm"):
        compile_training(graph, preset("small"))
    with pytest.raises(CompileError, match="mbgd on the GEMV kernels spreads every layer over "
                                           "one segment; per-layer segments need kernels gemm"):
        compile_training(graph, preset("small").replace(cores=4), [(0, 1), (2, 3)])


def test_layer_segments_forms():
    cfg = preset("tiny").replace(cores=4)
    graph = TrainingGraph((9, 8, 7, 6), algorithm="mbgd", batch=2)
    assert layer_segments(graph, cfg, None) == [(0, 1, 2, 3)] * 3
    assert layer_segments(graph, cfg, (2, 0)) == [(2, 0)] * 3
    assert layer_segments(graph, cfg, [(0, 1), (2,), (0, 1)]) == [(0, 1), (2,), (0, 1)]


def test_partition_splits_rows_or_columns():
    cfg = preset("tiny").replace(cores=3)
    mbgd = TrainingGraph((9, 7, 5), algorithm="mbgd", batch=2)
    assert partition(mbgd, cfg, 3) == [[(0, 2), (2, 4), (4, 7)], [(0, 1), (1, 3), (3, 5)]]
    # mbgd's output layer split by columns: blocks of its 7 inputs, as the layer below's rows.
    assert partition(mbgd, cfg, 3, ["rows", "columns"]) == [[(0, 2), (2, 4), (4, 7)]] * 2
    sgd = TrainingGraph((9, 7, 5), algorithm="sgd")
    assert partition(sgd, cfg, 3) == [[(0, 2), (2, 6), (6, 9)], [(0, 2), (2, 4), (4, 7)]]


def test_too_many_cores_is_a_clear_error():
    cfg = preset("tiny").replace(cores=4)
    # The GEMM kernels leave a core without output rows idle in that layer; the GEMV
    # kernels need nr inputs on every core.
    narrow = compile_training(TrainingGraph((6, 2, 3), algorithm="mbgd", batch=2), cfg)
    assert narrow.blocks[1] == [(0, 0), (0, 1), (1, 2), (2, 3)]
    # (The first layer is split by its outputs: those of the second's inputs.)
    with pytest.raises(CompileError, match="^layer 0 has 5 outputs, too few to give each of 4 "
                                           "cores 2; use fewer cores, wider layers, or mbgd "
                                           "or dfa with a batch of 2 or more$"):
        compile_training(TrainingGraph((9, 5, 3), algorithm="sgd"), cfg)
    with pytest.raises(CompileError, match="^layer 2 has 5 inputs, too few to give each of 4 "):
        compile_training(TrainingGraph((9, 8, 5, 3), algorithm="sgd"), cfg)
    with pytest.raises(CompileError, match="must name distinct cores"):
        compile_training(TrainingGraph((9, 8, 3), algorithm="sgd"), cfg, segments=(0, 4))
    mbgd = TrainingGraph((9, 8, 7, 6), algorithm="mbgd", batch=2)
    with pytest.raises(CompileError, match="share core 1"):
        compile_training(mbgd, cfg, segments=[(0, 1), (1, 2), (3,)])
    with pytest.raises(CompileError, match="2 segments for 3 layers"):
        compile_training(mbgd, cfg, segments=[(0, 1), (2, 3)])
    with pytest.raises(CompileError, match="need --algorithm mbgd"):
        compile_training(TrainingGraph((9, 8, 3), algorithm="sgd"), cfg, segments=[(0,), (1,)])


