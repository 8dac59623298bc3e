"""Writes of the reports app: reconciliation imports."""
