"""Celery tasks of the archiving workflow: thin shells that take ids and call the services.

They are started through ``core.dispatch`` only (``start_archive_run`` below for a run's patients).
Tasks are late-acknowledged and rejected back to the queue when their worker dies (settings), so a
killed worker's patient is picked up again; the per-patient claim keeps a redelivery from running
beside the original, and the service resumes whatever the dead attempt finished.
"""
from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from archiver.models import ArchiveRun, PatientArchiveTask
from archiver.services import archiving
from connectors.tps.base import TpsError
from audit.actors import SCHEDULER
from core.dispatch import BackgroundTask, dispatch
from sites.models import Institution


log = logging.getLogger("archiver.tasks")


class ArchivePatientTask(BackgroundTask):
    def embedded_workers(self) -> int:
        return settings.PDAS_ARCHIVE_WORKERS

    def give_up(self, exc: Exception, task_id: int) -> str:
        task = archiving.give_up_patient(
            task_id=task_id, reason=f"gave up after {self.max_retries + 1} attempts: {exc}; originals kept")
        curate_after(task.run.institution, f"after archive run {task.run_id}", when=task.run.finished)
        return task.result


@shared_task(base=ArchivePatientTask)
def archive_patient_task(task_id: int) -> str:
    """Archive one patient of a run (retried while the error is retryable), then close the run if
    this was its last pending patient."""
    task = archiving.archive_patient(task_id=task_id, worker=f"{archiving.worker_name()}:{task_id}")
    run = archiving.finish_run(run=task.run)
    curate_after(run.institution, f"after archive run {run.pk}", when=run.finished)
    return task.result


def curate_after(institution: Institution, reason: str, *, when: bool) -> None:
    """A curation of the institution once the work that changed its pending group is over (``when``), so the
    curation page never lists as ready what was archived meanwhile. ``reason`` names the work (it is the
    curation's "requested by"); one curation per piece of work, however many tasks see it end."""
    from curation.models import CurationRun
    from curation.services.curate import create_curation
    from curation.tasks import curate_task

    if not when or CurationRun.objects.filter(institution=institution, requested_by=reason).exists():
        return
    dispatch(curate_task, create_curation(institution=institution, actor=reason).pk)


@shared_task(base=BackgroundTask)
def prepare_archive_run_task(run_id: int) -> str:
    """Prepare a run a page asked for (recovery, TPS re-read, curation, its patients), then start it.
    A run already prepared or finished (a redelivered message) is left alone."""
    run = ArchiveRun.objects.select_related("institution").get(pk=run_id)
    if run.finished or run.tasks.exists():
        return "skipped"
    try:
        archiving.prepare_archive_run(institution=run.institution, actor=run.requested_by, run=run)
    except TpsError:
        return ArchiveRun.Status.FAILED  # the run holds the one-line reason its page shows
    return start_archive_run(run).status


def start_archive_run(run: ArchiveRun) -> ArchiveRun:
    """Mark ``run`` started and dispatch one task per pending patient; returns the run as it is then
    (finished already when it has no patient, or when the work ran inline)."""
    archiving.start_run(run=run)
    # An institution may send its patients to a worker running on its TPS host, where packing reads
    # local disks (Institution.worker_queue); otherwise Celery's default queue.
    queue = run.institution.worker_queue
    task_ids = list(run.tasks.filter(result=PatientArchiveTask.Result.PENDING).values_list("pk", flat=True))
    for task_id in task_ids:
        dispatch(archive_patient_task, task_id, queue=queue)
    if not task_ids:
        archiving.finish_run(run=run)
    run.refresh_from_db()
    return run


@shared_task(base=BackgroundTask)
def purge_quarantine_task() -> int:
    """Beat entry (nightly): every institution's quarantined originals past their time, deleted only while
    their archive is safely stored (re-checked right before). One unreachable TPS does not stop the others."""
    from archiver.services.purge import purge_quarantine
    from sites.connections import open_institution_tps

    purged = 0
    for institution in Institution.objects.all():
        try:
            with open_institution_tps(institution) as source:
                purged += len(purge_quarantine(institution=institution, source=source, actor=SCHEDULER).purged)
        except TpsError as exc:
            log.warning("quarantine purge of %s skipped: %s", institution.code, exc)
    return purged


@shared_task(base=BackgroundTask)
def check_archives_task() -> dict[str, int]:
    """Beat entry (nightly): every institution's copies checked where they are stored (the presence of
    each, the full check of tonight's share of the rolling cycle, within ``PDAS_FIXITY_NIGHTLY_SECONDS``)
    and the missing or corrupt ones repaired from a verified copy. One institution's failure does not
    stop the others."""
    from archiver.services.fixity import check_archives

    totals: dict[str, int] = {}
    for institution in Institution.objects.all():
        try:
            report = check_archives(institution=institution, actor=SCHEDULER, repair=True,
                                    time_budget=settings.PDAS_FIXITY_NIGHTLY_SECONDS)
        except Exception:  # noqa: BLE001 - logged; the next institution is still checked
            log.exception("archive check of %s failed", institution.code)
            continue
        for key, value in report.summary().items():
            totals[key] = totals.get(key, 0) + value
        if report.renditions is not None:  # the renditions' copies, checked and repaired in the same run
            for key, value in report.renditions.summary().items():
                totals[f"renditions_{key}"] = totals.get(f"renditions_{key}", 0) + value
    return totals


@shared_task(base=BackgroundTask)
def restore_drills_task() -> dict[str, int]:
    """Beat entry (monthly): a restore drill on every enabled target of every institution; one institution's
    failure does not stop the others. Returns the drills by outcome."""
    from archiver.services.drills import run_drills

    outcomes: dict[str, int] = {}
    for institution in Institution.objects.all():
        try:
            drills = run_drills(institution=institution, actor=SCHEDULER)
        except Exception:  # noqa: BLE001 - logged; the next institution still gets its drills
            log.exception("restore drills of %s failed", institution.code)
            continue
        for drill in drills:
            outcomes[drill.outcome] = outcomes.get(drill.outcome, 0) + 1
    return outcomes


@shared_task(base=BackgroundTask)
def restore_archive_task(archive_id: int, record_id: int) -> str:
    """Carry out a restore prepared by ``create_restore``; a redelivered message finds it decided and stops."""
    from archiver.models import RestoreRecord
    from archiver.services.restore import execute_restore

    if not RestoreRecord.objects.filter(pk=record_id, archive_id=archive_id).exists():
        return "unknown"
    record = execute_restore(record_id=record_id)
    # A patient restored into the TPS group the pending group curates shows there at once.
    curate_after(record.institution, f"after restore {record.pk}",
                 when=record.status == RestoreRecord.Status.DONE and record.destination.startswith("tps:"))
    return record.status


@shared_task(base=BackgroundTask)
def render_dicom_task(archive_id: int) -> str:
    """Make one archive's DICOM-RT rendition and store it on the targets (docs/rendition.md). Its own pool and
    rows: never a claim on a patient, so archiving goes on beside it."""
    from archiver.services.rendition import make_rendition

    return make_rendition(archive_id=archive_id).status
