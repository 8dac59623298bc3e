"""An institution with an encrypted target (``encrypt_to``) beside a plain one, through the whole pipeline on
real folders: archiving writes only age objects named after the archive's SHA-256 there, the checks find a
flipped byte with no key and repair re-encrypts, a restore from that target alone decrypts with the
identity (and without one says so and uses nothing), and the index is rebuilt from it."""
from __future__ import annotations

import hashlib
import re

import pytest
from pyrage import x25519

from archiver.services.fixity import check_archives
from archiver.services.restore import RestoreError, run_restore
from audit.models import AuditEvent
from inventory.models import Archive, ArchiveCopy
from tests.archiver.restore_site import archive_patients, build_site, tree
from tests.factories import StorageTargetFactory

pytestmark = pytest.mark.django_db

NO_IDENTITY = "target offsite is encrypted and no identity is configured (identity_file or identity_env)"


@pytest.fixture
def key(tmp_path):
    identity = x25519.Identity.generate()
    path = tmp_path / "offsite-key.txt"
    path.write_text(f"# created for a test\n{identity}\n")
    path.chmod(0o600)
    return {"identity": str(identity), "recipient": str(identity.to_public()), "file": str(path)}


def _encrypted_site(tmp_path, settings, key) -> dict:
    """Two patients archived to a plain folder (array-1) and an encrypted one (offsite), no identity set."""
    settings.DATA_DIR = tmp_path / "data"
    site = build_site(tmp_path, targets=("array-1",))
    offsite = tmp_path / "offsite"
    offsite.mkdir()
    site["offsite"] = offsite
    site["target"] = StorageTargetFactory(institution=site["inst"], name="offsite", url=f"file://{offsite}",
                                          priority=5, encrypt_to=[key["recipient"]])
    site["originals"] = {p: tree(site["root"] / p) for p in (site["zhang"], site["smith"])}
    site["archives"] = archive_patients(site["inst"], [site["zhang"], site["smith"]])
    return site


def _copy(archive: Archive, target_name: str) -> ArchiveCopy:
    return ArchiveCopy.objects.select_related("archive", "target").get(archive=archive, target__name=target_name)


def _flip_a_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_archiving_puts_only_encrypted_objects_named_by_digest_on_the_target(tmp_path, settings, key):
    site = _encrypted_site(tmp_path, settings, key)
    stored = sorted(p.name for p in site["offsite"].iterdir())
    expected = []
    for archive in site["archives"].values():
        copy = _copy(archive, "offsite")
        names = copy.encrypted_names()
        expected += names.all()
        encrypted = (site["offsite"] / names.archive).read_bytes()
        assert encrypted.startswith(b"age-encryption.org/v1\n")
        assert copy.status == ArchiveCopy.Status.VERIFIED and copy.path == names.archive
        # Both digests: the archive's, hashed as it was encrypted, and that of the encrypted bytes.
        assert (copy.checksum, copy.size) == (archive.checksum, archive.size)
        assert (copy.encrypted_sha256, copy.encrypted_size) == (hashlib.sha256(encrypted).hexdigest(), len(encrypted))
        assert (site["offsite"] / names.archive_sidecar).read_text() == f"{copy.encrypted_sha256} *{names.archive}\n"
        assert _copy(archive, "array-1").status == ArchiveCopy.Status.VERIFIED
    assert stored == sorted(expected)
    for archive in site["archives"].values():  # no patient identifier in any name or any byte in clear
        assert not any(archive.mrn in name or archive.name in name for name in stored)
        for path in site["offsite"].iterdir():
            assert archive.mrn.encode() not in path.read_bytes() or path.suffix == ".age"


def test_a_flipped_byte_is_found_without_the_key_and_repaired_by_encrypting_again(tmp_path, settings, key):
    site = _encrypted_site(tmp_path, settings, key)
    archive = site["archives"][site["zhang"]]
    names = _copy(archive, "offsite").encrypted_names()
    before = (site["offsite"] / names.archive).read_bytes()
    _flip_a_byte(site["offsite"] / names.archive)

    report = check_archives(institution=site["inst"], actor="test", check_all=True)
    results = {(c.archive, c.target): c for c in report.copies}
    bad = results[(archive.name, "offsite")]
    assert bad.status == "corrupt" and "differs" in bad.reason, bad
    assert results[(site["archives"][site["smith"]].name, "offsite")].status == "verified"

    report = check_archives(institution=site["inst"], actor="test", check_all=True, repair=True)
    assert report.all_verified and report.summary()["repaired"] == 1, report.as_dict()
    copy = _copy(archive, "offsite")
    again = (site["offsite"] / names.archive).read_bytes()
    assert again != before and copy.encrypted_sha256 == hashlib.sha256(again).hexdigest()
    assert sorted(p.name for p in site["offsite"].iterdir() if p.name.startswith(archive.checksum)) == sorted(names.all())

    # A sidecar gone is found by the presence check alone, and repaired with it.
    (site["offsite"] / names.manifest_sidecar).unlink()
    report = check_archives(institution=site["inst"], actor="test")
    assert _copy(archive, "offsite").status == ArchiveCopy.Status.MISSING
    report = check_archives(institution=site["inst"], actor="test", check_all=True, repair=True)
    assert report.all_verified, report.as_dict()


def test_restore_from_the_encrypted_target_alone_needs_its_identity(tmp_path, settings, key, monkeypatch):
    site = _encrypted_site(tmp_path, settings, key)
    inst, target = site["inst"], site["target"]
    archive = site["archives"][site["zhang"]]
    inst.storage_targets.filter(name="array-1").update(enabled=False)

    out = tmp_path / "review"
    with pytest.raises(RestoreError) as refused:
        run_restore(archive=archive, institution=inst, actor="physicist", to_dir=out)
    assert NO_IDENTITY in str(refused.value)
    assert not (out / site["zhang"]).exists()
    assert not list((tmp_path / "data" / "restore").rglob("archive")), "nothing decrypted is left behind"

    target.identity_file = key["file"]
    target.save()
    record = run_restore(archive=archive, institution=inst, actor="physicist", to_dir=out)
    assert record.status == "done" and "from offsite" in record.reason, record.reason
    assert tree(out / site["zhang"]) == site["originals"][site["zhang"]]

    # The identity from a variable instead; a drill of that target goes through the same restore.
    from archiver.services.drills import drill_target

    target.identity_file, target.identity_env = "", "PDAS_TEST_AGE_IDENTITY"
    target.save()
    monkeypatch.setenv("PDAS_TEST_AGE_IDENTITY", key["identity"])
    drill = drill_target(target=target, actor="test", archive=site["archives"][site["smith"]])
    assert drill.outcome == "pass", drill.reason


def test_repair_from_an_encrypted_copy_only_with_its_identity(tmp_path, settings, key):
    site = _encrypted_site(tmp_path, settings, key)
    archive = site["archives"][site["smith"]]
    plain = site["arrays"][0] / archive.name
    original = plain.read_bytes()
    plain.unlink()

    report = check_archives(institution=site["inst"], actor="test", repair=True)
    assert _copy(archive, "array-1").status == ArchiveCopy.Status.MISSING, report.as_dict()
    said = AuditEvent.objects.filter(event="copy.repair", outcome="failed").values_list("detail", flat=True)
    assert any(d["reason"] == NO_IDENTITY for d in said), list(said)

    site["target"].identity_file = key["file"]
    site["target"].save()
    report = check_archives(institution=site["inst"], actor="test", repair=True)
    assert report.all_verified and plain.read_bytes() == original, report.as_dict()


@pytest.mark.django_db(transaction=True)  # flush (TRUNCATE on PostgreSQL) needs no open transaction
def test_rebuild_index_from_the_encrypted_target_needs_its_identity(tmp_path, settings, key):
    from django.core.management import call_command

    from tests.archiver.test_commands_rebuild_index import _rebuild
    from tests.factories import InstitutionFactory

    site = _encrypted_site(tmp_path, settings, key)
    before = {a.name: (a.checksum, a.size, a.mrn, a.manifest) for a in Archive.objects.all()}
    call_command("flush", "--no-input", verbosity=0)  # the database is lost; only the encrypted target is set up
    inst = InstitutionFactory(code="PUMCH", tps_url=f"file://{site['root']}")
    target = StorageTargetFactory(institution=inst, name="offsite", url=f"file://{site['offsite']}",
                                  encrypt_to=[key["recipient"]])

    code, report = _rebuild()
    assert code != 0 and report["counts"]["created"] == 0, report
    assert any(NO_IDENTITY in problem for problem in report["problems"]), report["problems"]
    assert not Archive.objects.exists()

    target.identity_file = key["file"]
    target.save()
    code, report = _rebuild("--verify")
    assert code == 0, report
    assert report["counts"]["created"] == 2 and report["counts"]["verified"] == 2, report
    assert {a.name: (a.checksum, a.size, a.mrn, a.manifest) for a in Archive.objects.all()} == before
    assert set(Archive.objects.values_list("status", flat=True)) == {Archive.Status.VERIFIED}
    for copy in ArchiveCopy.objects.select_related("archive", "target"):
        assert copy.path == copy.encrypted_names().archive and copy.encrypted_sha256
        assert copy.status == ArchiveCopy.Status.VERIFIED

    archive = Archive.objects.get(tps_path=site["zhang"])
    out = tmp_path / "after-rebuild"
    record = run_restore(archive=archive, institution=inst, actor="physicist", to_dir=out)
    assert record.status == "done", record.reason
    assert tree(out / site["zhang"]) == site["originals"][site["zhang"]]


@pytest.mark.servers
def test_an_encrypted_sftp_target_is_hashed_there_checked_repaired_and_restored_from(tmp_path, settings, key, sshd,
                                                                                      monkeypatch):
    settings.DATA_DIR = tmp_path / "data"
    site = build_site(tmp_path, targets=("array-1",))
    folder = sshd.new_dir("offsite")
    monkeypatch.setenv("PDAS_TEST_SFTP_PASSWORD", sshd.password)
    target = StorageTargetFactory(institution=site["inst"], name="offsite", url=sshd.url(folder, scheme="sftp"),
                                  password_env="PDAS_TEST_SFTP_PASSWORD", known_hosts=sshd.known_hosts, priority=5,
                                  encrypt_to=[key["recipient"]])
    originals = tree(site["root"] / site["zhang"])
    archive = archive_patients(site["inst"], [site["zhang"]])[site["zhang"]]
    copy = _copy(archive, "offsite")
    names = copy.encrypted_names()
    assert sorted(p.name for p in folder.iterdir()) == sorted(names.all())
    assert copy.fixity_checks.order_by("-pk")[0].method == "remote_hash"  # sha256sum over SSH, no key

    _flip_a_byte(folder / names.archive)
    report = check_archives(institution=site["inst"], actor="test", check_all=True, repair=True)
    assert report.all_verified and report.summary()["repaired"] == 1, report.as_dict()

    site["inst"].storage_targets.filter(name="array-1").update(enabled=False)
    target.identity_file = key["file"]
    target.save()
    out = tmp_path / "review"
    record = run_restore(archive=archive, institution=site["inst"], actor="physicist", to_dir=out)
    assert record.status == "done" and "from offsite" in record.reason, record.reason
    assert tree(out / site["zhang"]) == originals


# --- the restore search of an archive only an encrypted target holds ------------------------------------------


def _forget(archive: Archive) -> str:
    """The index loses the archive (its copies go with it); the target still holds it."""
    name = archive.name
    archive.quarantined.all().delete()
    archive.delete()
    return name


def test_the_restore_search_decrypts_manifests_of_an_encrypted_target_with_its_identity(tmp_path, settings, key):
    from archiver.services.restore import RestoreRefused, choose_candidate, ensure_indexed, find_candidates

    site = _encrypted_site(tmp_path, settings, key)
    inst, target = site["inst"], site["target"]
    inst.storage_targets.filter(name="array-1").update(enabled=False)  # only the encrypted target holds them
    zhang, smith = site["archives"][site["zhang"]], site["archives"][site["smith"]]
    digests = {zhang.name: zhang.checksum, smith.name: smith.checksum}
    names = {_forget(zhang), _forget(smith)}

    found = find_candidates(institution=inst, mrn="000124", actor="physicist")
    assert list(found) == [] and len(found.unreachable) == 1, found.unreachable
    assert NO_IDENTITY in found.unreachable[0] and "2 archive(s)" in found.unreachable[0]
    with pytest.raises(RestoreRefused, match=re.escape("targets not searched: offsite: " + NO_IDENTITY)):
        choose_candidate(found, asked="MRN 000124")
    with pytest.raises(RestoreRefused, match=re.escape(NO_IDENTITY)):
        ensure_indexed(institution=inst, name=smith.name, actor="physicist")

    target.identity_file = key["file"]
    target.save()
    found = find_candidates(institution=inst, mrn="000124", actor="physicist")
    assert [(c.name, c.status, c.targets, c.last_name) for c in found] == [
        (smith.name, "not indexed", ["offsite"], "Smith")], found.unreachable
    assert found.unreachable == [] and found[0].sha256 == digests[smith.name] and found[0].plans == ["PLAN A"]
    for query in ("张三", "zhang", "SAN"):
        assert [c.name for c in find_candidates(institution=inst, name=query)] == [zhang.name], query
    assert {c.name for c in find_candidates(institution=inst, name="a")} <= names
    assert list(find_candidates(institution=inst, mrn="999999")) == []
    assert AuditEvent.objects.filter(event="restore.search").latest("id").mrns == []

    # The command's way (the digest known) and the page's way (the name alone) both index it from the target.
    indexed = ensure_indexed(institution=inst, name=smith.name, actor="physicist", sha256=digests[smith.name])
    assert (indexed.checksum, indexed.mrn, indexed.status) == (digests[smith.name], "000124", Archive.Status.PACKED)
    assert indexed.copies.get().path == f"{digests[smith.name]}.tar.gz.age"
    other = ensure_indexed(institution=inst, name=zhang.name, actor="physicist")
    assert other.checksum == digests[zhang.name]
    out = tmp_path / "review"
    record = run_restore(archive=indexed, institution=inst, actor="physicist", to_dir=out)
    assert record.status == "done", record.reason
    assert tree(out / site["smith"]) == site["originals"][site["smith"]]


def test_the_encrypted_search_is_bounded_and_keeps_to_its_institution(tmp_path, settings, key, monkeypatch):
    from archiver.services.restore import candidates as search
    from archiver.services.restore import RestoreRefused, ensure_indexed, find_candidates
    from tests.factories import InstitutionFactory

    site = _encrypted_site(tmp_path, settings, key)
    site["inst"].storage_targets.filter(name="array-1").update(enabled=False)
    site["target"].identity_file = key["file"]
    site["target"].save()
    smith = _forget(site["archives"][site["smith"]])
    _forget(site["archives"][site["zhang"]])

    decrypted = []
    real = search.EncryptedScan.__iter__
    monkeypatch.setattr(search.EncryptedScan, "__iter__",
                        lambda scan: (decrypted.append(a.name) or a for a in real(scan)))
    monkeypatch.setattr(search, "TARGET_MANIFESTS_LIMIT", 1)
    found = find_candidates(institution=site["inst"], mrn="000124")
    assert len(decrypted) == 1, decrypted  # a manifest, never an archive: one, the budget
    assert any("1 encrypted archive(s) not searched" in u and "rebuild_index" in u for u in found.unreachable)
    monkeypatch.setattr(search, "TARGET_MANIFESTS_LIMIT", 200)

    # Another institution that reaches the same store with the same key sees nothing of PUMCH's.
    other = InstitutionFactory(code="OTHER", tps_url=f"file://{tmp_path / 'other-tps'}")
    StorageTargetFactory(institution=other, name="shared", url=f"file://{site['offsite']}",
                         encrypt_to=[key["recipient"]], identity_file=key["file"])
    assert list(find_candidates(institution=other, mrn="000124")) == []
    with pytest.raises(RestoreRefused, match="no archive named"):
        ensure_indexed(institution=other, name=smith, actor="physicist")
    assert not Archive.objects.filter(institution=other).exists()


# --- reconciling an encrypted target ---------------------------------------------------------------------------


def test_reconcile_matches_encrypted_objects_through_the_copies(tmp_path, settings, key):
    from reports.models import ReconciliationEntry
    from reports.services.reconcile import reconcile_target

    outcome = ReconciliationEntry.Outcome
    site = _encrypted_site(tmp_path, settings, key)
    zhang, smith = site["archives"][site["zhang"]], site["archives"][site["smith"]]
    result = reconcile_target(institution=site["inst"], target=site["target"], actor="qa")
    entries = {e.archive_name: e for e in result.entries.all()}
    assert {n: e.outcome for n, e in entries.items()} == {zhang.name: outcome.MATCHED, smith.name: outcome.MATCHED}
    assert entries[zhang.name].file_name == f"{zhang.checksum}.tar.gz.age" and entries[zhang.name].mrn == "000123"
    assert entries[zhang.name].size == _copy(zhang, "offsite").encrypted_size != zhang.size
    assert (result.files, result.skipped) == (2, 6)  # the encrypted manifests and every .sha256 are sidecars

    names = _copy(zhang, "offsite").encrypted_names()
    with open(site["offsite"] / names.archive, "ab") as grown:
        grown.write(b"!")
    (site["offsite"] / _copy(smith, "offsite").encrypted_names().archive).unlink()
    stray = "f" * 64 + ".tar.zst.age"
    (site["offsite"] / stray).write_bytes(b"age-encryption.org/v1\n...")
    result = reconcile_target(institution=site["inst"], target=site["target"], actor="qa")
    found = {(e.file_name, e.archive_name): (e.outcome, e.detail) for e in result.entries.all()}
    assert {k: v[0] for k, v in found.items()} == {
        (names.archive, zhang.name): outcome.SIZE_MISMATCH, (smith.name, smith.name): outcome.ONLY_IN_PDAS,
        (stray, ""): outcome.ONLY_IN_LISTING}, found
    assert "encrypted object" in found[(names.archive, zhang.name)][1]
