"""Restore drills: once a month, per target, one archive restored into a scratch folder and compared with its
manifest (docs/keeping.md, "Restore drills").

A fixity check proves the bytes on a target hash right; a drill proves more: that the copy on *that*
target can be read back through the restore path of this release, opens, and unpacks into exactly
the files its manifest lists, byte for byte. The archive is picked at random among those with a
verified copy on the target, so over the years every kind of archive gets its turn. The scratch
folder (under ``DATA_DIR/drills``) is removed afterwards; nothing is written to the TPS.
"""
from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from archiver.models import RestoreDrill, RestoreRecord
from archiver.services.archive_index import manifest_patient_path
from archiver.services.restore.errors import RestoreError
from archiver.services.restore.runner import create_restore, execute_restore
from audit.actors import actor_name
from audit.events import Event
from audit.services import record_event
from inventory.models import Archive, ArchiveCopy
from sites.models import Institution, StorageTarget

CHUNK = 1 << 20
Outcome = RestoreDrill.Outcome


def pick_archive(target: StorageTarget) -> Archive | None:
    """A random archive of the target's institution with a verified copy on it (None: nothing to drill)."""
    verified_here = ArchiveCopy.objects.filter(target=target, status=ArchiveCopy.Status.VERIFIED).values("archive")
    return (Archive.objects.filter(institution_id=target.institution_id, status=Archive.Status.VERIFIED,
                                   pk__in=verified_here).order_by("?").first())


def compare_tree(root: Path, manifest: dict) -> tuple[int, int, list[str]]:
    """Files, bytes and problems of the patient folder restored under ``root`` against the manifest: every
    listed file present with its size and SHA-256, and no other file."""
    patient_path = manifest_patient_path(manifest)
    expected = {entry.get("path"): entry for entry in manifest.get("files", [])}
    problems: list[str] = []
    files = size_total = 0
    found = {str(path.relative_to(root)) for path in (root / patient_path).rglob("*") if path.is_file()} \
        if patient_path and (root / patient_path).is_dir() else set()
    for extra in sorted(found - expected.keys()):
        problems.append(f"{extra} was restored but is not in the manifest")
    for rel, entry in sorted(expected.items()):
        path = root / rel
        if rel not in found:
            problems.append(f"{rel} is in the manifest but was not restored")
            continue
        hasher, size = hashlib.sha256(), 0
        with open(path, "rb") as handle:
            while data := handle.read(CHUNK):
                hasher.update(data)
                size += len(data)
        files, size_total = files + 1, size_total + size
        if size != entry.get("size") or hasher.hexdigest() != entry.get("sha256"):
            problems.append(f"{rel}: {size} bytes with another SHA-256 than the manifest's")
    return files, size_total, problems


def drill_target(*, target: StorageTarget, actor, archive: Archive | None = None) -> RestoreDrill | None:
    """One drill on ``target`` (of ``archive``, or a random one); None when the target holds no verified copy."""
    archive = archive or pick_archive(target)
    if archive is None:
        return None
    started, clock = timezone.now(), time.monotonic()
    drill = RestoreDrill.objects.create(institution_id=target.institution_id, target=target, archive=archive,
                                        requested_by=actor_name(actor), started_at=started, reason="running")
    scratch_root = Path(settings.DATA_DIR) / "drills"
    scratch_root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"drill-{drill.pk}-", dir=scratch_root))
    try:
        destination = scratch / "restored"
        record = create_restore(archive=archive, institution=target.institution, actor=actor, to_dir=destination,
                                from_target=target)
        drill.restore = record
        try:
            execute_restore(record_id=record.pk, raise_errors=True)
        except RestoreError:
            pass  # its status and reason are on the record
        record.refresh_from_db()
        if record.status == RestoreRecord.Status.DONE:
            drill.files, drill.bytes, problems = compare_tree(destination, archive.manifest)
            drill.outcome = Outcome.FAIL if problems else Outcome.PASS
            drill.reason = "; ".join(problems[:20]) or f"{drill.files} files match the manifest"
        else:
            copy = ArchiveCopy.objects.filter(archive=archive, target=target).first()
            unreadable = record.status == RestoreRecord.Status.FAILED and copy is not None \
                and copy.status in (ArchiveCopy.Status.VERIFIED, ArchiveCopy.Status.UNREACHABLE)
            drill.outcome = Outcome.UNKNOWN if unreadable else Outcome.FAIL
            drill.reason = record.reason
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    drill.finished_at, drill.seconds = timezone.now(), round(time.monotonic() - clock, 3)
    with transaction.atomic():
        drill.save()
        record_event(actor=actor, event=Event.RESTORE_DRILL, institution=target.institution.code, obj=drill,
                     mrns=[archive.mrn], outcome="ok" if drill.outcome == Outcome.PASS else "failed",
                     detail={"archive": archive.name, "target": target.name, "outcome": drill.outcome,
                             "files": drill.files, "bytes": drill.bytes, "reason": drill.reason[:1000]})
    return drill


def run_drills(*, institution: Institution, actor, target: StorageTarget | None = None) -> list[RestoreDrill]:
    """A drill on each enabled target of the institution (or on ``target``) that holds a verified copy."""
    targets = [target] if target is not None else list(
        institution.storage_targets.filter(enabled=True).order_by("priority", "name"))
    drills = [drill_target(target=t, actor=actor) for t in targets]
    return [d for d in drills if d is not None]
