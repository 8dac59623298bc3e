"""Archive runs: one task per patient the latest curation allows.

A run is created here; ``archiver.tasks.start_archive_run`` hands its patients to workers (or to the
embedded pool) through ``core.dispatch``, and each patient's task closes the run after the last one.
"""
from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from archiver.models import ArchiveRun, PatientArchiveTask
from archiver.services.archiving.task_rows import Result, finish_task
from audit.actors import actor_name
from audit.events import Event
from audit.models import AuditEvent
from audit.services import record_event
from connectors.tps.base import TpsError
from sites.models import Institution


def archivable_patients(*, institution: Institution):
    """Patients of the pending group that the archiver takes: those the latest curation allows."""
    from archiver.selectors import archive_candidates

    return archive_candidates(institution=institution)


def request_archive_run(*, institution: Institution, actor) -> ArchiveRun:
    """The ``queued`` row of a run asked for from a page, still without patients: a task prepares it
    (``prepare_archive_run(run=...)``), so the page returns at once."""
    return ArchiveRun.objects.create(institution=institution, requested_by=actor_name(actor))


def prepare_archive_run(*, institution: Institution, actor, run: ArchiveRun | None = None) -> ArchiveRun:
    """Finish what crashed runs left, re-read the TPS (incrementally) and curate the pending group,
    then fill the run (``run``, or a new one) with what curation allows now.

    Raises ``TpsError`` when the TPS cannot be read; a requested ``run`` is then stored ``failed``."""
    from curation.services.curate import run_curation

    try:
        recover_interrupted_work(institution=institution, actor=actor)
        run_curation(institution=institution, actor=actor, refresh_tps=True)  # syncs first
    except TpsError as exc:
        if run is not None:
            fail_run(run=run, error=f"the TPS cannot be read: {exc}")
        raise
    return create_archive_run(institution=institution, actor=actor, run=run)


def recover_interrupted_work(*, institution: Institution, actor) -> int:
    """After a crash: finish removals that moved a folder but never recorded it, and close the tasks
    of dead workers (started, no live claim) so their runs can finish. Returns the tasks closed."""
    from archiver.services.quarantine import recover_interrupted_moves
    from sites.connections import open_institution_tps

    with open_institution_tps(institution) as tps:
        recover_interrupted_moves(institution=institution, source=tps, actor=actor)
    closed = close_dead_tasks(
        PatientArchiveTask.objects.filter(run__institution=institution, started_at__isnull=False),
        reason="interrupted: the worker stopped mid-way; a later run resumes the patient")
    for run in {task.run for task in closed}:
        finish_run(run=run)
    return len(closed)


def close_dead_tasks(tasks, *, reason: str) -> list[PatientArchiveTask]:
    """Close the pending ones of ``tasks`` that no worker holds (no live claim on the patient): a task
    whose originals were moved, and the move recorded, passes; any other ends × with ``reason``, its
    originals kept. A task whose patient is claimed is never touched. Returns the tasks closed."""
    dead = (tasks.filter(result=Result.PENDING)
            .exclude(patient__claimed_by__gt="", patient__claim_expires__gt=timezone.now()))
    closed = []
    for task in dead.select_related("run", "patient", "archive"):
        removed = task.archive_id and not task.patient.present and task.archive.quarantined.filter(
            moved_at__isnull=False).exists()
        if removed:
            finish_task(task, Result.PASS, "the worker stopped during removal; recovery finished it")
        else:
            finish_task(task, Result.ERROR, reason)
        closed.append(task)
    return closed


@transaction.atomic
def create_archive_run(*, institution: Institution, actor, patient_ids: list[int] | None = None,
                       run: ArchiveRun | None = None) -> ArchiveRun:
    """A run (``run``, a requested one, or a new one) with one task per archivable patient
    (``patient_ids`` narrows it)."""
    if run is None:
        run = ArchiveRun.objects.create(institution=institution, requested_by=actor_name(actor))
    patients = archivable_patients(institution=institution)
    if patient_ids is not None:
        patients = patients.filter(pk__in=patient_ids)
    PatientArchiveTask.objects.bulk_create(
        [PatientArchiveTask(run=run, patient=p, bytes_total=p.total_bytes) for p in patients]
    )
    record_event(actor=actor, event=Event.ARCHIVE_RUN, institution=institution.code, obj=run,
                 mrns=[p.mrn for p in patients], detail={"patients": len(patients)})
    return run


def start_run(*, run: ArchiveRun) -> None:
    run.mark_running()


def finish_run(*, run: ArchiveRun) -> ArchiveRun:
    """Close the run once no task is still pending; idempotent."""
    if run.tasks.filter(result=Result.PENDING).exists():
        return run
    ArchiveRun.objects.filter(pk=run.pk, finished_at__isnull=True).update(
        finished_at=timezone.now(), status=ArchiveRun.Status.DONE
    )
    run.refresh_from_db()
    return run


def fail_run(*, run: ArchiveRun, error: str) -> ArchiveRun:
    """A run that could not be prepared: ``failed`` with ``error``, audited with it."""
    with transaction.atomic():
        closed = ArchiveRun.objects.unfinished().filter(pk=run.pk).update(
            status=ArchiveRun.Status.FAILED, error=error[:2000], finished_at=timezone.now())
        if closed:
            record_event(actor=run.requested_by, event=Event.ARCHIVE_RUN, institution=run.institution.code, obj=run,
                         outcome=AuditEvent.Outcome.FAILED, detail={"error": error[:1000]})
    run.refresh_from_db()
    return run


def give_up_patient(*, task_id: int, reason: str) -> PatientArchiveTask:
    """A patient's retries ran out: its task ends × with ``reason`` (originals kept), and the run
    closes if that was its last pending patient."""
    task = PatientArchiveTask.objects.select_related("run").get(pk=task_id)
    if task.result == Result.PENDING:
        finish_task(task, Result.ERROR, reason)
    finish_run(run=task.run)
    return task
