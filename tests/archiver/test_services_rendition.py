"""The DICOM-RT rendition job: an archive read back from a verified copy, converted, validated, zipped and stored
beside the archive on every target (docs/rendition.md, "The rendition job").

Real targets: local folders, and an SFTP array on the test sshd."""
from __future__ import annotations

import hashlib
import json
import zipfile

import pydicom
import pytest

from archiver.services.archive_index import rebuild_index
from archiver.services.fixity import check_archives
from archiver.services.rendition import make_rendition, request_rendition
from archiver.tasks import render_dicom_task
from audit.models import AuditEvent
from core.dispatch import dispatch
from inventory.models import Archive, ArchiveCopy, DicomRendition, RenditionCopy
from tests.archiver.test_services_fixity import _archive_site, _copy_files
from tests.commands import run_command
from tests.factories import StorageTargetFactory

pytestmark = pytest.mark.django_db


def _render(archive: Archive, **kwargs) -> DicomRendition:
    request_rendition(archive=archive, actor="t")
    return make_rendition(archive_id=archive.pk, **kwargs)


def _zip(folder, rendition: DicomRendition) -> zipfile.ZipFile:
    return zipfile.ZipFile(folder / rendition.name)


def test_a_rendition_is_made_from_a_verified_copy_and_stored_beside_the_archive(tmp_path, settings):
    settings.DATA_DIR = tmp_path / "data"
    inst, folders = _archive_site(tmp_path, patients=(1,))
    archive = Archive.objects.get()
    before = {name: _copy_files(folder, archive) for name, folder in folders.items()}
    tps_before = sorted(p.name for p in (tmp_path / "Patients").rglob("*"))

    rendition = _render(archive)

    assert rendition.status == "made", rendition.reason
    assert rendition.name == f"{archive.name}.dicom.zip"
    assert rendition.input_sha256 == archive.checksum
    assert rendition.converter == "pymedphys" and rendition.converter_version
    assert set(rendition.objects_summary) == {"CT", "RTSTRUCT", "RTDOSE"} and rendition.conversion_failures == []
    assert rendition.validation_failures == []
    for name, folder in folders.items():
        data = (folder / rendition.name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == rendition.sha256 and len(data) == rendition.size
        assert (folder / f"{rendition.name}.sha256").read_text() == f"{rendition.sha256} *{rendition.name}\n"
        with _zip(folder, rendition) as bundle:
            inside = json.loads(bundle.read("rendition.json"))
            assert json.loads((folder / f"{rendition.name}.manifest.json").read_bytes()) == inside
            assert inside["input_sha256"] == archive.checksum and inside["archive"] == archive.name
            assert sorted(bundle.namelist()) == sorted(["rendition.json", *(o["file"] for o in inside["objects"])])
            first = next(o for o in inside["objects"] if o["modality"] == "RTSTRUCT")
            with bundle.open(first["file"]) as handle:
                assert pydicom.dcmread(handle).SOPInstanceUID == first["sop_instance_uid"]
        assert _copy_files(folder, archive) == before[name], "the archive and its sidecars are untouched"
        copy = RenditionCopy.objects.get(rendition=rendition, target__name=name)
        assert (copy.status, copy.sha256, copy.size) == ("stored", rendition.sha256, rendition.size)
    assert not any((tmp_path / "data" / "renditions").iterdir()), "the scratch folder is removed"
    assert sorted(p.name for p in (tmp_path / "Patients").rglob("*")) == tps_before, "nothing written to the TPS"
    event = AuditEvent.objects.get(event="rendition.make")
    assert event.outcome == "ok" and event.mrns == [archive.mrn]
    assert event.detail["targets"] == {"array-1": "stored", "array-2": "stored"}


def test_the_rendition_s_read_of_the_archive_is_audited_but_not_a_recent_restore(tmp_path, settings):
    from archiver.models import RestoreRecord
    from archiver.selectors import recent_restores

    settings.DATA_DIR = tmp_path / "data"
    _archive_site(tmp_path, patients=(1,))
    archive = Archive.objects.get()
    assert _render(archive).status == "made"
    (read,) = RestoreRecord.objects.all()  # the rendition read the archive through the restore path
    assert read.destination.startswith(str(tmp_path / "data" / "renditions"))
    assert AuditEvent.objects.filter(event="restore", mrns=[archive.mrn]).exists()
    assert list(recent_restores()) == []
    placed = RestoreRecord.objects.create(institution=archive.institution, archive=archive, requested_by="physicist",
                                          destination="tps:Restored", reason="done")
    assert list(recent_restores()) == [placed]


def test_making_it_again_replaces_only_the_rendition_and_the_index_ignores_it(tmp_path, settings):
    settings.DATA_DIR = tmp_path / "data"
    inst, folders = _archive_site(tmp_path, patients=(1,))
    archive = Archive.objects.get()
    first = _render(archive)
    again = make_rendition(archive_id=archive.pk)
    assert again.finished_at == first.finished_at, "made and stored everywhere: a rerun does nothing"

    (folders["array-1"] / first.name).write_bytes(b"stale")
    archive_files = _copy_files(folders["array-1"], archive)
    second = make_rendition(archive_id=archive.pk, force=True)
    assert second.status == "made"
    assert hashlib.sha256((folders["array-1"] / second.name).read_bytes()).hexdigest() == second.sha256
    assert _copy_files(folders["array-1"], archive) == archive_files
    assert not [p for p in folders["array-1"].iterdir() if p.name.endswith(".part")]

    report = rebuild_index(institution=inst, actor="t", verify=True)
    assert report.problems == [] and report.created == [] and report.archives_seen == 2, report
    result = check_archives(institution=inst, actor="t", check_all=True)
    assert result.all_verified and Archive.objects.count() == 1


def test_an_archive_without_a_verified_copy_is_a_named_failure(tmp_path, settings):
    settings.DATA_DIR = tmp_path / "data"
    inst, folders = _archive_site(tmp_path, patients=(1,))
    archive = Archive.objects.get()
    ArchiveCopy.objects.filter(archive=archive).update(status="corrupt")
    rendition = _render(archive)
    assert rendition.status == "failed"
    assert rendition.reason == f"{archive.name} has no verified copy to read; run check_archives --repair first"
    assert not any(p.name.endswith(".dicom.zip") for folder in folders.values() for p in folder.iterdir())
    assert AuditEvent.objects.get(event="rendition.make").outcome == "failed"


def test_a_damaged_copy_is_refused_and_the_next_one_used(tmp_path, settings):
    settings.DATA_DIR = tmp_path / "data"
    inst, folders = _archive_site(tmp_path, patients=(1,))
    archive = Archive.objects.get()
    data = bytearray((folders["array-1"] / archive.name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folders["array-1"] / archive.name).write_bytes(bytes(data))
    rendition = _render(archive)
    assert rendition.status == "made", rendition.reason
    assert rendition.input_sha256 == archive.checksum
    assert ArchiveCopy.objects.get(archive=archive, target__name="array-1").status == "corrupt"


def test_a_failing_target_leaves_the_others_and_a_rerun_completes_it(tmp_path, settings):
    settings.DATA_DIR = tmp_path / "data"
    inst, folders = _archive_site(tmp_path, patients=(1,))
    archive = Archive.objects.get()
    target = inst.storage_targets.get(name="array-2")
    target.url = f"file://{tmp_path}/not-mounted"
    target.save()
    rendition = _render(archive)
    assert rendition.status == "made" and "array-2:" in rendition.reason
    assert RenditionCopy.objects.get(rendition=rendition, target=target).status == "failed"
    target.url = f"file://{folders['array-2']}"
    target.save()
    rendition = make_rendition(archive_id=archive.pk)
    assert RenditionCopy.objects.get(rendition=rendition, target=target).status == "stored"
    assert (folders["array-2"] / rendition.name).is_file()


def test_an_archive_that_does_not_convert_fails_naming_the_file(tmp_path, settings):
    settings.DATA_DIR = tmp_path / "data"
    inst, folders = _archive_site(tmp_path, patients=(1,))
    archive = Archive.objects.get()
    import archiver.services.rendition as rendition_service
    from pinnacle.dicom.convert import ConversionError

    def broken(patient_dir, output):
        raise ConversionError(f"{patient_dir / 'Patient'}: pymedphys cannot read it (ParseError)")

    original, rendition_service.convert_patient = rendition_service.convert_patient, broken
    try:
        rendition = _render(archive)
    finally:
        rendition_service.convert_patient = original
    patient = archive.tps_path.rsplit("/", 1)[-1]
    assert rendition.status == "failed" and rendition.reason.startswith(f"{archive.name}: ")
    assert f"{patient}/Patient: pymedphys cannot read it" in rendition.reason


def test_the_task_is_dispatched_with_the_archive_id(tmp_path, settings):
    settings.DATA_DIR = tmp_path / "data"
    settings.PDAS_DISPATCH_INLINE = True
    inst, folders = _archive_site(tmp_path, patients=(1,))
    archive = Archive.objects.get()
    request_rendition(archive=archive, actor="t")
    dispatch(render_dicom_task, archive.pk)
    assert DicomRendition.objects.get(archive=archive).status == "made"


def test_render_dicom_command(tmp_path, settings):
    settings.DATA_DIR = tmp_path / "data"
    inst, folders = _archive_site(tmp_path, patients=(1, 2))
    code, out, _ = run_command("render_dicom", "--institution", inst.code, "--mrn", "001", "--json")
    rows = json.loads(out)["renditions"]
    assert code == 0 and [(r["mrn"], r["status"]) for r in rows] == [("001", "made")]
    assert rows[0]["targets"] == {"array-1": "stored", "array-2": "stored"} and rows[0]["objects"]["CT"] >= 1
    ArchiveCopy.objects.filter(archive__mrn="002").update(status="corrupt")
    code, out, _ = run_command("render_dicom", "--institution", inst.code, "--json")
    rows = json.loads(out)["renditions"]
    assert code == 0 and rows == [], "002 has no verified copy; 001 is made"
    ArchiveCopy.objects.filter(archive__mrn="002").update(status="verified")
    (folders["array-1"] / Archive.objects.get(mrn="002").name).write_bytes(b"damaged")
    (folders["array-2"] / Archive.objects.get(mrn="002").name).write_bytes(b"damaged")
    code, out, _ = run_command("render_dicom", "--institution", inst.code)
    assert code == 1 and out.startswith("failed ") and Archive.objects.get(mrn="002").name in out
    assert run_command("render_dicom", "--institution", "NOPE")[0] == 2
    code, _, err = run_command("render_dicom", "--institution", inst.code, "--mrn", "999")
    assert code == 2 and "999" in err and "\n" not in err.strip()


def archive_on_file_and_sftp(tmp_path, sshd, monkeypatch, remote_name: str):
    """One archived patient with a verified copy on the folder target array-1 and on the sshd's SFTP
    target "sftp" (repaired there from array-1): (institution, its archive, the SFTP folder)."""
    monkeypatch.setenv("PDAS_TEST_SFTP_PASSWORD", sshd.password)
    inst, _ = _archive_site(tmp_path, targets=("array-1",), patients=(1,))
    remote = sshd.new_dir(remote_name)
    StorageTargetFactory(institution=inst, name="sftp", url=sshd.url(remote, scheme="sftp"),
                         password_env="PDAS_TEST_SFTP_PASSWORD", known_hosts=sshd.known_hosts)
    archive = Archive.objects.get()
    ArchiveCopy.objects.create(archive=archive, target=inst.storage_targets.get(name="sftp"), path=archive.name,
                               status="missing")
    check_archives(institution=inst, actor="t", repair=True)
    return inst, archive, remote


@pytest.mark.servers
def test_a_rendition_is_stored_on_an_sftp_target(tmp_path, settings, sshd, monkeypatch):
    settings.DATA_DIR = tmp_path / "data"
    inst, archive, remote = archive_on_file_and_sftp(tmp_path, sshd, monkeypatch, "rendition")
    rendition = _render(archive)
    copy = RenditionCopy.objects.get(rendition=rendition, target__name="sftp")
    assert (copy.status, copy.sha256) == ("stored", rendition.sha256), copy.reason
    assert hashlib.sha256((remote / rendition.name).read_bytes()).hexdigest() == rendition.sha256
