"""Reads of alerts for pages."""
from __future__ import annotations

from django.db.models import QuerySet

from alerts.models import Alert
from sites.models import Institution


def standing_alerts(*, institutions: QuerySet[Institution] | list[Institution]) -> dict[int, list[Alert]]:
    """The standing alerts of ``institutions``, oldest first, by institution id (one query)."""
    by_institution: dict[int, list[Alert]] = {}
    rows = Alert.objects.standing().filter(institution__in=institutions).select_related("institution")
    for alert in rows.order_by("raised_at", "pk"):
        by_institution.setdefault(alert.institution_id, []).append(alert)
    return by_institution
