"""Celery tasks for archiving: thin shells that take ids and call the services.

Patient tasks are late-acknowledged and rejected back to the queue when their worker dies, so a
killed worker's patient is picked up again; the per-patient claim keeps a redelivery from running
beside the original, and the service resumes whatever the dead attempt finished.
"""
from __future__ import annotations

from celery import shared_task

from archiver.models import ArchiveRun
from sites.models import Institution
from archiver.services import archiving


@shared_task(
    bind=True, acks_late=True, reject_on_worker_lost=True,
    autoretry_for=(archiving.TransientArchiveError,), retry_backoff=30, retry_backoff_max=900, max_retries=6,
)
def archive_patient_task(self, task_id: int) -> str:
    return archiving.archive_patient(task_id=task_id).result


@shared_task(acks_late=True)
def finish_run_task(run_id: int) -> str:
    return archiving.finish_run(run=ArchiveRun.objects.get(pk=run_id)).status


@shared_task(acks_late=True)
def purge_quarantine_task() -> int:
    from archiver.services.quarantine import purge_quarantine
    from sites.connections import open_institution_tps

    purged = 0
    for institution in Institution.objects.all():
        with open_institution_tps(institution) as source:
            purged += purge_quarantine(institution=institution, source=source, actor="scheduler")
    return purged


@shared_task(acks_late=True)
def restore_archive_task(archive_id: int, record_id: int) -> str:
    """Carry out a restore prepared by ``start_restore``; a redelivered message finds it decided and stops."""
    from archiver.models import RestoreRecord
    from archiver.services.restore import run_restore

    if not RestoreRecord.objects.filter(pk=record_id, archive_id=archive_id).exists():
        return "unknown"
    return run_restore(record_id=record_id).status
