"""Celery tasks of curation: thin shells over the services, taking ids; started through ``core.dispatch``."""
from __future__ import annotations

from celery import shared_task

from connectors.tps.base import TpsError
from core.dispatch import BackgroundTask
from curation.models import CurationRun
from curation.services.curate import execute_curation


@shared_task(base=BackgroundTask)
def curate_task(run_id: int) -> str:
    """Run a curation created by the page (``queued``, or ``running`` when a worker died and the
    message came back); a finished run is left alone."""
    run = CurationRun.objects.select_related("institution").filter(pk=run_id).first()
    if run is None or run.finished:
        return "skipped"
    try:
        return execute_curation(run=run).status
    except TpsError:
        return CurationRun.Status.FAILED  # the run row holds the one-line reason the page shows
