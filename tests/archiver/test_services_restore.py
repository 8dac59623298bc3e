"""Restore: find a patient's archives and put one back on the TPS, never damaging what is there.

What must hold in every case: the TPS ends with the whole patient, byte for byte as archived, or
with nothing of it (no staging folder either), and an existing patient folder is never touched.
"""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from archiver.models import RestoreRecord
from inventory.models import Archive, ArchiveCopy, FixityCheck, TpsPatient
from pinnacle.reader import read_institution_headers
from archiver.selectors import archive_candidates
from archiver.services.restore import runner
from archiver.services.restore import (
    ArchiveIntegrityError, RestoreError, RestoreRefused, choose_candidate, ensure_indexed, find_candidates,
    run_restore,
)
from inventory.services.tps_sync import sync_institution
from connectors.tps.local import LocalTpsSource
from connectors.tps.ssh import SshTpsSource
from audit.models import AuditEvent
from tests.tmpfs import mounted_tmpfs
from tests.archiver.restore_site import (
    archive_patients, build_site, everything, handmade_archive, mtimes, replace_archive, tree,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _downloads_in_tmp(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"


@pytest.fixture
def site(tmp_path):
    site = build_site(tmp_path)
    root = site["root"]
    site["originals"] = {p: tree(root / p) for p in (site["zhang"], site["namesake"], site["smith"])}
    site["mtimes"] = {p: mtimes(root / p) for p in (site["zhang"], site["namesake"], site["smith"])}
    site["archives"] = archive_patients(site["inst"], [site["zhang"], site["namesake"], site["smith"]])
    for path in site["originals"]:
        assert not (root / path).exists()  # archived and moved to the quarantine
    return site


def _restore(site, path, **kwargs):
    return run_restore(archive=site["archives"][path], institution=site["inst"], actor="physicist", **kwargs)


def _lites(root: Path) -> dict[str, list[str]]:
    return {d: [lite.patient_path for lite in h.patient_lites]
            for d, h in read_institution_headers(LocalTpsSource(root)).items()}


# --- the happy path -------------------------------------------------------------------------------------


def test_restore_puts_the_patient_back_byte_for_byte_and_marks_it_restored(site):
    root, path = site["root"], site["zhang"]
    record = _restore(site, path)

    assert record.status == RestoreRecord.Status.DONE, record.reason
    assert record.tps_path == path and record.files == len(site["originals"][path])
    assert tree(root / path) == site["originals"][path]
    assert mtimes(root / path) == site["mtimes"][path]  # the archive's times, not the restore's
    assert path in _lites(root)["Institution_1"]
    assert not [p for p in everything(root) if "restore-" in p or ".pdas-tmp-" in p]  # no staging left

    row = TpsPatient.objects.get(institution=site["inst"], tps_path=path)
    assert row.present and row.restored_from == site["archives"][path] and row.is_unchanged_restore
    assert row.mrn == "000123" and row.last_name == "张" and row.plans.count() == 2
    event = AuditEvent.objects.get(event="restore")
    assert event.mrns == ["000123"] and event.actor == "physicist" and event.outcome == "ok"
    assert event.detail["archive"] == site["archives"][path].name and event.detail["tps_path"] == path
    # The download was a fixity check of the first target's copy.
    check = FixityCheck.objects.filter(copy__archive=site["archives"][path]).latest("checked_at")
    assert check.outcome == "pass" and "restore" in check.reason


@pytest.fixture
def curation_allows_everyone(monkeypatch):
    """The archiver's own rule alone: curation (which also holds restored patients back) lets all through."""
    try:
        import curation.selectors
    except ImportError:
        return
    monkeypatch.setattr(curation.selectors, "curation_allows", lambda patients, institution: patients)


def test_the_archiver_skips_a_restored_patient_until_it_changes(site, curation_allows_everyone):
    root, path = site["root"], site["zhang"]
    _restore(site, path)
    sync_institution(institution=site["inst"], actor="test")  # a later sync finds it unchanged
    row = TpsPatient.objects.get(institution=site["inst"], tps_path=path)
    assert row.is_unchanged_restore
    assert not archive_candidates(institution=site["inst"]).filter(tps_path=path).exists()

    trial = root / path / "Plan_0" / "plan.Trial"
    trial.write_bytes(trial.read_bytes() + b"\n")
    sync_institution(institution=site["inst"], actor="test")
    row.refresh_from_db()
    assert not row.is_unchanged_restore
    assert archive_candidates(institution=site["inst"]).filter(tps_path=path).exists()


def test_restore_into_a_folder_with_to(site, tmp_path):
    out = tmp_path / "review" / "new"
    record = _restore(site, site["smith"], to_dir=out)
    assert record.status == "done" and record.destination == str(out)
    assert tree(out / site["smith"]) == site["originals"][site["smith"]]
    assert _lites(out) == {"Institution_1": [site["smith"]]}
    assert not TpsPatient.objects.filter(restored_from__isnull=False).exists()  # not a TPS restore
    assert not (site["root"] / site["smith"]).exists()


def test_restore_group_elsewhere_moves_the_patient_and_its_patient_path(site):
    site["inst"].restore_group = "Clinical"
    site["inst"].save()
    record = _restore(site, site["smith"])
    new_path = "Institution_2/Mount_0/Patient_9"
    assert record.tps_path == new_path
    restored = tree(site["root"] / new_path)
    original = {k: v for k, v in site["originals"][site["smith"]].items()}
    assert {k for k in restored} == set(original)
    assert restored["Patient"] == original["Patient"].replace(site["smith"].encode(), new_path.encode())
    assert all(restored[k] == original[k] for k in original if k != "Patient")
    assert new_path in _lites(site["root"])["Institution_2"]
    assert TpsPatient.objects.get(tps_path=new_path).group == "Clinical"


def test_falls_back_to_the_next_target_when_a_copy_is_damaged(site):
    archive = site["archives"][site["zhang"]]
    first = site["arrays"][0] / archive.name
    data = bytearray(first.read_bytes())
    data[len(data) // 2] ^= 0xFF
    first.write_bytes(bytes(data))

    record = _restore(site, site["zhang"])
    assert record.status == "done" and "array-2" in record.reason
    assert tree(site["root"] / site["zhang"]) == site["originals"][site["zhang"]]
    bad = ArchiveCopy.objects.get(archive=archive, target__name="array-1")
    assert bad.status == ArchiveCopy.Status.CORRUPT
    assert bad.fixity_checks.latest("checked_at").outcome == "fail"


def test_every_copy_damaged_is_an_integrity_error_and_nothing_is_written(site):
    archive = site["archives"][site["zhang"]]
    for array in site["arrays"]:
        (array / archive.name).write_bytes((array / archive.name).read_bytes()[:-10] + b"0123456789")
    before = everything(site["root"])
    with pytest.raises(ArchiveIntegrityError) as err:
        _restore(site, site["zhang"])
    assert err.value.exit_code == 1 and "array-1" in str(err.value) and "array-2" in str(err.value)
    assert everything(site["root"]) == before
    assert err.value.record.status == RestoreRecord.Status.REFUSED


def test_a_sidecar_that_disagrees_with_the_record_is_not_trusted(site):
    archive = site["archives"][site["zhang"]]
    for array in site["arrays"]:
        (array / f"{archive.name}.sha256").write_text(f"{'0' * 64} *{archive.name}\n")
    with pytest.raises(ArchiveIntegrityError, match=r"\.sha256 differs"):
        _restore(site, site["zhang"])
    assert not (site["root"] / site["zhang"]).exists()


# --- never overwrite ------------------------------------------------------------------------------------


def test_an_existing_patient_folder_is_never_overwritten(site):
    root, path = site["root"], site["zhang"]
    (root / path).mkdir(parents=True)
    (root / path / "Patient").write_bytes(b"someone's current work")
    before = everything(root)
    header = (root / "Institution").read_bytes()
    with pytest.raises(RestoreRefused, match="already exists") as err:
        _restore(site, path)
    assert err.value.exit_code == 2 and "nothing was written" in str(err.value)
    assert (root / path / "Patient").read_bytes() == b"someone's current work"
    assert everything(root) == before and (root / "Institution").read_bytes() == header
    assert RestoreRecord.objects.get().status == RestoreRecord.Status.REFUSED
    assert AuditEvent.objects.get(event="restore").outcome == "denied"


def test_the_same_pinnacle_patient_elsewhere_on_the_tps_is_not_duplicated(site):
    _restore(site, site["zhang"])
    site["inst"].restore_group = "Clinical"
    site["inst"].save()
    with pytest.raises(RestoreRefused, match="Patient_7 is already on the TPS at Institution_1/Mount_0/Patient_7"):
        _restore(site, site["zhang"])
    assert not (site["root"] / "Institution_2/Mount_0/Patient_7").exists()


def test_a_restore_group_missing_from_the_tps_is_a_clear_error(site):
    site["inst"].restore_group = "Nowhere"
    site["inst"].save()
    with pytest.raises(RestoreError, match="restore group 'Nowhere'") as err:
        _restore(site, site["zhang"])
    assert err.value.exit_code == 2


# --- tampered archives ------------------------------------------------------------------------------------


def _tampered(site, case: str, outside: Path):
    """The real archive of patient 9 rebuilt by hand with one kind of tampering."""
    archive = site["archives"][site["smith"]]
    manifest = json.loads(json.dumps(archive.manifest))
    patient = site["smith"]
    files = [(f"{patient}/{name}", data) for name, data in site["originals"][patient].items()]
    members: list[tuple] = [("Institution_1/", None), ("Institution_1/Mount_0/", None), (f"{patient}/", None),
                            (f"{patient}/Plan_0/", None), *files]
    if case == "extra member":  # the same path twice: the second would replace the checked one
        members.append((files[0][0], b"replaced after the check"))
    elif case == "member not in the manifest":
        members.append((f"{patient}/Plan_0/plan.extra", b"unlisted"))
    elif case == "dot-dot member":
        members.append((f"{patient}/../../../../{outside.name}/evil", b"escaped"))
    elif case == "absolute path":
        members.append((f"{outside}/evil", b"absolute"))
    elif case == "symlink outside":
        members += [(f"{patient}/Plan_9", "symlink", str(outside)), (f"{patient}/Plan_9/evil", b"through the link")]
    elif case == "hardlink outside":
        members.append((f"{patient}/passwd", "hardlink", "/etc/passwd"))
    elif case == "outside the patient folder":  # listed in the manifest too, so only placement catches it
        manifest["files"].append({"path": "Institution_1/Mount_0/Patient_99/Patient", "size": 5,
                                  "sha256": __import__("hashlib").sha256(b"other").hexdigest()})
        members.append(("Institution_1/Mount_0/Patient_99/Patient", b"other"))
    elif case == "size differs":
        name, data = files[-1]
        members[members.index((name, data))] = (name, data + b"x")
    replace_archive(archive, site["arrays"], handmade_archive(manifest, members), manifest)


TAMPERING = ["extra member", "member not in the manifest", "dot-dot member", "absolute path", "symlink outside",
             "hardlink outside", "outside the patient folder", "size differs"]


@pytest.mark.parametrize("case", TAMPERING)
def test_a_tampered_archive_is_refused_before_anything_is_written(site, tmp_path, case):
    outside = tmp_path / f"outside-{uuid.uuid4().hex[:6]}"
    outside.mkdir()
    _tampered(site, case, outside)
    before = everything(site["root"])
    header = (site["root"] / "Institution").read_bytes()
    with pytest.raises(ArchiveIntegrityError, match="refused, nothing was written") as err:
        _restore(site, site["smith"])
    assert err.value.exit_code == 1
    assert everything(site["root"]) == before and (site["root"] / "Institution").read_bytes() == header
    assert list(outside.iterdir()) == []
    assert RestoreRecord.objects.get().status == RestoreRecord.Status.REFUSED
    # A refused archive is no longer counted as an archive: every copy of those bytes is corrupt.
    archive = Archive.objects.get(pk=site["archives"][site["smith"]].pk)
    assert archive.status == Archive.Status.FAILED and not archive.is_safely_stored()
    assert set(archive.copies.values_list("status", flat=True)) == {ArchiveCopy.Status.CORRUPT}
    assert AuditEvent.objects.filter(event="archive.verify", outcome="failed", object_id=str(archive.pk)).exists()


def test_the_untampered_handmade_archive_restores(site, tmp_path):
    """The control for the tampering cases: the same hand-made archive without tampering is accepted."""
    _tampered(site, "none", tmp_path)
    record = _restore(site, site["smith"])
    assert record.status == "done"
    assert tree(site["root"] / site["smith"]) == site["originals"][site["smith"]]


def test_a_changed_byte_is_caught_by_the_digest(site):
    archive = site["archives"][site["smith"]]
    for array in site["arrays"]:
        data = bytearray((array / archive.name).read_bytes())
        data[-40] ^= 0x01
        (array / archive.name).write_bytes(bytes(data))
    with pytest.raises(ArchiveIntegrityError, match="SHA-256 differs"):
        _restore(site, site["smith"])
    assert not (site["root"] / site["smith"]).exists()


# --- failing cleanly ----------------------------------------------------------------------------------------


def test_an_institution_file_that_cannot_be_written_undoes_the_restore(site, monkeypatch):
    from connectors.tps.base import TpsError

    def full(*args, **kwargs):
        raise TpsError("cannot write Institution: No space left on device")

    monkeypatch.setattr("pinnacle.institution_file.add_patient_lite", full)
    before = everything(site["root"])
    with pytest.raises(RestoreError, match="the restore was undone") as err:
        _restore(site, site["zhang"])
    assert err.value.exit_code == 2
    assert everything(site["root"]) - before <= {".pdas-work"}
    assert not (site["root"] / site["zhang"]).exists()
    assert not TpsPatient.objects.filter(restored_from__isnull=False).exists()


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MB tmpfs (root only); skipped without the right to mount."""
    with mounted_tmpfs(tmp_path / "tiny", "1m",
                       why_skipped="; test_a_full_disk_by_enospc covers the same path by simulation") as mount:
        yield mount


@pytest.mark.parametrize("space_known", [True, False], ids=["checked-before", "filled-while-writing"])
def test_a_full_disk_fails_cleanly(tmp_path, tiny_disk, settings, monkeypatch, space_known):
    if not space_known:  # the disk filled up after the check (another writer): the write itself fails
        monkeypatch.setattr(LocalTpsSource, "free_bytes", lambda self, rel: 1 << 40)
    site = build_site(tmp_path, big=True)
    archive = archive_patients(site["inst"], [site["zhang"]])[site["zhang"]]
    # The TPS now lives on a 1 MB disk: its Institution file and the empty groups.
    (tiny_disk / "Institution").write_bytes((site["root"] / "Institution").read_bytes())
    (tiny_disk / "Institution_1" / "Mount_0").mkdir(parents=True)
    site["inst"].tps_url = f"file://{tiny_disk}"
    site["inst"].save()
    before = everything(tiny_disk)
    expected = "not enough free space at TPS group ToArchive" if space_known else "No space left on device"
    with pytest.raises(RestoreError, match=expected) as err:
        run_restore(archive=archive, institution=site["inst"], actor="physicist")
    assert "\n" not in str(err.value) and err.value.exit_code == 2
    assert everything(tiny_disk) - before <= {".pdas-work"}
    assert not (tiny_disk / ".pdas-work").exists() or list((tiny_disk / ".pdas-work").iterdir()) == []
    assert err.value.record.status == RestoreRecord.Status.FAILED


def test_a_full_disk_by_enospc(site, monkeypatch):
    """The full-disk path without mounting: the write fails as a full disk makes it fail."""
    import errno

    real = LocalTpsSource.write_stream_atomic
    calls = {"n": 0}

    def fill_up(self, rel, chunks, *, mtime=None):
        calls["n"] += 1
        if calls["n"] == 3:
            raise self._fail(OSError(errno.ENOSPC, "No space left on device"), "write", rel)
        return real(self, rel, chunks, mtime=mtime)

    monkeypatch.setattr(LocalTpsSource, "write_stream_atomic", fill_up)
    before = everything(site["root"])
    with pytest.raises(RestoreError, match="No space left on device"):
        _restore(site, site["zhang"])
    assert everything(site["root"]) - before <= {".pdas-work"}
    assert not (site["root"] / site["zhang"]).exists()


# --- finding candidates ---------------------------------------------------------------------------------------


def test_find_by_mrn_lists_both_patients_sharing_it_and_refuses_to_guess(site):
    candidates = find_candidates(institution=site["inst"], mrn="000123", actor="physicist")
    assert sorted(c.tps_path for c in candidates) == [site["zhang"], site["namesake"]]
    assert all(c.archive_id and c.targets == ["array-1", "array-2"] and c.status == "verified" for c in candidates)
    with pytest.raises(RestoreRefused, match="matches 2 different patients") as err:
        choose_candidate(candidates, asked="MRN 000123")
    assert "ZHANG-SAN_000123" in str(err.value) and "LI-SI_000123" in str(err.value)
    chosen = choose_candidate(candidates, archive_name=site["archives"][site["namesake"]].name, asked="MRN 000123")
    assert chosen.tps_path == site["namesake"]
    event = AuditEvent.objects.get(event="restore.search")
    assert event.mrns == ["000123"] and event.detail["candidates"] == 2


def test_several_archives_of_one_patient_pick_the_newest(site):
    older = site["archives"][site["smith"]]
    newer = Archive.objects.get(pk=older.pk)
    newer.pk = None
    newer.name = older.name.replace(".tar.gz", "_2.tar.gz")
    newer.packed_at = older.packed_at + __import__("datetime").timedelta(days=30)
    newer.save()
    for copy in older.copies.all():
        copy.pk, copy.archive = None, newer
        copy.save()
    candidates = find_candidates(institution=site["inst"], mrn="000124", search_targets=False)
    assert [c.name for c in candidates] == [newer.name, older.name]
    assert choose_candidate(candidates, asked="MRN 000124").name == newer.name


def test_find_by_any_of_the_patients_mrns_in_the_index_and_on_the_targets(site):
    from lossdetect.models import MrnAlias

    archive = site["archives"][site["smith"]]  # archived as 000124; the patient was renumbered, then merged
    MrnAlias.objects.create(institution=site["inst"], old_mrn="000124", mrn="777124", reason="renumbered")
    MrnAlias.objects.create(institution=site["inst"], old_mrn="777124", mrn="888124", reason="merged")
    assert [c.name for c in find_candidates(institution=site["inst"], mrn="888124", search_targets=False)] == [
        archive.name]
    assert AuditEvent.objects.filter(event="restore.search").latest("id").mrns == ["000124"]
    name = archive.name
    archive.quarantined.all().delete()
    archive.delete()
    found = find_candidates(institution=site["inst"], mrn="777124")
    assert [(c.name, c.status, c.mrn) for c in found] == [(name, "not indexed", "000124")]
    assert list(find_candidates(institution=site["inst"], mrn="999124")) == []


@pytest.mark.parametrize("query", ["张三", "张 三", "zhang san", "ZHANG", "san"])
def test_find_by_name_in_chinese_or_pinyin(site, query):
    names = [c.name for c in find_candidates(institution=site["inst"], name=query)]
    assert names == [site["archives"][site["zhang"]].name]


@pytest.mark.parametrize("query", ["tar", "gz", "2019"])
def test_name_search_looks_at_names_not_the_rest_of_the_file_name(site, query):
    assert list(find_candidates(institution=site["inst"], name=query)) == []


def test_archives_the_database_does_not_know_are_found_on_the_targets(site):
    archive = site["archives"][site["smith"]]
    name = archive.name
    archive.quarantined.all().delete()
    archive.delete()
    candidates = find_candidates(institution=site["inst"], mrn="000124")
    assert [(c.name, c.status, c.archive_id, c.targets) for c in candidates] == [
        (name, "not indexed", None, ["array-1", "array-2"])]
    assert candidates[0].plans == ["PLAN A"] and candidates[0].last_name == "Smith"

    indexed = ensure_indexed(institution=site["inst"], name=name, actor="physicist")
    assert indexed.status == Archive.Status.PACKED
    assert indexed.copies.get().status == ArchiveCopy.Status.UPLOADED  # the first target's copy
    record = run_restore(archive=indexed, institution=site["inst"], actor="physicist")
    assert record.status == "done"
    assert tree(site["root"] / site["smith"]) == site["originals"][site["smith"]]
    indexed.refresh_from_db()
    assert indexed.status == Archive.Status.VERIFIED  # verified by the restore's full read


def test_a_planted_archive_indexed_from_its_sidecars_is_not_verified_by_a_refused_restore(site, tmp_path):
    """The digest of a hand-made archive equals its own sidecar; its content is refused, so it is
    recorded failed, never verified (circular verification)."""
    _tampered(site, "member not in the manifest", tmp_path)
    archive = site["archives"][site["smith"]]
    name = archive.name
    archive.quarantined.all().delete()
    archive.delete()
    indexed = ensure_indexed(institution=site["inst"], name=name, actor="physicist")
    assert indexed.status == Archive.Status.PACKED
    with pytest.raises(ArchiveIntegrityError):
        run_restore(archive=indexed, institution=site["inst"], actor="physicist")
    indexed.refresh_from_db()
    assert indexed.status == Archive.Status.FAILED
    assert not Archive.objects.filter(pk=indexed.pk).safely_stored().exists()


def test_an_unreachable_target_is_unknown_not_empty(site):
    site["inst"].storage_targets.filter(name="array-2").update(url=f"file://{site['arrays'][1]}-gone")
    candidates = find_candidates(institution=site["inst"], mrn="999999")
    assert list(candidates) == [] and len(candidates.unreachable) == 1 and "array-2" in candidates.unreachable[0]
    with pytest.raises(RestoreRefused, match="targets not searched: array-2"):
        choose_candidate(candidates, asked="MRN 999999")


def test_a_search_needs_an_mrn_or_a_name(site):
    with pytest.raises(RestoreRefused, match="MRN or a name"):
        find_candidates(institution=site["inst"], mrn="  ")


def test_the_staging_folder_is_under_the_tps_root(site, monkeypatch):
    seen = []
    real = runner._Restore._move_into_place

    def spy(self, dest, staging, patient_path):
        seen.append(sorted(p for p in everything(site["root"]) if p.startswith(staging)))
        return real(self, dest, staging, patient_path)

    monkeypatch.setattr(runner._Restore, "_move_into_place", spy)
    record = _restore(site, site["smith"])
    assert seen and seen[0][0] == f".pdas-work/restore-{record.pk}"
    assert f".pdas-work/restore-{record.pk}/{site['smith']}/Patient" in seen[0]


# --- real servers: SFTP and FTPS targets, a TPS over SSH ------------------------------------------------------


def _remote_target(kind: str, request, inst, monkeypatch) -> None:
    from tests.factories import StorageTargetFactory

    if kind == "sftp":
        sshd = request.getfixturevalue("sshd")
        folder = sshd.root / f"array-{uuid.uuid4().hex[:8]}"
        folder.mkdir()
        sshd.give_to_user(folder)
        StorageTargetFactory(institution=inst, name="sftp-array", url=sshd.url(folder, scheme="sftp"),
                             key_file=sshd.key_file, known_hosts=sshd.known_hosts)
        return
    server = request.getfixturevalue("ftp_server" if kind == "ftps" else "ftp_server_plain")
    monkeypatch.setenv("PDAS_TEST_RESTORE_FTP_PASSWORD", server.password)
    StorageTargetFactory(institution=inst, name=f"{kind}-array", url=server.url(server.new_dir()),
                         password_env="PDAS_TEST_RESTORE_FTP_PASSWORD", ca_file=server.ca_file or "",
                         allow_plain_ftp=kind == "ftp")


@pytest.fixture
def remote_site(request, tmp_path, monkeypatch):
    """Archives of patients 7 and 9 on one SFTP, FTPS or FTP target (``request.param``)."""
    site = build_site(tmp_path, targets=())
    _remote_target(request.param, request, site["inst"], monkeypatch)
    root = site["root"]
    site["originals"] = {p: tree(root / p) for p in (site["zhang"], site["smith"])}
    site["mtimes"] = {p: mtimes(root / p) for p in (site["zhang"], site["smith"])}
    site["archives"] = archive_patients(site["inst"], [site["zhang"], site["smith"]])
    return site


def _tps_over_ssh(site, sshd) -> Path:
    """Move the site's TPS tree into the SSH account and point the institution at it."""
    remote = sshd.put_tree(site["root"], f"Patients-{uuid.uuid4().hex[:8]}")
    inst = site["inst"]
    inst.tps_url, inst.tps_key_file, inst.tps_known_hosts = sshd.url(remote), sshd.key_file, sshd.known_hosts
    inst.save()
    return remote


@pytest.mark.servers
@pytest.mark.parametrize("remote_site", ["sftp", "ftps", "ftp"], indirect=True)
def test_restore_from_a_remote_target_is_byte_for_byte(remote_site):
    site, path = remote_site, remote_site["smith"]
    record = _restore(site, path)
    assert record.status == "done", record.reason
    assert tree(site["root"] / path) == site["originals"][path]
    assert mtimes(site["root"] / path) == site["mtimes"][path]
    copy = site["archives"][path].copies.get()
    assert copy.fixity_checks.latest("checked_at").outcome == "pass"


@pytest.mark.servers
@pytest.mark.parametrize("remote_site", ["sftp"], indirect=True)
def test_a_file_name_that_is_not_utf8_on_an_sftp_target_stops_nothing(remote_site):
    """A GB18030 name (测试) planted beside the archives: paramiko's strict decoding made every listing, and
    so every restore search and rebuild_index of the institution, fail. It is listed with surrogate escapes,
    matches no archive, and is named printably where it is reported."""
    from archiver.services.archive_index import rebuild_index
    from sites.models import StorageTarget

    site = remote_site
    folder = Path(urlsplit(StorageTarget.objects.get(institution=site["inst"]).url).path)
    planted = os.path.join(os.fsencode(folder), "测试".encode("gb18030") + b".tar.gz")
    with open(planted, "wb") as handle:
        handle.write(b"not an archive")
    os.chown(planted, folder.stat().st_uid, folder.stat().st_gid)

    record = _restore(site, site["smith"])
    assert record.status == "done", record.reason
    assert tree(site["root"] / site["smith"]) == site["originals"][site["smith"]]

    report = rebuild_index(institution=site["inst"], actor="it")
    assert report.targets == ["sftp-array"] and report.archives_seen == 2 and report.known == 2
    assert all(problem.isprintable() and "\\udc" not in repr(problem) for problem in report.problems)


@pytest.mark.servers
@pytest.mark.parametrize("remote_site", ["sftp"], indirect=True)
def test_restore_onto_a_tps_over_ssh_is_byte_for_byte(remote_site, sshd):
    site, path = remote_site, remote_site["zhang"]
    remote = _tps_over_ssh(site, sshd)
    record = _restore(site, path)
    assert record.status == "done", record.reason
    assert tree(remote / path) == site["originals"][path]
    assert mtimes(remote / path) == site["mtimes"][path]
    assert path in _lites(remote)["Institution_1"]
    assert not [p for p in everything(remote) if "restore-" in p or ".pdas-tmp-" in p]
    row = TpsPatient.objects.get(institution=site["inst"], tps_path=path)
    assert row.is_unchanged_restore and row.restored_from == site["archives"][path]
    # Refused the second time, over SSH too.
    with pytest.raises(RestoreRefused, match="already exists"):
        _restore(site, path)


@pytest.fixture
def tiny_disk_for_ssh(sshd):
    """A 1 MB tmpfs in the SSH account's folder, owned by the account."""
    with mounted_tmpfs(sshd.root / f"tiny-{uuid.uuid4().hex[:8]}", "1m", owner=sshd.user) as mount:
        yield mount


@pytest.mark.servers
@pytest.mark.parametrize("space_known", [True, False], ids=["df-on-the-host", "filled-while-writing"])
def test_a_full_disk_over_ssh_fails_cleanly(tmp_path, sshd, tiny_disk_for_ssh, monkeypatch, space_known):
    if not space_known:
        monkeypatch.setattr(SshTpsSource, "free_bytes", lambda self, rel: 1 << 40)
    site = build_site(tmp_path, big=True)
    archive = archive_patients(site["inst"], [site["zhang"]])[site["zhang"]]
    remote = tiny_disk_for_ssh
    (remote / "Institution").write_bytes((site["root"] / "Institution").read_bytes())
    (remote / "Institution_1" / "Mount_0").mkdir(parents=True)
    sshd.give_to_user(remote)
    inst = site["inst"]
    inst.tps_url, inst.tps_key_file, inst.tps_known_hosts = sshd.url(remote), sshd.key_file, sshd.known_hosts
    inst.save()
    before = everything(remote)
    with pytest.raises(RestoreError) as err:
        run_restore(archive=archive, institution=inst, actor="physicist")
    expected = "cannot write" if not space_known else "not enough free space at TPS group"
    assert "\n" not in str(err.value) and err.value.exit_code == 2 and expected in str(err.value), str(err.value)
    assert everything(remote) - before <= {".pdas-work"}
    assert not (remote / ".pdas-work").exists() or list((remote / ".pdas-work").iterdir()) == []


def test_a_zstd_archive_restores(tmp_path):
    site = build_site(tmp_path, targets=("array-1",))
    site["inst"].codec = "zstd"
    site["inst"].save()
    original = tree(site["root"] / site["smith"])
    archive = archive_patients(site["inst"], [site["smith"]])[site["smith"]]
    assert archive.name.endswith(".tar.zst")
    record = run_restore(archive=archive, institution=site["inst"], actor="physicist")
    assert record.status == "done" and tree(site["root"] / site["smith"]) == original


def test_a_download_that_cannot_fit_on_the_pdas_server_is_refused_before_anything_is_written(tmp_path, settings):
    site = build_site(tmp_path, big=True)
    archive = archive_patients(site["inst"], [site["zhang"]])[site["zhang"]]
    with mounted_tmpfs(tmp_path / "data", "1m", why_skipped="") as data:
        settings.DATA_DIR = data
        before = everything(site["root"])
        with pytest.raises(RestoreError, match="not enough free space for the download in") as err:
            run_restore(archive=archive, institution=site["inst"], actor="physicist")
        assert everything(site["root"]) == before and err.value.record.status == RestoreRecord.Status.FAILED


def test_free_bytes_reads_df_on_the_tps_host(tmp_path):
    import shutil as sh

    from connectors.tps.base import TpsSource

    source = LocalTpsSource(tmp_path)
    by_df = TpsSource.free_bytes(source, "")  # the df path the SSH source uses, on this host
    assert by_df is not None and abs(by_df - sh.disk_usage(tmp_path).free) < 64 << 20


@pytest.mark.parametrize("typed", ["０００１２４", " 000124 ", "000124\u3000"])
def test_an_mrn_typed_with_a_chinese_input_method_finds_the_patient(site, typed):
    archive = site["archives"][site["smith"]]
    assert [c.name for c in find_candidates(institution=site["inst"], mrn=typed, search_targets=False)] == [
        archive.name]
    assert [c.name for c in find_candidates(institution=site["inst"], mrn=typed)] == [archive.name]


def test_letters_in_an_mrn_and_a_name_match_in_any_case_and_width(site):
    archive = site["archives"][site["smith"]]
    Archive.objects.filter(pk=archive.pk).update(mrn="AB000124")
    assert [c.mrn for c in find_candidates(institution=site["inst"], mrn="ａｂ000124", search_targets=False)] == [
        "AB000124"]
    assert archive.name in [c.name for c in find_candidates(institution=site["inst"], name="ＳＭＩＴＨ",
                                                            search_targets=False)]


# --- an array reached by two institutions ------------------------------------------------------------------


def test_another_institutions_archive_on_our_target_is_never_found_indexed_or_restored(tmp_path):
    """A folder both institutions reach (the site rules refuse one URL for two; a mount or a second host
    name slips past them): OTHER's physicist must not find, index or restore PUMCH's patient."""
    import shutil

    from archiver.services.archive_index import rebuild_index
    from tests.factories import InstitutionFactory, StorageTargetFactory

    site = build_site(tmp_path, targets=("array-1",))
    archives = archive_patients(site["inst"], [site["smith"]])
    name = archives[site["smith"]].name
    ours = tmp_path / "other-array"
    ours.mkdir()
    other = InstitutionFactory(code="OTHER", tps_url=f"file://{tmp_path / 'other-tps'}")
    StorageTargetFactory(institution=other, name="array", url=f"file://{ours}")
    for planted in site["arrays"][0].iterdir():
        shutil.copy2(planted, ours / planted.name)

    assert list(find_candidates(institution=other, mrn="000124", actor="physicist")) == []
    assert list(find_candidates(institution=other, name="Smith", actor="physicist")) == []
    with pytest.raises(RestoreRefused, match="the manifest belongs to institution 'PUMCH', not 'OTHER'"):
        ensure_indexed(institution=other, name=name, actor="physicist")
    report = rebuild_index(institution=other, actor="it")
    assert report.created == [] and any("belongs to institution 'PUMCH'" in p for p in report.problems)
    assert not Archive.objects.filter(institution=other).exists()
