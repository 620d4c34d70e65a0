# amaranth: UnusedElaboratable=no
"""The Verilated ring of cores: every collective on random segments and lengths, compared bit
for bit and cycle for cycle with the ring simulator and the golden collectives, and under
random link stalls."""

import numpy as np
import pytest

from caterpillar.contract.config import preset
from caterpillar.sim.cases.collectives import (
    KINDS,
    CollectiveCase,
    crossing_traffic_expected,
    expected_outputs,
    random_case,
    run_collective,
    run_crossing_traffic,
)
from caterpillar.software.isasim.device import RingIsaDevice
from tests.helpers import requires_verilator

#: Whole cores or rings in a simulator, or Verilator builds: `make test`, not test-fast.
pytestmark = pytest.mark.integration

CASES_PER_KIND = {2: 6, 4: 6, 8: 3}


def ring_device(cores):
    from caterpillar.sim.backends.verilator import VerilatorDevice

    return VerilatorDevice(preset("tiny").replace(cores=cores), ring=True)


def check_golden(case, inputs, outputs, cfg):
    for position, ((start, stop, want), got) in enumerate(
            zip(expected_outputs(case, inputs, cfg), outputs)):
        np.testing.assert_array_equal(got[start:stop], want,
                                      err_msg=f"{case}, position {position}")


@requires_verilator
@pytest.mark.slow
@pytest.mark.parametrize("cores", sorted(CASES_PER_KIND))
def test_collectives_match_simulator_and_golden(cores, seed):
    rng = np.random.default_rng(seed)
    cfg = preset("tiny").replace(cores=cores)
    checked, cycles = 0, {}
    with ring_device(cores) as device:
        cases = [CollectiveCase(kind, tuple(range(cores)), n)
                 for kind in KINDS for n in ((cfg.nr, cfg.nr * cores) if "piped" in kind
                                             else (1, cfg.nr * cores + 1))]
        cases += [random_case(rng, kind, cores, cfg, seed + i)
                  for kind in KINDS for i in range(CASES_PER_KIND[cores])]
        for case in cases:
            inputs, rtl_out, rtl = run_collective(device, case)
            _, sim_out, sim = run_collective(RingIsaDevice(cfg), case)
            for got, want in zip(rtl_out, sim_out):
                np.testing.assert_array_equal(got, want, err_msg=str(case))
            check_golden(case, inputs, rtl_out, cfg)
            assert (rtl.cycles, rtl.ring_cycles, rtl.instret, rtl.events) == \
                (sim.cycles, sim.ring_cycles, sim.instret, sim.events), case
            checked += 1
            cycles[case] = rtl.makespan
        # Under random link stalls the data stay the same; only the timing changes.
        stalled = []
        for case in cases[::3]:
            inputs, out, run = run_collective(device, case, stall=96)
            check_golden(case, inputs, out, cfg)
            if len(case.segment) > 1:
                stalled.append(run.makespan - cycles[case])
        assert min(stalled) >= 0 and sum(stalled) > 0, stalled
        if cores >= 4:
            inputs, outputs, rtl = run_crossing_traffic(device)
            _, _, sim = run_crossing_traffic(RingIsaDevice(cfg))
            for got, want in zip(outputs, crossing_traffic_expected(inputs, cfg.nr)):
                np.testing.assert_array_equal(got, want)
            assert rtl.cycles == sim.cycles and rtl.events == sim.events
    print(f"{checked} collectives on {cores} cores: RTL == ring simulator == golden")
