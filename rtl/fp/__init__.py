"""Pipelined IEEE 754 floating-point units, generic in exponent and fraction width."""
