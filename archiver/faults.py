"""Fault injection for crash tests: park a worker at a named step so a test can SIGKILL it there.

Inert unless ``PDAS_FAULT_PAUSE`` names the step (set only in the environment of a test's worker
process): the worker then writes its pid to ``PDAS_FAULT_MARKER`` and sleeps. Steps, in the order a
patient passes them: ``packed`` (packed on the TPS host, its digest not yet recorded), ``upload`` (an
archive half sent to a target), ``measure`` (stored, not yet measured on the target),
``before_removal`` (every copy verified, the originals not yet moved), ``removal`` (the patient folder
moved to the quarantine, the move not yet recorded).
"""
from __future__ import annotations

import os
import time
from pathlib import Path


def checkpoint(step: str) -> None:
    if os.environ.get("PDAS_FAULT_PAUSE") != step:
        return
    marker = os.environ.get("PDAS_FAULT_MARKER")
    if marker:
        Path(marker).write_text(str(os.getpid()))
    time.sleep(3600)
