"""Archiving a pending group: pack each patient, copy to every target, verify, then quarantine.

The order of a patient's steps is the promise: originals move to the quarantine only after every
enabled target holds a copy whose digest was measured *there* and matched, the archive itself was
read back against its manifest, and the patient's files are unchanged since packing. Any doubt
keeps the originals. Every step can be repeated: a rerun after a crash reuses what was finished
(the Archive row, its packed file, copies already verified) and completes the rest.

The package follows a patient's way: ``runs`` (a run over the pending group, and closing it),
``patient`` (one patient: claim -> pack -> copy -> verify -> quarantine), ``pack`` (the Archive row
and its packed file), ``copies`` (upload, digest on the target, read-back against the manifest) and
``task_rows`` (the patient task's progress and result).
"""
from archiver.services.archiving.patient import archive_patient
from archiver.services.archiving.runs import (
    archivable_patients,
    close_dead_tasks,
    create_archive_run,
    fail_run,
    finish_run,
    give_up_patient,
    prepare_archive_run,
    recover_interrupted_work,
    request_archive_run,
    start_run,
)
from archiver.services.archiving.task_rows import WORK_DIR, TransientArchiveError, worker_name

__all__ = ["WORK_DIR", "TransientArchiveError", "archivable_patients", "archive_patient", "close_dead_tasks",
           "create_archive_run", "fail_run", "finish_run", "give_up_patient", "prepare_archive_run",
           "recover_interrupted_work", "request_archive_run", "start_run", "worker_name"]
