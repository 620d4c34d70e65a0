"""Repository-wide pytest setup: the pinned simulators and Yosys, for every test process."""

from caterpillar.sim.flow.toolchain import prepare_environment

prepare_environment()
