"""Keeping archives whole: re-checking every copy on its target, and repairing the bad ones.

A copy's state is its latest check (docs/keeping.md):
- ``verified``: its digest, measured on the target (``sha256sum`` there, or the file read back), and its
  size equal the packed archive's, and both sidecars say the same;
- ``missing``: the target answered and the file (or a sidecar) is not there;
- ``corrupt``: it is there but its size or digest differs, or a sidecar disagrees;
- ``unreachable``: the target could not be asked (connection refused, timeout, unmounted, a listing
  that came back empty): unknown, never taken for missing.

Two kinds of check: the *full* check hashes the copy (``check_copy``) and is the one the rolling cycle
counts (``last_checked_at``); the *presence* check compares one listing of the target with every copy
on it (``check_presence``): cheap, it finds deleted and truncated files between full checks but never
makes a copy ``verified``. Each check is a FixityCheck row; each change of state is audited. A copy is
checked in its own transaction, so a killed sweep resumes with what it had not reached (oldest first).

Repair (``repair_copy``) re-makes a missing or corrupt copy from a verified copy on another enabled
target of the same institution, then checks it like a new upload.

On an encrypted target (``encrypt_to``) every check looks at the encrypted objects, named after the
archive's SHA-256, and compares the digest of the encrypted bytes: no key is needed. A repair there
encrypts the archive again from a plain verified copy on another target; an encrypted copy is a source
only when its target's identity is configured (it is decrypted as it is read), and without one the
repair says so (``no_identity_reason``) and tries the next source.
"""
from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from alerts.models import Alert
from alerts.services import settle_alerts
from archiver.faults import checkpoint, checkpoint_after_first
from archiver.services.rendition_keeping import RenditionCheckReport, check_renditions
from archiver.services.transfer import (
    measure_copy, no_identity_reason, plaintext_chunks, record_measurement, sha256_sidecar, store_copy,
)
from audit.events import Event
from audit.services import record_event
from connectors.errors import SecretError
from connectors.storage import StorageBackend, StorageError
from connectors.storage.encrypted import IdentityMissing, sidecar_line
from inventory.models import Archive, ArchiveCopy, FixityCheck
from sites.connections import open_target
from sites.models import Institution, StorageTarget

State = ArchiveCopy.Status
PRESENCE_BATCH = 1000  # copies recorded per transaction by a presence check
# An ``uploading`` copy of an archive verified once is a repair (or a re-upload) that stopped half-way:
# checked like the others, so the next run finds it missing (or whole) and finishes the job.
CHECKED_STATES = (State.VERIFIED, State.MISSING, State.CORRUPT, State.UNREACHABLE, State.UPLOADED, State.UPLOADING)
UNMEASURED_STATES = (State.UPLOADING, State.UPLOADED)  # stored (or being stored), not measured since


@dataclass
class CopyResult:
    """One copy after this run: its state, how it was checked, and whether this run re-made it."""

    archive: str
    target: str
    status: str
    method: str
    checked_at: dt.datetime | None
    repaired: bool = False
    reason: str = ""

    def as_dict(self) -> dict:
        return {"archive": self.archive, "target": self.target, "status": self.status, "method": self.method,
                "checked_at": self.checked_at.isoformat() if self.checked_at else None, "repaired": self.repaired,
                "reason": self.reason}


@dataclass
class CheckReport:
    copies: list[CopyResult] = field(default_factory=list)
    renditions: RenditionCheckReport | None = None  # the RenditionCheckReport of the same run (archiver/services/rendition_keeping.py)

    def summary(self) -> dict[str, int]:
        counts = {"checked": len(self.copies), "verified": 0, "missing": 0, "corrupt": 0, "unreachable": 0,
                  "repaired": sum(1 for c in self.copies if c.repaired)}
        for copy in self.copies:
            if copy.status in counts:
                counts[copy.status] += 1
        return counts

    @property
    def all_verified(self) -> bool:
        """Every archive copy verified, and every rendition copy checked whole."""
        renditions_whole = self.renditions is None or self.renditions.all_whole
        return renditions_whole and all(c.status == State.VERIFIED for c in self.copies)

    def as_dict(self) -> dict:
        data = {"copies": [c.as_dict() for c in self.copies], "summary": self.summary()}
        if self.renditions is not None and self.renditions.copies:  # only where renditions are kept
            data["renditions"] = self.renditions.as_dict()
        return data


# --- recording -----------------------------------------------------------------------------------


def _record_state(copy: ArchiveCopy, *, old_status: str, check: FixityCheck, actor) -> None:
    """Audit a change of state (the check row itself is written for every check)."""
    if copy.status == old_status:
        return
    record_event(actor=actor, event=Event.COPY_STATE, institution=copy.archive.institution.code, obj=copy,
                 mrns=[copy.archive.mrn], outcome="ok" if copy.status == State.VERIFIED else "failed",
                 detail={"archive": copy.archive.name, "target": copy.target.name, "from": old_status,
                         "to": copy.status, "method": check.method, "checked_at": check.checked_at.isoformat(),
                         "reason": check.reason[:500]})


def _mark_unreachable(copy: ArchiveCopy, *, reason: str, actor, method: str = FixityCheck.Method.READ_BACK,
                      now: dt.datetime | None = None) -> FixityCheck:
    now = now or timezone.now()
    with transaction.atomic():
        old = copy.status
        check = FixityCheck.objects.create(copy=copy, checked_at=now, method=method,
                                           outcome=FixityCheck.Outcome.UNKNOWN, reason=reason[:2000])
        copy.status = State.UNREACHABLE
        copy.save(update_fields=["status"])
        _record_state(copy, old_status=old, check=check, actor=actor)
    return check


def check_copy(*, copy: ArchiveCopy, backend: StorageBackend, actor) -> FixityCheck:
    """The full check of one copy: measured on the target (no transaction held meanwhile), then the check
    row, the copy's state and, when it changed, its audit row written in one transaction."""
    found = measure_copy(copy=copy, backend=backend)
    with transaction.atomic():
        old = copy.status
        check = record_measurement(copy=copy, found=found)
        _record_state(copy, old_status=old, check=check, actor=actor)
    return check


def check_presence(*, target: StorageTarget, copies: list[ArchiveCopy], backend: StorageBackend, actor,
                   now: dt.datetime | None = None) -> dict[int, FixityCheck]:
    """One listing of the target against its copies: absent files are ``missing``, wrong sizes ``corrupt``.

    A copy found whole keeps its state (only a full check makes a copy ``verified``). A listing that
    fails, or that holds no file at all while copies are expected, proves nothing: every copy is
    ``unreachable``."""
    now = now or timezone.now()
    try:
        listing = {f.name: f.size for f in backend.list_files()}
    except StorageError as exc:
        return {c.pk: _mark_unreachable(c, reason=str(exc), actor=actor, method=FixityCheck.Method.LISTED, now=now)
                for c in copies}
    if not listing and copies:
        # An unmounted share lists empty too. Copies already known missing stay missing (a new or emptied
        # target is filled by repair); the others become unknown, never "all missing".
        reason = f"{target.name} lists no files at all: unknown (unmounted or emptied?), not taken as missing"
        return {c.pk: _mark_unreachable(c, reason=reason, actor=actor, method=FixityCheck.Method.LISTED, now=now)
                for c in copies if c.status != State.MISSING}
    results: dict[int, FixityCheck] = {}
    for batch_start in range(0, len(copies), PRESENCE_BATCH):
        batch = copies[batch_start:batch_start + PRESENCE_BATCH]
        checks, changed = [], []
        for copy in batch:
            copy.target = target  # one target: its encrypt_to decides the names looked for
            problems, absent, listed_size = _presence_problems(copy, listing)
            checks.append(FixityCheck(
                copy=copy, checked_at=now, method=FixityCheck.Method.LISTED, size=listed_size,
                outcome=FixityCheck.Outcome.FAIL if problems else FixityCheck.Outcome.PASS, reason="; ".join(problems)))
            old = copy.status
            copy.last_listed_at = now
            if problems:
                copy.status = State.MISSING if absent else State.CORRUPT
            if copy.status != old:
                changed.append((copy, old))
        # One transaction per batch: the check rows, the copies' new states and their audit rows together.
        with transaction.atomic():
            FixityCheck.objects.bulk_create(checks)
            ArchiveCopy.objects.filter(pk__in=[copy.pk for copy in batch]).update(last_listed_at=now)
            by_copy = {check.copy_id: check for check in checks}
            for copy, old in changed:  # few: a row each
                ArchiveCopy.objects.filter(pk=copy.pk).update(status=copy.status)
                _record_state(copy, old_status=old, check=by_copy[copy.pk], actor=actor)
        results.update((check.copy_id, check) for check in checks)
    return results


def _presence_problems(copy: ArchiveCopy, listing: dict[str, int]) -> tuple[list[str], list[str], int | None]:
    """What one listing says of one copy: its problems, the objects absent, and the archive's listed size.
    On an encrypted target the objects are the encrypted ones, and the size compared is the one recorded
    when the archive was encrypted (no key needed)."""
    archive = copy.archive
    names = copy.object_names()
    absent = [name for name in names if name not in listing]
    problems = ["not on the target: " + ", ".join(absent)] if absent else []
    main, sidecar = names[0], names[1]
    expected_size = copy.encrypted_size if copy.encrypted else archive.size
    expected_sidecar = (len(sidecar_line("0" * 64, main)) if copy.encrypted else len(sha256_sidecar(archive)))
    if absent:
        pass
    elif expected_size is not None and listing[main] != expected_size:
        problems.append(f"size on target {listing[main]} != {'encrypted' if copy.encrypted else 'packed'} "
                        f"{expected_size}")
    elif listing[sidecar] != expected_sidecar:
        problems.append(f"{sidecar} has the wrong size")
    return problems, absent, listing.get(main)


# --- which copies are due ------------------------------------------------------------------------


def checked_copies(*, institution: Institution, target: StorageTarget | None = None):
    """The copies PDAS keeps an eye on: of archives that were verified once, on enabled targets."""
    copies = (ArchiveCopy.objects.filter(archive__institution=institution, target__enabled=True,
                                         archive__status=Archive.Status.VERIFIED, status__in=CHECKED_STATES)
              .select_related("archive__institution", "target").defer("archive__manifest"))  # read when needed
    return copies.filter(target=target) if target is not None else copies


def due_copies(*, institution: Institution, target: StorageTarget | None = None,
               now: dt.datetime | None = None) -> list[ArchiveCopy]:
    """Tonight's slice of the rolling cycle: the oldest-checked copies, at least one cycle-day's share of
    all copies (so every copy is reached within ``fixity_cycle_days``) and every copy already overdue; and
    every copy not measured since it was stored (``uploading``, ``uploaded``), whatever its last check."""
    now = now or timezone.now()
    copies = checked_copies(institution=institution, target=target)
    total = copies.count()
    if not total:
        return []
    share = math.ceil(total / max(institution.fixity_cycle_days, 1))
    overdue_after = now - dt.timedelta(days=institution.fixity_cycle_days)
    overdue = copies.filter(Q(last_checked_at__isnull=True) | Q(last_checked_at__lt=overdue_after)).count()
    ordered = copies.order_by(F("last_checked_at").asc(nulls_first=True), "pk")
    due = list(ordered[:max(share, overdue)])
    taken = {copy.pk for copy in due}
    return due + [copy for copy in ordered.filter(status__in=UNMEASURED_STATES) if copy.pk not in taken]


# --- repair ----------------------------------------------------------------------------------------


def repair_copy(*, copy: ArchiveCopy, actor) -> FixityCheck | None:
    """Re-make a missing or corrupt copy from a verified copy on another enabled target; the check of the
    new copy (``pass`` when it is verified), or None when there was no source to try.

    ``store_copy`` removes the bad file and its sidecars first and streams the source's bytes; the new
    copy is then measured on its target like any upload, which is what proves the source whole too (a
    source that fails it is checked and recorded, and the next source is tried)."""
    archive = copy.archive
    sources = sorted(archive.copies.filter(status=State.VERIFIED, target__enabled=True).exclude(pk=copy.pk)
                     .select_related("target", "archive__institution"),
                     key=lambda c: (c.encrypted, c.target.priority, c.target.name))  # plain sources first
    check = None
    for source in sources:
        try:
            with open_target(source.target) as source_backend, open_target(copy.target) as backend:
                try:
                    plain = plaintext_chunks(copy=source, backend=source_backend)
                except SecretError as exc:
                    # An encrypted source without its identity cannot give the archive's bytes.
                    raise StorageError(no_identity_reason(source.target) if isinstance(exc, IdentityMissing)
                                       else str(exc)) from None
                store_copy(archive=archive, target=copy.target, backend=backend,
                           chunks_factory=lambda: checkpoint_after_first(plain, "repair_upload"))
                # What the upload recorded (an encrypted copy's new digests) is what the check compares.
                copy.refresh_from_db(fields=["path", "checksum", "size", "encrypted_sha256",
                                             "encrypted_size", "encrypted_manifest_sha256"])
                checkpoint("repair_stored")
                check = check_copy(copy=copy, backend=backend, actor=actor)
                if check.outcome != FixityCheck.Outcome.PASS:
                    check_copy(copy=source, backend=source_backend, actor=actor)  # did the source go bad?
        except StorageError as exc:
            record_event(actor=actor, event=Event.COPY_REPAIR, institution=archive.institution.code, obj=copy,
                         mrns=[archive.mrn], outcome="failed",
                         detail={"archive": archive.name, "target": copy.target.name, "from": source.target.name,
                                 "reason": str(exc)[:500]})
            continue
        record_event(actor=actor, event=Event.COPY_REPAIR, institution=archive.institution.code, obj=copy,
                     mrns=[archive.mrn], outcome="ok" if copy.status == State.VERIFIED else "failed",
                     detail={"archive": archive.name, "target": copy.target.name, "from": source.target.name,
                             "method": check.method, "reason": check.reason[:500]})
        if copy.status == State.VERIFIED:
            break
    return check


# --- one run ---------------------------------------------------------------------------------------


def check_archives(*, institution: Institution, actor, target: StorageTarget | None = None, check_all: bool = False,
                   repair: bool = False, time_budget: float | None = None,
                   now: dt.datetime | None = None) -> CheckReport:
    """``manage.py check_archives`` and the nightly sweep: the presence of every copy (one listing per
    target), then the full check of what is due (everything with ``check_all``), then, with ``repair``,
    re-making what is missing or corrupt. ``time_budget`` (seconds) stops the full checks early; the rest
    stays due and is reached first next time."""
    now = now or timezone.now()
    started = time.monotonic()
    copies = list(checked_copies(institution=institution, target=target))
    by_target: dict[int, list[ArchiveCopy]] = {}
    for copy in copies:
        by_target.setdefault(copy.target_id, []).append(copy)
    due = {c.pk for c in (copies if check_all else due_copies(institution=institution, target=target, now=now))}
    last: dict[int, FixityCheck] = {}
    for target_copies in by_target.values():
        storage_target = target_copies[0].target
        try:
            backend = open_target(storage_target)
        except StorageError as exc:
            for copy in target_copies:
                last[copy.pk] = _mark_unreachable(copy, reason=str(exc), actor=actor, now=now)
            continue
        with backend:
            last.update(check_presence(target=storage_target, copies=target_copies, backend=backend, actor=actor,
                                       now=now))
            for copy in target_copies:
                listed = last.get(copy.pk)
                if copy.pk not in due or (listed is not None and listed.outcome == FixityCheck.Outcome.UNKNOWN):
                    continue  # not due, or the listing showed the target cannot be trusted now
                if time_budget is not None and time.monotonic() - started > time_budget:
                    break
                last[copy.pk] = check_copy(copy=copy, backend=backend, actor=actor)
                checkpoint("fixity_checked")  # a sweep killed here has recorded this copy's check
    repaired: set[int] = set()
    if repair:
        for copy in copies:  # their states are the ones just recorded: no second read
            if copy.status in (State.MISSING, State.CORRUPT):
                check = repair_copy(copy=copy, actor=actor)
                if check is not None:
                    last[copy.pk] = check
                    if check.outcome == FixityCheck.Outcome.PASS:
                        repaired.add(copy.pk)
    report = CheckReport()
    for copy in copies:
        check = last.get(copy.pk)
        report.copies.append(CopyResult(
            archive=copy.archive.name, target=copy.target.name, status=copy.status,
            method=check.method if check else "", checked_at=check.checked_at if check else None,
            repaired=copy.pk in repaired, reason=check.reason if check else ""))
    # The run reads where every patient's archive stands: audited, naming the patients it found at fault.
    record_event(actor=actor, event=Event.ARCHIVE_CHECK, institution=institution.code,
                 mrns=[c.archive.mrn for c in copies if c.status != State.VERIFIED],
                 outcome="ok" if report.all_verified else "failed",
                 detail={"target": target.name if target else "", "all": check_all, "repair": repair,
                         **report.summary()})
    alert_archives_without_verified_copy(institution=institution, actor=actor)
    # The renditions stored beside the archives: re-hashed in the same run, repaired after the archives
    # (a rendition made again is read from an archive copy just repaired).
    left = None if time_budget is None else max(time_budget - (time.monotonic() - started), 0.0)
    report.renditions = check_renditions(institution=institution, actor=actor, target=target, check_all=check_all,
                                         repair=repair, time_budget=left, now=now)
    return report


def alert_archives_without_verified_copy(*, institution: Institution, actor) -> list[Archive]:
    """Archives that were verified but have no verified copy left: each a standing ``archive_unsafe`` alert
    (raised once, audited and mailed; cleared once a copy is verified again). Returns them."""
    lost = list(Archive.objects.filter(institution=institution).without_verified_copy()
                .prefetch_related("copies__target").defer("manifest"))
    standing = {f"archive:{archive.pk}": {"mrn": archive.mrn, "archive": archive.name,
                                          "copies": {c.target.name: c.status for c in archive.copies.all()}}
                for archive in lost}
    settle_alerts(institution=institution, kind=Alert.Kind.ARCHIVE_UNSAFE, standing=standing, actor=actor)
    return lost
