"""Putting an archive and its sidecars on a target, and proving the copy there is whole.

A copy is ``verified`` only when the digest measured on the target (``sha256sum`` there, or the file
read back) equals the digest recorded at packing, the size matches, and both sidecars say the same.
Every check is a FixityCheck row; ``stored_at`` is set only by a passing check.

On a target with ``encrypt_to`` the same functions store and measure the encrypted objects instead
(``connectors.storage.encrypted``): the archive and its manifest encrypted to the target's recipients,
named after the archive's SHA-256, each with a ``.sha256`` of its encrypted bytes. The plain archive
never goes there. Such a copy is ``verified`` when the encrypted archive's digest and size measured on
the target equal the ones recorded as it was encrypted (``encrypted_sha256``, ``encrypted_size``) and
both sidecars agree: no key is needed. Its ``checksum`` and ``size`` stay the archive's own, hashed as
it was encrypted (and again whenever a restore decrypts it).
"""
from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import dataclass, field

from django.utils import timezone

from inventory.models import Archive, ArchiveCopy, FixityCheck
from sites.models import StorageTarget
from archiver.faults import checkpoint
from archiver.naming import parse_archive_name
from archiver.packing.manifest import manifest_bytes
from connectors.storage.base import ChunkStream, ObjectLock, ProgressFn, StorageBackend, StorageError, is_temporary
from connectors.storage.encrypted import EncryptedCopy, measure_encrypted, parse_recipients, store_encrypted


def sha256_sidecar(archive: Archive) -> bytes:
    """``sha256sum`` format, binary mode: ``sha256sum -c`` checks it in the target folder."""
    return f"{archive.checksum} *{archive.name}\n".encode("utf-8")


def _put_sidecar(backend: StorageBackend, name: str, data: bytes, *, same, lock: ObjectLock | None = None) -> None:
    if backend.stat(name) is None:
        backend.write_bytes(name, data, lock=lock)
    elif not same(backend.read_bytes(name)):
        raise StorageError(f"{name} already exists on {backend.url} with other content", exists=True)


def _same_json(expected: dict):
    def check(data: bytes) -> bool:
        try:
            return json.loads(data.decode("utf-8")) == expected
        except (UnicodeDecodeError, json.JSONDecodeError):
            return False
    return check


def _sweep_our_temporaries(backend: StorageBackend, name: str) -> None:
    """Remove half-uploads of this patient's archives left by a killed worker: of this name, and of the
    patient's earlier names (``NAME_MRN_`` with another time stamp, after the patient was edited). The
    patient's claim keeps every other worker away from these names."""
    parts = parse_archive_name(name)
    prefix = f".{parts['name']}_{parts['mrn']}_" if parts else f".{name}."
    for remote in backend.list_files():
        if is_temporary(remote.name) and remote.name.startswith(prefix):
            backend.remove(remote.name)


def store_copy(*, archive: Archive, chunks_factory, target: StorageTarget, backend: StorageBackend,
               progress: ProgressFn | None = None) -> ArchiveCopy:
    """Upload the archive (unless this exact file is already there) and its two sidecars.

    ``chunks_factory()`` returns a fresh iterator of the archive's bytes; it is called only when an
    upload is needed. A different file under the same name is an error, never overwritten.
    """
    copy, _ = ArchiveCopy.objects.get_or_create(archive=archive, target=target, defaults={"path": archive.name})
    copy.target = target
    # A target that enforces retention (S3 Object Lock) keeps the archive and its sidecars as PDAS does.
    lock = ObjectLock(retain_until=archive.retain_until, legal_hold=archive.legal_hold)
    if copy.encrypted:
        return _store_encrypted_copy(copy=copy, chunks_factory=chunks_factory, backend=backend, lock=lock,
                                     progress=progress)
    _sweep_our_temporaries(backend, archive.name)
    existing = backend.stat(archive.name)
    if existing is not None and copy.status in (ArchiveCopy.Status.CORRUPT, ArchiveCopy.Status.MISSING):
        # This archive's own copy, measured bad by an earlier check: replaced by the bytes being stored
        # now (the packed file, or a verified copy), which the check that follows measures again.
        for name in (archive.name, f"{archive.name}.sha256", f"{archive.name}.manifest.json"):
            if backend.stat(name) is not None:
                backend.remove(name)
        checkpoint("repair_removed")
        existing = None
    if existing is None:
        copy.status = ArchiveCopy.Status.UPLOADING
        copy.save(update_fields=["status"])
        backend.upload(archive.name, chunks_factory(), progress=progress, lock=lock)
    elif existing.size != archive.size:
        raise StorageError(f"{archive.name} already exists on {backend.url} with a different size", exists=True)
    _put_sidecar(backend, f"{archive.name}.sha256", sha256_sidecar(archive), same=lambda d: d == sha256_sidecar(archive),
                 lock=lock)
    _put_sidecar(backend, f"{archive.name}.manifest.json", manifest_bytes(archive.manifest),
                 same=_same_json(archive.manifest), lock=lock)
    copy.status = ArchiveCopy.Status.UPLOADED
    copy.save(update_fields=["status"])
    return copy


def _store_encrypted_copy(*, copy: ArchiveCopy, chunks_factory, backend: StorageBackend, lock: ObjectLock,
                          progress: ProgressFn | None) -> ArchiveCopy:
    """``store_copy`` on an encrypted target: the archive and its manifest encrypted to the target's
    recipients, each with the ``.sha256`` of its encrypted bytes; the digests of the encrypted objects
    recorded on the copy (what every later check compares, with no key). The archive's bytes are hashed
    as they are encrypted, and bytes that are not the archive are refused (``store_encrypted``)."""
    archive, names = copy.archive, copy.encrypted_names()
    for remote in backend.list_files():  # half-uploads of these objects left by a killed worker
        if is_temporary(remote.name) and remote.name.startswith(f".{names.sha256}."):
            backend.remove(remote.name)
    if copy.status in (ArchiveCopy.Status.CORRUPT, ArchiveCopy.Status.MISSING):
        # Measured bad by an earlier check: every object of the copy is encrypted again (age output differs
        # at each run, so an object kept beside new ones would not match their sidecars).
        for name in names.all():
            if backend.stat(name) is not None:
                backend.remove(name)
        checkpoint("repair_removed")
    copy.status, copy.path = ArchiveCopy.Status.UPLOADING, names.archive
    copy.save(update_fields=["status", "path"])
    stored = store_encrypted(backend, sha256=archive.checksum, extension=names.extension,
                             archive_chunks=chunks_factory(), manifest=manifest_bytes(archive.manifest),
                             recipients=parse_recipients(copy.target.encrypt_to), lock=lock, progress=progress)
    copy.encrypted_sha256, copy.encrypted_size = stored.sha256, stored.size
    copy.encrypted_manifest_sha256 = stored.manifest_sha256
    copy.checksum, copy.size, copy.status = archive.checksum, archive.size, ArchiveCopy.Status.UPLOADED
    copy.save(update_fields=["encrypted_sha256", "encrypted_size", "encrypted_manifest_sha256", "checksum", "size",
                             "status"])
    return copy


@dataclass
class Measurement:
    """What one check of a copy found on its target; nothing is written until ``record_measurement``."""

    checked_at: dt.datetime
    method: str = FixityCheck.Method.READ_BACK
    size: int | None = None
    checksum: str = ""
    problems: list[str] = field(default_factory=list)
    missing: bool = False
    unreachable: bool = False
    encrypted: bool = False  # ``size`` and ``checksum`` are the encrypted archive object's
    archive_size: int | None = None  # an encrypted archive read back decrypted: its plain size


def measure_copy(*, copy: ArchiveCopy, backend: StorageBackend) -> Measurement:
    """Measure the copy where it is stored: its digest and size (hashed on the target or read back) and
    both sidecars. No database write: the measurement may take long on a large archive."""
    if copy.encrypted:
        return _measure_encrypted_copy(copy=copy, backend=backend)
    archive = copy.archive
    found = Measurement(checked_at=timezone.now())
    try:
        if backend.stat(archive.name) is None:
            found.missing = True
            found.problems.append(f"{archive.name} is not on the target")
        else:
            digest = backend.digest(archive.name)
            found.method, found.size, found.checksum = digest.method, digest.size, digest.sha256
            _compare_digest(found, archive)
            _check_sidecars(found, archive, backend)
    except StorageError as exc:
        found.unreachable = exc.retryable
        found.problems.append(str(exc))
    return found


def _measure_encrypted_copy(*, copy: ArchiveCopy, backend: StorageBackend) -> Measurement:
    """``measure_copy`` on an encrypted target, with no key: the four objects are there, the encrypted
    archive's digest and size measured on the target equal the ones recorded when it was encrypted (the
    manifest's too), and both ``.sha256`` sidecars hold the digests of the bytes beside them. A copy
    indexed from the target has no recorded digest yet: its sidecars are then the only word, and the
    first passing check records the digest for the next ones."""
    names = copy.encrypted_names()
    found = Measurement(checked_at=timezone.now(), encrypted=True)
    expected = None
    if copy.encrypted_sha256 and copy.encrypted_manifest_sha256 and copy.encrypted_size is not None:
        expected = EncryptedCopy(names, copy.encrypted_sha256, copy.encrypted_size, copy.encrypted_manifest_sha256,
                                 0)
    try:
        measured = measure_encrypted(backend, names, expected=expected)
    except StorageError as exc:
        found.unreachable = exc.retryable
        found.problems.append(str(exc))
        return found
    found.method, found.size, found.checksum = measured.method, measured.size, measured.sha256
    if measured.missing:
        found.missing = True
        found.problems += [f"{name} is not on the target" for name in measured.missing]
    found.problems += measured.problems or []
    if expected is None and copy.encrypted_sha256 and measured.sha256 and (
            measured.sha256 != copy.encrypted_sha256 or measured.size != copy.encrypted_size):
        found.problems.append(f"{names.archive}: SHA-256 or size on the target differs from the one recorded")
    return found


def measure_content(*, copy: ArchiveCopy, backend: StorageBackend) -> Measurement:
    """``measure_copy`` by reading the copy back whole *and* proving what it holds: it opens, its
    embedded manifest is the one on record, and its members are that manifest's files one to one,
    inside the patient's folder. A digest equal to its own sidecar proves nothing about an archive
    first seen on the array (a planted file with self-made sidecars), so an archive the index learnt
    from a target is verified this way (docs/keeping.md)."""
    from archiver.packing.inspect import inspect_packed

    archive = copy.archive
    if copy.encrypted:
        return _measure_encrypted_content(copy=copy, backend=backend)
    found = Measurement(checked_at=timezone.now(), method=FixityCheck.Method.READ_BACK)
    try:
        if backend.stat(archive.name) is None:
            found.missing = True
            found.problems.append(f"{archive.name} is not on the target")
            return found
        listing = inspect_packed(backend.open_stream(archive.name), archive.codec, sha256=archive.checksum,
                                 size=archive.size or 0)
        found.size, found.checksum = listing.size, listing.sha256
        _compare_digest(found, archive)
        found.problems += _content_problems(archive, listing)
        _check_sidecars(found, archive, backend)
    except StorageError as exc:
        found.unreachable = exc.retryable
        found.problems.append(str(exc))
    return found


def _content_problems(archive: Archive, listing) -> list[str]:
    from archiver.services.archive_index import manifest_patient_path
    from archiver.services.restore.checks import placement_problems

    problems = [p for p in listing.problems if not p.startswith("the file read is")]
    if listing.manifest and listing.manifest != archive.manifest:
        problems.append("PDAS-MANIFEST.json in the archive differs from its .manifest.json")
    patient_path = manifest_patient_path(archive.manifest)
    problems += placement_problems(listing, archive.manifest, patient_path) if patient_path else [
        "the manifest names no patient folder"]
    return problems


def _measure_encrypted_content(*, copy: ArchiveCopy, backend: StorageBackend) -> Measurement:
    """``measure_content`` of an encrypted copy: the key-less check of its objects, then the archive
    decrypted with the target's identity (``identity_file``/``identity_env``) as it is read, and proven
    as a plain one is. Without an identity the content cannot be proven: the check fails and says so."""
    from archiver.packing.inspect import inspect_packed
    from connectors.errors import SecretError
    archive = copy.archive
    found = _measure_encrypted_copy(copy=copy, backend=backend)
    if found.problems:
        return found
    try:
        plain = plaintext_chunks(copy=copy, backend=backend)
    except SecretError:
        found.problems.append(no_identity_reason(copy.target) + ": the archive's content cannot be read back")
        return found
    try:
        listing = inspect_packed(io.BufferedReader(ChunkStream(plain)), archive.codec, sha256=archive.checksum,
                                 size=archive.size or 0)
        found.archive_size = listing.size
        if archive.size is not None and listing.size != archive.size:
            found.problems.append(f"decrypted size {listing.size} != packed {archive.size}")
        if listing.sha256 != archive.checksum:
            found.problems.append("SHA-256 of the decrypted archive differs from the packed archive")
        found.problems += _content_problems(archive, listing)
    except StorageError as exc:
        found.unreachable = exc.retryable
        found.problems.append(str(exc))
    return found


def plaintext_chunks(*, copy: ArchiveCopy, backend: StorageBackend):
    """The archive's bytes as this copy holds them: read as they are, or decrypted with the target's
    identity on an encrypted target (``SecretError``, an ``IdentityMissing`` when it has none). Decrypted
    bytes are provisional until the stream ends: a damaged object raises ``StorageError`` there."""
    from connectors.storage.encrypted import read_archive
    from sites.connections import target_identities

    if not copy.encrypted:
        return backend.read_chunks(copy.archive.name)
    return read_archive(backend, copy.encrypted_names(), target_identities(copy.target))


def no_identity_reason(target: StorageTarget) -> str:
    """The one line said wherever an encrypted target would have to be decrypted and cannot be."""
    return f"target {target.name} is encrypted and no identity is configured (identity_file or identity_env)"


def _compare_digest(found: Measurement, archive: Archive) -> None:
    if found.size != archive.size:
        found.problems.append(f"size on target {found.size} != packed {archive.size}")
    if found.checksum != archive.checksum:
        found.problems.append("SHA-256 on target differs from the packed archive")


def _check_sidecars(found: Measurement, archive: Archive, backend: StorageBackend) -> None:
    for sidecar, whole in ((f"{archive.name}.sha256", lambda d: d == sha256_sidecar(archive)),
                           (f"{archive.name}.manifest.json", _same_json(archive.manifest))):
        if backend.stat(sidecar) is None:
            found.missing = True
            found.problems.append(f"{sidecar} is not on the target")
        elif not whole(backend.read_bytes(sidecar)):
            found.problems.append(f"{sidecar} differs from the archive's")


def record_measurement(*, copy: ArchiveCopy, found: Measurement) -> FixityCheck:
    """The FixityCheck row of a measurement, and the copy's new state (call it inside the transaction
    that also writes the audit row). ``verified``: size and digest measured there equal the packed
    archive's and both sidecars agree; ``missing``: the archive file or a sidecar is not there;
    ``corrupt``: it is there but differs; ``unreachable`` (outcome ``unknown``): the target failed in a
    way a retry may cure, so nothing is known and the check does not count towards the cycle."""
    if found.unreachable:
        outcome = FixityCheck.Outcome.UNKNOWN
    else:
        outcome = FixityCheck.Outcome.FAIL if found.problems else FixityCheck.Outcome.PASS
    check = FixityCheck.objects.create(copy=copy, checked_at=found.checked_at, method=found.method, size=found.size,
                                       checksum=found.checksum, outcome=outcome, reason="; ".join(found.problems))
    fields: dict = {}
    if found.unreachable:
        fields["status"] = ArchiveCopy.Status.UNREACHABLE
    elif found.encrypted:
        # The digests recorded at encryption stay the reference: a bad measurement never replaces them.
        fields.update(status=ArchiveCopy.Status.MISSING if found.missing else ArchiveCopy.Status.CORRUPT,
                      last_checked_at=found.checked_at)
        if not found.problems:
            fields.update(status=ArchiveCopy.Status.VERIFIED, stored_at=copy.stored_at or found.checked_at)
            if not copy.encrypted_sha256:  # indexed from the target: the first passing check records it
                fields.update(encrypted_sha256=found.checksum, encrypted_size=found.size)
    elif found.problems:
        fields.update(status=ArchiveCopy.Status.MISSING if found.missing else ArchiveCopy.Status.CORRUPT,
                      checksum=found.checksum, size=found.size, last_checked_at=found.checked_at)
    else:
        fields.update(status=ArchiveCopy.Status.VERIFIED, checksum=found.checksum, size=found.size,
                      stored_at=copy.stored_at or found.checked_at, last_checked_at=found.checked_at)
    for key, value in fields.items():
        setattr(copy, key, value)
    copy.save(update_fields=list(fields))
    return check


def verify_copy(*, copy: ArchiveCopy, backend: StorageBackend) -> FixityCheck:
    """Measure the copy on the target and record the outcome (``measure_copy`` + ``record_measurement``)."""
    return record_measurement(copy=copy, found=measure_copy(copy=copy, backend=backend))
