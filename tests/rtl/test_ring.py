# amaranth: UnusedElaboratable=no
"""The ring top, its engines and links in Amaranth's simulator: collectives on two cores equal
the golden collectives and the ring simulator's cycles; link stalls delay but do not change
the data; the ring registers."""

import numpy as np
import pytest

from caterpillar.contract.config import ConfigError, preset
from caterpillar.contract.geometry import spad_region_bit
from caterpillar.contract.isa import Counter, Layout, Opcode, VecOp, encode
from caterpillar.contract.registers import RING_ID
from caterpillar.sim.backends.amaranth import AmaranthDevice
from caterpillar.sim.cases.collectives import CollectiveCase, expected_outputs, run_collective
from caterpillar.software.compiler import collectives as sc
from caterpillar.software.driver.ring import RingDriver
from caterpillar.software.isasim.device import RingIsaDevice

#: Whole cores or rings in a simulator, or Verilator builds: `make test`, not test-fast.
pytestmark = pytest.mark.integration

CFG = preset("tiny").replace(cores=2)


@pytest.fixture(scope="module")
def device():
    dev = AmaranthDevice(CFG, ring=True)
    yield dev
    dev.close()


def test_ring_registers(device):
    driver = RingDriver(device)
    assert device.read(driver.regs["RING_ID"])[0] == RING_ID
    assert device.read(driver.regs["CORES"])[0] == 2
    assert [device.read(driver.regs[f"SRC{k}"])[0] for k in range(2)] == [1, 0]


@pytest.mark.parametrize("kind, n", [("all_reduce", 7), ("chain_reduce", 5),
                                     ("broadcast", 6), ("barrier", 1)])
def test_collective_on_two_cores(device, kind, n):
    case = CollectiveCase(kind, (1, 0), n, seed=3)
    inputs, outputs, run = run_collective(device, case)
    _, sim_outputs, sim = run_collective(RingIsaDevice(CFG), case)
    for (lo, hi, want), got, model in zip(expected_outputs(case, inputs, CFG), outputs,
                                          sim_outputs):
        np.testing.assert_array_equal(got[lo:hi], want)
        np.testing.assert_array_equal(got, model)
    assert run.cycles == sim.cycles and run.ring_cycles == sim.ring_cycles
    assert run.events == sim.events and any(e["link_words"] for e in run.events)


def test_stalled_links_only_delay(device):
    case = CollectiveCase("all_gather", (0, 1), 9, seed=4)
    _, _, calm = run_collective(device, case)
    inputs, outputs, stalled = run_collective(device, case, stall=160)
    for (lo, hi, want), got in zip(expected_outputs(case, inputs, CFG), outputs):
        np.testing.assert_array_equal(got[lo:hi], want)
    assert stalled.makespan > calm.makespan
    assert stalled.events == calm.events  # stalls move no more words


def _two_core_run(device, cfg, blocks: int, rows: int, middle, seed: int):
    """Core 0 sends ``blocks`` blocks of ``rows`` rows to core 1, one RING each; core 1
    receives them with one RING each, then runs ``middle(vop, load)`` (VOPs on MemB and the LDV
    of the received words, in some order) and reads its RING counter into the SPAD. Returns
    (RingRun, core 1's received words and counter)."""
    n = rows * cfg.nr
    total = blocks * n
    driver = RingDriver(device)
    driver.set_sources([1, 0])
    driver.set_stalls(0)
    vop = encode(Opcode.VOP, fn=VecOp.ADD, layout=Layout.DIAG, z=8, x=0, y=4, len=n, alpha=0)
    load = encode(Opcode.LDV, spad=0, memb=64, len=total, layout=Layout.DIAG)
    halt = encode(Opcode.HALT)
    driver.cores[0].load_program([*(sc.ring(src=i * n, slen=n) for i in range(blocks)), halt])
    driver.cores[1].load_program([*(sc.ring(dst=i * n, rlen=n, keep=True)
                                    for i in range(blocks)), *middle(vop, load),
                                  encode(Opcode.RDCNT, counter=Counter.RING.value, spad=total),
                                  halt])
    rng = np.random.default_rng(seed)
    driver.cores[0].write_spad(0, rng.integers(0, 1 << cfg.word_width, total, dtype=np.uint64))
    driver.cores[1].write_spad(0, np.zeros(total + 2, dtype=np.uint64))
    run = driver.run()
    return run, driver.cores[1].read_spad(0, total + 2)


def _posted_ring_run(device, order: str):
    """One RING of 4 rows; core 1 runs three VOPs on MemB while its RING is posted (``order``
    ``local``: before the LDV of the received rows), after a SYNC (``sync``), or after that LDV
    (``load``)."""
    return _two_core_run(device, CFG, 1, 4, lambda vop, load: {
        "local": [vop, vop, vop, load], "sync": [encode(Opcode.SYNC), vop, vop, vop, load],
        "load": [load, vop, vop, vop]}[order], seed=5)


def test_a_posted_ring_runs_behind_local_work(device):
    """A RING retires at once: the VOPs after it run while the engine receives, the LDV (or a
    SYNC) waits for the engine. RTL equals the ring simulator (cycles, RING counter, data), the
    posted order saves the VOPs' cycles that fit inside the transfer, and a SYNC right after
    the RING costs its own two cycles and saves nothing."""
    runs = {}
    for order in ("local", "sync", "load"):
        run, words = _posted_ring_run(device, order)
        sim_run, sim_words = _posted_ring_run(RingIsaDevice(CFG), order)
        np.testing.assert_array_equal(words, sim_words)
        assert run.cycles == sim_run.cycles and run.ring_cycles == sim_run.ring_cycles
        assert words[CFG.nr * 4] == run.ring_cycles[1]      # RDCNT saw the whole transfer
        runs[order] = run
    assert runs["local"].ring_cycles == runs["sync"].ring_cycles == runs["load"].ring_cycles
    assert runs["local"].cycles[1] < runs["load"].cycles[1]
    assert runs["sync"].cycles[1] == runs["load"].cycles[1] + 2


def _queued_rings_run(device, cfg):
    """Three RINGs of 6 rows, then eight VOPs on MemB, then the LDV of the blocks."""
    return _two_core_run(device, cfg, 3, 6, lambda vop, load: [*[vop] * 8, load], seed=6)


@pytest.mark.parametrize("depth", [0, 1, 16])
def test_queued_rings_match_the_ring_simulator(device, depth):
    """The engine's command queue (``ring_commands``): RTL equals the ring simulator in every
    core's cycles, the RING counter and the data, without a queue (each RING waits for the one
    before it), with one entry (the third RING waits for the first to finish) and with the
    default 16; the queue shortens the receiver's run and moves the same words."""
    cfg = CFG.replace(ring_commands=depth)
    dev = device if cfg == CFG else AmaranthDevice(cfg, ring=True)
    try:
        run, words = _queued_rings_run(dev, cfg)
    finally:
        if dev is not device:
            dev.close()
    sim_run, sim_words = _queued_rings_run(RingIsaDevice(cfg), cfg)
    np.testing.assert_array_equal(words, sim_words)
    assert run.cycles == sim_run.cycles and run.ring_cycles == sim_run.ring_cycles
    assert run.events == sim_run.events
    assert words[3 * cfg.nr * 6] == run.ring_cycles[1]
    unqueued = _queued_rings_run(RingIsaDevice(CFG.replace(ring_commands=0)), CFG)[0]
    assert (run.cycles[1] < unqueued.cycles[1]) == (depth > 0)


def _region_run(device, cfg, local_region: int):
    """Core 0 sends 12 rows from SPAD region 0; core 1 adds them into its rows at the start of
    region 1 (``add``: the engine reads and writes there), while both cores move a vector
    of 10 rows into MemB and back (LDV, STV, LDV) in region ``local_region``; then core 1
    loads the sums and reads its RING counter. Returns (RingRun, core 1's SPAD words)."""
    nr, rows, local_rows = cfg.nr, 12, 10
    n, m = rows * nr, local_rows * nr
    region1 = (1 << spad_region_bit(cfg)) * nr       # first word of region 1
    local = region1 + 4 * n if local_region else 4 * n
    work = [encode(Opcode.LDV, spad=local, memb=0, len=m, layout=Layout.DIAG),
            encode(Opcode.STV, spad=local + m, memb=0, len=m, layout=Layout.DIAG),
            encode(Opcode.LDV, spad=local + m, memb=32, len=m, layout=Layout.DIAG)]
    halt = encode(Opcode.HALT)
    driver = RingDriver(device)
    driver.set_sources([1, 0])
    driver.set_stalls(0)
    driver.cores[0].load_program([sc.ring(src=0, slen=n), *work, halt])
    driver.cores[1].load_program([
        sc.ring(dst=region1, rlen=n, keep=True, add=True), *work,
        encode(Opcode.LDV, spad=region1, memb=64, len=n, layout=Layout.DIAG),
        encode(Opcode.RDCNT, counter=Counter.RING.value, spad=region1 + n), halt])
    rng = np.random.default_rng(7)
    for core in driver.cores:
        for base in (0, region1):
            core.write_spad(base, np.zeros(4 * n + 2 * m, dtype=np.uint64))
        core.write_spad(0, rng.integers(0, 1 << cfg.word_width, n, dtype=np.uint64))
        core.write_spad(region1, rng.integers(0, 1 << cfg.word_width, n + 2, dtype=np.uint64))
        core.write_spad(local, rng.integers(0, 1 << cfg.word_width, m, dtype=np.uint64))
    run = driver.run()
    return run, [np.concatenate([core.read_spad(0, 4 * n + 2 * m),
                                 core.read_spad(region1, 4 * n + 2 * m)])
                 for core in driver.cores]


@pytest.mark.parametrize("local_region", [0, 1])
def test_the_array_and_the_engine_share_the_spad_by_region(device, local_region):
    """A RING adding into SPAD region 1 (and sending from region 0) runs while the cores'
    LDV and STV use region 0; in region 1 they wait for it. RTL equals the ring simulator
    (cycles, RING counter, events, every SPAD word); the sums are right; the run in the other
    region is shorter by the waits it no longer makes."""
    run, words = _region_run(device, CFG, local_region)
    sim_run, sim_words = _region_run(RingIsaDevice(CFG), CFG, local_region)
    for got, model in zip(words, sim_words, strict=True):
        np.testing.assert_array_equal(got, model)
    assert run.cycles == sim_run.cycles and run.ring_cycles == sim_run.ring_cycles
    assert run.events == sim_run.events
    other = _region_run(RingIsaDevice(CFG), CFG, 1 - local_region)[0]
    assert (run.cycles[1] < other.cycles[1]) == (local_region == 0), (run.cycles, other.cycles)


def test_unsupported_rings_are_config_errors():
    from caterpillar.rtl.ring import check_ring_config

    with pytest.raises(ConfigError, match="link_words"):
        check_ring_config(CFG.replace(link_words=1))
    with pytest.raises(ConfigError, match="at most 62 cores"):
        check_ring_config(CFG.replace(cores=63))
