"""Project-level tasks. ``ping`` answers health checks: it proves a worker takes tasks and reaches the database.
``sweep_stale_jobs_task`` closes the job rows of dead workers (beat)."""
from __future__ import annotations

from celery import shared_task
from django.db import connection

from core.dispatch import BackgroundTask
from pdas.services.jobs import sweep_stale_jobs


@shared_task(name="pdas.ping")
def ping() -> dict[str, str]:
    """Return ``{"pong": "pong", "database": <the database NAME the worker uses>}`` after a round trip to it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"pong": "pong", "database": str(connection.settings_dict["NAME"])}


@shared_task(base=BackgroundTask)
def sweep_stale_jobs_task() -> list[str]:
    """Beat entry (every 15 minutes): close stale job rows as failed; returns them as "Model id"."""
    return [f"{type(job).__name__} {job.pk}" for job in sweep_stale_jobs()]
