"""Celery tasks of loss detection: thin shells over the services, taking ids; started through ``core.dispatch``."""
from __future__ import annotations

from celery import shared_task

from core.dispatch import BackgroundTask, dispatch
from lossdetect.models import LossScan
from lossdetect.services import schedule
from lossdetect.services.scan import execute_loss_scan


@shared_task(base=BackgroundTask)
def run_scheduled_scans() -> list[int]:
    """Beat entry (weekly): start the previous week's scan of every institution with an R&V source."""
    scans = schedule.start_scheduled_scans()
    for scan in scans:
        dispatch(run_loss_scan_task, scan.pk)
    return [scan.pk for scan in scans]


@shared_task(base=BackgroundTask)
def run_loss_scan_task(scan_id: int) -> str:
    """Run a scan created by the page or the scheduler (``queued``, or ``running`` when a worker died
    and the message came back); a finished scan is left alone."""
    scan = LossScan.objects.select_related("institution").filter(pk=scan_id).first()
    if scan is None or scan.finished:
        return "skipped"
    return execute_loss_scan(scan=scan).status
