"""Amaranth RTL of the CATERPILLAR accelerator (``caterpillar.rtl``).

Import light: submodules are imported explicitly (``caterpillar.rtl.config`` needs no Amaranth).
"""
