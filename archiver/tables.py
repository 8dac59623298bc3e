"""Declarative tables of the archiving pages."""
from __future__ import annotations

import django_tables2 as tables
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from archiver.models import ArchiveRun, PatientArchiveTask, RestoreRecord

RESULT_MARKS = {"pass": ("✓", "table-success"), "error": ("×", "table-danger"), "warning": ("!", "table-warning"),
                "pending": ("…", "")}


class ArchiveRunTable(tables.Table):
    id = tables.LinkColumn("archiver:run-detail", args=[tables.A("pk")], verbose_name=_("Run"))
    institution = tables.Column(accessor="institution__code", verbose_name=_("Institution"))
    created_at = tables.DateTimeColumn(verbose_name=_("Started"), format="Y-m-d H:i")
    patients = tables.Column(verbose_name=_("Patients"), orderable=True)
    passed = tables.Column(verbose_name="✓")
    errors = tables.Column(verbose_name="×")
    warnings = tables.Column(verbose_name="!")
    raw_bytes = tables.Column(verbose_name=_("Raw MB"))

    class Meta:
        model = ArchiveRun
        fields = ("id", "institution", "created_at", "requested_by", "status", "patients", "passed", "errors",
                  "warnings", "raw_bytes", "finished_at")
        attrs = {"class": "table table-sm table-hover align-middle"}

    def render_raw_bytes(self, value):
        return f"{(value or 0) / 1e6:,.1f}"

    def value_raw_bytes(self, value):
        return value or 0


class PatientResultTable(tables.Table):
    result = tables.Column(verbose_name=_("Result"))
    mrn = tables.Column(accessor="patient__mrn", verbose_name=_("MRN"))
    name = tables.Column(accessor="patient__last_name", verbose_name=_("Name"), order_by=("patient__last_name",))
    tps_path = tables.Column(accessor="patient__tps_path", verbose_name=_("TPS path"))
    archive = tables.Column(accessor="archive__name", verbose_name=_("Archive"), default="")
    step = tables.Column(verbose_name=_("Step"))
    progress = tables.Column(empty_values=(), orderable=False, verbose_name=_("Progress"), exclude_from_export=True)
    reason = tables.Column(verbose_name=_("Reason"))

    class Meta:
        model = PatientArchiveTask
        fields = ("result", "mrn", "name", "tps_path", "archive", "step", "progress", "bytes_done", "bytes_total",
                  "reason")
        attrs = {"class": "table table-sm align-middle"}
        row_attrs = {"class": lambda record: RESULT_MARKS.get(record.result, ("", ""))[1],
                     "data-task": lambda record: record.pk}

    def render_result(self, value, record):
        mark, _css = RESULT_MARKS.get(record.result, ("?", ""))
        return format_html('<span class="fw-bold" title="{}">{}</span>', record.get_result_display(), mark)

    def value_result(self, value, record):
        return record.result

    def render_name(self, value, record):
        return record.patient.display_name

    def render_progress(self, record):
        percent = int(100 * record.bytes_done / record.bytes_total) if record.bytes_total else 0
        percent = min(percent, 100)
        return format_html(
            '<div class="progress" style="min-width:6rem" role="progressbar" aria-valuenow="{0}" aria-valuemin="0" '
            'aria-valuemax="100"><div class="progress-bar" style="width:{0}%">{0}%</div></div>', percent)


class RestoreCandidateTable(tables.Table):
    """Archives a restore could use (``archiver.services.restore.Candidate`` objects), newest first."""

    packed_at = tables.DateTimeColumn(verbose_name=_("Packed"), format="Y-m-d H:i")
    patient = tables.Column(accessor="display_name", verbose_name=_("Patient"), orderable=False)
    mrn = tables.Column(verbose_name=_("MRN"))
    folder = tables.Column(accessor="tps_path", verbose_name=_("Pinnacle folder"))
    plans = tables.Column(verbose_name=_("Plans"), orderable=False)
    size = tables.Column(verbose_name=_("Size (MB)"))
    targets = tables.Column(verbose_name=_("Targets"), orderable=False)
    status = tables.Column(verbose_name=_("Status"))
    name = tables.Column(verbose_name=_("Archive"))
    restore = tables.TemplateColumn(template_name="archiver/includes/restore_button.html", verbose_name="",
                                    orderable=False, exclude_from_export=True)

    class Meta:
        attrs = {"class": "table table-sm table-hover align-middle", "id": "candidates"}
        orderable = False  # newest first, as the service lists them

    def render_plans(self, value):
        return ", ".join(value) or "—"

    def render_size(self, value):
        return f"{(value or 0) / 1e6:,.1f}"

    def render_targets(self, value):
        return ", ".join(value)

    def render_status(self, value):
        css = {"verified": "text-bg-success", "not indexed": "text-bg-secondary", "failed": "text-bg-danger"}
        return format_html('<span class="badge {}">{}</span>', css.get(value, "text-bg-warning"), value)

    def value_status(self, value):
        return value


class RestoreRecordTable(tables.Table):
    id = tables.LinkColumn("archiver:restore-detail", args=[tables.A("pk")], verbose_name=_("Restore"))
    started_at = tables.DateTimeColumn(verbose_name=_("Started"), format="Y-m-d H:i")
    archive = tables.Column(accessor="archive__name", verbose_name=_("Archive"))
    mrn = tables.Column(accessor="archive__mrn", verbose_name=_("MRN"))

    class Meta:
        model = RestoreRecord
        fields = ("id", "started_at", "requested_by", "mrn", "archive", "destination", "tps_path", "status", "files",
                  "reason")
        attrs = {"class": "table table-sm align-middle"}
        orderable = False
