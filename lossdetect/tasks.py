"""Celery tasks of loss detection: thin shells over the services, taking ids."""
from __future__ import annotations

from celery import shared_task

from lossdetect.models import LossScan
from lossdetect.services import schedule
from lossdetect.services.scan import execute_loss_scan


@shared_task
def run_scheduled_scans() -> list[int]:
    """Beat entry (weekly): start the previous week's scan of every institution with an R&V source."""
    return [scan.pk for scan in schedule.start_scheduled_scans()]


@shared_task
def run_loss_scan_task(scan_id: int) -> str:
    """Run a scan created ``running`` (by the page or the scheduler); a finished scan is left alone."""
    scan = LossScan.objects.select_related("institution").filter(pk=scan_id).first()
    if scan is None or scan.status != LossScan.Status.RUNNING:
        return "skipped"
    return execute_loss_scan(scan=scan).status
