"""Declarative tables of the reports pages.

The report tables take the rows of ``reports.rows`` and define the CSV/XLSX exports (raw numbers;
an unknown figure is empty). The report page itself draws the same rows with a lighter template
(``reports/_rows.html``): django-tables2 costs about 0.1 ms a cell, too much for a page that must
stay under 300 ms.
"""
from __future__ import annotations

import django_tables2 as tables
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from core.columns import DateTimeColumn
from reports.models import ReconciliationEntry, ReconciliationImport

UNKNOWN = "—"


class NumberColumn(tables.Column):
    """A number shown with thousands separators; None (unknown) as a dash, and empty in exports."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("attrs", {"td": {"class": "text-end"}, "th": {"class": "text-end"}})
        kwargs.setdefault("default", UNKNOWN)
        super().__init__(*args, **kwargs)

    def render(self, value):
        return f"{value:,}" if isinstance(value, (int, float)) else value

    def value(self, value):
        return "" if value in (None, UNKNOWN) else value


class FigureTable(tables.Table):
    section = tables.Column(verbose_name=_("Section"))
    figure = tables.Column(verbose_name=_("Figure"))
    value = NumberColumn(verbose_name=_("Value"))
    unit = tables.Column(verbose_name=_("Unit"), default="")

    class Meta:
        attrs = {"class": "table table-sm align-middle", "id": "figures"}
        orderable = False


class MonthTable(tables.Table):
    month = tables.Column(verbose_name=_("Month"))
    patients = NumberColumn(verbose_name=_("Patients"))
    archives = NumberColumn(verbose_name=_("Archives"))
    plans = NumberColumn(verbose_name=_("Plans"))
    raw_gb = NumberColumn(verbose_name=_("Raw GB"))
    compressed_gb = NumberColumn(verbose_name=_("Stored GB"))
    ratio = NumberColumn(verbose_name=_("Ratio"))
    runs = NumberColumn(verbose_name=_("Runs"))
    mb_per_s = NumberColumn(verbose_name="MB/s")
    passed = NumberColumn(verbose_name="✓")
    errors = NumberColumn(verbose_name="×")
    warnings = NumberColumn(verbose_name="!")
    restores = NumberColumn(verbose_name=_("Restores"))
    delivered = NumberColumn(verbose_name=_("Delivered"))
    lost = NumberColumn(verbose_name=_("Lost"))
    loss_rate = NumberColumn(verbose_name=_("Loss rate %"))
    pending = NumberColumn(verbose_name=_("Pending-archive table"))

    class Meta:
        attrs = {"class": "table table-sm table-hover align-middle", "id": "months"}
        orderable = False


class RunTable(tables.Table):
    """``reports.rows.run_rows``: each run's duration and MB/s."""

    id = tables.LinkColumn("archiver:run-detail", args=[tables.A("id")], verbose_name=_("Run"))
    started_at = DateTimeColumn(verbose_name=_("Started"), format="Y-m-d H:i")
    finished_at = DateTimeColumn(verbose_name=_("Finished"), format="Y-m-d H:i", default=UNKNOWN)
    minutes = NumberColumn(verbose_name=_("Minutes"))
    requested_by = tables.Column(verbose_name=_("Started by"))
    status = tables.Column(verbose_name=_("Status"))
    patients = NumberColumn(verbose_name=_("Patients"))
    passed = NumberColumn(verbose_name="✓")
    errors = NumberColumn(verbose_name="×")
    warnings = NumberColumn(verbose_name="!")
    archived_mb = NumberColumn(verbose_name=_("Archived MB"))
    mb_per_s = NumberColumn(verbose_name="MB/s")

    class Meta:
        attrs = {"class": "table table-sm table-hover align-middle", "id": "runs"}
        orderable = False


class ReasonTable(tables.Table):
    mark = tables.Column(verbose_name=_("Result"))
    head = tables.Column(verbose_name=_("Reason"))
    count = NumberColumn(verbose_name=_("Patients"))
    example = tables.Column(verbose_name=_("Example"), attrs={"td": {"class": "small text-body-secondary"}})

    class Meta:
        attrs = {"class": "table table-sm align-middle", "id": "reasons"}
        orderable = False
        empty_text = _("No × or ! result in this period.")


# --- reconciliation -----------------------------------------------------------------------------------------

OUTCOME_CSS = {
    "matched": "table-success", "only_in_listing": "table-warning", "only_in_pdas": "table-danger",
    "duplicate": "table-info", "size_mismatch": "table-danger", "checksum_mismatch": "table-danger",
    "unparseable": "table-secondary", "unreadable": "table-dark",
}


class ReconciliationImportTable(tables.Table):
    id = tables.LinkColumn("reports:reconcile-detail", args=[tables.A("pk")], verbose_name=_("Import"))
    created_at = DateTimeColumn(verbose_name=_("Imported"), format="Y-m-d H:i")
    institution = tables.Column(accessor="institution__code", verbose_name=_("Institution"))
    needs_attention = tables.Column(empty_values=(), orderable=False, verbose_name=_("To look at"))

    class Meta:
        model = ReconciliationImport
        fields = ("id", "created_at", "institution", "source", "listing_name", "requested_by", "status", "files",
                  "needs_attention", "error")
        attrs = {"class": "table table-sm table-hover align-middle", "id": "imports"}

    def render_needs_attention(self, record):
        return record.needs_attention


class ReconciliationEntryTable(tables.Table):
    outcome = tables.Column(verbose_name=_("Outcome"))
    line = tables.Column(verbose_name=_("Line"), default="")

    class Meta:
        model = ReconciliationEntry
        fields = ("outcome", "line", "path", "mrn", "size", "sha256", "archive_name", "detail")
        attrs = {"class": "table table-sm align-middle", "id": "entries"}
        row_attrs = {"class": lambda record: OUTCOME_CSS.get(record.outcome, ""),
                     "data-outcome": lambda record: record.outcome}

    def render_outcome(self, value, record):
        return format_html("<strong>{}</strong>", record.get_outcome_display())

    def value_outcome(self, value, record):
        return record.outcome

    def render_sha256(self, value):
        return format_html('<span title="{}">{}…</span>', value, value[:12])

    def value_sha256(self, value):
        return value  # the whole digest in exports, not the shortened markup
