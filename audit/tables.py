"""The audit log as a table: times in the site's zone (exports with their UTC offset); long MRN lists and
details fold open on a click; the hashes are exported but not shown."""
from __future__ import annotations

import json

import django_tables2 as tables
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _, ngettext

from core.columns import DateTimeColumn
from audit.models import AuditEvent

SHOWN_MRNS = 3  # more fold into a "and N more" that opens on a click
SHORT_DETAIL = 80  # characters of a detail shown before it folds
OUTCOME_ROWS = {AuditEvent.Outcome.DENIED: "table-warning", AuditEvent.Outcome.FAILED: "table-danger"}


class AuditEventTable(tables.Table):
    id = tables.Column(verbose_name="#")
    at = tables.Column(verbose_name=_("Time"))
    actor = tables.Column(verbose_name=_("User"))
    event = tables.Column(verbose_name=_("Event"))
    institution = tables.Column(verbose_name=_("Institution"))
    mrns = tables.Column(verbose_name=_("MRNs"), orderable=False)
    object = tables.Column(accessor="object_type", verbose_name=_("Object"), order_by=("object_type", "object_id"))
    outcome = tables.Column(verbose_name=_("Outcome"))
    detail = tables.Column(verbose_name=_("Detail"), orderable=False)
    prev_hash = tables.Column(visible=False)
    hash = tables.Column(visible=False)
    mac = tables.Column(visible=False)
    mac_key = tables.Column(visible=False)

    class Meta:
        model = AuditEvent
        fields = ("id", "at", "actor", "event", "institution", "mrns", "object", "outcome", "detail", "prev_hash",
                  "hash", "mac", "mac_key")
        attrs = {"class": "table table-sm align-middle pdas-audit"}
        row_attrs = {"class": lambda record: OUTCOME_ROWS.get(record.outcome, "")}

    def render_at(self, value):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S")

    def value_at(self, value):
        return timezone.localtime(value).isoformat()

    def render_mrns(self, value):
        if len(value) <= SHOWN_MRNS:
            return ", ".join(value)
        return format_html('<details><summary>{} {}</summary>{}</details>', ", ".join(value[:SHOWN_MRNS]),
                           ngettext("and %(n)d more", "and %(n)d more", len(value) - SHOWN_MRNS)
                           % {"n": len(value) - SHOWN_MRNS}, ", ".join(value))

    def value_mrns(self, value):
        return ", ".join(value)

    def render_object(self, value, record):
        return f"{value} {record.object_id}".strip()

    def render_detail(self, value):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
        if len(text) <= SHORT_DETAIL:
            return text
        return format_html('<details><summary>{}…</summary><pre class="mb-0 small">{}</pre></details>',
                           text[:SHORT_DETAIL], json.dumps(value, ensure_ascii=False, sort_keys=True, indent=2))

    def value_detail(self, value):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)


class PseudonymMapTable(tables.Table):
    """The research exports' pseudonym maps (auditors only): who each pseudonym is, the date offset, how many
    UIDs were replaced. The UID map itself is exported (CSV/XLSX), not shown."""

    institution = tables.Column(accessor="institution__code", verbose_name=_("Institution"))
    mrn = tables.Column(verbose_name=_("Original MRN"))
    pseudonym = tables.Column(verbose_name=_("Pseudonym"))
    date_offset_days = tables.Column(verbose_name=_("Date offset (days)"))
    uids = tables.Column(accessor="uid_map", verbose_name=_("UIDs replaced"), orderable=False)
    exports = tables.Column(verbose_name=_("Exports"))
    created_at = DateTimeColumn(verbose_name=_("Created"), format="Y-m-d H:i")
    created_by = tables.Column(verbose_name=_("By"))
    updated_at = DateTimeColumn(verbose_name=_("Last export"), format="Y-m-d H:i")

    class Meta:
        attrs = {"class": "table table-sm align-middle", "id": "pseudonym-maps"}

    def render_uids(self, value):
        return len(value or {})

    def value_uids(self, value):
        return json.dumps(value or {}, sort_keys=True)
