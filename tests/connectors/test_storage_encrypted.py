"""Encrypted targets (connectors/storage/encrypted.py): age v1 objects named after the archive's SHA-256,
readable by Debian's own ``age`` and ``tar`` without PDAS; fixity without the key; damaged copies refused
with nothing written."""
from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import tarfile

import pytest
from pyrage import x25519

from connectors.errors import SecretError
from connectors.storage import StorageError, open_storage
from connectors.storage.encrypted import (
    EncryptedNames, IdentityMissing, decrypt_to_file, encrypted_archives, load_identities, measure_encrypted,
    parse_recipients, read_manifest, recipients_problem, store_encrypted,
)
from tests.servers.process import require_binary

PATIENT = "Institution_3/Mount_0/Patient_10001"
MANIFEST = {"format": "pdas-archive/1", "institution": "PUMCH",
            "patient": {"mrn": "000123", "last_name": "张", "first_name": "三", "tps_patient_id": 10001}}


def _patient_files() -> dict[str, bytes]:
    return {f"{PATIENT}/Patient": "LastName = \"张\";\n".encode("gb18030"),
            f"{PATIENT}/Plan_0/plan.Trial": b"Trial ={ Name = \"sMLC\"; };\n" * 200,
            f"{PATIENT}/ImageSet_0.img": bytes(range(256)) * 2000}


def _archive() -> bytes:
    """A small PDAS-shaped .tar.gz: Institution, PDAS-MANIFEST.json, then the patient's files."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        members = {"Institution": b"Institution ={};\n", "PDAS-MANIFEST.json": json.dumps(MANIFEST).encode(),
                   **_patient_files()}
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def key(tmp_path):
    identity = x25519.Identity.generate()
    path = tmp_path / "key.txt"
    path.write_text(f"# created for a test\n{identity}\n")
    path.chmod(0o600)
    return {"identity": identity, "recipient": str(identity.to_public()), "file": path}


@pytest.fixture
def stored(tmp_path, key):
    root = tmp_path / "offsite"
    root.mkdir()
    data = _archive()
    sha256 = hashlib.sha256(data).hexdigest()
    manifest = json.dumps(MANIFEST, ensure_ascii=False).encode("utf-8")
    with open_storage(f"file://{root}") as backend:
        copy = store_encrypted(backend, sha256=sha256, extension=".tar.gz",
                               archive_chunks=[data[:5000], data[5000:]], manifest=manifest,
                               recipients=parse_recipients([key["recipient"]]))
    return {"root": root, "data": data, "sha256": sha256, "copy": copy, "manifest": manifest}


def test_objects_are_named_after_the_digest_and_show_no_patient(stored):
    root, sha256 = stored["root"], stored["sha256"]
    names = sorted(p.name for p in root.iterdir())
    assert names == sorted(EncryptedNames.of(sha256, ".tar.gz").all())
    assert names == [f"{sha256}.manifest.json.age", f"{sha256}.manifest.json.age.sha256",
                     f"{sha256}.tar.gz.age", f"{sha256}.tar.gz.age.sha256"]
    for path in root.iterdir():
        data = path.read_bytes()
        # Identifiers of 5 bytes or more: a shorter one (a single Chinese character is 2 bytes in GB18030)
        # turns up in random ciphertext by chance.
        for identifier in ("000123", "ZHANG", "Patient_10001", "PUMCH"):
            assert identifier.encode() not in data and identifier.encode("gb18030") not in data, (path.name, identifier)
        if path.name.endswith(".sha256"):
            assert "张".encode() not in data and "张".encode("gb18030") not in data
        if path.name.endswith(".sha256"):
            assert re.fullmatch(rb"[0-9a-f]{64} \*[0-9a-f]{64}\.(tar\.gz|manifest\.json)\.age\n", data)
        else:
            assert data.startswith(b"age-encryption.org/v1\n")
    copy = stored["copy"]
    assert copy.sha256 == hashlib.sha256((root / copy.names.archive).read_bytes()).hexdigest()
    assert (root / copy.names.archive_sidecar).read_text() == f"{copy.sha256} *{copy.names.archive}\n"


def test_debian_age_and_tar_get_the_patient_back_without_pdas(stored, key, tmp_path):
    age = require_binary("age", "/usr/bin/age", package="age")
    names = stored["copy"].names
    out = tmp_path / "restored"
    out.mkdir()
    decrypt = subprocess.run([age, "-d", "-i", str(key["file"]), str(stored["root"] / names.archive)],
                             capture_output=True, check=True)
    assert hashlib.sha256(decrypt.stdout).hexdigest() == stored["sha256"]
    subprocess.run(["tar", "-xz", "-C", str(out)], input=decrypt.stdout, check=True)
    for name, data in _patient_files().items():
        assert (out / name).read_bytes() == data
    manifest = subprocess.run([age, "-d", "-i", str(key["file"]), str(stored["root"] / names.manifest)],
                              capture_output=True, check=True).stdout
    assert json.loads(manifest) == MANIFEST
    sums = subprocess.run(["sha256sum", "-c", names.archive_sidecar, names.manifest_sidecar], cwd=stored["root"],
                          capture_output=True, text=True)
    assert sums.returncode == 0, sums.stdout + sums.stderr  # fixity with coreutils alone, no key


def test_a_flipped_byte_fails_authentication_and_nothing_is_written(stored, key, tmp_path):
    names = stored["copy"].names
    path = stored["root"] / names.archive
    damaged = bytearray(path.read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    path.write_bytes(bytes(damaged))
    out = tmp_path / "restore"
    out.mkdir()
    with open_storage(f"file://{stored['root']}") as backend:
        found = measure_encrypted(backend, names, expected=stored["copy"])  # no key needed
        assert found.problems and not found.missing
        with pytest.raises(StorageError, match="authentic|decryption failed") as err:
            decrypt_to_file(backend, names, load_identities(identity_file=str(key["file"]), target="offsite"),
                            out / "archive.tar.gz")
    assert not err.value.retryable
    assert list(out.iterdir()) == [], "no plaintext, not even a partial file, is left"
    age = require_binary("age", "/usr/bin/age", package="age")
    refused = subprocess.run([age, "-d", "-i", str(key["file"]), str(path)], capture_output=True)
    assert refused.returncode != 0


def test_a_whole_copy_decrypts_to_the_archive_and_its_manifest(stored, key, tmp_path):
    identities = load_identities(identity_text=key["file"].read_text(), target="offsite")
    with open_storage(f"file://{stored['root']}") as backend:
        found = measure_encrypted(backend, stored["copy"].names, expected=stored["copy"])
        assert (found.missing, found.problems, found.sha256) == ([], [], stored["copy"].sha256)
        assert encrypted_archives(backend) == [stored["copy"].names]
        assert read_manifest(backend, stored["copy"].names, identities) == stored["manifest"]
        digest = decrypt_to_file(backend, stored["copy"].names, identities, tmp_path / "a.tar.gz")
    assert digest == stored["sha256"] and (tmp_path / "a.tar.gz").read_bytes() == stored["data"]


def test_another_identity_cannot_decrypt(stored, tmp_path):
    other = [x25519.Identity.generate()]
    with open_storage(f"file://{stored['root']}") as backend:
        with pytest.raises(StorageError, match="decryption failed"):
            read_manifest(backend, stored["copy"].names, other)


def test_storing_again_keeps_the_objects_and_bytes_that_are_not_the_archive_are_refused(stored, key):
    recipients = parse_recipients([key["recipient"]])
    before = {p.name: p.read_bytes() for p in stored["root"].iterdir()}
    with open_storage(f"file://{stored['root']}") as backend:
        again = store_encrypted(backend, sha256=stored["sha256"], extension=".tar.gz",
                                archive_chunks=[stored["data"]], manifest=stored["manifest"], recipients=recipients)
        assert again == stored["copy"]
        assert {p.name: p.read_bytes() for p in stored["root"].iterdir()} == before
        wrong = hashlib.sha256(b"something else").hexdigest()
        with pytest.raises(StorageError, match="not the archive's"):
            store_encrypted(backend, sha256=wrong, extension=".tar.gz", archive_chunks=[stored["data"]],
                            manifest=stored["manifest"], recipients=recipients)
        assert not backend.stat(EncryptedNames.of(wrong, ".tar.gz").archive)


def test_a_missing_identity_is_said_as_such(tmp_path):
    with pytest.raises(IdentityMissing, match="identity_file or identity_env"):
        load_identities(target="PUMCH/offsite")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(SecretError, match="no age identity"):
        load_identities(identity_file=str(tmp_path / "empty.txt"), target="PUMCH/offsite")
    with pytest.raises(SecretError, match="cannot read"):
        load_identities(identity_file=str(tmp_path / "absent.txt"), target="PUMCH/offsite")


def test_recipient_rules(key):
    assert recipients_problem([key["recipient"]]) is None
    assert "not an age X25519 recipient" in recipients_problem(["age1nope"])
    assert "twice" in recipients_problem([key["recipient"], key["recipient"]])
    assert "private identity" in recipients_problem([str(key["identity"])])
    assert "list" in recipients_problem("age1...")
