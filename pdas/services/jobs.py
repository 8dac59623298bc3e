"""The stale-job sweep: job rows whose worker died are closed as failed (beat, ``pdas/schedules.py``).

A job row (``core.jobs``) still ``queued`` or ``running`` with no sign of life for
``PDAS_STALE_JOB_MINUTES`` belongs to a worker that was killed, to a web process restarted in the
embedded mode, or to a message no worker took; left alone it would show "running" for ever. The
sweep closes each such row as ``failed`` with the reason ``core.jobs.INTERRUPTED``, in one
transaction with its audit row (the job's own event kind, outcome ``failed``, actor ``scheduler``).

Before an archive run is closed, its pending patients are (``archiving.close_dead_tasks``): each
ends × with the originals kept, except one whose removal was recorded (✓); a patient still
claimed by a worker is never touched, and keeps its run alive. A restore's page line says it was
interrupted. The sweep touches the database only: the next archive run's recovery finishes what a
dead worker left on the TPS.
"""
from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from archiver.models import ArchiveRun, RestoreRecord
from archiver.services.archiving import close_dead_tasks
from audit.models import AuditEvent
from audit.services import record_event
from core.jobs import INTERRUPTED, JobRow
from curation.models import CurationRun
from lossdetect.models import LossScan
from reports.models import ReconciliationImport

JOB_MODELS: tuple[type[JobRow], ...] = (ArchiveRun, RestoreRecord, CurationRun, LossScan, ReconciliationImport)


def sweep_stale_jobs(*, now: dt.datetime | None = None) -> list[JobRow]:
    """Close every stale job (see the module docstring); returns the rows closed."""
    now = now or timezone.now()
    closed = []
    for model in JOB_MODELS:
        for job in model.objects.stale(now).select_related("institution"):
            if _close(job, now):
                closed.append(job)
    return closed


def _close(job: JobRow, now: dt.datetime) -> bool:
    with transaction.atomic():
        last_sign_of_life = job.last_sign_of_life
        if not job.close_interrupted(reason=INTERRUPTED, now=now):
            return False  # it finished, or a worker spoke up, since the list was read
        mrns: list[str] = []
        detail = {"error": INTERRUPTED, "last_sign_of_life": last_sign_of_life.isoformat()}
        if isinstance(job, ArchiveRun):
            tasks = close_dead_tasks(job.tasks.all(), reason=f"{INTERRUPTED}; originals kept")
            mrns = [task.patient.mrn for task in tasks]
            detail["patients_closed"] = len(tasks)
        elif isinstance(job, RestoreRecord):
            RestoreRecord.objects.filter(pk=job.pk).update(reason=INTERRUPTED)
            mrns = [job.archive.mrn]
        record_event(actor=None, event=job.audit_event, institution=job.institution.code, mrns=mrns, obj=job,
                     outcome=AuditEvent.Outcome.FAILED, detail=detail)
    return True
