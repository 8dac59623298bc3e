"""The quarantine purge deletes originals only while their archive is safely stored, re-proven right then."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core.management import call_command
from django.utils import timezone

from archiver.services.purge import purge_quarantine
from audit.models import AuditEvent
from connectors.tps.local import LocalTpsSource
from inventory.models import Archive, ArchiveCopy, QuarantinedPatient
from sites.models import StorageTarget
from tests.archiver.test_services_fixity import _archive_site

pytestmark = pytest.mark.django_db
LATER = dt.timedelta(days=31)


def _purge(inst, root, *, now=None):
    with LocalTpsSource(root) as source:
        return purge_quarantine(institution=inst, source=source, actor="t", now=now or timezone.now() + LATER)


def _root(inst):
    return inst.tps_url.removeprefix("file://")


def test_safely_stored_archives_have_their_originals_purged_after_their_time(tmp_path):
    inst, folders = _archive_site(tmp_path, quarantine_days=30)
    assert _purge(inst, _root(inst), now=timezone.now() + dt.timedelta(days=29)).as_dict() == {"purged": [],
                                                                                                "kept": []}
    report = _purge(inst, _root(inst))
    assert sorted(p["mrn"] for p in report.purged) == ["001", "002"] and report.kept == []
    for row in QuarantinedPatient.objects.all():
        assert row.purged_at is not None and not (tmp_path / "Patients" / row.quarantine_path).exists()
    assert AuditEvent.objects.filter(event="quarantine.purge").count() == 2


def test_a_copy_damaged_since_its_last_check_is_caught_right_before_deletion(tmp_path):
    """The database still says verified; the re-check on the target does not, so the originals stay."""
    inst, folders = _archive_site(tmp_path, targets=("array-1",), quarantine_days=30)
    archive = Archive.objects.get(mrn="001")
    data = bytearray((folders["array-1"] / archive.name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (folders["array-1"] / archive.name).write_bytes(bytes(data))
    assert ArchiveCopy.objects.get(archive=archive).status == "verified"

    report = _purge(inst, _root(inst))
    assert [p["mrn"] for p in report.purged] == ["002"]
    assert [(k["mrn"], k["reason"].split(":")[0]) for k in report.kept] == [
        ("001", f"archive {archive.name} failed its re-check before deletion")]
    kept = QuarantinedPatient.objects.get(archive=archive)
    assert kept.purged_at is None and (tmp_path / "Patients" / kept.quarantine_path / "Patient").is_file()
    assert ArchiveCopy.objects.get(archive=archive).status == "corrupt"
    assert AuditEvent.objects.get(event="quarantine.keep").mrns == ["001"]


@pytest.mark.parametrize("damage", ["missing on record", "target disabled", "stale check", "too few copies"])
def test_originals_are_kept_while_the_archive_is_not_safely_stored(tmp_path, damage):
    inst, folders = _archive_site(tmp_path, quarantine_days=30)
    archive = Archive.objects.get(mrn="001")
    if damage == "missing on record":
        ArchiveCopy.objects.filter(archive=archive).update(status="missing")
    elif damage == "target disabled":
        StorageTarget.objects.filter(institution=inst).update(enabled=False)
    elif damage == "stale check":
        ArchiveCopy.objects.filter(archive=archive).update(last_checked_at=timezone.now() - dt.timedelta(days=200))
    else:
        inst.min_copies = 3
        inst.save()
    report = _purge(inst, _root(inst))
    assert "001" in [k["mrn"] for k in report.kept] and "001" not in [p["mrn"] for p in report.purged]
    assert "not safely stored" in next(k["reason"] for k in report.kept if k["mrn"] == "001")
    assert QuarantinedPatient.objects.get(archive=archive).purged_at is None


def test_purge_quarantine_command_json_and_exit_codes(tmp_path, capsys):
    inst, folders = _archive_site(tmp_path, quarantine_days=0)
    QuarantinedPatient.objects.update(purge_after=timezone.now() - dt.timedelta(minutes=1))
    ArchiveCopy.objects.filter(archive__mrn="002").update(status="corrupt")
    with pytest.raises(SystemExit) as exited:
        call_command("purge_quarantine", "--institution", "KEEP", "--json")
    assert exited.value.code == 1
    out = json.loads(capsys.readouterr().out)
    assert [set(p) for p in out["purged"]] == [{"mrn", "tps_path", "archive"}] and out["purged"][0]["mrn"] == "001"
    assert [(k["mrn"], set(k)) for k in out["kept"]] == [("002", {"mrn", "tps_path", "reason"})]

    ArchiveCopy.objects.filter(archive__mrn="002").update(status="verified")
    call_command("purge_quarantine", "--institution", "KEEP", "--json")  # exit 0: nothing kept
    assert [p["mrn"] for p in json.loads(capsys.readouterr().out)["purged"]] == ["002"]
