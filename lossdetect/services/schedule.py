"""The weekly automatic scan: the scans it starts.

The beat entry is declared with every other periodic task in ``pdas/schedules.py`` (the project
owns the schedules): Monday 06:00 in ``settings.TIME_ZONE``, running
``lossdetect.tasks.run_scheduled_scans``, which scans the previous Monday..Sunday of every
institution with an R&V source, each in its own site time. Beat may fire twice and workers may
retry: a window already scanned by a scheduled scan that finished, or is still running, is skipped.
"""
from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from sites.models import Institution
from lossdetect.models import LossScan
from lossdetect.services.scan import start_loss_scan

def previous_week(today: dt.date) -> tuple[dt.date, dt.date]:
    """Monday and Sunday of the week before the one ``today`` is in."""
    monday = today - dt.timedelta(days=today.weekday())
    return monday - dt.timedelta(days=7), monday - dt.timedelta(days=1)


def _stale_after() -> dt.timedelta:
    # A scan still "running" after the task time limit belongs to a worker that died.
    return dt.timedelta(seconds=getattr(settings, "CELERY_TASK_TIME_LIMIT", 6 * 3600) + 600)


def start_scheduled_scans(*, now: dt.datetime | None = None) -> list[LossScan]:
    """Create the ``running`` scheduled scans due now and enqueue them; skip windows already covered."""
    from lossdetect.tasks import run_loss_scan_task

    now = now or timezone.now()
    started = []
    for institution in Institution.objects.exclude(rv_url="").order_by("code"):
        window_from, window_to = previous_week(timezone.localtime(now, institution.zone).date())
        with transaction.atomic():
            same_window = LossScan.objects.select_for_update().filter(
                institution=institution, window_from=window_from, window_to=window_to,
                trigger=LossScan.Trigger.SCHEDULED)
            same_window.filter(status=LossScan.Status.RUNNING, started_at__lt=now - _stale_after()).update(
                status=LossScan.Status.FAILED, error="the worker running this scan stopped", finished_at=now)
            if same_window.filter(status__in=[LossScan.Status.DONE, LossScan.Status.RUNNING]).exists():
                continue
            scan = start_loss_scan(institution=institution, window_from=window_from, window_to=window_to,
                                   trigger=LossScan.Trigger.SCHEDULED, actor="scheduler")
            transaction.on_commit(lambda pk=scan.pk: run_loss_scan_task.delay(pk))
        started.append(scan)
    return started
