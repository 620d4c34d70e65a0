"""NumPy-only golden model: the bit-exact specification of what the hardware computes."""
