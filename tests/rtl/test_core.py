# amaranth: UnusedElaboratable=no
"""The core's RTL in the Amaranth simulator: every kernel equals the instruction-level simulator
and the golden kernels bit for bit, and takes exactly the predicted cycles."""

from types import SimpleNamespace

import numpy as np
import pytest

from caterpillar.contract.config import preset
from caterpillar.contract.geometry import ger_load_lead, kernel_plan
from caterpillar.contract.isa import ErrorCause, Layout, Opcode, VecOp, encode, unpack
from caterpillar.sim.backends.amaranth import AmaranthDevice
from caterpillar.sim.cases import kernels as kc
from caterpillar.software.driver.core import CoreError, Driver
from caterpillar.software.isasim.device import IsaDevice

#: Whole cores or rings in a simulator, or Verilator builds: `make test`, not test-fast.
pytestmark = pytest.mark.integration

TINY = preset("tiny")
TINY_BF16 = TINY.replace(name="tiny-bf16", operand_format="bf16")


def check(cfg, case):
    rtl_out, rtl = kc.run_case(AmaranthDevice(cfg), case)
    isa_out, isa = kc.run_case(IsaDevice(cfg), case)
    for got, ref, want in zip(rtl_out, isa_out, case.expected):
        np.testing.assert_array_equal(ref, want, err_msg=f"isa vs golden: {case.name}")
        np.testing.assert_array_equal(got, ref, err_msg=f"rtl vs isa: {case.name}")
    assert rtl.counted() == isa.counted(), case.name
    return rtl


CASES = {
    "gemv": lambda cfg, rng: kc.gemv_case(cfg, 7, 9, rng, specials=0.05),
    "gemvt": lambda cfg, rng: kc.gemvt_case(cfg, 9, 7, rng, specials=0.05),
    # The input loaded from the SPAD beside the MACs: more row groups than one, the first
    # group's steps fewer than the loads (9 rows of d, 2 local columns) and more.
    "gemv-load": lambda cfg, rng: kc.gemv_case(cfg, 7, 9, rng, specials=0.05, load=True),
    "gemvt-load": lambda cfg, rng: kc.gemvt_case(cfg, 9, 7, rng, load=True),
    "gemv-load-groups": lambda cfg, rng: kc.gemv_case(cfg, 37, 5, rng, load=True),
    # y stored into the SPAD from accumulator slots by the gemv: fewer rows than slots, more.
    "gemv-store": lambda cfg, rng: kc.gemv_case(cfg, 5, 9, rng, specials=0.05, store=True),
    "gemv-load-store": lambda cfg, rng: kc.gemv_case(cfg, 37, 5, rng, load=True, store=True),
    "ger": lambda cfg, rng: kc.ger_case(cfg, 5, 7, rng),
    "ger-wd-mom": lambda cfg, rng: kc.ger_case(cfg, 3, 5, rng, use_wd=True, use_mom=True),
    # Rows of chain_lanes / 2 words: two rows a step (an odd row count leaves the last
    # step's second row out); momentum in W's bank pattern, and not (through slots).
    "ger-mom-paired": lambda cfg, rng: kc.ger_case(cfg, 7, cfg.nr * cfg.chain_lanes // 2, rng,
                                                   use_mom=True),
    "ger-wd-mom-paired-odd": lambda cfg, rng: kc.ger_case(
        cfg, 2 * cfg.nr + 1, cfg.nr * cfg.chain_lanes // 2 - 1, rng, use_wd=True, use_mom=True,
        specials=0.05),
    "ger-mom-paired-slotted": lambda cfg, rng: kc.ger_case(
        cfg, 6, cfg.nr * cfg.chain_lanes // 2, rng, use_mom=True, mom_pad=1),
    # u loaded from the SPAD into slots beside the update: fewer rows per PE than the lead,
    # more; a column per PE (a row per cycle) and more.
    "ger-load": lambda cfg, rng: kc.ger_case(cfg, 5, 7, rng, specials=0.05, load=True),
    "ger-load-rows": lambda cfg, rng: kc.ger_case(cfg, 37, 3, rng, load=True),
    "cpass": lambda cfg, rng: kc.cpass_case(cfg, 21, 13, rng, specials=0.05),
    "cpass-noprop": lambda cfg, rng: kc.cpass_case(cfg, 9, 7, rng, prop=False),
    "cpass-nofwd": lambda cfg, rng: kc.cpass_case(cfg, 3, 5, rng, fwd=False),
    # y stored in the SPAD by the cpass itself, during (and a write-back after) its chain.
    "cpass-store": lambda cfg, rng: kc.cpass_case(cfg, 21, 13, rng, store=True, specials=0.05),
    "cpass-noprop-store": lambda cfg, rng: kc.cpass_case(cfg, 9, 7, rng, prop=False,
                                                         store=True),
    # d from the SPAD into its slots by the cpass itself, a cycle before each fill would be:
    # several row groups (and a partial last one) with and without prop, and no forward.
    "cpass-load": lambda cfg, rng: kc.cpass_case(cfg, 21, 13, rng, load=True, specials=0.05),
    "cpass-noprop-load": lambda cfg, rng: kc.cpass_case(cfg, 19, 7, rng, prop=False,
                                                        load=True, store=True),
    "cpass-nofwd-load": lambda cfg, rng: kc.cpass_case(cfg, 3, 5, rng, fwd=False, load=True),
    "gemm": lambda cfg, rng: kc.gemm_case(cfg, 11 * cfg.nr // 2, 5, 7, rng,
                                          mc=cfg.nr * cfg.acc_lanes),
    "gemm-acc": lambda cfg, rng: kc.gemm_case(cfg, 9, 3, 2, rng, accumulate=True,
                                              specials=0.05),
    # A row-major in the SPAD, loaded into MemA by lda: no stream, every panel reads MemA.
    "gemm-a-mema": lambda cfg, rng: kc.gemm_case(cfg, 11, 5, 7, rng, accumulate=True,
                                                 a_mema=True),
    # A's tile away from MemA's start: loaded there by lda, kept there by a streamed GEMM.
    "gemm-a-mema-base": lambda cfg, rng: kc.gemm_case(cfg, 11, 5, 7, rng, a_mema=True,
                                                      mema=13),
    # A row-major, loaded into MemA by the GEMM itself ahead of its compute (a_rows): several
    # blocks and row groups, a part group and a part k-block, a padded lda, a tile off MemA's
    # start; fewer k-blocks than the lead (k = 1), and more.
    "gemm-a-rows": lambda cfg, rng: kc.gemm_case(
        cfg, 2 * cfg.nr * cfg.acc_lanes + 3, 5, 7, rng, accumulate=True, a_rows=True,
        mc=cfg.nr * cfg.acc_lanes, lda_pad=cfg.nr, mema=5, specials=0.05),
    "gemm-a-rows-k1": lambda cfg, rng: kc.gemm_case(cfg, 9, 3, 1, rng, a_rows=True),
    "gemm-a-rows-long-k": lambda cfg, rng: kc.gemm_case(cfg, 11, 6, 6 * cfg.nr + 1, rng,
                                                        a_rows=True, relu=True),
    "gemm-reuse": lambda cfg, rng: kc.gemm_reuse_case(cfg, 2 * cfg.nr + 3, 6, 5, rng, mema=12),
    # C rectified on its way out: negatives and -0 to +0, NaN canonical (specials in A, B, C).
    "gemm-relu": lambda cfg, rng: kc.gemm_case(cfg, 9, 6, 3, rng, accumulate=True,
                                               specials=0.2, relu=True),
    "smxce": lambda cfg, rng: kc.smxce_case(cfg, 7, rng),
    # Every PE row a sample of its own (ldv and stv with row), specials among the logits.
    "smxce-rows": lambda cfg, rng: kc.smxce_case(cfg, 7, rng, rows=cfg.nr, specials=0.1),
    "smxce-rows-part": lambda cfg, rng: kc.smxce_case(cfg, 5, rng, rows=cfg.nr - 1),
    "lda-trans": lambda cfg, rng: kc.transfer_case(cfg, 3, 5, rng, trans=True),
    "vectors": lambda cfg, rng: kc.vector_transfer_case(cfg, 7, rng),
    "transfer-chain": lambda cfg, rng: kc.transfer_chain_case(cfg, 7, rng),
}


@pytest.mark.parametrize("kernel", list(CASES))
def test_kernel_tiny_fp32(kernel, rng):
    check(TINY, CASES[kernel](TINY, rng))


@pytest.mark.parametrize("kernel", ["gemv", "ger-wd-mom", "gemm-acc", "smxce", "smxce-rows",
                                    "cpass"])
def test_kernel_tiny_bf16_operands_fp32_accumulator(kernel, rng):
    check(TINY_BF16, CASES[kernel](TINY_BF16, rng))


@pytest.mark.parametrize("name, k, accumulate", [("small", 14, True), ("paper-n1", 14, True),
                                                ("paper-n1", 16, False)])
def test_gemm_a_rows_on_other_latencies_and_formats(name, k, accumulate, rng):
    """gemm with a_rows computes 2 + 2^b nr Lacc cycles behind its load of A: MemA's bank bit
    b is 0 on small (a lead of 18) and 1 on paper-n1 (34, fp16); several blocks, a part row
    group and a part k-block, and (k = 16 without accumulate) row groups whose length the
    lead sets (tests/rtl/test_gemm.py)."""
    cfg = preset(name).replace(cores=1, spad_words=8192)
    group = cfg.nr * cfg.acc_lanes
    check(cfg, kc.gemm_case(cfg, 2 * group + 5, 6, k, rng, accumulate=accumulate,
                            a_rows=True, mc=group, mema=9, specials=0.05))


@pytest.mark.parametrize("name,prop,fwd,store,load", [
    ("small", 1, 1, 0, 0), ("paper-n1", 0, 1, 0, 0), ("paper-n1", 1, 0, 0, 0),
    ("small", 1, 1, 1, 1), ("small", 0, 1, 1, 1), ("paper-n1", 1, 1, 1, 0),
    ("paper-n1", 1, 1, 0, 1), ("paper-n1", 0, 1, 1, 1)])
def test_cpass_on_other_latencies_and_formats(name, prop, fwd, store, load, rng):
    """The fused pass's schedule depends on the latencies (paper-n1: runs of two updates
    without prop; with store, when its SPAD stores read the sums' slots; with load, when the
    deltas' loads land) and its arithmetic on the formats (fp16)."""
    cfg = preset(name).replace(cores=1, spad_words=8192)
    check(cfg, kc.cpass_case(cfg, 13, 21, rng, prop=bool(prop), fwd=bool(fwd),
                             store=bool(store), load=bool(load), specials=0.05))


@pytest.mark.parametrize("name", ["small", "ulx3s", "paper-n1"])
@pytest.mark.parametrize("kernel", ["gemv-load", "gemvt-load", "gemv-load-store"])
def test_gemv_load_on_other_latencies_and_formats(name, kernel, rng):
    """How far the MACs run behind the loads depends on ``acc_lanes`` (``gemv_load_lead``),
    when the stores read the sums' slots on ``write_back_latency``."""
    cfg = preset(name).replace(cores=1, spad_words=8192)
    check(cfg, CASES[kernel](cfg, rng))


@pytest.mark.parametrize("name,ldw_pad", [("small", 0), ("paper-n1", 0), ("paper-n1", 2)])
@pytest.mark.parametrize("rows,cols", [(37, 3), (9, 13)])
def test_ger_load_on_other_latencies(name, ldw_pad, rows, cols, rng):
    """A GER with ``load`` runs ``ger_load_lead`` cycles longer than one without, whether it
    streams a weight per cycle or runs in runs of issues and idle cycles (``ldw_pad`` 2 on
    paper-n1), a row per cycle (3 columns) or more; bit-exact, counters as the model's."""
    cfg = preset(name).replace(cores=1, spad_words=8192)
    case = kc.ger_case(cfg, rows, cols, rng, ldw_pad=ldw_pad, load=True, specials=0.05)
    check(cfg, case)
    word = next(w for w in case.program if unpack(w)[0] == Opcode.GER)
    fields = unpack(word)[1]
    loaded = kernel_plan(Opcode.GER, SimpleNamespace(**fields), cfg)
    plain = kernel_plan(Opcode.GER, SimpleNamespace(**{**fields, "load": 0}), cfg)
    assert loaded.stream_cycles == plain.stream_cycles + ger_load_lead(cfg)


@pytest.mark.parametrize("name", ["tiny", "small", "paper-n1"])
@pytest.mark.parametrize("windows", [1, 2, 3])
def test_cpass_without_prop_runs_its_row_groups_back_to_back(name, windows, rng):
    """Without ``prop`` (the first layer) a row group's first window runs the last forward
    steps of the group before and its last window fills the next group's deltas beside its
    updates (tiny, small: runs of one update, paper-n1: of two; every fill cycle a different
    one): ``groups x windows`` windows and one more at the end (with ``fwd``), not a window
    more per group. Three groups, the last partial, of 1, 2 and 3 windows (the last with a
    column in all but the last PE column); bit-exact, cycles as the model's, no hazard. Also
    with the deltas loaded from the SPAD (``load``) a cycle before each fill cycle."""
    cfg = preset(name).replace(cores=1, spad_words=8192)
    nr, lacc, lanes = cfg.nr, cfg.acc_lanes, cfg.chain_lanes
    rows, cols = 2 * nr * lacc + nr + 1, windows * nr * lanes // lacc - 1
    for fwd, load in ((True, False), (False, False), (True, True)):
        case = kc.cpass_case(cfg, rows, cols, rng, prop=False, fwd=fwd, load=load,
                             specials=0.05)
        check(cfg, case)
        word = next(w for w in case.program if unpack(w)[0] == Opcode.CPASS)
        plan = kernel_plan(Opcode.CPASS, SimpleNamespace(**unpack(word)[1]), cfg)
        cycles = {s.name: s.cycles for s in plan.segments}
        assert (plan.values["groups"], plan.values["windows"]) == (3, windows)
        assert cycles["windows"] == 3 * windows * 2 * lanes
        assert cycles["combine"] == (2 * lanes if fwd else 1)
        assert cycles["deltas"] == lacc + load


@pytest.mark.parametrize("name,ldw_pad,streams", [
    ("tiny", 0, True), ("tiny", 1, False), ("paper-n1", 0, True), ("paper-n1", 2, False),
    ("paper-n1", 4, True)])
def test_plain_ger_updates_a_weight_per_cycle_where_memas_banks_allow(name, ldw_pad, streams,
                                                                      rng):
    """MemA's banks (address bit 0 on tiny, bit 1 on paper-n1) let the plain update read one
    weight and write another in every cycle; rows a stride apart that breaks the pattern
    between rows take runs of ``ger_issue_run``. Either way bit-exact, and no hazard."""
    cfg = preset(name).replace(cores=1, spad_words=8192)
    case = kc.ger_case(cfg, 9, 13, rng, ldw_pad=ldw_pad)
    check(cfg, case)
    word = next(w for w in case.program if unpack(w)[0] == Opcode.GER)
    plan = kernel_plan(Opcode.GER, SimpleNamespace(**unpack(word)[1]), cfg)
    m_loc, k_loc = plan.values["m_loc"], plan.values["k_loc"]
    assert bool(plan.values["streams"]) == streams
    assert (plan.stream_cycles == m_loc * k_loc) == streams


@pytest.mark.parametrize("name,flags,mom_pad,steps", [
    ("tiny", "mom", 0, 3), ("tiny", "wd", 0, 3), ("tiny", "wd-mom", 0, 4),
    ("tiny", "mom", 1, 5), ("paper-n1", "wd-mom", 4, 4), ("paper-n1", "mom", 2, 5)])
def test_ger_with_flags_reads_w_and_m_at_issue_where_memas_banks_allow(name, flags, mom_pad,
                                                                       steps, rng):
    """With weight decay and momentum: a step per operation (g = u v, g += wd W, m = g + mu m
    written to MemA beside its slot, W += alpha m) when the momentum buffer keeps W's bank
    pattern (its offset a multiple of twice the bank bit's weight: 2 on tiny, 4 on
    paper-n1); otherwise W through a slot and m stored by a move, two steps more."""
    cfg = preset(name).replace(cores=1, spad_words=8192)
    case = kc.ger_case(cfg, 11, 13, rng, use_wd="wd" in flags, use_mom="mom" in flags,
                       mom_pad=mom_pad, specials=0.02)
    check(cfg, case)
    word = next(w for w in case.program if unpack(w)[0] == Opcode.GER)
    plan = kernel_plan(Opcode.GER, SimpleNamespace(**unpack(word)[1]), cfg)
    assert plan.values["steps"] == steps


@pytest.mark.parametrize("fn", list(VecOp), ids=lambda f: f.name.lower())
def test_vector_functions(fn, rng):
    layout = list(Layout)[fn.value % len(Layout)]
    # FULL: whole SPAD rows over every PE; 10 on tiny's 2 x 2 is two PE words and a half.
    check(TINY, kc.vop_case(TINY, fn, layout, 10 if layout == Layout.FULL else 5, rng,
                            specials=0.1))


def test_gemm_utilization_counter(rng):
    stats = check(TINY, kc.gemm_case(TINY, 16, 8, 16, rng))
    assert stats.macs == 16 * 8 * 16
    assert stats.utilization(4) > 0.75


@pytest.mark.parametrize("word,cause", [
    (0x7F, ErrorCause.ILLEGAL_OPCODE),
    (encode(Opcode.LDV, spad=3, memb=0, len=4, layout=Layout.DIAG), ErrorCause.BAD_SHAPE),
    (encode(Opcode.LDV, spad=0, memb=0, len=5, layout=Layout.FULL), ErrorCause.BAD_SHAPE),
    (encode(Opcode.BCAST, dst=8, src=0, len=4, layout=Layout.FULL), ErrorCause.ILLEGAL_FIELD),
    # One PE row's copy: COLREP only, a row of the array; at most nr samples in SMXCE.
    (encode(Opcode.LDV, spad=0, memb=0, len=4, layout=Layout.DIAG, row=1),
     ErrorCause.ILLEGAL_FIELD),
    (encode(Opcode.STV, spad=8, memb=0, len=4, layout=Layout.COLREP, row=3),
     ErrorCause.ILLEGAL_FIELD),
    (encode(Opcode.SMXCE, z=0, x=4, t=8, scr=12, len=4, rows=3), ErrorCause.BAD_SHAPE),
    (encode(Opcode.GEMV, y=0, x=8, w=250, psum=16, rows=4, cols=8, ldw=4),
     ErrorCause.MEMA_RANGE),
    (encode(Opcode.CPASS, w=0, d=0, a=8, x=12, y=16, z=20, q=24, fpsum=40, bpsum=44, rows=4,
            cols=4, ldw=2, prop=1, fwd=0, store=1, dst=8), ErrorCause.ILLEGAL_FIELD),
    (encode(Opcode.CPASS, w=0, d=0, a=8, x=12, y=16, z=20, q=24, fpsum=40, bpsum=44, rows=4,
            cols=4, ldw=2, prop=1, fwd=1, store=1, dst=9), ErrorCause.BAD_SHAPE),
    (encode(Opcode.CPASS, w=0, d=0, a=8, x=12, y=16, z=20, q=24, fpsum=40, bpsum=44, rows=4,
            cols=4, ldw=2, prop=1, fwd=1, store=1, dst=4094), ErrorCause.SPAD_RANGE),
    (encode(Opcode.CPASS, w=0, d=0, a=8, x=12, y=16, z=20, q=24, fpsum=40, bpsum=44, rows=4,
            cols=4, ldw=2, prop=1, fwd=1, load=1, spad=3), ErrorCause.BAD_SHAPE),
    (encode(Opcode.CPASS, w=0, d=0, a=8, x=12, y=16, z=20, q=24, fpsum=40, bpsum=44, rows=4,
            cols=4, ldw=2, prop=1, fwd=1, load=1, spad=4094), ErrorCause.SPAD_RANGE),
    (encode(Opcode.STA, spad=4090, mema=0, rows=4, cols=8, lds=8, ldm=4),
     ErrorCause.SPAD_RANGE),
    # a_rows: not with a_mema; lda at least k (not m); A's m rows of lda words in the SPAD.
    (encode(Opcode.GEMM, c=512, a=0, b=256, m=8, n=8, k=8, lda=8, ldb=8, ldc=8, mc=8,
            a_rows=1, a_mema=1), ErrorCause.ILLEGAL_FIELD),
    (encode(Opcode.GEMM, c=512, a=0, b=256, m=8, n=8, k=12, lda=8, ldb=8, ldc=8, mc=8,
            a_rows=1), ErrorCause.BAD_SHAPE),
    (encode(Opcode.GEMM, c=0, a=4040, b=256, m=8, n=8, k=4, lda=12, ldb=8, ldc=8, mc=8,
            a_rows=1), ErrorCause.SPAD_RANGE),
])
def test_errors_match_the_instruction_level_simulator(word, cause):
    program = [encode(Opcode.NOP), word, encode(Opcode.HALT)]
    results = []
    for device in (AmaranthDevice(TINY), IsaDevice(TINY)):
        driver = Driver(device)
        driver.load_program(program)
        with pytest.raises(CoreError) as error:
            driver.run(timeout_cycles=10_000)
        busy = device.read(driver.regs["BUSY_LO"])[0]
        results.append((error.value.cause, error.value.pc, busy))
        driver.load_program([encode(Opcode.HALT)])
        assert driver.run().instret == 1  # cleared: the core runs again
    assert results[0] == results[1] == (cause, 1, results[1][2])


def test_a_core_without_cpass_refuses_it_as_the_simulator_does(rng):
    """``cpass=false`` builds no fused pass: the same word that runs on ``tiny`` stops both
    models in its check with ``illegal_opcode``, at the same pc and cycle."""
    case = kc.cpass_case(TINY, 6, 5, rng)
    word = next(w for w in case.program if unpack(w)[0] == Opcode.CPASS)
    check(TINY, case)                                   # with the kernel it runs
    cfg = TINY.replace(name="tiny-no-cpass", cpass=False)
    results = []
    for device in (AmaranthDevice(cfg), IsaDevice(cfg)):
        driver = Driver(device)
        driver.load_program([encode(Opcode.NOP), word, encode(Opcode.HALT)])
        with pytest.raises(CoreError) as error:
            driver.run(timeout_cycles=10_000)
        results.append((error.value.cause, error.value.pc,
                        device.read(driver.regs["BUSY_LO"])[0]))
    assert results[0] == results[1] and results[0][:2] == (ErrorCause.ILLEGAL_OPCODE, 1)


def test_status_and_registers_read_back():
    device = AmaranthDevice(TINY)
    driver = Driver(device)
    assert device.read(driver.regs["ID"])[0] == 0xCA7E0001
    assert device.read(driver.regs["MEMA_WORDS"])[0] == TINY.mema_words
    driver.set_scalar(5, 0x1234)
    assert device.read(driver.regs["S5"])[0] == 0x1234
    words = [encode(Opcode.SETS, reg=3, value=77), encode(Opcode.HALT)]
    driver.load_program(words, base=10)
    assert driver.read_program(2, base=10) == words
    stats = driver.run(start_pc=10)
    assert stats.instret == 2 and device.read(driver.regs["S3"])[0] == 77
    assert device.read(driver.regs["STATUS"])[0] == 0b010


SMALL = preset("small")
NR8 = preset("small").replace(name="nr8", nr=8, mema_words=512, memb_words=128,
                              spad_words=8192)


@pytest.mark.parametrize("kernel", ["gemv", "gemvt", "gemm", "smxce", "smxce-rows",
                                    "smxce-rows-part"])
def test_kernel_nr4(kernel, rng):
    check(SMALL, CASES[kernel](SMALL, rng))


@pytest.mark.slow
@pytest.mark.parametrize("kernel", ["gemv", "gemm-acc"])
def test_kernel_nr8(kernel, rng):
    check(NR8, CASES[kernel](NR8, rng))
