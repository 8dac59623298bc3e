"""Keeping the targets that enforce retention themselves (S3 with Object Lock) in step with PDAS.

An archive's ``retain_until`` and ``legal_hold`` go to the store with each upload (``store_copy``). When
PDAS changes them later (a later delivery moves ``retain_until``; a person places or releases a legal
hold) this hands the new values to every enabled target that holds a copy and can enforce them: the
archive and both sidecars get the retention (only ever extended: the store refuses to shorten it) and
the legal hold. Called after the change committed, so a slow or unreachable store never holds up the
change itself; a store that could not be reached is logged and returned, and keeps its earlier (never
shorter) lock until the next change or upload.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable

from connectors.errors import ConnectorError
from connectors.storage import ObjectLock
from inventory.models import ArchiveCopy
from sites.connections import open_target
from sites.models import Institution, StorageTarget

log = logging.getLogger(__name__)

LOCKING_SCHEMES = ("s3://",)  # the targets whose store can enforce a retention date and a legal hold


def has_locking_target(institution: Institution) -> bool:
    """Whether any enabled target of the institution can enforce retention (so mirroring has work)."""
    return any(url.startswith(LOCKING_SCHEMES) for url in StorageTarget.objects.filter(
        institution=institution, enabled=True).values_list("url", flat=True))


def mirror_object_lock(*, archive_ids: Iterable[int]) -> list[str]:
    """Give the copies of these archives on locking targets their archive's current retention and legal
    hold; returns one line per target or file that could not be updated (empty when all were)."""
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
                    problems += _mirror_one(backend, copy, str(target))
        except ConnectorError as exc:
            problems.append(f"{target}: {exc}")
    for problem in problems:
        log.warning("object lock not updated: %s", problem)
    return problems


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
