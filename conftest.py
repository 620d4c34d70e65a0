"""Repository-wide pytest setup: the pinned simulators and Yosys, for every test process."""

from caterpillar.sim.toolchain import prepare_environment

prepare_environment()
