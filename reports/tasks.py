"""Celery tasks of the reports app: thin shells over the services."""
from __future__ import annotations

from celery import shared_task

from audit.actors import SCHEDULER
from core.dispatch import BackgroundTask


@shared_task(base=BackgroundTask)
def watchdog_task() -> dict[str, list[str]]:
    """Beat entry (hourly): raise and clear the alerts that fire on absence; returns the standing kinds."""
    from reports.services.watchdog import watch

    return watch(actor=SCHEDULER).standing
