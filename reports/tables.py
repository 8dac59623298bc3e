"""Declarative tables of the reports pages, and the rows the report tables are built from.

Every table exports to CSV/XLSX with raw numbers (bytes in GB or MB as shown, rates as numbers);
an unknown figure (no run timed, no plan delivered) is "—" on the page and empty in the export.
"""
from __future__ import annotations

import django_tables2 as tables
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from archiver.models import ArchiveRun, PatientArchiveTask
from reports.models import ReconciliationEntry, ReconciliationImport
from reports.selectors import Report, megabytes_per_second

UNKNOWN = "—"
Result = PatientArchiveTask.Result


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _percent(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 2)


def _days(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def figure_rows(report: Report) -> list[dict]:
    """The period's figures as (section, figure, value, unit) rows."""
    volume, throughput, restores = report.volume, report.throughput, report.restores
    losses, quarantine, pending = report.losses, report.quarantine, report.pending
    archived, moved, table = _("Archived"), _("Archive runs"), _("Now")
    return [
        {"section": archived, "figure": _("Patients archived"), "value": volume.patients, "unit": ""},
        {"section": archived, "figure": _("Archives"), "value": volume.archives, "unit": ""},
        {"section": archived, "figure": _("Plans archived"), "value": volume.plans, "unit": ""},
        {"section": archived, "figure": _("Raw data"), "value": _round(volume.raw_bytes / 1e9, 3), "unit": "GB"},
        {"section": archived, "figure": _("Compressed (stored)"), "value": _round(volume.compressed_bytes / 1e9, 3),
         "unit": "GB"},
        {"section": archived, "figure": _("Compression ratio (raw / stored)"),
         "value": _round(volume.compression_ratio), "unit": ": 1"},
        {"section": moved, "figure": _("Runs"), "value": throughput.runs, "unit": ""},
        {"section": moved, "figure": _("Runs finished"), "value": throughput.finished_runs, "unit": ""},
        {"section": moved, "figure": _("Time of the finished runs"), "value": _round(throughput.seconds / 3600),
         "unit": "h"},
        {"section": moved, "figure": _("Throughput"), "value": _round(throughput.mb_per_s), "unit": "MB/s"},
        {"section": moved, "figure": _("✓ archived, verified, originals removed"),
         "value": throughput.results.get(Result.PASS, 0), "unit": ""},
        {"section": moved, "figure": _("× not archived, originals kept"),
         "value": throughput.results.get(Result.ERROR, 0), "unit": ""},
        {"section": moved, "figure": _("! archived, originals kept"),
         "value": throughput.results.get(Result.WARNING, 0), "unit": ""},
        {"section": moved, "figure": _("Still pending"), "value": throughput.results.get(Result.PENDING, 0),
         "unit": ""},
        {"section": _("Restores"), "figure": _("Restores"), "value": restores.restores, "unit": ""},
        {"section": _("Restores"), "figure": _("Restores done"), "value": restores.done, "unit": ""},
        {"section": _("Restores"), "figure": _("Restores failed or refused"), "value": restores.failed, "unit": ""},
        {"section": _("Restores"), "figure": _("Data restored"), "value": _round(restores.bytes / 1e9, 3),
         "unit": "GB"},
        {"section": _("Loss detection"), "figure": _("Delivered plans checked"), "value": losses.delivered,
         "unit": ""},
        {"section": _("Loss detection"), "figure": _("Lost, first course"), "value": losses.first_course_lost,
         "unit": ""},
        {"section": _("Loss detection"), "figure": _("Lost, re-course"), "value": losses.recourse_lost, "unit": ""},
        {"section": _("Loss detection"), "figure": _("Loss rate (lost / delivered)"),
         "value": _percent(losses.loss_rate), "unit": "%"},
        {"section": table, "figure": _("Quarantine: patients not yet purged"), "value": quarantine.patients,
         "unit": ""},
        {"section": table, "figure": _("Quarantine size"), "value": _round(quarantine.bytes / 1e9, 3), "unit": "GB"},
        {"section": table, "figure": _("Pending-archive table: plans"), "value": pending.plans, "unit": ""},
        {"section": table, "figure": _("Pending-archive table: oldest"), "value": _days(pending.oldest_days),
         "unit": _("days")},
        {"section": table, "figure": _("Pending-archive table: median age"), "value": _days(pending.median_days),
         "unit": _("days")},
    ]


def month_rows(report: Report) -> list[dict]:
    rows = []
    for row in report.months:
        volume, throughput, losses = row.volume, row.throughput, row.losses
        rows.append({
            "month": f"{row.month:%Y-%m}", "patients": volume.patients, "archives": volume.archives,
            "plans": volume.plans, "raw_gb": _round(volume.raw_bytes / 1e9, 3),
            "compressed_gb": _round(volume.compressed_bytes / 1e9, 3), "ratio": _round(volume.compression_ratio),
            "runs": throughput.runs, "mb_per_s": _round(throughput.mb_per_s),
            "passed": throughput.results.get(Result.PASS, 0), "errors": throughput.results.get(Result.ERROR, 0),
            "warnings": throughput.results.get(Result.WARNING, 0), "restores": row.restores.restores,
            "delivered": losses.delivered, "lost": losses.lost, "loss_rate": _percent(losses.loss_rate),
            "pending": row.pending,
        })
    return rows


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
    """``reports.selectors.archive_runs`` rows: each run's duration and MB/s."""

    id = tables.LinkColumn("archiver:run-detail", args=[tables.A("pk")], verbose_name=_("Run"))
    started_at = tables.DateTimeColumn(verbose_name=_("Started"), format="Y-m-d H:i")
    finished_at = tables.DateTimeColumn(verbose_name=_("Finished"), format="Y-m-d H:i", default=UNKNOWN)
    duration = NumberColumn(empty_values=(), verbose_name=_("Minutes"))
    patients = NumberColumn(verbose_name=_("Patients"))
    passed = NumberColumn(verbose_name="✓")
    errors = NumberColumn(verbose_name="×")
    warnings = NumberColumn(verbose_name="!")
    archived_mb = NumberColumn(empty_values=(), verbose_name=_("Archived MB"))
    mb_per_s = NumberColumn(empty_values=(), verbose_name="MB/s")

    class Meta:
        model = ArchiveRun
        fields = ("id", "started_at", "finished_at", "duration", "started_by", "status", "patients", "passed",
                  "errors", "warnings", "archived_mb", "mb_per_s")
        attrs = {"class": "table table-sm table-hover align-middle", "id": "runs"}
        orderable = False

    def _duration(self, record) -> float | None:
        return record.duration.total_seconds() if record.duration else None

    def render_duration(self, record):
        seconds = self._duration(record)
        return UNKNOWN if seconds is None else f"{seconds / 60:,.1f}"

    def value_duration(self, record):
        seconds = self._duration(record)
        return "" if seconds is None else round(seconds / 60, 2)

    def render_archived_mb(self, record):
        return f"{(record.archived_bytes or 0) / 1e6:,.1f}"

    def value_archived_mb(self, record):
        return round((record.archived_bytes or 0) / 1e6, 3)

    def value_mb_per_s(self, record):
        rate = megabytes_per_second(record.archived_bytes or 0, self._duration(record))
        return "" if rate is None else round(rate, 3)

    def render_mb_per_s(self, record):
        rate = self.value_mb_per_s(record)
        return UNKNOWN if rate == "" else f"{rate:,.2f}"


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
    imported_at = tables.DateTimeColumn(verbose_name=_("Imported"), format="Y-m-d H:i")
    institution = tables.Column(accessor="institution__code", verbose_name=_("Institution"))
    needs_attention = tables.Column(empty_values=(), orderable=False, verbose_name=_("To look at"))

    class Meta:
        model = ReconciliationImport
        fields = ("id", "imported_at", "institution", "source", "listing_name", "imported_by", "status", "files",
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
