"""An encrypted target (``encrypt_to``) on each kind of real server beside SFTP (which
test_encrypted_targets covers): an SMB share, an S3 store (moto over HTTPS) and an FTPS server.

One pass per kind, through what a site does with it: archive two patients (only age objects named
after the archive's SHA-256 are written), a full fixity check with no key, the index lost and rebuilt
from the target with its identity, a restore byte for byte, and a byte flipped in the stored object,
which the check finds and the restore refuses.
"""
from __future__ import annotations

import pytest
from pyrage import x25519

from archiver.services.archive_index import rebuild_index
from archiver.services.fixity import check_archives
from archiver.services.restore import RestoreError, run_restore
from inventory.models import Archive, ArchiveCopy
from sites.connections import open_target
from tests.archiver.restore_site import archive_patients, build_site, tree
from tests.factories import StorageTargetFactory

pytestmark = [pytest.mark.servers, pytest.mark.django_db]


@pytest.fixture
def identity_file(tmp_path):
    identity = x25519.Identity.generate()
    path = tmp_path / "offsite-key.txt"
    path.write_text(f"{identity}\n")
    path.chmod(0o600)
    return str(identity.to_public()), str(path)


def _encrypted_target(kind, request, inst, monkeypatch, recipient: str, identity: str):
    """An encrypted target of ``kind`` on its real server (secrets by variable, as a site sets them), and a
    function that writes bytes over a stored object the way a hand on the server would."""
    common = {"institution": inst, "name": "offsite", "encrypt_to": [recipient], "identity_file": identity}
    if kind == "smb":
        samba = request.getfixturevalue("samba_server")
        monkeypatch.setenv("PDAS_TEST_SMB_PASSWORD", samba.password)
        folder = samba.new_dir("sealed")
        target = StorageTargetFactory(url=samba.url(folder), password_env="PDAS_TEST_SMB_PASSWORD", **common)
        return target, lambda name, data: (samba.share_root / folder / name).write_bytes(data)
    if kind == "s3":
        s3 = request.getfixturevalue("s3_server")
        monkeypatch.setenv("PDAS_TEST_S3_ACCESS_KEY", s3.access_key)
        monkeypatch.setenv("PDAS_TEST_S3_SECRET_KEY", s3.secret_key)
        bucket = s3.new_bucket()
        target = StorageTargetFactory(url=s3.url(bucket), access_key_env="PDAS_TEST_S3_ACCESS_KEY",
                                      secret_key_env="PDAS_TEST_S3_SECRET_KEY", ca_file=s3.ca_file, **common)
        return target, lambda name, data: s3.client().put_object(Bucket=bucket, Key=f"archive/{name}", Body=data)
    ftp = request.getfixturevalue("ftp_server")
    monkeypatch.setenv("PDAS_TEST_FTPS_PASSWORD", ftp.password)
    folder = ftp.new_dir("sealed")
    target = StorageTargetFactory(url=ftp.url(folder), password_env="PDAS_TEST_FTPS_PASSWORD", ca_file=ftp.ca_file,
                                  **common)
    return target, lambda name, data: (ftp.root / folder.lstrip("/") / name).write_bytes(data)


@pytest.mark.parametrize("kind", ["smb", "s3", "ftps"])
def test_an_encrypted_target_archives_checks_rebuilds_restores_and_refuses_a_flipped_byte(
        kind, request, tmp_path, settings, monkeypatch, identity_file):
    settings.DATA_DIR = tmp_path / "data"
    site = build_site(tmp_path, targets=())
    inst = site["inst"]
    target, overwrite = _encrypted_target(kind, request, inst, monkeypatch, *identity_file)
    originals = {path: tree(site["root"] / path) for path in (site["zhang"], site["smith"])}
    archives = archive_patients(inst, list(originals))

    copies = list(ArchiveCopy.objects.select_related("archive", "target"))
    assert {c.status for c in copies} == {ArchiveCopy.Status.VERIFIED} and len(copies) == 2
    with open_target(target) as backend:
        stored = sorted(f.name for f in backend.list_files())
    assert stored == sorted(name for c in copies for name in c.encrypted_names().all())
    assert not any(a.mrn in name or a.name in name for a in archives.values() for name in stored)
    before = {a.name: (a.checksum, a.size, a.mrn, a.manifest) for a in Archive.objects.all()}

    report = check_archives(institution=inst, actor="test", check_all=True)  # no key needed
    assert report.all_verified and len(report.copies) == 2, report.as_dict()

    for archive in Archive.objects.all():  # the index is lost; only the encrypted target knows the archives
        archive.quarantined.all().delete()
        archive.delete()
    rebuilt = rebuild_index(institution=inst, actor="it", verify=True)
    assert (len(rebuilt.created), rebuilt.verified, rebuilt.problems) == (2, 2, []), rebuilt
    assert {a.name: (a.checksum, a.size, a.mrn, a.manifest) for a in Archive.objects.all()} == before

    zhang = Archive.objects.get(tps_path=site["zhang"])
    out = tmp_path / "review"
    record = run_restore(archive=zhang, institution=inst, actor="physicist", to_dir=out)
    assert record.status == "done" and "from offsite" in record.reason, record.reason
    assert tree(out / site["zhang"]) == originals[site["zhang"]]

    smith = Archive.objects.get(tps_path=site["smith"])
    names = ArchiveCopy.objects.select_related("archive").get(archive=smith).encrypted_names()
    with open_target(target) as backend:
        data = bytearray(backend.read_bytes(names.archive))
    data[len(data) // 2] ^= 0x01
    overwrite(names.archive, bytes(data))
    with pytest.raises(RestoreError):
        run_restore(archive=smith, institution=inst, actor="physicist", to_dir=out)
    assert not (out / site["smith"]).exists()
    report = check_archives(institution=inst, actor="test", check_all=True)
    assert {(c.archive, c.status) for c in report.copies} >= {(smith.name, "corrupt")}, report.as_dict()
