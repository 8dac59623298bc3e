"""Purging the quarantine: originals are deleted only while their archive is safely stored, proven now.

A quarantined patient past its ``purge_after`` is deleted when, right before the deletion, every
verified copy of its archive was checked again on its target (``fixity.check_copy``: hashed there or
read back) and the archive is still *safely stored* (docs/keeping.md: ``min_copies`` verified copies on
enabled targets, each checked within ``fixity_cycle_days``). Otherwise the originals stay, and the
reason is reported and audited. The database's ``Archive.status`` is history and is never trusted here.

The folder is first renamed to ``.purging-<name>`` beside it (one rename: atomic), then deleted, then the
purge is recorded. A purge killed half-way thus leaves a ``.purging-`` folder, never a partly deleted
folder under the quarantine name: the next purge re-proves the archive and finishes the deletion (one
``quarantine.purge`` row), or, if the archive is no longer safely stored, deletes nothing more and reports
the originals as no longer whole.
"""
from __future__ import annotations

import datetime as dt
import posixpath
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from archiver.faults import checkpoint
from archiver.services.fixity import check_copy
from audit.events import Event
from audit.services import record_event
from connectors.storage import StorageError
from connectors.tps.base import TpsError, TpsSource
from inventory.models import Archive, ArchiveCopy, QuarantinedPatient
from sites.connections import open_target
from sites.models import Institution


@dataclass
class PurgeReport:
    purged: list[dict] = field(default_factory=list)
    kept: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"purged": self.purged, "kept": self.kept}


def _copy_states(archive: Archive) -> str:
    copies = archive.copies.select_related("target").order_by("target__name")
    return ", ".join(f"{c.status} on {c.target.name}{'' if c.target.enabled else ' (disabled)'}" for c in copies) \
        or "no copies"


def recheck_copies(*, archive: Archive, actor) -> list[str]:
    """Check every verified copy of ``archive`` on an enabled target again, now; the problems found."""
    problems = []
    for copy in archive.copies.filter(status=ArchiveCopy.Status.VERIFIED, target__enabled=True).select_related(
            "target", "archive__institution"):
        try:
            with open_target(copy.target) as backend:
                check = check_copy(copy=copy, backend=backend, actor=actor)
        except StorageError as exc:
            problems.append(f"{copy.target.name}: {exc}")
            continue
        if check.outcome != "pass":
            problems.append(f"{copy.target.name}: {check.reason or check.outcome}")
    return problems


def purge_quarantine(*, institution: Institution, source: TpsSource, actor,
                     now: dt.datetime | None = None) -> PurgeReport:
    """Delete the quarantined originals past their time whose archive is safely stored, proven now."""
    now = now or timezone.now()
    report = PurgeReport()
    rows = (QuarantinedPatient.objects.filter(institution=institution, purged_at__isnull=True, moved_at__isnull=False,
                                              purge_after__lte=now)
            .select_related("archive__institution").order_by("purge_after", "pk"))
    for row in rows:
        archive = row.archive
        reason = ""
        if archive.status != Archive.Status.VERIFIED:
            reason = f"archive {archive.name} is {archive.get_status_display().lower()}, not verified"
        elif not archive.is_safely_stored(now=now):
            reason = f"archive {archive.name} is not safely stored ({_copy_states(archive)})"
        else:
            problems = recheck_copies(archive=archive, actor=actor)
            archive.refresh_from_db()
            if not archive.is_safely_stored(now=timezone.now()):
                reason = (f"archive {archive.name} failed its re-check before deletion: " + "; ".join(problems)
                          if problems else f"archive {archive.name} is not safely stored ({_copy_states(archive)})")
        purging = purging_path(row)
        if reason:
            _keep(row, reason=reason + _not_whole(row, source, purging), actor=actor, report=report)
            continue
        checkpoint("purge_rechecked")
        try:
            if source.stat(row.quarantine_path) is not None:
                source.rename(row.quarantine_path, purging)
            checkpoint("purge_deleting")
            source.remove_tree(purging)
        except TpsError as exc:
            _keep(row, reason=f"cannot delete {row.quarantine_path}: {exc}" + _not_whole(row, source, purging),
                  actor=actor, report=report)
            continue
        with transaction.atomic():
            row.purged_at = now
            row.save(update_fields=["purged_at"])
            record_event(actor=actor, event=Event.QUARANTINE_PURGE, institution=institution.code, mrns=[archive.mrn],
                         obj=row, detail={"quarantine_path": row.quarantine_path, "archive": archive.name})
        report.purged.append({"mrn": archive.mrn, "tps_path": row.tps_path, "archive": archive.name})
    return report


def purging_path(row: QuarantinedPatient) -> str:
    """Where the purge moves the quarantined folder right before deleting it: beside it, ``.purging-<name>``."""
    parent, name = posixpath.split(row.quarantine_path)
    return posixpath.join(parent, f".purging-{name}")


def _not_whole(row: QuarantinedPatient, source: TpsSource, purging: str) -> str:
    """What keeping means when the originals are not whole any more: "" while the quarantined folder is whole."""
    try:
        if source.stat(purging) is not None:
            return (f"; the originals are no longer whole: a purge began deleting them, what is left is in "
                    f"{purging}")
        if source.stat(row.quarantine_path) is None:
            return f"; the originals are gone: {row.quarantine_path} is not on the TPS"
    except TpsError as exc:
        return f"; whether the originals are whole is unknown: {exc}"
    return ""


def _keep(row: QuarantinedPatient, *, reason: str, actor, report: PurgeReport) -> None:
    record_event(actor=actor, event=Event.QUARANTINE_KEEP, institution=row.institution.code, mrns=[row.archive.mrn],
                 obj=row, outcome="failed", detail={"quarantine_path": row.quarantine_path,
                                                    "archive": row.archive.name, "reason": reason[:1000]})
    report.kept.append({"mrn": row.archive.mrn, "tps_path": row.tps_path, "reason": reason})
