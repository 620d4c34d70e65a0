"""The events of each instruction (:mod:`caterpillar.contract.events`): what they must be
whatever the kernels' micro-op streams (every weight read once per use, a round trip moves
each word once each way, a ring transfer's words), and the MACs against the compilers' model.
That they equal the RTL's counters is tested on every kernel in tests/rtl/test_core.py."""

from types import SimpleNamespace

import pytest

from caterpillar.contract.config import preset
from caterpillar.contract.events import instruction_events, ring_events
from caterpillar.contract.geometry import kernel_plan
from caterpillar.contract.isa import Counter, Opcode, encode, unpack
from caterpillar.software.compiler.training import compile_training
from caterpillar.software.graph.model import Optimizer, TrainingGraph


def events_of(cfg, op, **fields):
    f = SimpleNamespace(**unpack(encode(op, **fields))[1])
    plan = kernel_plan(op, f, cfg)
    assert all(check.ok for check in plan.checks)
    return instruction_events(op, f, plan, cfg)


@pytest.mark.parametrize("name", ["tiny", "small", "paper-n1"])
@pytest.mark.parametrize("rows,cols", [(1, 1), (7, 9), (16, 5)])
def test_matrix_kernels_read_every_weight_once(name, rows, cols):
    cfg = preset(name)
    ldw = -(-cols // cfg.nr)
    weights = rows * cols
    shape = dict(w=0, psum=20, rows=rows, cols=cols, ldw=ldw)
    for e in (events_of(cfg, Opcode.GEMV, y=0, x=10, **shape),
              events_of(cfg, Opcode.GEMVT, z=0, d=10, **shape)):
        assert e[Counter.MEMA_READS] == weights and e[Counter.MEMA_WRITES] == 0
        assert e[Counter.MACS] == weights
    e = events_of(cfg, Opcode.GER, w=0, u=0, v=10, rows=rows, cols=cols, ldw=ldw)
    assert e[Counter.MEMA_READS] == e[Counter.MEMA_WRITES] == weights
    assert e[Counter.OPS] == e[Counter.MACS] == weights


def test_a_round_trip_moves_each_word_once_each_way():
    cfg = preset("small")
    load = events_of(cfg, Opcode.LDA, spad=0, mema=0, rows=5, cols=11, lds=12, ldm=3)
    store = events_of(cfg, Opcode.STA, spad=0, mema=0, rows=5, cols=11, lds=12, ldm=3)
    assert load[Counter.MEMA_WRITES] == store[Counter.MEMA_READS] == store[Counter.SPAD_WRITES]
    assert store[Counter.SPAD_WRITES] == 55
    # A load reads whole SPAD rows: 5 rows of 3 rows of nr = 4 words.
    assert load[Counter.SPAD_READS] == 5 * 3 * 4


def test_ring_transfers_count_their_beats():
    cfg = preset("small")
    send = ring_events(SimpleNamespace(src=0, slen=10, dst=0, rlen=0, keep=0, add=0, fwd=0,
                                       hold=0), cfg)
    assert send[Counter.LINK_WORDS] == 12 and send[Counter.SPAD_READS] == 12
    add = ring_events(SimpleNamespace(src=0, slen=0, dst=0, rlen=10, keep=1, add=1, fwd=1,
                                      hold=0), cfg)
    # Three beats received, added to three local rows, kept (10 words) and forwarded.
    assert add[Counter.RING_ADDS] == 12 and add[Counter.SPAD_READS] == 12
    assert add[Counter.SPAD_WRITES] == 10 and add[Counter.LINK_WORDS] == 12
    # A collective in one instruction: its own two rows first, then all received rows but
    # the held last one.
    piped = ring_events(SimpleNamespace(src=0, slen=8, dst=8, rlen=12, keep=1, add=1, fwd=1,
                                        hold=4), cfg)
    assert piped[Counter.LINK_WORDS] == 8 + 12 - 4 and piped[Counter.RING_ADDS] == 12


@pytest.mark.parametrize("algorithm", ["sgd", "mbgd"])
def test_the_mac_counter_counts_the_compilers_model_macs_of_the_products(algorithm):
    """The compilers' model MACs (the training's products) are what the MAC counter adds for
    the matrix instructions; it also counts the optimizer's and the vector instructions'."""
    cfg = preset("tiny").replace(cores=2)
    graph = TrainingGraph((10, 9, 8, 6), loss="mse", algorithm=algorithm,
                          batch=1 if algorithm == "sgd" else 4,
                          optimizer=Optimizer(lr=0.1, momentum=0.0))
    compiled = compile_training(graph, cfg)
    checked = extra = 0
    for core in compiled.cores.values():
        for word, model in zip(core.program, core.macs, strict=True):
            op, values = unpack(word)
            if op in (Opcode.GEMV, Opcode.GEMVT, Opcode.GEMM, Opcode.GER):
                f = SimpleNamespace(**values)
                e = instruction_events(op, f, kernel_plan(op, f, cfg), cfg)
                assert e[Counter.MACS] >= model > 0, op
                if e[Counter.MACS] > model:
                    # A bias folded into the core's W block: one MAC per row the model
                    # counts as the bias (program.bias_columns), in the forward and update.
                    assert op in (Opcode.GEMV, Opcode.GER)
                    assert e[Counter.MACS] - model == f.rows
                    extra += f.rows
                checked += 1
    assert checked >= 3
    folded = [o for (o, i), where in zip(graph.layers, compiled.bias_columns) if where is not None]
    assert extra == 2 * sum(folded) and (algorithm == "mbgd" or folded)
