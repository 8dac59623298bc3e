"""Three real targets (SFTP, SMB, and S3 encrypted) and one of them failing while a patient is archived.

The failure does not hold back the copies on the others; the archive counts its verified copies against
``min_copies`` (docs/keeping.md, "safely stored"): with enough of them the originals move to the
quarantine and the failed target's copy is made by the next archive check with repair; with too few the
originals stay. Each target is opened as a site configures it (secrets by variable).
"""
from __future__ import annotations

import pytest
from pyrage import x25519

from archiver.models import ArchiveRun, PatientArchiveTask
from archiver.services import archiving
from archiver.services.archiving.task_rows import TransientArchiveError
from archiver.services.fixity import check_archives
from audit.models import AuditEvent
from inventory.models import Archive, ArchiveCopy, QuarantinedPatient, TpsPatient
from inventory.services.tps_sync import sync_institution
from tests.archiver.restore_site import build_site, tree
from tests.factories import StorageTargetFactory

pytestmark = [pytest.mark.servers, pytest.mark.django_db]


@pytest.fixture
def three_targets(tmp_path, settings, monkeypatch, sshd, samba_server, s3_server):
    settings.DATA_DIR = tmp_path / "data"
    site = build_site(tmp_path, targets=())
    inst = site["inst"]
    monkeypatch.setenv("PDAS_TEST_SFTP_PASSWORD", sshd.password)
    monkeypatch.setenv("PDAS_TEST_SMB_PASSWORD", "not-the-password")  # the share refuses this worker
    monkeypatch.setenv("PDAS_TEST_S3_ACCESS_KEY", s3_server.access_key)
    monkeypatch.setenv("PDAS_TEST_S3_SECRET_KEY", s3_server.secret_key)
    StorageTargetFactory(institution=inst, name="sftp", url=sshd.url(sshd.new_dir("array"), scheme="sftp"),
                         password_env="PDAS_TEST_SFTP_PASSWORD", known_hosts=sshd.known_hosts, priority=0)
    folder = samba_server.new_dir("array")
    StorageTargetFactory(institution=inst, name="smb", url=samba_server.url(folder),
                         password_env="PDAS_TEST_SMB_PASSWORD", priority=1)
    StorageTargetFactory(institution=inst, name="s3", url=s3_server.url(s3_server.new_bucket()), priority=2,
                         access_key_env="PDAS_TEST_S3_ACCESS_KEY", secret_key_env="PDAS_TEST_S3_SECRET_KEY",
                         ca_file=s3_server.ca_file, encrypt_to=[str(x25519.Identity.generate().to_public())])
    sync_institution(institution=inst, actor="test")
    site.update(share=samba_server.share_root / folder, smb_password=samba_server.password)
    return site


def _archive(inst, tps_path: str) -> PatientArchiveTask:
    run = ArchiveRun.objects.create(institution=inst, requested_by="test")
    task = PatientArchiveTask.objects.create(run=run, patient=TpsPatient.objects.get(institution=inst,
                                                                                      tps_path=tps_path))
    try:
        archiving.archive_patient(task_id=task.pk)
    except TransientArchiveError:
        pass  # the dispatcher would retry it later; the test looks at what this attempt left  # the dispatcher would retry it later; the test looks at what this attempt left
    task.refresh_from_db()
    return task


def _states(tps_path: str) -> dict[str, str]:
    return dict(ArchiveCopy.objects.filter(archive__tps_path=tps_path).values_list("target__name", "status"))


def test_one_target_failing_holds_back_neither_the_other_copies_nor_a_safely_stored_archive(three_targets,
                                                                                            monkeypatch):
    site = three_targets
    inst, root = site["inst"], site["root"]
    zhang, smith = site["zhang"], site["smith"]
    kept = tree(root / zhang)

    # Three copies needed, two possible: the copies on SFTP and S3 are made and verified, the originals stay.
    inst.min_copies = 3
    inst.save()
    task = _archive(inst, zhang)
    assert task.result in ("pending", "error") and "smb" in task.reason.lower(), task.reason
    assert _states(zhang) == {"sftp": ArchiveCopy.Status.VERIFIED, "s3": ArchiveCopy.Status.VERIFIED}
    assert tree(root / zhang) == kept and not QuarantinedPatient.objects.exists()

    # Two needed: the archive is safely stored without the share; the originals move to the quarantine.
    inst.min_copies = 2
    inst.save()
    task = _archive(inst, smith)
    assert task.result == "warning", task.reason
    assert "verified on sftp, s3" in task.reason and "no copy on smb" in task.reason, task.reason
    archive = Archive.objects.get(tps_path=smith)
    assert archive.status == Archive.Status.VERIFIED and archive.is_safely_stored()
    assert not (root / smith).exists() and QuarantinedPatient.objects.filter(archive=archive).exists()
    assert _states(smith) == {"sftp": ArchiveCopy.Status.VERIFIED, "smb": ArchiveCopy.Status.MISSING,
                              "s3": ArchiveCopy.Status.VERIFIED}
    failed = AuditEvent.objects.get(event="archive.transfer", outcome="failed", detail__target="smb",
                                    detail__left_to_repair=True)
    assert failed.mrns == [archive.mrn]
    verify = AuditEvent.objects.filter(event="archive.verify", object_id=str(archive.pk)).latest("id")
    assert verify.detail["targets"] == ["sftp", "s3"] and "smb" in verify.detail["failed_targets"]

    # The share takes the worker again: the next archive check with repair makes the missing copy.
    monkeypatch.setenv("PDAS_TEST_SMB_PASSWORD", site["smb_password"])
    report = check_archives(institution=inst, actor="test", repair=True)
    assert _states(smith)["smb"] == ArchiveCopy.Status.VERIFIED, report.as_dict()
    assert (site["share"] / archive.name).is_file() and (site["share"] / f"{archive.name}.manifest.json").is_file()
