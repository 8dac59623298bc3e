"""Packing a patient into one archive file (docs/contracts.md §4)."""
