# Thin wrappers: every target calls a Python entry point (the `caterpillar` CLI or pytest).
# Override: SIM=verilator|icarus  WAVES=1  CONFIG=small  JOBS=2  PY=python3
#           FPGA_TOP=board|core|mac-array  FPGA_CONFIG=ulx3s  (make bitstream)
PY     ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
SIM    ?= verilator
WAVES  ?= 0
CONFIG ?= small
FPGA_TOP    ?= board
FPGA_CONFIG ?= ulx3s
JOBS   ?= 2
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STAMP   = $(VENV)/.installed

.PHONY: setup setup-fpga test test-fast sim demo verilog synth synth-estimate bitstream bench-fpga bench-kernels \
	bench-training bench-scaling bench-convergence \
	docs lint lint-verilog clean

setup: $(STAMP)  ## apt iverilog/ccache if missing, the venv, pinned requirements (idempotent)

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	@command -v iverilog >/dev/null && command -v ccache >/dev/null || { \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install \
	  -y -qq --no-install-recommends iverilog ccache g++ make perl >/dev/null; }
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -r requirements-nodeps.txt
	$(BIN)/pip install -q --no-deps -e .
	@touch $(STAMP)

setup-fpga: setup  ## the optional yowasp Yosys/nextpnr FPGA tools
	$(BIN)/pip install -q -r requirements-fpga.txt

test: setup  ## everything but the heavy runs: unit, integration, cocotb, million-case FP checks
	$(BIN)/pytest -q -n $(JOBS) --dist loadgroup -m "not heavy"

test-fast: setup  ## block, software and golden tests (no whole core, no external simulator)
	$(BIN)/pytest -q -n $(JOBS) -m "not slow and not cocotb and not integration"

sim: setup  ## cocotb simulations on SIM (verilator|icarus); WAVES=1 writes build/waves/*
	SIM=$(SIM) WAVES=$(WAVES) $(BIN)/pytest -q -m cocotb tests/cocotb

demo: setup  ## train 64-32-10 on digits on the Verilated core, every bit checked against golden
	$(BIN)/caterpillar train --check-golden --json build/demo.json --plot build/demo.png

verilog: setup  ## the core of CONFIG as one Verilog file, build/verilog/core.v (ports: docs/verilog.md)
	$(BIN)/caterpillar verilog --config $(CONFIG) -o build/verilog

synth: setup-fpga  ## yosys synth_ecp5 of the whole core of CONFIG: cells, memory mapping, wall time
	$(BIN)/caterpillar synth --config $(CONFIG) --json build/synth-$(CONFIG).json

synth-estimate: setup-fpga  ## yosys synth_ecp5 cell counts of the fp32 and bf16 MAC
	$(BIN)/caterpillar synth --estimate

bitstream: setup-fpga  ## offline ULX3S-85F bitstream of FPGA_TOP of FPGA_CONFIG: Fmax, resources, size
	$(BIN)/caterpillar fpga build --board ulx3s --top $(FPGA_TOP) --config $(FPGA_CONFIG) \
	  --json build/bitstream-$(FPGA_TOP)-$(FPGA_CONFIG).json

bench-fpga: setup-fpga  ## place and route a 16-MAC fp32 array on the ULX3S-85F: Fmax and resources
	$(BIN)/python -m caterpillar.bench.fpga

bench-training: setup  ## whole training steps (784-256-256-10): utilization per phase; epoch times
	$(BIN)/caterpillar bench training --json build/bench-training.json

bench-scaling: setup  ## the ring: training on 1, 2, 4, 8 cores (784-512-512-10), collective bandwidth
	$(BIN)/caterpillar bench scaling --json build/bench-scaling.json

bench-convergence: setup  ## test accuracy per epoch of SGD, MBGD, CP, MBCP, DFA on digits (Fig. 5)
	$(BIN)/caterpillar bench convergence --json build/convergence.json --plot build/convergence.png

paper: setup  ## the paper's cases on a local Ray: Table 2, utilization, GFLOPS/mm^2, area (build/paper/)
	$(BIN)/caterpillar paper --out build/paper

bench-kernels: setup  ## every kernel and shape on the Verilated core (nr = 2, 4, 8): utilization
	$(BIN)/caterpillar bench kernels --json build/bench-kernels.json

docs: setup  ## regenerate docs/isa.md, registers.md, verilog.md, host-link.md from the code
	$(BIN)/caterpillar docs

lint: setup  ## ruff: pyflakes, pycodestyle, import order, 100-column lines
	$(BIN)/ruff check .

lint-verilog: setup  ## Verilator -Wall (named waivers) on the core of every preset, a ring, the board top
	$(BIN)/pytest -q tests/sim/flow/test_lint.py

clean:
	rm -rf build sim_build .pytest_cache
