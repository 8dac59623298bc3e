"""The audit log as a table: times in UTC; the hashes are exported but not shown."""
from __future__ import annotations

import datetime as dt
import json

import django_tables2 as tables
from django.utils.translation import gettext_lazy as _

from audit.models import AuditEvent

OUTCOME_ROWS = {AuditEvent.Outcome.DENIED: "table-warning", AuditEvent.Outcome.FAILED: "table-danger"}


class AuditEventTable(tables.Table):
    id = tables.Column(verbose_name="#")
    at = tables.Column(verbose_name=_("Time (UTC)"))
    actor = tables.Column(verbose_name=_("User"))
    event = tables.Column(verbose_name=_("Event"))
    institution = tables.Column(verbose_name=_("Institution"))
    mrns = tables.Column(verbose_name=_("MRNs"), orderable=False)
    object = tables.Column(accessor="object_type", verbose_name=_("Object"), order_by=("object_type", "object_id"))
    outcome = tables.Column(verbose_name=_("Outcome"))
    detail = tables.Column(verbose_name=_("Detail"), orderable=False)
    prev_hash = tables.Column(visible=False)
    hash = tables.Column(visible=False)

    class Meta:
        model = AuditEvent
        fields = ("id", "at", "actor", "event", "institution", "mrns", "object", "outcome", "detail", "prev_hash",
                  "hash")
        attrs = {"class": "table table-sm align-middle pdas-audit"}
        row_attrs = {"class": lambda record: OUTCOME_ROWS.get(record.outcome, "")}

    def render_at(self, value):
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")

    def value_at(self, value):
        return value.astimezone(dt.timezone.utc).isoformat()

    def render_mrns(self, value):
        return ", ".join(value)

    def render_object(self, value, record):
        return f"{value} {record.object_id}".strip()

    def render_detail(self, value):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
