"""A real Celery worker SIGKILLed mid-upload and mid-removal: no plan is ever lost, a rerun finishes.

The worker is parked at the step by ``archiver.faults.checkpoint`` (PDAS_FAULT_PAUSE in its
environment only), then killed with SIGKILL as a crash would.
"""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from archiver.models import ArchiveRun, PatientArchiveTask
from inventory.models import Archive, ArchiveCopy, QuarantinedPatient
from archiver.services import archiving
from archiver.tasks import start_archive_run
from demo_site import GroupSpec, ImageSetSpec, PlanSpec, write_institution_file, write_patient
from tests.factories import InstitutionFactory, StorageTargetFactory

pytestmark = pytest.mark.servers
PASSWORD_ENV = "PDAS_TEST_ARRAY_PASSWORD"


@pytest.fixture
def site(tmp_path, sshd, monkeypatch):
    root = tmp_path / "Patients"
    # Incompressible image data (3 MiB), so each archive spans several upload chunks.
    records = [write_patient(root, patient_id=n, mrn=f"00{n}", plans=[PlanSpec(0, f"PLAN {n}"), PlanSpec(1, "BOOST")],
                             image_sets=[ImageSetSpec(0, x_dim=512, y_dim=512, z_dim=6, noise_only=True)], seed=n)
               for n in (1, 2)]
    write_institution_file(root, [GroupSpec(1, "ToArchive", records)], form="bare")
    paths = [r.tps_path for r in records]
    array = sshd.root / f"crash-array-{os.getpid()}-{time.monotonic_ns()}"
    array.mkdir()
    sshd.give_to_user(array)
    monkeypatch.setenv(PASSWORD_ENV, sshd.password)
    inst = InstitutionFactory(code="CRASH", tps_url=f"file://{root}")
    StorageTargetFactory(institution=inst, name="array", url=sshd.url(array, scheme="sftp"),
                         password_env=PASSWORD_ENV, known_hosts=sshd.known_hosts)
    plans = {p: _plan_files(root / p) for p in paths}
    return {"root": root, "inst": inst, "array": array, "paths": paths, "plans": plans, "sshd": sshd}


def _plan_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _wait(predicate, timeout: float, what: str, worker=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}" + (f"\n{worker.log_tail()}" if worker else ""))


def _assert_nothing_lost(site) -> None:
    """Every patient is whole in the TPS, or in a verified archive whose copy on the array has its digest."""
    for path in site["paths"]:
        folder = site["root"] / path
        if folder.is_dir() and _plan_files(folder) == site["plans"][path]:
            continue
        archive = Archive.objects.get(tps_path=path, status=Archive.Status.VERIFIED)
        stored = site["array"] / archive.name
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == archive.checksum
        assert archive.copies.filter(status=ArchiveCopy.Status.VERIFIED).exists()
        manifest_files = {f["path"].removeprefix(path + "/"): f["sha256"] for f in archive.manifest["files"]}
        assert manifest_files == {name: hashlib.sha256(data).hexdigest()
                                  for name, data in site["plans"][path].items()}


def _worker_env(site, **extra) -> dict[str, str]:
    return {PASSWORD_ENV: site["sshd"].password, "PDAS_CLAIM_LEASE_SECONDS": "2", **extra}


def _run_to_the_end(site, worker) -> ArchiveRun:
    run = archiving.prepare_archive_run(institution=site["inst"], actor="test")
    start_archive_run(run)
    _wait(lambda: not run.tasks.filter(result=PatientArchiveTask.Result.PENDING).exists(), 120, "the rerun", worker)
    return archiving.finish_run(run=run)


def park_and_kill(celery_worker, site, tmp_path, step: str):
    """Start a run with the worker told to stop at ``step`` (archiver/faults.py), wait until it is parked
    there, and SIGKILL it; returns the run."""
    marker = tmp_path / "parked"
    celery_worker.restart(extra_env=_worker_env(site, PDAS_FAULT_PAUSE=step, PDAS_FAULT_MARKER=str(marker)))
    first = archiving.prepare_archive_run(institution=site["inst"], actor="test")
    start_archive_run(first)
    _wait(marker.exists, 120, f"the worker to reach {step}", celery_worker)
    celery_worker.kill()
    return first


@pytest.mark.parametrize("step", ["upload", "removal"])
def test_sigkill_then_rerun_loses_nothing_and_finishes(celery_worker, site, tmp_path, step):
    first = park_and_kill(celery_worker, site, tmp_path, step)

    _assert_nothing_lost(site)
    if step == "removal":  # the folder sits in the quarantine, its move not yet recorded
        assert QuarantinedPatient.objects.filter(moved_at__isnull=True).count() == 1

    celery_worker.restart(extra_env=_worker_env(site))
    time.sleep(2.5)  # the dead worker's claim runs out
    rerun = _run_to_the_end(site, celery_worker)

    _assert_nothing_lost(site)
    first.refresh_from_db()
    assert first.finished_at is not None, "the crashed run is closed by the recovery"
    decided = {t.patient.tps_path: t.result for t in PatientArchiveTask.objects.select_related("patient")
               if t.result == "pass"}
    assert set(decided) == set(site["paths"]), [(t.patient.tps_path, t.result, t.reason)
                                                for t in PatientArchiveTask.objects.all()]
    for path in site["paths"]:
        assert not (site["root"] / path).exists()
        assert QuarantinedPatient.objects.get(tps_path=path).moved_at is not None
    names = sorted(p.name for p in site["array"].iterdir())
    archives = [n for n in names if n.endswith(".tar.gz")]
    assert len(archives) == 2 and not [n for n in names if n.startswith(".")], names
    work = site["root"] / ".pdas-work"  # the packed files go once the originals moved, whoever recorded it
    assert not work.exists() or not list(work.iterdir()), list(work.iterdir())
    assert rerun.status == "done"
