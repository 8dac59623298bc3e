"""Keeping archives whole: every copy re-checked where it is stored, bad copies repaired from good ones.

Real targets: local folders and an SFTP array on the test sshd (hashed there with sha256sum)."""
from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest
from django.core.management import call_command
from django.utils import timezone

from archiver.services import archiving
from archiver.tasks import start_archive_run
from archiver.services.fixity import check_archives, due_copies
from alerts.models import Alert
from audit.models import AuditEvent
from curation.services.curate import run_curation
from inventory.models import Archive, ArchiveCopy, FixityCheck
from inventory.services.tps_sync import sync_institution
from demo_site import GroupSpec, PlanSpec, write_institution_file, write_patient
from tests.factories import InstitutionFactory, StorageTargetFactory

pytestmark = pytest.mark.django_db


def _archive_site(tmp_path, *, targets=("array-1", "array-2"), patients=(1, 2), **institution_fields):
    root = tmp_path / "Patients"
    records = [write_patient(root, patient_id=n, mrn=f"00{n}", plans=[PlanSpec(0, f"PLAN {n}")]) for n in patients]
    write_institution_file(root, [GroupSpec(1, "ToArchive", records)], form="bare")
    inst = InstitutionFactory(code="KEEP", tps_url=f"file://{root}", **institution_fields)
    folders = {}
    for name in targets:
        folders[name] = tmp_path / name
        folders[name].mkdir()
        StorageTargetFactory(institution=inst, name=name, url=f"file://{folders[name]}")
    sync_institution(institution=inst, actor="t")
    run_curation(institution=inst, actor="t", refresh_tps=False)
    run = start_archive_run(archiving.create_archive_run(institution=inst, actor="t"))
    assert {t.result for t in run.tasks.all()} == {"pass"}
    return inst, folders


def _status(archive: Archive, target: str) -> str:
    return ArchiveCopy.objects.get(archive=archive, target__name=target).status


def _copy_files(folder, archive: Archive) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes()
            for name in (archive.name, f"{archive.name}.sha256", f"{archive.name}.manifest.json")}


def test_a_deleted_copy_is_found_by_the_presence_check_and_repaired_byte_identical(tmp_path):
    inst, folders = _archive_site(tmp_path)
    archive = Archive.objects.get(mrn="001")
    (folders["array-2"] / archive.name).unlink()

    report = check_archives(institution=inst, actor="t")  # nothing is due yet: the listing alone finds it
    assert _status(archive, "array-2") == "missing"
    assert not report.all_verified and report.summary()["missing"] == 1

    report = check_archives(institution=inst, actor="t", repair=True)
    assert _status(archive, "array-2") == "verified" and report.summary()["repaired"] == 1
    assert _copy_files(folders["array-2"], archive) == _copy_files(folders["array-1"], archive)
    events = [e.detail["to"] for e in AuditEvent.objects.filter(event="copy.state").order_by("id")]
    assert events == ["missing", "verified"]
    assert AuditEvent.objects.filter(event="copy.repair", outcome="ok").count() == 1


def test_a_truncated_copy_is_corrupt_and_a_bit_flip_is_found_by_the_full_check(tmp_path):
    inst, folders = _archive_site(tmp_path)
    first, second = Archive.objects.get(mrn="001"), Archive.objects.get(mrn="002")
    data = (folders["array-1"] / first.name).read_bytes()
    (folders["array-1"] / first.name).write_bytes(data[:-100])
    flipped = bytearray((folders["array-1"] / second.name).read_bytes())
    flipped[len(flipped) // 2] ^= 0x01
    (folders["array-1"] / second.name).write_bytes(bytes(flipped))

    check_archives(institution=inst, actor="t")
    assert _status(first, "array-1") == "corrupt"  # the listing shows the wrong size
    assert _status(second, "array-1") == "verified"  # same size: only hashing can tell

    report = check_archives(institution=inst, actor="t", check_all=True, repair=True)
    assert {c.archive: (c.status, c.repaired) for c in report.copies if c.target == "array-1"} == {
        first.name: ("verified", True), second.name: ("verified", True)}
    assert (folders["array-1"] / second.name).read_bytes() == (folders["array-2"] / second.name).read_bytes()


def test_an_unreachable_target_is_unreachable_never_missing(tmp_path):
    inst, folders = _archive_site(tmp_path)
    shutil.move(folders["array-2"], tmp_path / "unmounted")

    report = check_archives(institution=inst, actor="t", check_all=True, repair=True)
    states = {(c.target, c.status) for c in report.copies}
    assert states == {("array-1", "verified"), ("array-2", "unreachable")}
    assert report.summary()["repaired"] == 0 and not report.all_verified
    assert not FixityCheck.objects.filter(copy__target__name="array-2", outcome="fail").exists()

    folders["array-2"].mkdir()  # mounted again, but empty: an empty listing proves nothing either
    check_archives(institution=inst, actor="t")
    assert set(ArchiveCopy.objects.filter(target__name="array-2").values_list("status", flat=True)) == {"unreachable"}


def test_safely_stored_needs_min_copies_verified_within_the_cycle(tmp_path):
    inst, folders = _archive_site(tmp_path, min_copies=2, fixity_cycle_days=90)
    archive = Archive.objects.get(mrn="001")
    assert archive.is_safely_stored() and Archive.objects.safely_stored().filter(pk=archive.pk).exists()

    ArchiveCopy.objects.filter(archive=archive, target__name="array-2").update(status="corrupt")
    assert not archive.is_safely_stored() and not Archive.objects.safely_stored().filter(pk=archive.pk).exists()
    assert Archive.objects.with_verified_copy().filter(pk=archive.pk).exists()

    ArchiveCopy.objects.filter(archive=archive).update(status="verified",
                                                       last_checked_at=timezone.now() - dt.timedelta(days=91))
    assert not archive.is_safely_stored() and not Archive.objects.safely_stored().filter(pk=archive.pk).exists()

    ArchiveCopy.objects.filter(archive=archive).update(last_checked_at=timezone.now())
    ArchiveCopy.objects.filter(archive=archive, target__name="array-2").update(status="verified")
    archive.copies.get(target__name="array-2").target.__class__.objects.filter(name="array-2").update(enabled=False)
    assert not archive.is_safely_stored(), "a copy on a disabled target does not count"
    assert set(Archive.objects.safely_stored().values_list("mrn", flat=True)) == set()


def test_a_new_archive_is_retained_for_the_institutions_years(tmp_path):
    inst, folders = _archive_site(tmp_path, patients=(1,), retention_years=30)
    archive = Archive.objects.get()
    assert archive.retain_until == Archive.retention_end(archive.packed_at, 30)
    assert archive.retain_until.year == archive.packed_at.year + 30


def test_an_archive_with_no_verified_copy_left_is_alerted_once(tmp_path):
    inst, folders = _archive_site(tmp_path, targets=("array-1",), patients=(1,))
    archive = Archive.objects.get()
    (tmp_path / "keep").mkdir()
    shutil.move(folders["array-1"] / archive.name, tmp_path / "keep" / archive.name)
    check_archives(institution=inst, actor="t")
    check_archives(institution=inst, actor="t")
    raised = AuditEvent.objects.filter(event="alert.raise")
    assert raised.count() == 1 and raised.get().mrns == ["001"] and raised.get().detail["kind"] == "archive_unsafe"
    assert list(Archive.objects.without_verified_copy()) == [archive]
    alert = Alert.objects.standing().get()
    assert (alert.kind, alert.subject, alert.detail["copies"]) == ("archive_unsafe", f"archive:{archive.pk}",
                                                                  {"array-1": "missing"})

    check_archives(institution=inst, actor="t", repair=True)  # no other target: nothing to repair from
    assert Alert.objects.standing().count() == 1 and raised.count() == 1

    shutil.copy(folders["array-1"].parent / "keep" / archive.name, folders["array-1"] / archive.name)
    check_archives(institution=inst, actor="t", check_all=True)
    assert _status(archive, "array-1") == "verified"
    assert not Alert.objects.standing().exists(), "a copy verified again clears the alert"
    assert AuditEvent.objects.filter(event="alert.clear").get().mrns == ["001"]


def test_the_rolling_cycle_reaches_every_copy_within_its_days_oldest_first(tmp_path):
    inst, folders = _archive_site(tmp_path, patients=(1, 2, 3), fixity_cycle_days=3)
    copies = list(ArchiveCopy.objects.order_by("pk"))
    now = timezone.now()
    for age, copy in enumerate(copies):  # six copies, checked 0..5 days ago
        ArchiveCopy.objects.filter(pk=copy.pk).update(last_checked_at=now - dt.timedelta(days=age, hours=1))
    due = due_copies(institution=inst, now=now)
    assert [c.pk for c in due] == [c.pk for c in reversed(copies)][:3]  # 3 overdue (> 3 days), oldest first

    checked = set()
    for night in range(3):
        report = check_archives(institution=inst, actor="t", now=now + dt.timedelta(days=night))
        checked |= {c.pk for c in ArchiveCopy.objects.filter(last_checked_at__gte=now)}
        assert report.all_verified
    assert checked == {c.pk for c in copies}


def test_a_killed_sweep_resumes_without_re_hashing_what_it_finished(tmp_path, monkeypatch):
    inst, folders = _archive_site(tmp_path, patients=(1, 2, 3))
    from archiver.services import fixity

    real = fixity.check_copy
    done = []

    def killed_after_two(**kwargs):
        if len(done) == 2:
            raise SystemExit("killed")
        done.append(kwargs["copy"].pk)
        return real(**kwargs)

    monkeypatch.setattr(fixity, "check_copy", killed_after_two)
    with pytest.raises(SystemExit):
        check_archives(institution=inst, actor="t", check_all=True)
    monkeypatch.setattr(fixity, "check_copy", real)
    before = {pk: ArchiveCopy.objects.get(pk=pk).last_checked_at for pk in done}
    due = due_copies(institution=inst, now=timezone.now() + dt.timedelta(days=90))
    assert {c.pk for c in due[:4]}.isdisjoint(done), "the finished copies are the last to be due again"
    assert all(ArchiveCopy.objects.get(pk=pk).last_checked_at == at for pk, at in before.items())


def test_check_archives_command_prints_the_contract_and_exits_by_result(tmp_path, capsys):
    inst, folders = _archive_site(tmp_path)
    call_command("check_archives", "--institution", "KEEP", "--all", "--json")
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"copies", "summary"}
    assert set(out["copies"][0]) >= {"archive", "target", "status", "method", "checked_at", "repaired"}
    assert out["summary"] == {"checked": 4, "verified": 4, "missing": 0, "corrupt": 0, "unreachable": 0,
                              "repaired": 0}
    assert {c["method"] for c in out["copies"]} == {"local_hash"}

    archive = Archive.objects.get(mrn="002")
    (folders["array-1"] / archive.name).unlink()
    with pytest.raises(SystemExit) as exited:
        call_command("check_archives", "--institution", "KEEP", "--target", "array-1", "--json")
    assert exited.value.code == 1
    out = json.loads(capsys.readouterr().out)
    assert out["summary"]["missing"] == 1 and {c["target"] for c in out["copies"]} == {"array-1"}

    call_command("check_archives", "--institution", "KEEP", "--repair", "--json")
    out = json.loads(capsys.readouterr().out)
    assert out["summary"]["repaired"] == 1 and out["summary"]["verified"] == 4


@pytest.mark.servers
def test_an_sftp_copy_is_hashed_on_the_target_and_repaired_there(tmp_path, sshd, monkeypatch):
    monkeypatch.setenv("PDAS_TEST_SFTP_PASSWORD", sshd.password)
    inst, folders = _archive_site(tmp_path, targets=("array-1",))
    remote = sshd.new_dir("fixity")
    StorageTargetFactory(institution=inst, name="sftp", url=sshd.url(remote, scheme="sftp"),
                         password_env="PDAS_TEST_SFTP_PASSWORD", known_hosts=sshd.known_hosts)
    archive = Archive.objects.get(mrn="001")
    ArchiveCopy.objects.create(archive=archive, target=inst.storage_targets.get(name="sftp"), path=archive.name,
                               status="missing")

    report = check_archives(institution=inst, actor="t", repair=True)
    copy = ArchiveCopy.objects.get(archive=archive, target__name="sftp")
    assert copy.status == "verified" and report.summary()["repaired"] == 1
    assert (remote / archive.name).read_bytes() == (folders["array-1"] / archive.name).read_bytes()
    assert copy.fixity_checks.latest("checked_at").method == "remote_hash"

    original = (remote / archive.name).read_bytes()
    data = bytearray(original)
    data[100] ^= 0xFF
    (remote / archive.name).write_bytes(bytes(data))
    check_archives(institution=inst, actor="t", check_all=True)
    assert ArchiveCopy.objects.get(pk=copy.pk).status == "corrupt"
    assert copy.fixity_checks.latest("checked_at").method == "remote_hash"
    check_archives(institution=inst, actor="t", repair=True)
    assert ArchiveCopy.objects.get(pk=copy.pk).status == "verified" and (remote / archive.name).read_bytes() == original

    (remote / archive.name).write_bytes(original[:-50])  # truncated: the nightly listing finds it
    check_archives(institution=inst, actor="t")
    assert ArchiveCopy.objects.get(pk=copy.pk).status == "corrupt"
    check_archives(institution=inst, actor="t", repair=True)
    assert (remote / archive.name).read_bytes() == original


def test_the_nightly_task_checks_and_repairs_every_institution(tmp_path):
    from archiver.tasks import check_archives_task

    inst, folders = _archive_site(tmp_path)
    InstitutionFactory(code="EMPTY", tps_url="file:///nonexistent/Patients")  # nothing archived: nothing to do
    archive = Archive.objects.get(mrn="001")
    (folders["array-1"] / archive.name).unlink()
    totals = check_archives_task.apply().get()
    assert totals["repaired"] == 1 and totals["verified"] == 4
    assert _status(archive, "array-1") == "verified"


@pytest.mark.servers
def test_an_ftps_copy_deleted_truncated_or_bit_flipped_is_found_and_repaired_byte_identical(tmp_path, ftp_server,
                                                                                            monkeypatch):
    monkeypatch.setenv("PDAS_TEST_FIXITY_FTPS_PASSWORD", ftp_server.password)
    inst, folders = _archive_site(tmp_path, targets=("array-1",), patients=(1,))
    folder = ftp_server.new_dir("fixity")
    remote = ftp_server.root / folder.lstrip("/")
    ftps = StorageTargetFactory(institution=inst, name="ftps", url=ftp_server.url(folder),
                                password_env="PDAS_TEST_FIXITY_FTPS_PASSWORD", ca_file=ftp_server.ca_file)
    archive = Archive.objects.get()
    ArchiveCopy.objects.create(archive=archive, target=ftps, path=archive.name, status="missing")
    check_archives(institution=inst, actor="t", repair=True)  # made there from array-1
    original = (folders["array-1"] / archive.name).read_bytes()
    assert _status(archive, "ftps") == "verified" and (remote / archive.name).read_bytes() == original

    def damage_and_repair(damage, found_as: str, *, full: bool) -> None:
        damage(remote / archive.name)
        check_archives(institution=inst, actor="t", check_all=full)
        assert _status(archive, "ftps") == found_as
        report = check_archives(institution=inst, actor="t", repair=True)
        repairs = AuditEvent.objects.filter(event="copy.repair").order_by("-id")
        assert _status(archive, "ftps") == "verified", [(e.outcome, e.detail.get("reason")) for e in repairs[:2]]
        assert report.summary()["repaired"] == 1
        assert (remote / archive.name).read_bytes() == original

    damage_and_repair(lambda path: path.unlink(), "missing", full=False)  # the listing finds it
    damage_and_repair(lambda path: path.write_bytes(original[:-100]), "corrupt", full=False)  # its size

    def flip(path):
        data = bytearray(path.read_bytes())
        data[len(data) // 3] ^= 0x01
        path.write_bytes(bytes(data))
    damage_and_repair(flip, "corrupt", full=True)  # same size: only the full read-back finds it
    assert ArchiveCopy.objects.get(archive=archive, target=ftps).fixity_checks.filter(method="read_back").exists()

    ftps.url = ftp_server.url(folder).replace(f":{ftp_server.port}", ":1")  # nothing listens there
    ftps.save()
    check_archives(institution=inst, actor="t", check_all=True)
    assert _status(archive, "ftps") == "unreachable", "a server that does not answer is unknown, never missing"
