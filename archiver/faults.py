"""Fault injection for crash tests: park a worker at a named step so a test can SIGKILL it there.

Inert unless ``PDAS_FAULT_PAUSE`` names the step (set only in the environment of a test's worker
process): the worker then writes its pid to ``PDAS_FAULT_MARKER`` and sleeps (an hour, or
``PDAS_FAULT_PAUSE_SECONDS``, after which it goes on). ``PDAS_FAULT_RAISE`` naming the step raises
``InjectedFault`` there instead: an unexpected error at that point (a bug, a lost database connection),
to test what the code's own error handling leaves behind.

Steps, in the order a patient passes them: ``packed`` (packed on the TPS host, its digest not yet
recorded), ``upload`` (an archive half sent to a target), ``measure`` (stored, not yet measured on the
target), ``before_removal`` (every copy verified, the originals not yet moved), ``removal`` (the patient
folder moved to the quarantine, the move not yet recorded).

The quarantine purge (``archiver/services/purge.py``): ``purge_rechecked`` (every verified copy checked
again and the archive still safely stored, nothing deleted yet), ``purge_deleting`` (the quarantined
folder renamed to its ``.purging-`` name, its deletion under way, the purge not yet recorded).

A restore (``archiver/services/restore/runner.py``): ``restore_staging`` (a file extracted into the
staging folder, the others not yet), ``restore_moved`` (the patient renamed from the staging folder into
place, not yet in the ``Institution`` file, marked or recorded).

``rebuild_index``: ``rebuild_indexed`` (an archive's rows committed, its copy not yet verified, the next
archives not yet read).

The archive check's sweep (``archiver/services/fixity.py``): ``fixity_checked`` (one copy's full check
recorded, the next copies not yet checked).

Repairing a copy (``archiver/services/fixity.py``): ``repair_removed`` (the bad copy and its sidecars
removed from the target, nothing sent yet), ``repair_upload`` (the new copy half sent, under its
temporary name), ``repair_stored`` (the new copy and its sidecars stored, the copy ``uploaded``, not yet
measured).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterable, Iterator


class InjectedFault(RuntimeError):
    """Raised at the step ``PDAS_FAULT_RAISE`` names."""


def checkpoint(step: str) -> None:
    if os.environ.get("PDAS_FAULT_RAISE") == step:
        raise InjectedFault(f"fault injected at {step}")
    if os.environ.get("PDAS_FAULT_PAUSE") != step:
        return
    marker = os.environ.get("PDAS_FAULT_MARKER")
    if marker:
        Path(marker).write_text(str(os.getpid()))
    time.sleep(float(os.environ.get("PDAS_FAULT_PAUSE_SECONDS") or 3600))


def checkpoint_after_first(chunks: Iterable[bytes], step: str) -> Iterator[bytes]:
    """``chunks`` as they are, with ``checkpoint(step)`` once the first one was taken: a transfer half done."""
    for index, chunk in enumerate(chunks):
        yield chunk
        if index == 0:
            checkpoint(step)
