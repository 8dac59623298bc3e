"""Curation services: one module per concern (rules, classify, duplicates, delivered, curate,
acknowledge, notify)."""
