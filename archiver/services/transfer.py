"""Putting an archive and its sidecars on a target, and proving the copy there is whole.

A copy is ``verified`` only when the digest measured on the target (``sha256sum`` there, or the file
read back) equals the digest recorded at packing, the size matches, and both sidecars say the same.
Every check is a FixityCheck row; ``stored_at`` is set only by a passing check.
"""
from __future__ import annotations

import json

from django.utils import timezone

from inventory.models import Archive, ArchiveCopy, FixityCheck
from sites.models import StorageTarget
from archiver.packing.manifest import manifest_bytes
from connectors.storage.base import ProgressFn, StorageBackend, StorageError, is_temporary


def sha256_sidecar(archive: Archive) -> bytes:
    """``sha256sum`` format, binary mode: ``sha256sum -c`` checks it in the target folder."""
    return f"{archive.checksum} *{archive.name}\n".encode("utf-8")


def _put_sidecar(backend: StorageBackend, name: str, data: bytes, *, same) -> None:
    if backend.stat(name) is None:
        backend.write_bytes(name, data)
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
    """Remove half-uploads of this archive left by a killed worker (the claim keeps others away)."""
    for remote in backend.list_files():
        if is_temporary(remote.name) and remote.name.startswith(f".{name}."):
            backend.remove(remote.name)


def store_copy(*, archive: Archive, chunks_factory, target: StorageTarget, backend: StorageBackend,
               progress: ProgressFn | None = None) -> ArchiveCopy:
    """Upload the archive (unless this exact file is already there) and its two sidecars.

    ``chunks_factory()`` returns a fresh iterator of the archive's bytes; it is called only when an
    upload is needed. A different file under the same name is an error, never overwritten.
    """
    copy, _ = ArchiveCopy.objects.get_or_create(archive=archive, target=target, defaults={"path": archive.name})
    _sweep_our_temporaries(backend, archive.name)
    existing = backend.stat(archive.name)
    if existing is None:
        copy.status = ArchiveCopy.Status.UPLOADING
        copy.save(update_fields=["status"])
        backend.upload(archive.name, chunks_factory(), progress=progress)
    elif existing.size != archive.size:
        raise StorageError(f"{archive.name} already exists on {backend.url} with a different size", exists=True)
    _put_sidecar(backend, f"{archive.name}.sha256", sha256_sidecar(archive), same=lambda d: d == sha256_sidecar(archive))
    _put_sidecar(backend, f"{archive.name}.manifest.json", manifest_bytes(archive.manifest),
                 same=_same_json(archive.manifest))
    copy.status = ArchiveCopy.Status.UPLOADED
    copy.save(update_fields=["status"])
    return copy


def verify_copy(*, copy: ArchiveCopy, backend: StorageBackend) -> FixityCheck:
    """Measure the copy on the target and record the outcome (the copy's status follows it)."""
    archive = copy.archive
    now = timezone.now()
    check = FixityCheck(copy=copy, checked_at=now, method=FixityCheck.Method.READ_BACK)
    problems: list[str] = []
    try:
        digest = backend.digest(archive.name)
        check.method, check.size, check.checksum = digest.method, digest.size, digest.sha256
        if digest.size != archive.size:
            problems.append(f"size on target {digest.size} != packed {archive.size}")
        if digest.sha256 != archive.checksum:
            problems.append("SHA-256 on target differs from the packed archive")
        if backend.read_bytes(f"{archive.name}.sha256") != sha256_sidecar(archive):
            problems.append(f"{archive.name}.sha256 does not hold the packed digest")
        if not _same_json(archive.manifest)(backend.read_bytes(f"{archive.name}.manifest.json")):
            problems.append(f"{archive.name}.manifest.json differs from the archive's manifest")
    except StorageError as exc:
        problems.append(str(exc))
    check.outcome = FixityCheck.Outcome.FAIL if problems else FixityCheck.Outcome.PASS
    check.reason = "; ".join(problems)
    check.save()
    copy.last_checked_at = now
    copy.checksum = check.checksum
    copy.size = check.size
    if problems:
        copy.status = ArchiveCopy.Status.CORRUPT if check.checksum else ArchiveCopy.Status.MISSING
    else:
        copy.status = ArchiveCopy.Status.VERIFIED
        copy.stored_at = copy.stored_at or now
    copy.save(update_fields=["last_checked_at", "checksum", "size", "status", "stored_at"])
    return check
