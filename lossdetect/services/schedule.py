"""The weekly automatic scan: the scans it starts.

The beat entry is declared with every other periodic task in ``pdas/schedules.py`` (the project
owns the schedules): Monday 06:00 in ``settings.TIME_ZONE``, running
``lossdetect.tasks.run_scheduled_scans``, which scans the previous Monday..Sunday of every
institution with an R&V source, each in its own site time. Beat may fire twice and workers may
retry: a window already scanned by a scheduled scan that finished, or is still queued or running
(and not stale, ``core.jobs``), is skipped. The task hands the scans created to workers.
"""
from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from sites.models import Institution
from lossdetect.models import LossScan
from lossdetect.services.scan import create_loss_scan


def previous_week(today: dt.date) -> tuple[dt.date, dt.date]:
    """Monday and Sunday of the week before the one ``today`` is in."""
    monday = today - dt.timedelta(days=today.weekday())
    return monday - dt.timedelta(days=7), monday - dt.timedelta(days=1)


def start_scheduled_scans(*, now: dt.datetime | None = None) -> list[LossScan]:
    """Create the ``queued`` scheduled scans due now and return them; skip windows already covered.
    A stale scan of the window (its worker died) does not cover it: the stale-job sweep closes it."""
    now = now or timezone.now()
    started = []
    for institution in Institution.objects.exclude(rv_url="").order_by("code"):
        window_from, window_to = previous_week(timezone.localtime(now, institution.zone).date())
        with transaction.atomic():
            same_window = LossScan.objects.filter(institution=institution, window_from=window_from,
                                                  window_to=window_to, trigger=LossScan.Trigger.SCHEDULED)
            list(same_window.select_for_update())  # a second beat waits here, then finds this one's scan
            if (same_window.filter(status=LossScan.Status.DONE).exists()
                    or same_window.unfinished().exclude(pk__in=same_window.stale(now).values("pk")).exists()):
                continue
            scan = create_loss_scan(institution=institution, window_from=window_from, window_to=window_to,
                                    trigger=LossScan.Trigger.SCHEDULED, actor=None)
        started.append(scan)
    return started
