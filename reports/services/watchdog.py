"""The watchdog: alerts that fire on absence (docs/keeping.md, "Alerts").

A job that stops running says nothing, so nothing it would report ever arrives. The watchdog runs on
its own beat entry (hourly), independent of the jobs it watches, and asks of each institution:
- did an archive run finish within ``PDAS_ALERT_ARCHIVE_RUN_DAYS``?
- did a loss scan succeed within ``PDAS_ALERT_LOSS_SCAN_DAYS`` (institutions with an R&V source)?
- is every copy's full check within its ``fixity_cycle_days`` (plus ``PDAS_ALERT_FIXITY_GRACE_DAYS``)?
- did every enabled target answer a check within ``PDAS_ALERT_TARGET_UNREACHABLE_DAYS``?
- has every archive that was verified once a verified copy left?
Each answer settles that kind's standing alerts (raised once, cleared when resolved, both audited);
then the mail of any standing alert not mailed yet is tried again. Last, the S3 Object Lock updates a
store missed while it was unreachable are tried again (``inventory.services.object_lock``).
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Count, Max, Min, Q
from django.utils import timezone

from alerts.models import Alert
from alerts.services import send_unsent_alerts, settle_alerts
from archiver.models import ArchiveRun
from archiver.services.fixity import alert_archives_without_verified_copy, checked_copies
from inventory.models import FixityCheck
from lossdetect.models import LossScan
from sites.models import Institution

log = logging.getLogger(__name__)
Kind = Alert.Kind


@dataclass
class WatchReport:
    standing: dict[str, list[str]] = field(default_factory=dict)  # institution code -> standing kinds
    mailed: int = 0
    locks_pending: int = 0  # copies whose store still lacks the archive's retention or legal hold (-1: unknown)


def _day(value: dt.datetime | None, institution: Institution) -> str:
    return timezone.localtime(value, institution.zone).strftime("%Y-%m-%d %H:%M") if value else ""


def _absence(*, institution: Institution, last: dt.datetime | None, days: int, now: dt.datetime) -> dict[str, dict]:
    """The standing alert (subject "") when ``last`` (or, never, the institution's creation) is older than
    ``days``; none otherwise."""
    since = last or institution.created_at
    if now - since < dt.timedelta(days=days):
        return {}
    return {"": {"days": (now - since).days, "last": _day(last, institution)}}


def no_archive_run(*, institution: Institution, now: dt.datetime) -> dict[str, dict]:
    last = (ArchiveRun.objects.filter(institution=institution, status=ArchiveRun.Status.DONE)
            .aggregate(last=Max("finished_at"))["last"])
    return _absence(institution=institution, last=last, days=settings.PDAS_ALERT_ARCHIVE_RUN_DAYS, now=now)


def no_loss_scan(*, institution: Institution, now: dt.datetime) -> dict[str, dict]:
    if not institution.rv_url:
        return {}  # nothing to scan: no R&V source configured
    last = (LossScan.objects.filter(institution=institution, status=LossScan.Status.DONE)
            .aggregate(last=Max("finished_at"))["last"])
    return _absence(institution=institution, last=last, days=settings.PDAS_ALERT_LOSS_SCAN_DAYS, now=now)


def fixity_behind(*, institution: Institution, now: dt.datetime) -> dict[str, dict]:
    """Copies whose last full check is older than the cycle plus the grace (never checked: stored that long ago)."""
    cycle = institution.fixity_cycle_days
    cutoff = now - dt.timedelta(days=cycle + settings.PDAS_ALERT_FIXITY_GRACE_DAYS)
    late = checked_copies(institution=institution).filter(
        Q(last_checked_at__lt=cutoff) | Q(last_checked_at__isnull=True, archive__verified_at__lt=cutoff))
    found = late.aggregate(n=Count("pk"), oldest=Min("last_checked_at"))
    if not found["n"]:
        return {}
    return {"": {"copies": found["n"], "cycle_days": cycle, "last": _day(found["oldest"], institution)}}


def unreachable_targets(*, institution: Institution, now: dt.datetime) -> dict[str, dict]:
    """Enabled targets whose checks in the window came back unknown since their last answer, for longer
    than ``PDAS_ALERT_TARGET_UNREACHABLE_DAYS``. The window (the cycle plus those days) keeps the query to
    recent check rows; a target that answered nothing in it counts from its first unknown check there."""
    days = settings.PDAS_ALERT_TARGET_UNREACHABLE_DAYS
    window = now - dt.timedelta(days=institution.fixity_cycle_days + days)
    rows = (FixityCheck.objects.filter(copy__archive__institution=institution, copy__target__enabled=True,
                                       checked_at__gte=window)
            .values("copy__target__name")
            .annotate(latest=Max("checked_at"),
                      answered=Max("checked_at", filter=~Q(outcome=FixityCheck.Outcome.UNKNOWN)),
                      first_unknown=Min("checked_at", filter=Q(outcome=FixityCheck.Outcome.UNKNOWN))))
    standing = {}
    for row in rows:
        if row["answered"] is not None and row["answered"] >= row["latest"]:
            continue  # its latest check got an answer
        since = row["answered"] or row["first_unknown"]
        if since is None or now - since < dt.timedelta(days=days):
            continue
        standing[row["copy__target__name"]] = {"days": (now - since).days, "last": _day(row["answered"], institution)}
    return standing


CHECKS = {
    Kind.NO_ARCHIVE_RUN: no_archive_run,
    Kind.NO_LOSS_SCAN: no_loss_scan,
    Kind.FIXITY_BEHIND: fixity_behind,
    Kind.TARGET_UNREACHABLE: unreachable_targets,
}


def watch(*, actor, now: dt.datetime | None = None) -> WatchReport:
    """One tick over every institution; one institution's failure (logged) never stops the others."""
    now = now or timezone.now()
    report = WatchReport()
    for institution in Institution.objects.all():
        try:
            for kind, check in CHECKS.items():
                settle_alerts(institution=institution, kind=kind, standing=check(institution=institution, now=now),
                              actor=actor, now=now)
            alert_archives_without_verified_copy(institution=institution, actor=actor)
        except Exception:  # noqa: BLE001 - logged; the next institution is still watched
            log.exception("watchdog: %s could not be checked", institution.code)
        report.standing[institution.code] = sorted(
            Alert.objects.standing().filter(institution=institution).values_list("kind", flat=True))
    report.mailed = send_unsent_alerts()
    report.locks_pending = _retry_object_locks(actor)
    return report


def _retry_object_locks(actor) -> int:
    """S3 Object Lock updates a store missed when it could not be reached (docs/keeping.md, "Retention and
    legal hold"), tried again each hour after the alerts, so a slow store never delays them; the copies
    still pending."""
    from inventory.services.object_lock import retry_pending_locks

    try:
        retry = retry_pending_locks(actor=actor)
    except Exception:  # noqa: BLE001 - logged; the next tick tries again
        log.exception("watchdog: the pending Object Lock updates could not be retried")
        return -1
    return retry.copies - retry.done
