"""Simulation harnesses and backends: Amaranth simulator, Verilator, cocotb runners."""
