"""Restore drills: a random archive per target restored into a scratch folder and compared with its manifest.

Real targets: local folders and an SFTP array on the test sshd."""
from __future__ import annotations

import json

import pytest

from archiver.models import RestoreDrill
from archiver.services.drills import compare_tree, drill_target, run_drills
from audit.models import AuditEvent
from inventory.models import Archive, ArchiveCopy
from tests.archiver.test_services_fixity import _archive_site
from tests.commands import run_command
from tests.factories import StorageTargetFactory

pytestmark = pytest.mark.django_db


def test_a_drill_per_target_restores_and_matches_the_manifest_then_leaves_nothing(tmp_path, settings):
    settings.DATA_DIR = tmp_path / "data"
    inst, folders = _archive_site(tmp_path)
    tps_before = sorted(p.name for p in (tmp_path / "Patients").rglob("*"))
    drills = run_drills(institution=inst, actor="t")

    assert [(d.target.name, d.outcome) for d in drills] == [("array-1", "pass"), ("array-2", "pass")]
    for drill in drills:
        assert drill.files == len(drill.archive.manifest["files"]) > 0 and drill.bytes > 0
        assert drill.restore.from_target == drill.target and drill.restore.status == "done"
    assert not any((tmp_path / "data" / "drills").iterdir()), "the scratch folders are removed"
    assert sorted(p.name for p in (tmp_path / "Patients").rglob("*")) == tps_before, "nothing written to the TPS"
    events = AuditEvent.objects.filter(event="restore.drill")
    assert events.count() == 2 and all(e.outcome == "ok" and len(e.mrns) == 1 for e in events)


def test_a_damaged_copy_fails_its_drill_and_only_that_targets(tmp_path, settings):
    settings.DATA_DIR = tmp_path / "data"
    inst, folders = _archive_site(tmp_path, patients=(1,))
    archive = Archive.objects.get()
    data = bytearray((folders["array-2"] / archive.name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folders["array-2"] / archive.name).write_bytes(bytes(data))

    good = drill_target(target=inst.storage_targets.get(name="array-1"), actor="t")
    bad = drill_target(target=inst.storage_targets.get(name="array-2"), actor="t")
    assert good.outcome == "pass"
    assert bad.outcome == "fail" and "SHA-256" in bad.reason, "read from array-2 only, never from array-1"
    assert ArchiveCopy.objects.get(archive=archive, target__name="array-2").status == "corrupt"


def test_an_unreadable_target_is_unknown_not_failed(tmp_path, settings):
    settings.DATA_DIR = tmp_path / "data"
    inst, folders = _archive_site(tmp_path, patients=(1,))
    folders["array-1"].rename(tmp_path / "unmounted")
    drill = drill_target(target=inst.storage_targets.get(name="array-1"), actor="t")
    assert drill.outcome == "unknown", drill.reason


def test_compare_tree_names_a_changed_a_missing_and_an_extra_file(tmp_path):
    root = tmp_path / "r"
    patient = root / "Institution_1" / "Mount_0" / "Patient_1"
    patient.mkdir(parents=True)
    (patient / "a").write_bytes(b"A")
    (patient / "extra").write_bytes(b"X")
    import hashlib
    manifest = {"patient": {"tps_path": "Institution_1/Mount_0/Patient_1"}, "files": [
        {"path": "Institution_1/Mount_0/Patient_1/a", "size": 1, "sha256": hashlib.sha256(b"B").hexdigest()},
        {"path": "Institution_1/Mount_0/Patient_1/b", "size": 1, "sha256": hashlib.sha256(b"B").hexdigest()}]}
    files, _, problems = compare_tree(root, manifest)
    assert files == 1 and len(problems) == 3
    assert any("extra was restored" in p for p in problems) and any("/b is in the manifest" in p for p in problems)


def test_the_command_prints_json_and_exits_1_on_a_failed_drill(tmp_path, settings):
    settings.DATA_DIR = tmp_path / "data"
    inst, folders = _archive_site(tmp_path, targets=("array-1",), patients=(1,))
    code, out, _ = run_command("restore_drill", "--institution", inst.code, "--json")
    assert code == 0 and json.loads(out)["drills"][0]["outcome"] == "pass"
    (folders["array-1"] / Archive.objects.get().name).write_bytes(b"not an archive")
    code, out, _ = run_command("restore_drill", "--institution", inst.code, "--json")
    assert code == 1 and json.loads(out)["drills"][0]["outcome"] == "fail"
    code, _, err = run_command("restore_drill", "--institution", inst.code, "--target", "nope")
    assert code == 2 and "nope" in err and "no storage target" in err


@pytest.mark.servers
def test_a_drill_reads_from_an_sftp_target(tmp_path, settings, sshd, monkeypatch):
    settings.DATA_DIR = tmp_path / "data"
    monkeypatch.setenv("PDAS_TEST_SFTP_PASSWORD", sshd.password)
    inst, folders = _archive_site(tmp_path, targets=("array-1",), patients=(1,))
    remote = sshd.new_dir("drill")
    sftp = StorageTargetFactory(institution=inst, name="sftp", url=sshd.url(remote, scheme="sftp"),
                                password_env="PDAS_TEST_SFTP_PASSWORD", known_hosts=sshd.known_hosts)
    archive = Archive.objects.get()
    ArchiveCopy.objects.create(archive=archive, target=sftp, path=archive.name, status="missing")
    from archiver.services.fixity import check_archives
    check_archives(institution=inst, actor="t", repair=True)  # made on the SFTP array from array-1
    drill = drill_target(target=sftp, actor="t")
    assert drill.outcome == "pass" and drill.restore.from_target == sftp
    assert RestoreDrill.objects.filter(outcome="pass").count() == 1


def test_the_monthly_task_drills_every_institution(tmp_path, settings):
    from archiver.tasks import restore_drills_task

    settings.DATA_DIR = tmp_path / "data"
    _archive_site(tmp_path, patients=(1,))
    assert restore_drills_task.apply().get() == {"pass": 2}
