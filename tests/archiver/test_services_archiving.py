"""The archive pipeline end to end on a local TPS tree and file targets.

What must hold in every case: a patient's originals leave the TPS only when every target holds a
verified copy, and whatever goes wrong, each plan is either still in the TPS or in a verified archive.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from archiver.models import PatientArchiveTask
from inventory.models import Archive, ArchiveCopy, FixityCheck, QuarantinedPatient, TpsPatient
from archiver.services import archiving
from archiver.tasks import start_archive_run
from archiver.services.claims import claim_patient
from inventory.services.tps_sync import sync_institution
from connectors.storage.local import FileStorage
from audit.models import AuditEvent
from curation.services.curate import run_curation
from demo_site import GroupSpec, PlanSpec, write_institution_file, write_patient
from tests.factories import InstitutionFactory, StorageTargetFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "Patients"
    ready = write_patient(root, "Institution_1", 7, mrn="000123", last_name="张", first_name="三",
                          plans=[PlanSpec(0, "LT BREAST", trials=["sMLC"]), PlanSpec(1, "RT BREAST")],
                          encoding="gb18030")
    other = write_patient(root, "Institution_1", 8, mrn="000124", last_name="Smith", first_name="Ann")
    broken = write_patient(root, "Institution_1", 9, mrn="000125",
                           plans=[PlanSpec(0, "A"), PlanSpec(1, "MISSING", directory=False)])
    clinical = write_patient(root, "Institution_2", 10, mrn="000126")
    write_institution_file(root, [GroupSpec(1, "ToArchive", [ready, other, broken]),
                                  GroupSpec(2, "Clinical", [clinical])])
    inst = InstitutionFactory(code="PUMCH", tps_url=f"file://{root}", quarantine_days=30)
    arrays = []
    for name in ("array-1", "array-2"):
        folder = tmp_path / name
        folder.mkdir()
        arrays.append(folder)
        StorageTargetFactory(institution=inst, name=name, url=f"file://{folder}")
    sync_institution(institution=inst, actor="test")
    run_curation(institution=inst, actor="test", refresh_tps=False)  # the archiver takes what curation allows
    return {"root": root, "inst": inst, "arrays": arrays, "ready": ready.tps_path, "other": other.tps_path,
            "broken": broken.tps_path, "clinical": clinical.tps_path}


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _run(inst):
    run = archiving.create_archive_run(institution=inst, actor="tester")
    return start_archive_run(run)


def test_archives_verifies_and_quarantines_only_archivable_patients(site):
    originals = {p: _tree(site["root"] / p) for p in (site["ready"], site["other"])}
    run = _run(site["inst"])
    results = {t.patient.tps_path: t for t in run.tasks.select_related("patient", "archive")}
    assert set(results) == {site["ready"], site["other"]}  # the unreadable patient is not a candidate
    assert {t.result for t in results.values()} == {"pass"}, [t.reason for t in results.values()]
    assert run.status == "done"

    archive = results[site["ready"]].archive
    assert archive.name == "ZHANG-SAN_000123_20190301100000.tar.gz"
    assert archive.status == Archive.Status.VERIFIED and archive.verified_at
    assert archive.copies.filter(status=ArchiveCopy.Status.VERIFIED).count() == 2
    assert FixityCheck.objects.filter(copy__archive=archive, outcome="pass").count() == 2
    assert sorted(p.name for p in archive.plans.all()) == ["LT BREAST", "RT BREAST"]

    for array in site["arrays"]:
        names = sorted(p.name for p in array.iterdir())
        assert f"{archive.name}.sha256" in names and f"{archive.name}.manifest.json" in names
        subprocess.run(["sha256sum", "-c", f"{archive.name}.sha256"], cwd=array, check=True, capture_output=True)
        manifest = json.loads((array / f"{archive.name}.manifest.json").read_text())
        assert manifest["patient"]["last_name"] == "张" and manifest["group"] == "ToArchive"
        out = array.parent / f"extract-{array.name}"
        out.mkdir()
        with tarfile.open(array / archive.name, "r:gz") as tar:
            tar.extractall(out, filter="data")
        assert _tree(out / site["ready"]) == originals[site["ready"]]

    # Originals moved to the quarantine, byte for byte, and Pinnacle's list no longer shows them.
    for path in (site["ready"], site["other"]):
        assert not (site["root"] / path).exists()
        row = QuarantinedPatient.objects.get(tps_path=path)
        assert row.moved_at and (row.purge_after - row.moved_at).days == 30
        assert _tree(site["root"] / row.quarantine_path) == originals[path]
    header = (site["root"] / "Institution").read_text()
    assert site["ready"] not in header and site["other"] not in header and site["broken"] in header
    assert (site["root"] / site["broken"]).is_dir() and (site["root"] / site["clinical"]).is_dir()
    assert not TpsPatient.objects.get(tps_path=site["ready"]).present
    events = set(AuditEvent.objects.values_list("event", flat=True))
    assert {"archive.run", "archive.pack", "archive.transfer", "archive.verify", "originals.remove"} <= events
    removed_mrns = sorted(m for e in AuditEvent.objects.filter(event="originals.remove") for m in e.mrns)
    assert removed_mrns == ["000123", "000124"]


@pytest.mark.parametrize("damage", ["flipped byte", "truncated"])
def test_a_corrupt_copy_is_an_error_and_nothing_is_removed(site, monkeypatch, damage):
    real_upload = FileStorage.upload

    def corrupting_upload(self, name, chunks, *, progress=None, lock=None):
        if name.endswith(".tar.gz") and "array-2" in self.url:
            data = bytearray(b"".join(chunks))
            if damage == "flipped byte":
                data[len(data) // 2] ^= 0x01
            else:
                del data[len(data) // 2:]  # the tail never arrived, yet the upload "succeeded"
            chunks = [bytes(data)]
        return real_upload(self, name, chunks, progress=progress, lock=lock)

    monkeypatch.setattr(FileStorage, "upload", corrupting_upload)
    run = _run(site["inst"])
    assert {t.result for t in run.tasks.all()} == {"error"}
    for task in run.tasks.select_related("patient"):
        assert "array-2" in task.reason and "originals kept" in task.reason
        assert (site["root"] / task.patient.tps_path / "Patient").is_file()
    assert ArchiveCopy.objects.filter(status=ArchiveCopy.Status.CORRUPT).count() == 2
    assert ArchiveCopy.objects.filter(status=ArchiveCopy.Status.VERIFIED).count() == 2  # array-1 is fine
    assert not QuarantinedPatient.objects.exists()


def test_a_patient_edited_during_archiving_is_kept_with_a_warning(site, monkeypatch):
    from archiver.services import transfer

    real_measure = transfer.measure_copy

    def measure_then_edit(*, copy, backend):
        found = real_measure(copy=copy, backend=backend)
        if copy.archive.mrn == "000124":
            patient_file = site["root"] / site["other"] / "Patient"
            patient_file.write_bytes(patient_file.read_bytes() + b"\n")
        return found

    monkeypatch.setattr(archiving.copies, "measure_copy", measure_then_edit)
    run = _run(site["inst"])
    task = run.tasks.get(patient__mrn="000124")
    assert task.result == "warning" and "changed during archiving" in task.reason
    assert (site["root"] / site["other"] / "Patient").is_file()
    assert run.tasks.get(patient__mrn="000123").result == "pass"


def test_a_folder_holding_a_link_is_never_archived_nor_removed(site, tmp_path):
    """Curation ran before the link appeared: the archiver reads the folder again and refuses it."""
    outside = tmp_path / "outside-scans"
    outside.mkdir()
    (outside / "CT.1.dcm").write_bytes(b"not in the archive")
    os.symlink(outside, site["root"] / site["other"] / "Scans")
    run = _run(site["inst"])
    task = run.tasks.get(patient__mrn="000124")
    assert task.result == "error" and "links or special files" in task.reason and "Scans" in task.reason
    assert (site["root"] / site["other"] / "Patient").is_file() and (outside / "CT.1.dcm").is_file()
    assert not QuarantinedPatient.objects.filter(tps_path=site["other"]).exists()
    assert run.tasks.get(patient__mrn="000123").result == "pass"


def test_a_link_that_appears_after_packing_keeps_the_originals(site, tmp_path, monkeypatch):
    outside = tmp_path / "outside-scans"
    outside.mkdir()
    real_measure = archiving.copies.measure_copy

    def measure_then_link(*, copy, backend):
        found = real_measure(copy=copy, backend=backend)
        link = site["root"] / site["other"] / "Scans"
        if copy.archive.mrn == "000124" and not link.is_symlink():
            os.symlink(outside, link)
        return found

    monkeypatch.setattr(archiving.copies, "measure_copy", measure_then_link)
    run = _run(site["inst"])
    task = run.tasks.get(patient__mrn="000124")
    assert task.result == "warning", task.reason
    assert "1 link(s) or special file(s) not in the archive (Scans)" in task.reason and "originals kept" in task.reason
    assert task.archive.status == Archive.Status.VERIFIED
    assert (site["root"] / site["other"] / "Patient").is_file()
    assert not QuarantinedPatient.objects.filter(tps_path=site["other"]).exists()


def test_a_crash_mid_upload_is_finished_by_the_rerun_without_duplicates(site, monkeypatch):
    real_upload = FileStorage.upload
    state = {"crashed": False}

    def crashing_upload(self, name, chunks, *, progress=None, lock=None):
        if not state["crashed"] and name.endswith(".tar.gz"):
            state["crashed"] = True

            def half():
                for i, chunk in enumerate(chunks):
                    if i == 1:
                        raise SystemExit("worker killed")  # not an Exception: nothing may catch it
                    yield chunk
            return real_upload(self, name, half(), progress=progress, lock=lock)
        return real_upload(self, name, chunks, progress=progress, lock=lock)

    monkeypatch.setattr(FileStorage, "upload", crashing_upload)
    monkeypatch.setattr("archiver.packing.stream_packer.CHUNK", 64)
    run = archiving.create_archive_run(institution=site["inst"], actor="tester")
    with pytest.raises(SystemExit):
        start_archive_run(run)
    # The crash left the patient in the TPS and its claim held: the lease must run out first.
    assert (site["root"] / site["ready"]).is_dir()
    TpsPatient.objects.update(claimed_by="", claim_expires=None)

    rerun = _run(site["inst"])
    assert {t.result for t in rerun.tasks.all()} == {"pass"}, [t.reason for t in rerun.tasks.all()]
    for array in site["arrays"]:
        archives = sorted(p.name for p in array.iterdir() if p.name.endswith(".tar.gz"))
        assert len(archives) == 2, archives  # one per patient: no _2 orphan from the crashed attempt
        assert not [p for p in array.iterdir() if p.name.startswith(".")]


def test_a_different_file_under_our_name_is_never_overwritten(site):
    inst = site["inst"]
    squatter = site["arrays"][0] / "ZHANG-SAN_000123_20190301100000.tar.gz"
    squatter.write_bytes(b"someone else's file")
    run = _run(inst)
    task = run.tasks.get(patient__mrn="000123")
    assert task.result == "error" and "already exists" in task.reason
    assert squatter.read_bytes() == b"someone else's file"
    assert (site["root"] / site["ready"]).is_dir()


def test_a_patient_claimed_by_another_worker_is_left_alone(site):
    patient = TpsPatient.objects.get(tps_path=site["ready"])
    assert claim_patient(patient_id=patient.pk, worker="other-host:1")
    run = _run(site["inst"])
    task = run.tasks.get(patient=patient)
    assert task.result == "error" and "another worker" in task.reason
    assert (site["root"] / site["ready"]).is_dir()


def test_no_enabled_target_keeps_the_originals(site):
    site["inst"].storage_targets.update(enabled=False)
    run = _run(site["inst"])
    assert {t.result for t in run.tasks.all()} == {"error"}
    assert (site["root"] / site["ready"]).is_dir()


def test_the_rerun_of_a_finished_run_changes_nothing(site):
    first = _run(site["inst"])
    assert {t.result for t in first.tasks.all()} == {"pass"}
    before = {a.name: a.checksum for a in Archive.objects.all()}
    sync_institution(institution=site["inst"], actor="test")
    second = _run(site["inst"])
    assert second.tasks.count() == 0
    assert {a.name: a.checksum for a in Archive.objects.all()} == before
    assert PatientArchiveTask.objects.filter(result="pass").count() == 2
    assert hashlib.sha256(b"").hexdigest() not in before.values()


@pytest.mark.django_db(transaction=True)
def test_patients_are_archived_concurrently_in_the_embedded_mode(site, settings):
    from core.dispatch import wait_for_embedded_work

    settings.PDAS_ARCHIVE_WORKERS = 2
    settings.PDAS_DISPATCH_INLINE = False  # the embedded pool's threads, as in production without a broker
    run = archiving.create_archive_run(institution=site["inst"], actor="tester")
    assert start_archive_run(run).status == "running"
    assert wait_for_embedded_work(120)
    run.refresh_from_db()
    assert {t.result for t in run.tasks.all()} == {"pass"}, [t.reason for t in run.tasks.all()]
    assert run.status == "done"
    workers = {e.actor for e in AuditEvent.objects.filter(event="archive.pack")}
    assert len(workers) == 2, workers  # each patient had its own claim holder
    for task in run.tasks.all():
        assert task.bytes_done >= task.bytes_total > 0


def test_upload_progress_counts_raw_bytes_across_all_targets(site, monkeypatch):
    seen = []
    real_measure = archiving.copies.measure_copy

    def measure_and_look(*, copy, backend):
        task = PatientArchiveTask.objects.get(archive=copy.archive)
        seen.append((copy.target.name, task.bytes_done, copy.archive.raw_bytes))
        return real_measure(copy=copy, backend=backend)

    monkeypatch.setattr(archiving.copies, "measure_copy", measure_and_look)
    run = _run(site["inst"])
    assert {t.result for t in run.tasks.all()} == {"pass"}
    by_archive = {}
    for _target, done, raw in seen:
        by_archive.setdefault(raw, []).append(done / raw)
    for fractions in by_archive.values():
        # After the first of two targets the bar is half full, after the second full (raw, not compressed, bytes).
        assert fractions[0] == pytest.approx(0.5, abs=0.02) and fractions[1] == pytest.approx(1.0, abs=0.02)
    for task in run.tasks.all():
        assert task.bytes_done == task.bytes_total


def test_runs_are_queued_to_the_institutions_worker_queue(site, settings, monkeypatch,
                                                          django_capture_on_commit_callbacks):
    from archiver.tasks import archive_patient_task

    settings.CELERY_BROKER_URL = "redis://127.0.0.1:9/0"  # never reached: apply_async is replaced
    sent = []
    monkeypatch.setattr(archive_patient_task, "apply_async", lambda args, queue=None: sent.append((args, queue)))
    site["inst"].worker_queue = "tps-pumch"
    site["inst"].save()
    run = archiving.create_archive_run(institution=site["inst"], actor="tester")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        start_archive_run(run)
    assert sent == []  # nothing is sent before the run's rows are committed
    for callback in callbacks:
        callback()
    assert sorted(a[0] for a, _ in sent) == sorted(run.tasks.values_list("pk", flat=True))
    assert {queue for _, queue in sent} == {"tps-pumch"}
    assert run.status == "running" and run.tasks.filter(result="pending").count() == len(sent)


def test_a_rerun_without_the_packed_file_reads_the_archive_back_from_a_target(site, monkeypatch):
    """Copies verified, then a crash before removal and the work folder lost: the rerun still reads
    the archive back against its manifest (from a target) before any original moves."""
    import shutil

    from archiver.services import quarantine as quarantine_module

    real_quarantine = archiving.patient.quarantine_patient
    monkeypatch.setattr(archiving.patient, "quarantine_patient",
                        lambda **kwargs: (_ for _ in ()).throw(SystemExit("killed before removal")))
    with pytest.raises(SystemExit):
        _run(site["inst"])
    assert (site["root"] / site["ready"]).is_dir()
    shutil.rmtree(site["root"] / ".pdas-work")
    TpsPatient.objects.update(claimed_by="", claim_expires=None)
    monkeypatch.setattr(archiving.patient, "quarantine_patient", real_quarantine)
    read_back = []
    real_inspect = archiving.copies.inspect_stored_copy
    monkeypatch.setattr(archiving.copies, "inspect_stored_copy", lambda archive: read_back.append(archive.name)
                        or real_inspect(archive))
    archiving.recover_interrupted_work(institution=site["inst"], actor="test")
    rerun = _run(site["inst"])
    assert {t.result for t in rerun.tasks.all()} == {"pass"}, [t.reason for t in rerun.tasks.all()]
    assert read_back, "the archive was read back from a target"
    assert not (site["root"] / site["ready"]).exists()
    assert quarantine_module.QuarantinedPatient.objects.filter(moved_at__isnull=False).count() == 2


def test_a_packing_failure_ends_the_patient_with_its_originals_kept_and_the_run_closes(site, monkeypatch):
    from archiver.packing.stream_packer import PackError

    def failing_pack(ctx, *args):
        raise PackError(f"{ctx.patient.tps_path}/Patient changed while it was being packed", changed=True)

    monkeypatch.setattr(archiving.patient, "packed_archive", failing_pack)
    run = _run(site["inst"])
    assert {t.result for t in run.tasks.all()} == {"error"}
    assert all("changed while it was being packed; originals kept" in t.reason for t in run.tasks.all())
    assert run.status == "done" and (site["root"] / site["ready"]).is_dir()


def test_a_packed_archive_holding_more_than_its_manifest_is_never_uploaded(site, tmp_path):
    """A site's own pack script with the word-splitting bug pulls a host file into the archive: the
    packed file is read against its manifest before upload, so no byte reaches an array."""
    host_file = tmp_path / "host-secret"
    host_file.write_bytes(b"not the patient's\n")
    planted = site["root"] / site["ready"] / "y "
    for part in host_file.parent.relative_to("/").parts:
        planted /= part
    planted.mkdir(parents=True)
    (planted / host_file.name).write_bytes(b"planted\n")
    (site["root"] / site["ready"] / "y").write_bytes(b"")
    sync_institution(institution=site["inst"], actor="test")
    run_curation(institution=site["inst"], actor="test", refresh_tps=False)
    original = Path(__file__).resolve().parents[2] / "deploy" / "pinnacle" / "pdas-pack.sh"
    buggy = tmp_path / "site-pack.sh"
    buggy.write_text(original.read_text().replace(
        'tar_from_list "$stage" "$list" "$patient";',
        'tar -cf - -C "$stage" Institution PDAS-MANIFEST.json -C "$root" $(cat "$list");'))
    assert buggy.read_text() != original.read_text()
    site["inst"].pack_script = str(buggy)
    site["inst"].save()
    before = _tree(site["root"] / site["ready"])

    run = _run(site["inst"])
    task = run.tasks.get(patient__tps_path=site["ready"])
    assert task.result == "error"
    assert "is in the archive but not in the manifest" in task.reason and "not uploaded" in task.reason
    assert task.archive.status == Archive.Status.FAILED
    for array in site["arrays"]:
        assert not any(p.name.startswith("ZHANG-SAN") for p in array.rglob("*")), "the archive reached an array"
    assert _tree(site["root"] / site["ready"]) == before
    assert any("000123" in e.mrns for e in AuditEvent.objects.filter(event="archive.verify", outcome="failed"))


def test_a_retry_says_when_it_comes_and_which_attempt_it_is(site, monkeypatch, settings):
    import re

    from archiver.services.archiving.task_rows import TransientArchiveError
    from connectors.storage import StorageError

    settings.PDAS_RETRY_BACKOFF_SECONDS = 60

    def array_down(*args, **kwargs):
        raise StorageError("array-1: connection refused", retryable=True)

    monkeypatch.setattr(archiving.patient, "copy_to_target", array_down)
    run = archiving.create_archive_run(institution=site["inst"], actor="tester")
    task = run.tasks.get(patient__mrn="000124")
    with pytest.raises(TransientArchiveError):
        archiving.archive_patient(task_id=task.pk)
    task.refresh_from_db()
    assert task.result == "pending"
    assert re.fullmatch(r"retrying at \d\d:\d\d:\d\d \(attempt 2 of 7\): array-1: connection refused", task.reason)


def _database_failure():
    """What the database says when it fails under the work: SQLite's lock timeout, PostgreSQL shutting down."""
    from django.db import OperationalError, connection

    if connection.vendor == "sqlite":
        return OperationalError("database is locked")
    import psycopg

    error = OperationalError("terminating connection due to administrator command")
    error.__cause__ = psycopg.errors.AdminShutdown("terminating connection due to administrator command")
    return error


@pytest.mark.parametrize("failure", ["database", "connector"])
def test_a_failure_a_later_try_may_not_meet_retries_the_patient_which_resumes(site, monkeypatch, failure):
    """The database failing under the work (a restart, a lock timeout), or any connector error that says a
    retry may help: the patient is tried again (core.dispatch) and resumes what the first try finished."""
    from connectors.errors import ConnectorError

    real_verify = archiving.patient.verify_archive
    failed = []

    def verify_failing_once(*args):
        if not failed:
            failed.append(1)
            raise _database_failure() if failure == "database" else ConnectorError("busy", retryable=True)
        return real_verify(*args)

    monkeypatch.setattr(archiving.patient, "verify_archive", verify_failing_once)
    run = _run(site["inst"])
    tasks = {t.patient.tps_path: t for t in run.tasks.select_related("patient")}
    assert {t.result for t in tasks.values()} == {"pass"}, [t.reason for t in tasks.values()]
    assert sorted(t.attempts for t in tasks.values()) == [1, 2]
    assert Archive.objects.count() == 2, "the retry reused the first try's archive"
    assert run.status == "done" and not any(p.name.startswith(".") for a in site["arrays"] for p in a.iterdir())


@pytest.mark.parametrize("error", ["a bug", "a query that can never work"])
def test_an_unexpected_error_ends_the_patient_at_once_with_its_originals_kept_and_the_run_closes(site, monkeypatch,
                                                                                                 error):
    """Not retried (a retry would meet it again): × with the error named, so the run closes by itself."""
    from django.db import OperationalError

    def failing(*args):
        raise KeyError("manifest") if error == "a bug" else OperationalError("no such column: x.y")

    monkeypatch.setattr(archiving.patient, "verify_archive", failing)
    run = _run(site["inst"])
    named = "KeyError: 'manifest'" if error == "a bug" else "OperationalError: no such column: x.y"
    for task in run.tasks.all():
        assert task.result == "error" and task.attempts == 1, task.reason
        assert task.reason == f"stopped by an unexpected error at the verifying step: {named}; originals kept"
    assert run.status == "done" and (site["root"] / site["ready"]).is_dir() and (site["root"] / site["other"]).is_dir()
    assert not TpsPatient.objects.exclude(claimed_by="").exists(), "the claims were released"
