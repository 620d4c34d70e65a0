"""The compiled step: its reports, its disassembly, and its file (saved, reloaded, and every kind
of damaged or foreign file refused with one line naming the file)."""

import json

import numpy as np
import pytest

from caterpillar.contract.config import preset
from caterpillar.contract.geometry import cdiv, word_cycles
from caterpillar.contract.isa import Layout, Opcode, VecOp, decode, encode
from caterpillar.software.compiler.cp import kernel_bounds
from caterpillar.software.compiler.program import (
    PHASES,
    CompileError,
    Emitter,
    Region,
    load_compiled,
)
from caterpillar.software.compiler.training import compile_training
from caterpillar.software.graph.model import Optimizer, TrainingGraph
from caterpillar.software.storage import CheckpointError

RING = preset("tiny").replace(cores=3)


def mbgd(sizes=(10, 6, 4), batch=5):
    return TrainingGraph(sizes, algorithm="mbgd", batch=batch,
                         optimizer=Optimizer(lr=0.1, momentum=0.9))


@pytest.mark.parametrize("cfg", [preset("small"), RING], ids=["one-core", "ring"])
def test_saved_step_reloads_equal(cfg, tmp_path):
    compiled = compile_training(mbgd(), cfg)
    compiled.save(tmp_path / "p.npz")
    again = load_compiled(tmp_path / "p.npz")
    assert again.graph == compiled.graph and again.config == cfg
    assert again.segments == compiled.segments and again.sources == compiled.sources
    assert again.blocks == compiled.blocks and list(again.cores) == list(compiled.cores)
    for k, core in compiled.cores.items():
        assert again.cores[k] == core
    assert again.predicted_cycles() == compiled.predicted_cycles()


def test_a_step_in_a_fallback_spad_layout_reloads_with_its_layout(tmp_path):
    cfg = preset("tiny").replace(cores=4, spad_words=6144, imem_words=1024)
    compiled = compile_training(mbgd((64, 32, 32, 16, 10), 16), cfg)
    assert len(compiled.cores[0].spad_layout) == 2      # both fallbacks (test_mbgd)
    compiled.save(tmp_path / "p.npz")
    again = load_compiled(tmp_path / "p.npz")
    assert again.cores == compiled.cores
    assert again.placement_text() == compiled.placement_text()


def test_a_piped_step_reloads_equal_and_a_damaged_row_order_is_refused(tmp_path):
    # 4 cores: layer 1 (8 outputs) is summed and gathered piped, its W rows reordered.
    compiled = compile_training(TrainingGraph((10, 9, 8, 6)), preset("tiny").replace(cores=4))
    assert compiled.row_orders[1]
    path = tmp_path / "p.npz"
    compiled.save(path)
    again = load_compiled(path)
    assert again.cores == compiled.cores and again.row_orders == compiled.row_orders
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays["meta"]))
    w1 = next(t for t in meta["cores"]["0"]["tensors"] if t["name"] in ("W1", "P1"))
    w1["row_order"] = [0] * len(w1["row_order"])
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match=r"core 0's tensor [PW]1: its row order is not "
                                              r"an order of its 8 rows"):
        load_compiled(path)


def test_disassembly_has_every_core_and_phase():
    one = compile_training(mbgd(), preset("small"))
    text = one.disassemble().splitlines()
    assert len(text) == len(one.cores[0].program) and text[-1].startswith("halt")
    assert any(line.startswith("gemm ") for line in text)
    ring = compile_training(mbgd(), RING).disassemble()
    assert "; core 0" in ring and "; core 2" in ring and "ring src=" in ring


def test_phase_report_sums_the_macs_of_every_core():
    compiled = compile_training(mbgd(), RING)
    report = compiled.phase_report()
    assert set(report) == set(PHASES)
    total = sum(m for core in compiled.cores.values() for m in core.macs)
    assert sum(v["macs"] for v in report.values()) == total
    assert sum(v["cycles"] for v in report.values()) == compiled.step_cycles


def test_kernel_cycles_are_the_slowest_cores_mac_kernels():
    compiled = compile_training(mbgd((40, 22, 10), batch=6), RING)
    cfg, nr, lanes = RING, RING.nr, RING.acc_lanes
    kernels, steps = [], []
    for core in compiled.cores.values():
        gemms = [decode(w) for w in core.program if decode(w).op == Opcode.GEMM]
        kernels.append(sum(word_cycles(encode(Opcode.GEMM, **g.args), cfg) for g in gemms))
        # Each GEMM's rows in whole groups of nr * Lacc, its columns in panels of nr.
        steps.append(sum(cdiv(g.args["m"], nr * lanes) * cdiv(g.args["n"], nr) * lanes
                         * g.args["k"] for g in gemms))
    assert compiled.kernel_cycles() == {"kernels": max(kernels), "mac_steps": max(steps)}
    assert max(steps) < max(kernels) < compiled.step_cycles
    bounds = kernel_bounds(compiled)
    macs = sum(v["macs"] for v in compiled.phase_report().values())
    pes = nr * nr * len(compiled.working_cores)
    assert bounds == {"kernels": macs / (pes * max(kernels)),
                      "mac_steps": macs / (pes * max(steps))}


def test_region_and_emitter():
    region = Region("MemB", 10, align=4)
    assert region.alloc("a", 3) == 0 and region.alloc("b", 3) == 4
    region.check("fine")
    region.alloc("c", 9)
    with pytest.raises(CompileError, match=r"MemB needs 17 words but the config has 10 "
                                           r"\(largest: c 9, .*\); grow it"):
        region.check("grow it")
    # alloc_high takes from the end down; the need counts both ends, the room what is between.
    high = Region("the SPAD", 64, align=4)
    assert high.alloc("x", 6) == 0 and high.alloc_high("d", 5) == 56 and high.room == 48
    assert high.alloc_high("e", 8) == 48 and high.room == 40
    high.check("fine")
    high.alloc("y", 41)          # 8 .. 48 would just fit below e
    with pytest.raises(CompileError, match=r"the SPAD needs 65 words but the config has 64"):
        high.check("grow it")
    e = Emitter()
    e("forward", Opcode.NOP)
    e("transfer", Opcode.HALT, macs=0)
    assert e.words == [encode(Opcode.NOP), encode(Opcode.HALT)]
    assert e.phases == ["forward", "transfer"] and e.macs == [0, 0]


def test_emitter_folds_an_input_load_into_gemv_where_it_pays():
    cfg = preset("small")
    ldv = dict(spad=64, memb=0, len=256, layout=Layout.COLREP)
    gemv = dict(y=200, x=0, w=0, psum=100, cols=256, ldw=64)
    # 16 outputs: one row group, 4 cycles late against the LDV's 68 (64 rows, drain, check).
    e = Emitter()
    e("transfer", Opcode.LDV, **ldv)
    e.gemv(cfg, "forward", Opcode.GEMV, 16 * 256, rows=16, **gemv)
    assert e.words == [encode(Opcode.GEMV, rows=16, load=1, spad=64, **gemv)]
    assert e.phases == ["forward"] and e.macs == [16 * 256]
    # 512 outputs: 32 row groups, 128 cycles late: slower than the LDV, kept apart.
    e = Emitter()
    e("transfer", Opcode.LDV, **ldv)
    e.gemv(cfg, "forward", Opcode.GEMV, 512 * 256, rows=512, **gemv)
    assert [decode(w).op for w in e.words] == [Opcode.LDV, Opcode.GEMV]
    assert decode(e.words[1]).load == 0
    # Not the input's LDV (another vector, another layout, part of it): kept apart.
    for change in (dict(memb=4), dict(layout=Layout.ROWREP), dict(len=128)):
        e = Emitter()
        e("transfer", Opcode.LDV, **{**ldv, **change})
        e.gemv(cfg, "forward", Opcode.GEMV, 16 * 256, rows=16, **gemv)
        assert [decode(w).op for w in e.words] == [Opcode.LDV, Opcode.GEMV], change
    # gemvt reads its input row-replicated.
    e = Emitter()
    e("transfer", Opcode.LDV, **{**ldv, "layout": Layout.ROWREP})
    e.gemv(cfg, "delta", Opcode.GEMVT, 256 * 16, z=200, d=0, w=0, psum=100, rows=256, cols=16,
           ldw=4)
    assert [(decode(w).op, decode(w).load) for w in e.words] == [(Opcode.GEMVT, 1)]


def test_emitter_folds_a_delta_load_into_a_plain_ger():
    cfg = preset("small")
    ldv = dict(spad=64, memb=40, len=20, layout=Layout.ROWREP)
    ger = dict(w=0, u=40, v=0, mom=100, rows=20, cols=256, ldw=64, alpha=1, wd=2, mu=3)
    # 5 SPAD rows: the LDV's 9 cycles (and its check) against ger_load_lead's 3.
    e = Emitter()
    e("transfer", Opcode.LDV, **ldv)
    assert e.ger(cfg, "update", 20 * 256, use_wd=0, use_mom=0, **ger)
    assert e.words == [encode(Opcode.GER, use_wd=0, use_mom=0, load=1, spad=64, **ger)]
    assert e.phases == ["update"] and e.macs == [20 * 256]
    # With weight decay or momentum (slots taken), or not all of u in its layout: kept apart.
    for change in (dict(use_wd=1), dict(use_mom=1), dict(memb=44), dict(len=16),
                   dict(layout=Layout.COLREP)):
        flags = {k: change.pop(k, 0) for k in ("use_wd", "use_mom")}
        e = Emitter()
        e("transfer", Opcode.LDV, **{**ldv, **change})
        assert not e.ger(cfg, "update", 20 * 256, **flags, **ger)
        assert [(decode(w).op, getattr(decode(w), "load", 0)) for w in e.words] == \
            [(Opcode.LDV, 0), (Opcode.GER, 0)], (change, flags)


def test_emitter_folds_a_store_of_y_into_gemv_where_it_pays():
    cfg = preset("small")
    gemv = dict(y=200, x=0, w=0, psum=100, cols=256, ldw=64)
    stv = dict(spad=64, memb=200, len=64, layout=Layout.DIAG)
    # 64 sums: the stv's 20 cycles (16 rows, drain, check) against write_back_latency more.
    assert cfg.write_back_latency < 20
    e = Emitter()
    e("forward", Opcode.GEMV, 64 * 256, rows=64, **gemv)
    e.stv(cfg, "transfer", **stv)
    assert e.words == [encode(Opcode.GEMV, rows=64, store=1, dst=64, **gemv)]
    assert e.phases == ["forward"] and e.macs == [64 * 256]
    # 8 sums: 6 cycles of stv, fewer than the chain's tail: kept apart.
    e = Emitter()
    e("forward", Opcode.GEMV, 8 * 256, rows=8, **gemv)
    e.stv(cfg, "transfer", **{**stv, "len": 8})
    assert [decode(w).op for w in e.words] == [Opcode.GEMV, Opcode.STV]
    # Not all of y, not y, not diagonal, not after a gemv: kept apart.
    for change in (dict(len=32), dict(memb=0), dict(layout=Layout.COLREP)):
        e = Emitter()
        e("forward", Opcode.GEMV, 64 * 256, rows=64, **gemv)
        e.stv(cfg, "transfer", **{**stv, **change})
        assert [decode(w).op for w in e.words] == [Opcode.GEMV, Opcode.STV], change
    e = Emitter()
    e("forward", Opcode.VOP, fn=VecOp.ADD, layout=Layout.DIAG, z=200, x=0, y=100, len=64,
      alpha=0)
    e.stv(cfg, "transfer", **stv)
    assert [decode(w).op for w in e.words] == [Opcode.VOP, Opcode.STV]


def saved(tmp_path, **changes):
    """A saved step with ``changes`` applied to its arrays or its meta (a callable)."""
    compiled = compile_training(mbgd(), preset("small"))
    path = tmp_path / "p.npz"
    compiled.save(path)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays["meta"]))
    if "meta" in changes:
        changes.pop("meta")(meta)
    arrays["meta"] = np.array(json.dumps(meta))
    arrays.update(changes)
    np.savez(path, **arrays)
    return path


def drop_halt(meta):
    meta["cores"]["0"]["phases"] = meta["cores"]["0"]["phases"][:-1]
    meta["cores"]["0"]["macs"] = meta["cores"]["0"]["macs"][:-1]


@pytest.mark.parametrize("change, message", [
    (dict(program0=np.zeros((0, 4), np.uint64)), "the program of core 0 is empty"),
    (dict(program0=np.zeros((3, 2), np.uint64)), r"shape \(n, 4\)"),
    (dict(program0=np.zeros((3, 4), np.float64)), "uint64"),
    (dict(program0=np.full((3, 4), 0, np.uint64)), "has 3 instructions but"),
    (dict(program0=np.zeros((5000, 4), np.uint64)), r"member program0 holds 160128 bytes; "
                                                     r"at most 32768"),
    (dict(meta=lambda m: m.pop("graph")), "KeyError: 'graph'"),
    (dict(meta=lambda m: m["config"].update(nr=3)), "nr must be one of"),
    (dict(meta=lambda m: m["cores"].update({"7": m["cores"]["0"]})), "core 7 is outside"),
    (dict(meta=lambda m: m["cores"]["0"].update(
        phases=["warp"] * len(m["cores"]["0"]["phases"]))), "names a phase"),
    (dict(meta=drop_halt), "has .* instructions but"),
])
def test_damaged_programs_are_refused(tmp_path, change, message):
    path = saved(tmp_path, **change)
    with pytest.raises(CheckpointError, match=message):
        load_compiled(path)


def test_a_program_must_end_in_halt_and_decode(tmp_path):
    compiled = compile_training(mbgd(), preset("small"))
    program = compiled.cores[0].program
    words = np.array([[(w >> (64 * q)) & ((1 << 64) - 1) for q in range(4)]
                      for w in program], dtype=np.uint64)
    no_halt = words.copy()
    no_halt[-1] = [Opcode.NOP.value, 0, 0, 0]
    with pytest.raises(CheckpointError, match="does not end with halt"):
        load_compiled(saved(tmp_path, program0=no_halt))
    illegal = words.copy()
    illegal[0, 0] = 0x7F
    with pytest.raises(CheckpointError, match=r"core 0, instruction 0: illegal opcode 0x7f"):
        load_compiled(saved(tmp_path, program0=illegal))


def test_foreign_files_are_refused(tmp_path):
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(CheckpointError, match="not a valid .npz"):
        load_compiled(tmp_path / "text.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(2))
    with pytest.raises(CheckpointError, match="lacks meta"):
        load_compiled(tmp_path / "other.npz")
    with pytest.raises(CheckpointError, match="no such file"):
        load_compiled(tmp_path / "missing.npz")
