"""The instruction-level simulator against the golden kernels, its cycle model and errors."""

import numpy as np
import pytest

from caterpillar.contract.config import preset
from caterpillar.contract.geometry import (
    INSTRUCTION_OVERHEAD,
    RUN_START_CYCLES,
    gemv_load_lead,
    kernel_plan,
)
from caterpillar.contract.isa import INSTR_WORDS, ErrorCause, Layout, Opcode, VecOp, encode
from caterpillar.golden.numerics import to_float64
from caterpillar.sim.cases import kernels as kc
from caterpillar.software.driver.core import CoreError, Driver
from caterpillar.software.isasim.core import AliasingError, IsaSim
from caterpillar.software.isasim.device import IsaDevice

CONFIGS = {
    "tiny": preset("tiny"),
    "small": preset("small"),
    "tiny-bf16": preset("tiny").replace(name="tiny-bf16", operand_format="bf16"),
    "tiny-fp16": preset("tiny").replace(name="tiny-fp16", operand_format="fp16",
                                        acc_format="fp16"),
    "nr8": preset("small").replace(name="nr8", nr=8),
}


def cases_for(cfg, rng):
    yield kc.gemv_case(cfg, 13, 10, rng, specials=0.05)
    yield kc.gemv_case(cfg, 1, 1, rng)
    yield kc.gemvt_case(cfg, 10, 13, rng, specials=0.05)
    yield kc.ger_case(cfg, 7, 9, rng)
    yield kc.ger_case(cfg, 9, 5, rng, use_wd=True, use_mom=True, specials=0.05)
    yield kc.ger_case(cfg, 4, 6, rng, use_mom=True)
    yield kc.ger_case(cfg, 2 * cfg.nr + 1, cfg.nr * cfg.chain_lanes // 2, rng, use_wd=True,
                      use_mom=True, specials=0.05)        # two rows a step (paired)
    yield kc.cpass_case(cfg, 21, 13, rng, specials=0.05)
    yield kc.cpass_case(cfg, 3, 10, rng, fwd=False)
    yield kc.cpass_case(cfg, 10, 3, rng, prop=False)
    yield kc.gemm_case(cfg, 17, 9, 11, rng)
    yield kc.gemm_case(cfg, 8, 3, 1, rng, accumulate=True, specials=0.05)
    yield kc.gemm_case(cfg, 13, 6, 9, rng, accumulate=True, a_mema=True)
    yield kc.gemm_case(cfg, 13, 6, 9, rng, a_mema=True, mema=21)
    yield kc.gemm_case(cfg, 37, 6, 9, rng, accumulate=True, a_rows=True,
                       mc=cfg.nr * cfg.acc_lanes, lda_pad=cfg.nr,
                       mema=7, specials=0.05)
    yield kc.gemm_case(cfg, 9, 6, 3, rng, accumulate=True, specials=0.2, relu=True)
    yield kc.gemm_reuse_case(cfg, 9, 5, 7, rng, mema=40)
    yield kc.smxce_case(cfg, 10, rng)
    yield kc.smxce_case(cfg, 10, rng, rows=cfg.nr, specials=0.1)
    yield kc.smxce_case(cfg, 3, rng, rows=1)
    yield kc.transfer_case(cfg, 5, 11, rng, trans=True)
    yield kc.vector_transfer_case(cfg, 11, rng)
    for fn in VecOp:
        yield kc.vop_case(cfg, fn, list(Layout)[fn.value % 3], 11, rng, specials=0.1)
        yield kc.vop_case(cfg, fn, Layout.FULL, 3 * cfg.nr, rng, specials=0.1)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_kernel_matches_golden_and_counts_its_macs(name, rng):
    cfg = CONFIGS[name]
    for case in cases_for(cfg, rng):
        outputs, stats = kc.run_case(IsaDevice(cfg), case)
        for got, want in zip(outputs, case.expected):
            np.testing.assert_array_equal(got, want, err_msg=f"{name}: {case.name}")
        assert stats.macs == case.counted_macs, case.name


def test_cycles_are_overhead_plus_stream_plus_drain():
    cfg = preset("small").replace(mema_words=4096)
    fields = dict(y=0, x=0, w=0, psum=0, rows=256, cols=256, ldw=64, load=0, spad=0, store=0,
                  dst=0)
    plan = kernel_plan(Opcode.GEMV, type("F", (), fields), cfg)
    groups, lanes = 256 // 4 // cfg.acc_lanes, cfg.acc_lanes
    delay = cfg.add_latency + 1
    stream = groups * 64 * lanes + cfg.write_back_latency + 64 + 3 * delay
    assert plan.stream_cycles == stream
    # With load every row group's MACs start gemv_load_lead steps late (one, on small).
    loaded = kernel_plan(Opcode.GEMV, type("F", (), {**fields, "load": 1}), cfg)
    assert gemv_load_lead(cfg) == 1
    assert loaded.stream_cycles == stream + groups * lanes
    # With store the last SPAD row is stored write_back_latency cycles after its sums issued.
    stored = kernel_plan(Opcode.GEMV, type("F", (), {**fields, "store": 1}), cfg)
    assert stored.stream_cycles == stream + cfg.write_back_latency
    sim = IsaSim(cfg)
    sim.load_program([encode(Opcode.GEMV, rows=256, cols=256, ldw=64, y=400, psum=300, x=0),
                      encode(Opcode.NOP), encode(Opcode.HALT)])
    result = sim.run()
    assert result.ok
    # The run's first fetch and decode; each instruction's check; the nop's decode of the halt.
    assert result.busy_cycles == RUN_START_CYCLES + stream + cfg.write_back_latency + \
        3 * INSTRUCTION_OVERHEAD + 1
    assert result.macs == 256 * 256 and result.instret == 3
    assert result.stalls == cfg.write_back_latency


@pytest.mark.parametrize("word,cause,pc", [
    (0x7F, ErrorCause.ILLEGAL_OPCODE, 1),
    (encode(Opcode.LDV, spad=3, memb=0, len=4, layout=Layout.DIAG), ErrorCause.BAD_SHAPE, 1),
    (encode(Opcode.LDV, spad=0, memb=0, len=0, layout=Layout.DIAG), ErrorCause.BAD_SHAPE, 1),
    (encode(Opcode.LDV, spad=4092, memb=0, len=8, layout=Layout.DIAG),
     ErrorCause.SPAD_RANGE, 1),
    (encode(Opcode.LDV, spad=0, memb=120, len=32, layout=Layout.DIAG),
     ErrorCause.MEMB_RANGE, 1),
    (encode(Opcode.LDV, spad=0, memb=0, len=5, layout=Layout.FULL), ErrorCause.BAD_SHAPE, 1),
    (encode(Opcode.BCAST, dst=8, src=0, len=4, layout=Layout.FULL), ErrorCause.ILLEGAL_FIELD,
     1),
    (encode(Opcode.LDV, spad=0, memb=0, len=4, layout=Layout.ROWREP, row=1),
     ErrorCause.ILLEGAL_FIELD, 1),
    (encode(Opcode.SMXCE, z=0, x=4, t=8, scr=12, len=4, rows=3), ErrorCause.BAD_SHAPE, 1),
    (encode(Opcode.GEMV, y=0, x=8, w=250, psum=16, rows=4, cols=8, ldw=4),
     ErrorCause.MEMA_RANGE, 1),
    (encode(Opcode.GEMV, y=0, x=8, w=0, psum=16, rows=4, cols=8, ldw=4, load=1, spad=3),
     ErrorCause.BAD_SHAPE, 1),
    (encode(Opcode.GEMVT, z=0, d=8, w=0, psum=16, rows=8, cols=4, ldw=2, load=1, spad=4092),
     ErrorCause.SPAD_RANGE, 1),
    (encode(Opcode.GEMV, y=0, x=8, w=0, psum=16, rows=4, cols=8, ldw=4, store=1, dst=3),
     ErrorCause.BAD_SHAPE, 1),
    (encode(Opcode.GEMV, y=0, x=8, w=0, psum=16, rows=4, cols=8, ldw=4, store=1, dst=4094),
     ErrorCause.SPAD_RANGE, 1),
    (encode(Opcode.VOP, fn=12, layout=0, z=0, x=0, y=0, len=4, alpha=0, strict=False),
     ErrorCause.ILLEGAL_FIELD, 1),
    (encode(Opcode.GEMM, c=0, a=0, b=0, m=8, n=8, k=8, lda=8, ldb=8, ldc=8, mc=6),
     ErrorCause.BAD_SHAPE, 1),
])
def test_errors_stop_with_cause_and_pc(word, cause, pc):
    device = IsaDevice(preset("tiny"))
    driver = Driver(device)
    driver.load_program([encode(Opcode.NOP), word, encode(Opcode.HALT)])
    with pytest.raises(CoreError) as error:
        driver.run()
    assert (error.value.cause, error.value.pc) == (cause, pc)
    assert device.sim.counters  # the counters are still readable
    # The error is sticky until cleared; the driver clears it, so the next run works.
    driver.load_program([encode(Opcode.HALT)])
    assert driver.run().instret == 1


def test_running_off_the_end_of_imem_is_an_error():
    cfg = preset("tiny")
    driver = Driver(IsaDevice(cfg))
    driver.load_program([encode(Opcode.NOP)] * cfg.imem_words)
    with pytest.raises(CoreError, match="imem_range"):
        driver.run()


def test_timing_dependent_aliasing_is_refused():
    sim = IsaSim(preset("tiny"))
    sim.load_program([encode(Opcode.GEMV, y=40, x=8, w=0, psum=8, rows=4, cols=8, ldw=4),
                      encode(Opcode.HALT)])
    with pytest.raises(AliasingError, match="psum overlaps its input"):
        sim.run()


def test_program_window_round_trips():
    driver = Driver(IsaDevice(preset("tiny")))
    words = [encode(Opcode.SETS, reg=i, value=i * 12345) for i in range(5)]
    driver.load_program(words, base=7)
    assert driver.read_program(5, base=7) == words
    assert INSTR_WORDS == 8


@pytest.mark.parametrize("name", ["tiny", "tiny-fp16"])
def test_a_rectified_gemm_stores_max_of_its_sums_and_plus_zero(name):
    """The case behind ``relu``'s kernel tests covers what max(C, +0) must get right: the
    sums of the same operands unrectified hold negatives and a NaN (-0: test_spad.py)."""
    cfg = CONFIGS[name]
    fmt = cfg.operand
    plain, relu = (kc.gemm_case(cfg, 9, 6, 3, np.random.default_rng(11), accumulate=True,
                                specials=0.2, relu=flag) for flag in (False, True))
    c, r = plain.expected[0], relu.expected[0]
    sign = np.uint64(1 << (fmt.width - 1))
    nan = np.isnan(to_float64(c, fmt))
    negative = ((c & sign) != 0) & ~nan
    assert nan.any() and negative.sum() > 5
    np.testing.assert_array_equal(r[negative], 0)
    np.testing.assert_array_equal(r[nan], fmt.canonical_nan)
    np.testing.assert_array_equal(r[~negative & ~nan], c[~negative & ~nan])
    outputs, _ = kc.run_case(IsaDevice(cfg), relu)
    np.testing.assert_array_equal(outputs[0], r)
