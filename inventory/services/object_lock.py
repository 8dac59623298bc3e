"""Keeping the targets that enforce retention themselves (S3 with Object Lock) in step with PDAS.

An archive's ``retain_until`` and ``legal_hold`` go to the store with each upload (``store_copy``). When
PDAS changes them later (a later delivery moves ``retain_until``; a person places or releases a legal
hold) this hands the new values to every enabled target that holds a copy and can enforce them: the
archive and both sidecars get the retention (only ever extended: the store refuses to shorten it) and
the legal hold. Called after the change committed, so a slow or unreachable store never holds up the
change itself. Each copy to update is marked ``lock_pending`` in the change's own transaction and
unmarked once its store holds the new values, so a store that could not be reached (it keeps its
earlier, never shorter, lock meanwhile) is not forgotten: ``retry_pending_locks`` (the hourly watchdog)
tries those copies again until it holds them, each try audited (``archive.lock_mirror``).
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import transaction

from audit.events import Event
from audit.services import record_event
from connectors.errors import ConnectorError
from connectors.storage import ObjectLock
from inventory.models import Archive, ArchiveCopy
from sites.connections import open_target
from sites.models import Institution, StorageTarget

log = logging.getLogger(__name__)

LOCKING_SCHEMES = ("s3://",)  # the targets whose store can enforce a retention date and a legal hold


def has_locking_target(institution: Institution) -> bool:
    """Whether any enabled target of the institution can enforce retention (so mirroring has work)."""
    return any(url.startswith(LOCKING_SCHEMES) for url in StorageTarget.objects.filter(
        institution=institution, enabled=True).values_list("url", flat=True))


def mirror_after_commit(archive_ids: list[int]) -> None:
    """Call in the transaction that changed these archives' retention or legal hold: their copies on locking
    targets are marked pending with the change, and mirrored once it committed."""
    ArchiveCopy.objects.filter(archive_id__in=archive_ids, target__url__startswith=LOCKING_SCHEMES[0]).update(
        lock_pending=True)
    transaction.on_commit(lambda: mirror_object_lock(archive_ids=archive_ids))


def mirror_object_lock(*, archive_ids: Iterable[int]) -> list[str]:
    """Give the copies of these archives on locking targets their archive's current retention and legal
    hold; returns one line per target or file that could not be updated (empty when all were). A copy
    updated whole is no longer ``lock_pending``."""
    copies = (ArchiveCopy.objects.filter(archive_id__in=list(archive_ids), target__enabled=True)
              .exclude(status__in=[ArchiveCopy.Status.MISSING, ArchiveCopy.Status.UPLOADING])
              .select_related("archive", "target__institution"))
    by_target: dict[int, list[ArchiveCopy]] = defaultdict(list)
    for copy in copies:
        if copy.target.url.startswith(LOCKING_SCHEMES):
            by_target[copy.target_id].append(copy)
    problems: list[str] = []
    for target_copies in by_target.values():
        target = target_copies[0].target
        try:
            with open_target(target) as backend:
                for copy in target_copies:
                    missed = _mirror_one(backend, copy, str(target))
                    problems += missed
                    if not missed:
                        _mirrored(copy)
        except ConnectorError as exc:
            problems.append(f"{target}: {exc}")
    for problem in problems:
        log.warning("object lock not updated: %s", problem)
    return problems


def _mirrored(copy: ArchiveCopy) -> None:
    """No longer pending, unless the archive changed again since its values were read (that change's own
    mirror, or the next retry, carries it)."""
    archive = copy.archive
    ArchiveCopy.objects.filter(pk=copy.pk, archive__legal_hold=archive.legal_hold,
                               archive__retain_until=archive.retain_until).update(lock_pending=False)


@dataclass
class LockRetry:
    copies: int = 0  # pending copies tried
    done: int = 0  # now held by their store
    problems: list[str] = field(default_factory=list)


def retry_pending_locks(*, actor) -> LockRetry:
    """Mirror again every copy still ``lock_pending`` (its store could not be reached when the archive
    changed); one ``archive.lock_mirror`` row per institution that had any, naming what is still pending."""
    report = LockRetry()
    pending = (ArchiveCopy.objects.filter(lock_pending=True, target__enabled=True)
               .exclude(status__in=[ArchiveCopy.Status.MISSING, ArchiveCopy.Status.UPLOADING]))
    by_institution: dict[int, set[int]] = defaultdict(set)
    for institution_id, archive_id in pending.values_list("archive__institution_id", "archive_id"):
        by_institution[institution_id].add(archive_id)
    for institution in Institution.objects.filter(pk__in=list(by_institution)).order_by("code"):
        ids = sorted(by_institution[institution.pk])
        tried = pending.filter(archive_id__in=ids)
        before = tried.count()
        problems = mirror_object_lock(archive_ids=ids)
        left = tried.filter(lock_pending=True)
        still = left.count()
        report.copies, report.done = report.copies + before, report.done + before - still
        report.problems += problems
        record_event(actor=actor, event=Event.ARCHIVE_LOCK_MIRROR, institution=institution.code,
                     mrns=sorted(set(Archive.objects.filter(pk__in=ids).values_list("mrn", flat=True))),
                     outcome="failed" if still else "ok",
                     detail={"copies": before, "done": before - still, "still_pending": still,
                             "archives": sorted(set(left.values_list("archive__name", flat=True)))[:50],
                             "problems": problems[:20]})
    return report


def _mirror_one(backend, copy: ArchiveCopy, where: str) -> list[str]:
    archive = copy.archive
    lock = ObjectLock(retain_until=archive.retain_until, legal_hold=archive.legal_hold)
    problems = []
    for name in copy.object_names():  # on an encrypted target, its encrypted objects
        try:
            if backend.stat(name) is not None:
                backend.apply_lock(name, lock)
        except ConnectorError as exc:
            problems.append(f"{where}: {name}: {exc}")
    return problems
