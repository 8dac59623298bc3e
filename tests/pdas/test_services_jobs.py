"""The stale-job sweep: a job whose worker died is closed as failed and audited; a live one is left alone;
an archive run's pending patients are closed with it, except a patient a worker still holds."""
from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from archiver.models import ArchiveRun, PatientArchiveTask
from audit.models import AuditEvent
from core.jobs import INTERRUPTED, JobStatus
from curation.models import CurationRun
from lossdetect.models import LossScan
from pdas.schedules import DEFAULT_SCHEDULES
from pdas.services.jobs import JOB_MODELS, sweep_stale_jobs
from tests.factories import InstitutionFactory, LossScanFactory
from tests.reports.factories import ArchiveRunFactory, PatientArchiveTaskFactory, RestoreRecordFactory

pytestmark = pytest.mark.django_db

NOW = timezone.now()
LONG_AGO = NOW - dt.timedelta(hours=3)  # past the default PDAS_STALE_JOB_MINUTES (120)
JUST_NOW = NOW - dt.timedelta(minutes=5)


def _curation(*, status=JobStatus.RUNNING, created_at=LONG_AGO, started_at=LONG_AGO, heartbeat_at=None):
    return CurationRun.objects.create(institution=InstitutionFactory(), requested_by="physicist", status=status,
                                      created_at=created_at, started_at=started_at, heartbeat_at=heartbeat_at)


def test_a_killed_curation_is_closed_as_failed_and_audited():
    killed = _curation()
    assert [job.pk for job in sweep_stale_jobs(now=NOW)] == [killed.pk]
    killed.refresh_from_db()
    assert (killed.status, killed.error) == ("failed", INTERRUPTED) and killed.finished_at == NOW
    event = AuditEvent.objects.get(event="curation.run")
    assert (event.actor, event.outcome, event.object_id) == ("scheduler", "failed", str(killed.pk))
    assert event.detail["error"] == INTERRUPTED
    assert sweep_stale_jobs(now=NOW) == []  # once


@pytest.mark.parametrize("row", [
    {"heartbeat_at": JUST_NOW},  # a worker spoke up lately
    {"started_at": JUST_NOW},
    {"status": JobStatus.QUEUED, "created_at": JUST_NOW, "started_at": None},  # waiting for a free worker
    {"status": JobStatus.DONE},  # finished jobs are never touched
    {"status": JobStatus.FAILED},
])
def test_a_live_or_finished_job_is_left_alone(row):
    job = _curation(**row)
    before = (job.status, job.error, job.finished_at)
    assert sweep_stale_jobs(now=NOW) == []
    job.refresh_from_db()
    assert (job.status, job.error, job.finished_at) == before
    assert not AuditEvent.objects.exists()


def test_a_scan_queued_for_ever_and_a_restore_that_stopped_are_closed():
    scan = LossScanFactory(status=LossScan.Status.QUEUED, created_at=LONG_AGO)
    restore = RestoreRecordFactory(status="running", created_at=LONG_AGO, started_at=LONG_AGO,
                                   heartbeat_at=LONG_AGO, reason="downloading")
    closed = sweep_stale_jobs(now=NOW)
    assert {(type(job).__name__, job.pk) for job in closed} == {("LossScan", scan.pk), ("RestoreRecord", restore.pk)}
    restore.refresh_from_db()
    assert (restore.status, restore.error, restore.reason) == ("failed", INTERRUPTED, INTERRUPTED)
    restore_event = AuditEvent.objects.get(event="restore")
    assert restore_event.mrns == [restore.archive.mrn] and restore_event.outcome == "failed"
    assert AuditEvent.objects.get(event="lossscan.run").outcome == "failed"


def _dead_run() -> ArchiveRun:
    return ArchiveRunFactory(status=ArchiveRun.Status.RUNNING, created_at=LONG_AGO, started_at=LONG_AGO,
                             finished_at=None)


def _task(run, *, started=False, claimed_until=None, **fields) -> PatientArchiveTask:
    task = PatientArchiveTaskFactory(run=run, result="pending", step="queued", bytes_done=0,
                                     started_at=LONG_AGO if started else None, **fields)
    if claimed_until is not None:
        task.patient.claimed_by, task.patient.claim_expires = "host:1:7", claimed_until
        task.patient.save()
    return task


def test_a_dead_runs_pending_patients_are_closed_with_it_and_their_originals_kept():
    run = _dead_run()
    never_started = _task(run)
    interrupted = _task(run, started=True, claimed_until=NOW - dt.timedelta(minutes=1))  # its claim ran out
    done = _task(run, started=True)
    PatientArchiveTask.objects.filter(pk=done.pk).update(result="pass", finished_at=LONG_AGO)

    assert [job.pk for job in sweep_stale_jobs(now=NOW)] == [run.pk]
    run.refresh_from_db()
    assert (run.status, run.error) == ("failed", INTERRUPTED)
    for task in (never_started, interrupted):
        task.refresh_from_db()
        assert task.result == "error" and task.reason == f"{INTERRUPTED}; originals kept"
    assert PatientArchiveTask.objects.get(pk=done.pk).result == "pass"
    event = AuditEvent.objects.get(event="archive.run")
    assert event.mrns == sorted([never_started.patient.mrn, interrupted.patient.mrn])
    assert event.detail["patients_closed"] == 2


def test_a_run_whose_patient_is_still_claimed_is_alive():
    run = _dead_run()
    claimed = _task(run, started=True, claimed_until=NOW + dt.timedelta(minutes=10))
    waiting = _task(run)
    assert sweep_stale_jobs(now=NOW) == []
    run.refresh_from_db()
    assert run.status == "running"
    assert {t.result for t in PatientArchiveTask.objects.filter(pk__in=[claimed.pk, waiting.pk])} == {"pending"}


def test_a_run_whose_patients_move_is_alive():
    run = _dead_run()
    _task(run)
    PatientArchiveTaskFactory(run=run, finished_at=JUST_NOW)  # a patient finished a few minutes ago
    assert sweep_stale_jobs(now=NOW) == []


def test_the_sweep_knows_every_job_model_and_runs_on_beat():
    from django.apps import apps

    from core.jobs import JobRow
    from pdas.celery import app

    assert set(JOB_MODELS) == {model for model in apps.get_models() if issubclass(model, JobRow)}
    [entry] = [entry for entry in DEFAULT_SCHEDULES if entry.task == "pdas.tasks.sweep_stale_jobs_task"]
    assert entry.minute == "*/15"
    app.loader.import_default_modules()
    assert entry.task in app.tasks
