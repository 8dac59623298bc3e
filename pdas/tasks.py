"""Project-level tasks. ``ping`` answers health checks: it proves a worker takes tasks and reaches the database."""
from __future__ import annotations

from celery import shared_task
from django.db import connection


@shared_task(name="pdas.ping")
def ping() -> dict[str, str]:
    """Return ``{"pong": "pong", "database": <the database NAME the worker uses>}`` after a round trip to it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"pong": "pong", "database": str(connection.settings_dict["NAME"])}
