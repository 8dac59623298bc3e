"""``/healthz``: is PDAS able to do its work now? One entry per check, each ``ok``, ``fail`` or ``off``
(not used in this mode), with a one-line detail.

- ``database``: a query answers.
- ``broker``: the Celery broker accepts a connection (``off`` in the embedded mode: tasks run in-process).
- ``workers``: at least one Celery worker answers a ping (``off`` in the embedded mode).
- ``beat``: the scheduler ran a periodic task within ``PDAS_HEALTH_BEAT_MINUTES`` (the stale-job sweep
  runs every 15 minutes, so a live beat ticks well within that; ``off`` in the embedded mode).
- ``target:<institution>/<name>``: each enabled storage target; ``fail`` while the watchdog's
  ``target_unreachable`` alert stands. From the watchdog's and the checks' results, not a new connection
  per request: a load balancer polling every few seconds must not open sessions to every array.
- ``rv:<institution>``: each R&V source; ``fail`` when the latest loss scan failed, ``ok`` when it was
  read, ``unknown`` before the first scan.

The answer is 200 when nothing is ``fail``, else 503. ``?live=1`` checks the database only (a load
balancer's question: can this web process serve pages?).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.utils import timezone

OK, FAIL, OFF, UNKNOWN = "ok", "fail", "off", "unknown"


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str = ""


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def check_database() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure of the database is the answer, not an error page
        return Check("database", FAIL, _one_line(exc))
    return Check("database", OK, connection.vendor)


def check_broker() -> list[Check]:
    if not settings.CELERY_BROKER_URL:
        return [Check("broker", OFF, "embedded mode: tasks run in the web process"),
                Check("workers", OFF, "embedded mode")]
    from pdas.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=settings.PDAS_HEALTH_TIMEOUT)
    except Exception as exc:  # kombu raises its transport's errors
        return [Check("broker", FAIL, _one_line(exc)), Check("workers", UNKNOWN, "the broker cannot be reached")]
    try:
        replies = app.control.ping(timeout=settings.PDAS_HEALTH_TIMEOUT) or []
    except Exception as exc:
        return [Check("broker", OK), Check("workers", FAIL, _one_line(exc))]
    names = sorted(name for reply in replies for name in reply)
    workers = Check("workers", OK, ", ".join(names)) if names else Check("workers", FAIL, "no worker answered a ping")
    return [Check("broker", OK), workers]


def check_beat(now: dt.datetime) -> Check:
    if not settings.CELERY_BROKER_URL:
        return Check("beat", OFF, "embedded mode: schedules run only with a broker and beat")
    from django.db.models import Max
    from django_celery_beat.models import PeriodicTask

    from django.db.models import Min

    enabled = PeriodicTask.objects.filter(enabled=True)
    last = enabled.aggregate(last=Max("last_run_at"))["last"]
    limit = dt.timedelta(minutes=settings.PDAS_HEALTH_BEAT_MINUTES)
    if last is None:
        # A new installation: beat's first tick of the 15-minute sweep comes 15 minutes after it starts,
        # so "never ran" is a failure only once the schedule has stood longer than the limit.
        since = enabled.aggregate(since=Min("date_changed"))["since"]
        if since is not None and now - since <= limit:
            return Check("beat", OK, f"no tick yet; scheduled since {since.isoformat(timespec='seconds')}")
        return Check("beat", FAIL, "no periodic task has ever run")
    if now - last > limit:
        return Check("beat", FAIL, f"last tick {last.isoformat(timespec='seconds')}, over "
                                   f"{settings.PDAS_HEALTH_BEAT_MINUTES} minutes ago")
    return Check("beat", OK, f"last tick {last.isoformat(timespec='seconds')}")


def check_targets_and_sources() -> list[Check]:
    from alerts.models import Alert
    from lossdetect.models import LossScan
    from sites.models import Institution, StorageTarget

    unreachable = {(a.institution.code, a.subject): a for a in Alert.objects.standing()
                   .filter(kind="target_unreachable").select_related("institution")}
    checks = []
    for target in StorageTarget.objects.filter(enabled=True).select_related("institution").order_by(
            "institution__code", "name"):
        key = (target.institution.code, target.name)
        alert = unreachable.get(key)
        checks.append(Check(f"target:{key[0]}/{key[1]}", FAIL if alert else OK,
                            f"unreachable since {alert.raised_at.isoformat(timespec='minutes')}" if alert else ""))
    for institution in Institution.objects.exclude(rv_url="").order_by("code"):
        scan = (LossScan.objects.filter(institution=institution, status__in=[LossScan.Status.DONE,
                                                                             LossScan.Status.FAILED])
                .order_by("-created_at", "-id").only("status", "error", "finished_at").first())
        if scan is None:
            checks.append(Check(f"rv:{institution.code}", UNKNOWN, "no loss scan yet"))
        elif scan.status == LossScan.Status.FAILED:
            checks.append(Check(f"rv:{institution.code}", FAIL, f"the latest loss scan failed: {scan.error}"[:300]))
        else:
            checks.append(Check(f"rv:{institution.code}", OK, f"read {scan.finished_at:%Y-%m-%d %H:%M} UTC"
                                if scan.finished_at else "read"))
    return checks


def health(*, live_only: bool = False) -> tuple[int, dict]:
    """(HTTP status, body): 200 when no check failed, else 503."""
    now = timezone.now()
    checks = [check_database()]
    if not live_only and checks[0].status == OK:
        checks += check_broker()
        checks.append(check_beat(now))
        checks += check_targets_and_sources()
    failed = [c.name for c in checks if c.status == FAIL]
    body = {"status": "fail" if failed else "ok", "failed": failed, "time": now.isoformat(timespec="seconds"),
            "checks": {c.name: {"status": c.status, "detail": c.detail} for c in checks}}
    return (503 if failed else 200), body
