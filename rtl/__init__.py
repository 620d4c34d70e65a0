"""Amaranth RTL of the CATERPILLAR accelerator (``caterpillar.rtl``).

Submodules are imported explicitly. The interface every block shares (config, ISA, geometry,
register map) is the hardware contract, :mod:`caterpillar.contract`, which needs no Amaranth.
"""
