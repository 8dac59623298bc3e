"""Packing a patient into one archive file (SPEC section 4)."""
