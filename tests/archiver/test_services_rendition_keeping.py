"""Keeping the renditions whole: re-hashed by the archive check, repaired from another target or made again
from the archive, and rebuilt by rebuild_index (docs/rendition.md, "Keeping it whole").

Real targets: local folders, and an SFTP array on the test sshd."""
from __future__ import annotations

import hashlib

import pytest

from archiver.models import RestoreRecord
from archiver.services.archive_index import rebuild_index
from archiver.services.fixity import check_archives
from archiver.services.rendition import make_rendition, request_rendition
from archiver.tasks import check_archives_task
from audit.models import AuditEvent
from inventory.models import Archive, ArchiveCopy, DicomRendition, QuarantinedPatient, RenditionCopy
from tests.archiver.test_services_fixity import _archive_site, _copy_files
from tests.archiver.test_services_rendition import archive_on_file_and_sftp
from tests.commands import run_command

pytestmark = pytest.mark.django_db


def _made(tmp_path, settings, **kwargs):
    settings.DATA_DIR = tmp_path / "data"
    inst, folders = _archive_site(tmp_path, patients=(1,), **kwargs)
    archive = Archive.objects.get()
    request_rendition(archive=archive, actor="t")
    rendition = make_rendition(archive_id=archive.pk)
    assert rendition.status == "made", rendition.reason
    return inst, folders, archive, rendition


def _lose_the_database() -> None:
    RestoreRecord.objects.all().delete()
    QuarantinedPatient.objects.all().delete()
    Archive.objects.all().delete()


def _flip(path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _state(rendition, target: str) -> str:
    return RenditionCopy.objects.get(rendition=rendition, target__name=target).status


def test_a_flipped_byte_is_found_by_the_archive_check_and_repaired_from_the_other_target(tmp_path, settings):
    inst, folders, archive, rendition = _made(tmp_path, settings)
    archive_files = {name: _copy_files(folder, archive) for name, folder in folders.items()}
    _flip(folders["array-1"] / rendition.name)

    report = check_archives(institution=inst, actor="t", check_all=True)
    assert _state(rendition, "array-1") == "corrupt" and _state(rendition, "array-2") == "stored"
    assert not report.all_verified, "a rendition copy not whole is a finding"
    assert report.as_dict()["renditions"]["summary"]["corrupt"] == 1
    code, out, _ = run_command("check_archives", "--institution", inst.code)
    assert code == 1 and f"corrupt: {rendition.name} on array-1" in out
    state = AuditEvent.objects.get(event="rendition.copy_state")
    assert (state.outcome, state.detail["to"], state.mrns) == ("failed", "corrupt", [archive.mrn])

    report = check_archives(institution=inst, actor="t", check_all=True, repair=True)
    assert report.all_verified, report.as_dict()
    assert _sha(folders["array-1"] / rendition.name) == rendition.sha256
    copy = RenditionCopy.objects.get(rendition=rendition, target__name="array-1")
    assert copy.status == "stored" and copy.last_checked_at is not None
    repaired = next(c for c in report.renditions.copies if c.target == "array-1")
    assert repaired.repaired and not repaired.regenerated
    repair = AuditEvent.objects.get(event="rendition.repair")
    assert repair.outcome == "ok" and repair.detail["from"] == "array-2" and repair.detail["target"] == "array-1"
    assert DicomRendition.objects.get().sha256 == rendition.sha256, "repaired from a copy, not made again"
    assert {name: _copy_files(folder, archive) for name, folder in folders.items()} == archive_files
    assert set(ArchiveCopy.objects.values_list("status", flat=True)) == {"verified"}
    run = AuditEvent.objects.filter(event="rendition.check").latest("pk")
    assert run.outcome == "ok" and run.detail["repaired"] == 1


def test_both_copies_damaged_the_rendition_is_made_again_from_the_archive(tmp_path, settings):
    inst, folders, archive, rendition = _made(tmp_path, settings)
    archive_files = {name: _copy_files(folder, archive) for name, folder in folders.items()}
    (folders["array-1"] / rendition.name).unlink()
    _flip(folders["array-2"] / rendition.name)

    report = check_archives(institution=inst, actor="t", check_all=True, repair=True)
    assert report.all_verified, report.as_dict()
    again = DicomRendition.objects.get()
    assert again.status == "made" and again.name == rendition.name
    for folder in folders.values():
        assert _sha(folder / again.name) == again.sha256
        assert (folder / f"{again.name}.sha256").read_text() == f"{again.sha256} *{again.name}\n"
    assert {c.regenerated for c in report.renditions.copies} == {True}
    regen = AuditEvent.objects.filter(event="rendition.repair", detail__regenerated=True).get()
    assert regen.outcome == "ok" and regen.detail["from"] == "archive"
    assert {name: _copy_files(folder, archive) for name, folder in folders.items()} == archive_files


def test_the_nightly_task_checks_the_renditions_too(tmp_path, settings):
    inst, folders, archive, rendition = _made(tmp_path, settings)
    (folders["array-2"] / f"{rendition.name}.sha256").unlink()
    totals = check_archives_task()
    assert totals["renditions_repaired"] == 1 and totals["renditions_stored"] == 2
    assert (folders["array-2"] / f"{rendition.name}.sha256").read_text() == f"{rendition.sha256} *{rendition.name}\n"


def test_an_unreachable_target_is_unknown_not_missing(tmp_path, settings):
    inst, folders, archive, rendition = _made(tmp_path, settings)
    target = inst.storage_targets.get(name="array-2")
    target.url = f"file://{tmp_path}/not-mounted"
    target.save()
    check_archives(institution=inst, actor="t", check_all=True, repair=True)
    assert _state(rendition, "array-2") == "unreachable"
    assert not AuditEvent.objects.filter(event="rendition.repair").exists()


def test_rebuild_index_from_an_empty_database_brings_the_rendition_back(tmp_path, settings):
    inst, folders, archive, rendition = _made(tmp_path, settings)
    before = {f: getattr(rendition, f) for f in ("name", "sha256", "size", "input_sha256", "converter",
                                                  "converter_version", "objects_summary", "object_list")}
    _lose_the_database()
    assert not DicomRendition.objects.exists() and not RenditionCopy.objects.exists()

    report = rebuild_index(institution=inst, actor="t")
    assert report.problems == [] and report.archives_seen == 2, "a rendition is never taken for an archive"
    assert len(report.created) == 1 and report.renditions_seen == 2 and report.renditions_created == 1
    back = DicomRendition.objects.get()
    assert back.status == "made" and back.archive.name == archive.name
    assert {f: getattr(back, f) for f in before} == before
    assert set(RenditionCopy.objects.values_list("status", flat=True)) == {"indexed"}
    indexed = AuditEvent.objects.filter(event="rendition.index").order_by("id")
    assert [(e.mrns, e.detail["rendition_created"]) for e in indexed] == [([archive.mrn], True), ([archive.mrn], False)]

    report = rebuild_index(institution=inst, actor="t", verify=True)
    assert report.renditions_verified == 2 and report.renditions_created == 0 and report.problems == []
    assert set(RenditionCopy.objects.values_list("status", flat=True)) == {"stored"}


def test_rebuild_index_verify_reports_a_damaged_rendition_and_one_without_its_archive(tmp_path, settings):
    inst, folders, archive, rendition = _made(tmp_path, settings)
    _flip(folders["array-2"] / rendition.name)
    stray = folders["array-1"] / "NOBODY_999_20200101000000.tar.gz.dicom.zip"
    for suffix in ("", ".sha256", ".manifest.json"):
        (folders["array-1"] / f"{stray.name}{suffix}").write_bytes((folders["array-1"] / f"{rendition.name}{suffix}")
                                                                   .read_bytes())
    _lose_the_database()
    code, out, err = run_command("rebuild_index", "--institution", inst.code, "--verify")
    assert code == 1
    assert f"array-1: {stray.name}: its archive is not in the index; left alone" in err
    assert f"array-2: {rendition.name}: corrupt" in err
    assert _state(DicomRendition.objects.get(), "array-1") == "stored"
    assert _state(DicomRendition.objects.get(), "array-2") == "corrupt"
    assert DicomRendition.objects.count() == 1 and Archive.objects.count() == 1


@pytest.mark.servers
def test_a_rendition_on_an_sftp_target_is_checked_and_repaired(tmp_path, settings, sshd, monkeypatch):
    settings.DATA_DIR = tmp_path / "data"
    inst, archive, remote = archive_on_file_and_sftp(tmp_path, sshd, monkeypatch, "rendition-keeping")
    request_rendition(archive=archive, actor="t")
    rendition = make_rendition(archive_id=archive.pk)
    assert _state(rendition, "sftp") == "stored", rendition.reason
    _flip(remote / rendition.name)
    check_archives(institution=inst, actor="t", check_all=True)
    assert _state(rendition, "sftp") == "corrupt"
    report = check_archives(institution=inst, actor="t", check_all=True, repair=True)
    assert report.all_verified and _state(rendition, "sftp") == "stored"
    assert _sha(remote / rendition.name) == rendition.sha256
