"""Checks and small writes of a restore: where members may go, what landed on the destination."""
from __future__ import annotations

import hashlib
import re

from django.utils import timezone

from inventory.models import Archive, ArchiveCopy, FixityCheck
from connectors.tps.base import TpsError, TpsSource

CHUNK = 1 << 20
HASH_BATCH = 200  # files per remote sha256sum call
_PATIENT_PATH_KEY = re.compile(rb'(PatientPath\s*=\s*")[^"\r\n]*(")')


def make_dirs_once(source: TpsSource, rel: str, made: set[str]) -> None:
    if rel not in made:
        source.make_dirs(rel)
        made.add(rel)


def placement_problems(listing, manifest: dict, patient_path: str) -> list[str]:
    """Members and manifest entries outside the patient's folder (the manifest itself is not trusted)."""
    inside = patient_path + "/"
    ancestors = {"/".join(patient_path.split("/")[:n]) for n in (1, 2)}
    problems = [f"manifest entry {f.get('path')!r} is outside the patient folder {patient_path}"
                for f in manifest.get("files", []) if not str(f.get("path", "")).startswith(inside)]
    for member in listing.members:
        if member.kind == "file" and not member.path.startswith(inside):
            problems.append(f"member {member.path!r} is outside the patient folder {patient_path}")
        elif member.kind == "dir" and not (member.path == patient_path or member.path.startswith(inside)
                                           or member.path in ancestors):
            problems.append(f"folder {member.path!r} is outside the patient folder {patient_path}")
    return problems


def staged_problems(source: TpsSource, staging: str, manifest: dict, patient_path: str) -> list[str]:
    """Differences between the staged patient folder and the manifest, measured on the destination."""
    expected = {f["path"]: (f["size"], f["sha256"]) for f in manifest["files"]}
    found: dict[str, int] = {}
    problems = []
    prefix = staging + "/"
    for entry in source.walk_files(f"{staging}/{patient_path}"):
        rel = entry.path[len(prefix):]
        if entry.kind != "file":
            problems.append(f"{rel} is a {entry.kind}")
        found[rel] = entry.size
    digests = _digests(source, prefix, sorted(found))
    for path, (size, sha256) in expected.items():
        if path not in found:
            problems.append(f"{path} is missing")
        elif found[path] != size:
            problems.append(f"{path}: {found[path]} bytes, manifest says {size}")
        elif digests.get(path) != sha256:
            problems.append(f"{path}: SHA-256 differs from the manifest")
    problems += [f"{path} is not in the manifest" for path in found.keys() - expected.keys()]
    return problems


def _digests(source: TpsSource, prefix: str, paths: list[str]) -> dict[str, str]:
    """SHA-256 of staged files: by ``sha256sum`` on an SSH host (no second transfer), else read back."""
    from connectors.tps.local import LocalTpsSource

    digests: dict[str, str] = {}
    if not isinstance(source, LocalTpsSource):
        for start in range(0, len(paths), HASH_BATCH):
            batch = paths[start:start + HASH_BATCH]
            try:
                result = source.run(["sha256sum", "-b", "--", *(prefix + p for p in batch)], timeout=3600)
            except TpsError:
                break
            if result.exit_status != 0:
                break  # no sha256sum there (Solaris): read back below
            for line in result.stdout.decode("utf-8", "surrogateescape").splitlines():
                digest, _, name = line.partition(" *")
                if name.startswith(prefix) and len(digest) == 64:
                    digests[name[len(prefix):]] = digest.lower()
    for path in paths:
        if path not in digests:
            hasher = hashlib.sha256()
            with source.open_read(prefix + path) as stream:
                while data := stream.read(CHUNK):
                    hasher.update(data)
            digests[path] = hasher.hexdigest()
    return digests


def rewrite_patient_path(source: TpsSource, rel: str, new_path: str) -> None:
    """Point the Patient file's ``PatientPath`` at the folder it is restored to (only that key changes)."""
    entry = source.stat(rel)
    if entry is None or entry.kind != "file":
        return
    data = source.read_bytes(rel)
    changed, count = _PATIENT_PATH_KEY.subn(lambda m: m.group(1) + new_path.encode("ascii") + m.group(2), data,
                                            count=1)
    if count and changed != data:
        source.write_stream_atomic(rel, [changed], mtime=entry.mtime)


def record_read_back(copy: ArchiveCopy, *, size: int, digest: str, problems: list[str]) -> None:
    """The full download was a fixity check of that copy: record it like any other."""
    now = timezone.now()
    FixityCheck.objects.create(copy=copy, checked_at=now, method=FixityCheck.Method.READ_BACK, size=size,
                               checksum=digest, reason="restore download; " + "; ".join(problems) if problems
                               else "restore download",
                               outcome=FixityCheck.Outcome.FAIL if problems else FixityCheck.Outcome.PASS)
    copy.last_checked_at, copy.size, copy.checksum = now, size, digest
    copy.status = ArchiveCopy.Status.CORRUPT if problems else ArchiveCopy.Status.VERIFIED
    if not problems:
        copy.stored_at = copy.stored_at or now
    copy.save(update_fields=["last_checked_at", "size", "checksum", "status", "stored_at"])


def record_content_verdict(archive: Archive, problems: list[str]) -> None:
    """What reading the downloaded archive against its manifest proved. An archive indexed from its
    sidecars becomes ``verified`` only here, never by its digest matching its own sidecar. Refused
    content is the archive itself, not one copy: the archive is ``failed`` and every copy holding
    those bytes ``corrupt``, so nothing counts it as safely stored (docs/keeping.md)."""
    now = timezone.now()
    if not problems:
        Archive.objects.filter(pk=archive.pk, status=Archive.Status.PACKED).update(
            status=Archive.Status.VERIFIED, verified_at=now)
        return
    reason = "content does not match its manifest: " + "; ".join(problems[:5])
    Archive.objects.filter(pk=archive.pk).update(status=Archive.Status.FAILED)
    # A copy counted whole holds the archive's digest, so the same refused bytes.
    for copy in archive.copies.exclude(status__in=(ArchiveCopy.Status.MISSING, ArchiveCopy.Status.CORRUPT)):
        FixityCheck.objects.create(copy=copy, checked_at=now, method=FixityCheck.Method.READ_BACK, size=copy.size,
                                   checksum=copy.checksum, outcome=FixityCheck.Outcome.FAIL, reason=reason[:4000])
        copy.status, copy.last_checked_at = ArchiveCopy.Status.CORRUPT, now
        copy.save(update_fields=["status", "last_checked_at"])
