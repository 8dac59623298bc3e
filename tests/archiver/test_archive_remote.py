"""Archiving a TPS reached over SSH (packed on its host by the pack script) to an FTPS array; and to an SMB share
and an S3 object store (with and without Object Lock), then rebuilding the lost index from them and restoring."""
from __future__ import annotations

import io
import tarfile

import pytest

from connectors.storage import ObjectLock, StorageError
from inventory.models import QuarantinedPatient
from archiver.services import archiving
from archiver.tasks import start_archive_run
from inventory.services.tps_sync import sync_institution
from curation.services.curate import run_curation
from demo_site import GroupSpec, PlanSpec, write_institution_file, write_patient
from tests.factories import InstitutionFactory, StorageTargetFactory

pytestmark = [pytest.mark.servers, pytest.mark.django_db]


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_ssh_tps_to_ftps_array(tmp_path, sshd, ftp_server, monkeypatch):
    local = tmp_path / "Patients"
    records = [write_patient(local, patient_id=n, mrn=f"00{n}", last_name="张", first_name=f"{n}号",
                             plans=[PlanSpec(0, "PLAN")], encoding="gb18030") for n in (1, 2)]
    write_institution_file(local, [GroupSpec(1, "ToArchive", records)], form="bare")
    paths = [r.tps_path for r in records]
    remote_root = sshd.put_tree(local, f"tps-{tmp_path.name}")
    originals = {p: _files(remote_root / p) for p in paths}
    monkeypatch.setenv("PDAS_TEST_TPS_PASSWORD", sshd.password)
    monkeypatch.setenv("PDAS_TEST_FTPS_PASSWORD", ftp_server.password)
    inst = InstitutionFactory(code="REMOTE", tps_url=sshd.url(remote_root), tps_password_env="PDAS_TEST_TPS_PASSWORD",
                              tps_known_hosts=sshd.known_hosts)
    folder = ftp_server.new_dir("array")
    StorageTargetFactory(institution=inst, name="ftps", url=ftp_server.url(folder),
                         password_env="PDAS_TEST_FTPS_PASSWORD", ca_file=ftp_server.ca_file)
    sync_institution(institution=inst, actor="test")
    run_curation(institution=inst, actor="test", refresh_tps=False)  # the archiver takes what curation allows

    run = start_archive_run(archiving.create_archive_run(institution=inst, actor="test"))
    results = {t.patient.tps_path: (t.result, t.reason, t.archive) for t in run.tasks.select_related("patient", "archive")}
    assert {r for r, _, _ in results.values()} == {"pass"}, results

    for path, (_, _, archive) in results.items():
        stored = ftp_server.root / folder.lstrip("/") / archive.name
        with tarfile.open(fileobj=io.BytesIO(stored.read_bytes()), mode="r:gz") as tar:
            names = tar.getnames()
            assert names[:2] == ["Institution", "PDAS-MANIFEST.json"]
            extracted = {m.name.removeprefix(path + "/"): tar.extractfile(m).read()
                         for m in tar.getmembers() if m.isfile() and m.name.startswith(path + "/")}
        assert extracted == originals[path]
        assert not (remote_root / path).exists()
        quarantined = remote_root / QuarantinedPatient.objects.get(tps_path=path).quarantine_path
        assert _files(quarantined) == originals[path]
    assert not list((remote_root / ".pdas-work").glob("*.tar.gz")), "packed files on the TPS host are cleaned up"


def test_planted_file_names_run_nothing_on_the_tps_host(tmp_path, sshd, monkeypatch):
    """Names an attacker plants in patient folders on an SSH TPS: tar options, a folder with a trailing
    space in front of a host path, a line break. Nothing runs, nothing of the host is archived, and the
    patient with the unparseable name fails alone with the reason."""
    local = tmp_path / "Patients"
    records = [write_patient(local, patient_id=n, mrn=f"00{n}", plans=[PlanSpec(0, "PLAN")]) for n in (1, 2)]
    write_institution_file(local, [GroupSpec(1, "ToArchive", records)], form="bare")
    hostile, broken = (local / r.tps_path for r in records)
    (hostile / "x --checkpoint=1 --checkpoint-action=exec=id>pwned").write_bytes(b"")
    (hostile / "y").write_bytes(b"")
    (hostile / "y " / "etc").mkdir(parents=True)
    (hostile / "y " / "etc" / "hostname").write_bytes(b"planted\n")
    (broken / "two\nlines").write_bytes(b"")
    remote_root = sshd.put_tree(local, f"tps-{tmp_path.name}")
    originals = _files(remote_root / records[0].tps_path)
    monkeypatch.setenv("PDAS_TEST_TPS_PASSWORD", sshd.password)
    inst = InstitutionFactory(code="HOSTILE", tps_url=sshd.url(remote_root), tps_password_env="PDAS_TEST_TPS_PASSWORD",
                              tps_known_hosts=sshd.known_hosts)
    array = tmp_path / "array"
    array.mkdir()
    StorageTargetFactory(institution=inst, name="array", url=f"file://{array}")
    sync_institution(institution=inst, actor="test")
    run_curation(institution=inst, actor="test", refresh_tps=False)

    run = start_archive_run(archiving.create_archive_run(institution=inst, actor="test"))
    results = {t.patient.tps_path: t for t in run.tasks.select_related("patient", "archive")}
    assert not list(sshd.root.rglob("pwned")), "a file name ran a command on the TPS host"
    good = results[records[0].tps_path]
    assert good.result == "pass", good.reason
    with tarfile.open(array / good.archive.name, "r:gz") as tar:
        names = tar.getnames()
        extracted = {m.name.removeprefix(records[0].tps_path + "/"): tar.extractfile(m).read()
                     for m in tar.getmembers() if m.isfile() and m.name.startswith(records[0].tps_path + "/")}
    assert "etc/hostname" not in names and len(names) == 2 + len(originals)
    assert extracted == originals
    bad = results[records[1].tps_path]
    assert bad.result == "error" and "line break" in bad.reason, bad.reason
    assert (remote_root / records[1].tps_path / "two\nlines").exists(), "the refused patient's originals stay"


# --- SMB shares and S3 object stores: archive, rebuild the lost index, restore ---------------------------


def _remote_target(kind, request, inst, monkeypatch):
    """A storage target of ``kind`` on its real server, configured as a site would (secrets by variable)."""
    if kind == "smb":
        samba = request.getfixturevalue("samba_server")
        monkeypatch.setenv("PDAS_TEST_SMB_PASSWORD", samba.password)
        return StorageTargetFactory(institution=inst, name="share", url=samba.url(samba.new_dir("array")),
                                    password_env="PDAS_TEST_SMB_PASSWORD")
    s3 = request.getfixturevalue("s3_server")
    monkeypatch.setenv("PDAS_TEST_S3_ACCESS_KEY", s3.access_key)
    monkeypatch.setenv("PDAS_TEST_S3_SECRET_KEY", s3.secret_key)
    return StorageTargetFactory(institution=inst, name="objects", url=s3.url(s3.new_bucket(object_lock=kind == "s3-locked")),
                                access_key_env="PDAS_TEST_S3_ACCESS_KEY", secret_key_env="PDAS_TEST_S3_SECRET_KEY",
                                ca_file=s3.ca_file)


@pytest.mark.django_db(transaction=True)  # flush (TRUNCATE on PostgreSQL) needs no open transaction
@pytest.mark.parametrize("kind", ["smb", "s3", "s3-locked"])
def test_archive_rebuild_index_and_restore_on_a_share_or_an_object_store(kind, request, tmp_path, settings,
                                                                          monkeypatch):
    from django.core.management import call_command

    from archiver.services.restore import run_restore
    from inventory.models import Archive, ArchiveCopy
    from sites.connections import open_target
    from tests.archiver.restore_site import archive_patients, build_site, tree
    from tests.archiver.test_commands_rebuild_index import _rebuild, _snapshot

    settings.DATA_DIR = tmp_path / "data"
    site = build_site(tmp_path, targets=())
    target = _remote_target(kind, request, site["inst"], monkeypatch)
    originals = {path: tree(site["root"] / path) for path in (site["zhang"], site["smith"])}
    archives = archive_patients(site["inst"], list(originals))
    assert set(ArchiveCopy.objects.values_list("status", flat=True)) == {ArchiveCopy.Status.VERIFIED}
    with open_target(target) as backend:
        stored = sorted(f.name for f in backend.list_files())
        assert stored == sorted(f"{a.name}{suffix}" for a in archives.values() for suffix in ("", ".sha256", ".manifest.json"))
        if kind == "s3-locked":  # the store itself keeps the archive until its retain_until
            archive = archives[site["zhang"]]
            assert backend.lock_of(archive.name).retain_until == archive.retain_until
            assert backend.lock_of(f"{archive.name}.manifest.json").retain_until == archive.retain_until
            with pytest.raises(StorageError, match="Object Lock"):
                backend.remove(archive.name)
    if kind == "s3-locked":  # later changes in PDAS reach the store once committed
        _legal_hold_and_retention_reach_the_store(archives[site["zhang"]], site["inst"], target)
    before = _snapshot()

    call_command("flush", "--no-input", verbosity=0)  # the PDAS database is lost; the site is configured again
    inst = InstitutionFactory(code="PUMCH", tps_url=f"file://{site['root']}")
    _remote_target(kind, request, inst, monkeypatch)
    StorageTargetFactory._meta.model.objects.filter(institution=inst).update(url=target.url)  # the same share/bucket
    code, report = _rebuild("--verify")
    assert code == 0, report
    assert report["counts"]["created"] == 2 and _snapshot() == before

    archive = Archive.objects.get(tps_path=site["zhang"])
    record = run_restore(archive=archive, institution=inst, actor="physicist")
    assert record.status == "done", record.reason
    assert tree(site["root"] / site["zhang"]) == originals[site["zhang"]]


def _legal_hold_and_retention_reach_the_store(archive, inst, target):
    import datetime as dt

    from inventory.models import Archive
    from inventory.services.legal_hold import set_legal_hold
    from inventory.services.retention import extend_retention
    from sites.connections import open_target

    set_legal_hold(archives=[archive], hold=True, reason="court order 17/2026", actor="test")
    later = dt.datetime(2031, 5, 4, 8, 0, tzinfo=dt.timezone.utc)
    assert extend_retention(institution=inst, latest_delivery={archive.mrn: later}, actor="test") >= 1
    archive = Archive.objects.get(pk=archive.pk)
    with open_target(target) as backend:
        for name in (archive.name, f"{archive.name}.sha256", f"{archive.name}.manifest.json"):
            assert backend.lock_of(name) == ObjectLock(retain_until=archive.retain_until, legal_hold=True), name
    set_legal_hold(archives=[archive], hold=False, reason="released by the court", actor="test")
    with open_target(target) as backend:
        assert not backend.lock_of(archive.name).legal_hold
