"""Archive runs: one task per patient the latest curation allows, worked in-process or queued."""
from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from archiver.models import ArchiveRun, PatientArchiveTask
from archiver.services.archiving.patient import archive_patient
from archiver.services.archiving.task_rows import Result, TransientArchiveError, finish_task, worker_name
from audit.actors import actor_name
from audit.events import Event
from audit.services import record_event
from sites.models import Institution


def archivable_patients(*, institution: Institution):
    """Patients of the pending group that the archiver takes: those the latest curation allows."""
    from archiver.selectors import archive_candidates

    return archive_candidates(institution=institution)


def prepare_archive_run(*, institution: Institution, actor) -> ArchiveRun:
    """Finish what crashed runs left, re-read the TPS (incrementally) and curate the pending group,
    then create the run over what curation allows now."""
    from curation.services.curate import curate_institution

    recover_interrupted_work(institution=institution, actor=actor)
    curate_institution(institution=institution, actor=actor, refresh_tps=True)  # syncs first
    return create_archive_run(institution=institution, actor=actor)


def recover_interrupted_work(*, institution: Institution, actor) -> int:
    """After a crash: finish removals that moved a folder but never recorded it, and close the tasks
    of dead workers (started, no live claim) so their runs can finish. Returns the tasks closed."""
    from archiver.services.quarantine import recover_interrupted_moves
    from sites.connections import open_institution_tps

    with open_institution_tps(institution) as tps:
        recover_interrupted_moves(institution=institution, source=tps, actor=actor)
    now = timezone.now()
    dead = (PatientArchiveTask.objects.filter(run__institution=institution, result=Result.PENDING,
                                              started_at__isnull=False)
            .exclude(patient__claimed_by__gt="", patient__claim_expires__gt=now))
    closed = 0
    for task in dead.select_related("run", "patient", "archive"):
        removed = task.archive_id and not task.patient.present and task.archive.quarantined.filter(
            moved_at__isnull=False).exists()
        if removed:
            finish_task(task, Result.PASS, "the worker stopped during removal; recovery finished it")
        else:
            finish_task(task, Result.ERROR, "interrupted: the worker stopped mid-way; a later run resumes the patient")
        finish_run(run=task.run)
        closed += 1
    return closed


@transaction.atomic
def create_archive_run(*, institution: Institution, actor, patient_ids: list[int] | None = None) -> ArchiveRun:
    """A run with one task per archivable patient (``patient_ids`` narrows it)."""
    run = ArchiveRun.objects.create(institution=institution, started_by=actor_name(actor))
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
    ArchiveRun.objects.filter(pk=run.pk, started_at__isnull=True).update(
        started_at=timezone.now(), status=ArchiveRun.Status.RUNNING
    )


def finish_run(*, run: ArchiveRun) -> ArchiveRun:
    """Close the run once no task is still pending; idempotent."""
    if run.tasks.filter(result=Result.PENDING).exists():
        return run
    ArchiveRun.objects.filter(pk=run.pk, finished_at__isnull=True).update(
        finished_at=timezone.now(), status=ArchiveRun.Status.DONE
    )
    run.refresh_from_db()
    return run


def enqueue_run(*, run: ArchiveRun) -> None:
    """Queue one Celery task per patient, after the run's rows are committed."""
    from archiver.tasks import archive_patient_task

    start_run(run=run)
    task_ids = list(run.tasks.filter(result=Result.PENDING).values_list("pk", flat=True))
    # An institution may send its patients to a worker running on its TPS host, where packing reads
    # local disks (Institution.worker_queue); otherwise Celery's default queue.
    queue = run.institution.worker_queue or None
    transaction.on_commit(lambda: [archive_patient_task.apply_async(args=[task_id], queue=queue)
                                   for task_id in task_ids])


def run_in_process(*, run: ArchiveRun, attempts: int = 3, backoff_seconds: float | None = None,
                   workers: int | None = None) -> ArchiveRun:
    """The embedded mode: archive the run's patients in this process, ``workers`` at a time
    (default ``PDAS_ARCHIVE_WORKERS``: one per core, so one patient compresses while another uploads)."""
    from concurrent.futures import ThreadPoolExecutor

    from django.conf import settings
    from django.db import connection

    if backoff_seconds is None:
        backoff_seconds = settings.PDAS_RETRY_BACKOFF_SECONDS
    workers = workers or settings.PDAS_ARCHIVE_WORKERS
    start_run(run=run)
    task_ids = list(run.tasks.filter(result=Result.PENDING).values_list("pk", flat=True))
    if workers <= 1:
        for task_id in task_ids:
            _archive_with_retries(task_id, attempts, backoff_seconds)
        return finish_run(run=run)

    def in_thread(task_id: int) -> None:
        try:
            _archive_with_retries(task_id, attempts, backoff_seconds)
        finally:
            connection.close()  # each thread has its own database connection

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pdas-archive") as pool:
        for future in [pool.submit(in_thread, task_id) for task_id in task_ids]:
            future.result()
    return finish_run(run=run)


def _archive_with_retries(task_id: int, attempts: int, backoff_seconds: float) -> None:
    import time

    for attempt in range(1, attempts + 1):
        try:
            archive_patient(task_id=task_id, worker=f"{worker_name()}:{task_id}")
            return
        except TransientArchiveError as exc:
            if attempt == attempts:
                task = PatientArchiveTask.objects.get(pk=task_id)
                finish_task(task, Result.ERROR, f"gave up after {attempts} attempts: {exc}; originals kept")
            else:
                time.sleep(backoff_seconds * attempt)
