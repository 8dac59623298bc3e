"""Copies: upload to a target, measure the digest there, and read the archive back against its manifest."""
from __future__ import annotations

import io

from django.db import transaction

from archiver.faults import checkpoint
from archiver.naming import mrn_part, parse_archive_name
from archiver.packing.inspect import ArchiveListing, compare_with_manifest, inspect_archive, inspect_packed
from archiver.services.archiving.task_rows import PatientContext, ProgressCounter
from connectors.storage.base import ChunkStream
from archiver.services.transfer import (
    measure_copy, no_identity_reason, plaintext_chunks, record_measurement, store_copy,
)
from audit.events import Event
from audit.services import record_event
from connectors.errors import SecretError
from connectors.storage import StorageError
from inventory.models import Archive, ArchiveCopy, FixityCheck, TpsPatient
from sites.connections import open_target
from sites.models import StorageTarget


def copy_to_target(ctx: PatientContext, archive: Archive, packed, target: StorageTarget, *, share: float = 1.0) -> None:
    """Upload (unless this attempt or an earlier one already stored it) and measure one copy on its target.

    A copy an earlier attempt verified is measured again: the originals move only on checks made in the
    attempt that moves them, whatever the database says (a copy may have been damaged in between).
    ``share`` is this target's part of the upload step's progress bar."""
    copy = archive.copies.filter(target=target).first()
    stored_before = copy is not None and copy.status == ArchiveCopy.Status.VERIFIED
    if not stored_before and packed is None:
        raise StorageError(f"packed file of {archive.name} is gone and {target.name} has no verified copy")

    # The bar counts raw bytes (the patient's size); the upload sends compressed ones.
    scale = share * (archive.raw_bytes or archive.size or 1) / max(archive.size or 1, 1)
    count = ProgressCounter(ctx.task.pk)

    def progress(n: int) -> None:
        count(int(n * scale))

    def chunks():
        for index, chunk in enumerate(packed.iter_chunks()):
            yield chunk
            if index == 0:
                checkpoint("upload")

    def measure_and_record(measured_again: bool):
        checkpoint("measure")
        found = measure_copy(copy=copy, backend=backend)
        with transaction.atomic():
            check = record_measurement(copy=copy, found=found)
            record_event(actor=ctx.worker, event=Event.ARCHIVE_TRANSFER, institution=ctx.institution.code,
                         mrns=[archive.mrn], obj=copy, outcome="ok" if check.outcome == "pass" else "failed",
                         detail={"target": target.name, "method": check.method, "reason": check.reason,
                                 "measured_again": measured_again})
        return check

    with open_target(target) as backend:
        if not stored_before:
            copy = store_copy(archive=archive, chunks_factory=chunks, target=target, backend=backend,
                              progress=progress)
            count.flush()
        check = measure_and_record(stored_before)
        if stored_before and check.outcome == FixityCheck.Outcome.FAIL and packed is not None:
            # Damaged since an earlier attempt verified it: replaced from the packed file, measured again.
            copy = store_copy(archive=archive, chunks_factory=chunks, target=target, backend=backend,
                              progress=progress)
            count.flush()
            check = measure_and_record(False)
        elif stored_before and check.outcome == FixityCheck.Outcome.PASS:
            count(int((archive.size or 0) * scale))  # the bar counts this target's share as done
            count.flush()


def inspect_before_upload(archive: Archive, packed) -> ArchiveListing:
    """Read the packed file once, before any byte of it leaves for a target: it opens, lists, holds
    exactly its manifest's files and is the file packing measured. Nothing the manifest does not name
    (a file a hostile name smuggled in, a host file) ever reaches an array."""
    with packed.open() as stream:
        return inspect_packed(stream, archive.codec, sha256=archive.checksum, size=archive.size)


def verify_archive(archive: Archive, listing: ArchiveListing | None, info, patient: TpsPatient) -> list[str]:
    """The archive opens and lists, matches its manifest file for file, and its plans are the
    patient's plans one to one; its name follows the rules. ``listing`` is the packed file's, read
    before upload (the copies' digests on the targets prove they hold those bytes); without it (an
    earlier attempt's packed file is gone) the archive is read back from a verified copy."""
    problems: list[str] = []
    parts = parse_archive_name(archive.name)
    if parts is None or parts["mrn"] != mrn_part(info.mrn):
        problems.append(f"archive name {archive.name} does not follow the naming rules")
    if listing is None:
        listing = inspect_stored_copy(archive)
        problems += listing.problems + compare_with_manifest(listing)
    else:
        problems += listing.problems
    manifest = listing.manifest or archive.manifest
    packed_plans = sorted((p["plan_id"], p["name"]) for p in manifest.get("plans", []))
    tps_plans = sorted((p.plan_id, p.name) for p in info.plans)
    if packed_plans != tps_plans:
        problems.append(f"plans in the archive {packed_plans} differ from the pending group's {tps_plans}")
    tps_files = sorted((f.path, f.size) for f in info.files)
    manifest_files = sorted((f["path"], f["size"]) for f in manifest.get("files", []))
    if tps_files != manifest_files:
        problems.append("files in the manifest differ from the patient's files in the TPS")
    return problems


def inspect_stored_copy(archive: Archive):
    """List and hash the archive as stored on the first target holding a verified copy."""
    skipped = []
    for copy in sorted(archive.copies.filter(status=ArchiveCopy.Status.VERIFIED).select_related("target"),
                       key=lambda c: (c.encrypted, c.target.priority, c.target.name)):  # plain copies first
        with open_target(copy.target) as backend:
            if not copy.encrypted:
                return inspect_archive(backend.open_stream(archive.name), archive.codec)
            try:
                plain = plaintext_chunks(copy=copy, backend=backend)
            except SecretError:
                skipped.append(no_identity_reason(copy.target))
                continue
            return inspect_archive(io.BufferedReader(ChunkStream(plain)), archive.codec)
    return ArchiveListing(problems=["no verified copy to read the archive back from"
                                    + (f" ({'; '.join(skipped)})" if skipped else "")])
