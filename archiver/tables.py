"""Declarative tables of the archiving pages."""
from __future__ import annotations

import django_tables2 as tables
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import formats, timezone
from django.template.loader import render_to_string
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from core.columns import DateTimeColumn
from archiver.models import ArchiveRun, PatientArchiveTask, RestoreRecord
from inventory.models import Archive, FixityCheck

RESULT_MARKS = {"pass": ("✓", "table-success"), "error": ("×", "table-danger"), "warning": ("!", "table-warning"),
                "pending": ("…", "")}


class ArchiveRunTable(tables.Table):
    id = tables.LinkColumn("archiver:run-detail", args=[tables.A("pk")], verbose_name=_("Run"))
    institution = tables.Column(accessor="institution__code", verbose_name=_("Institution"))
    created_at = DateTimeColumn(verbose_name=_("Started"), format="Y-m-d H:i")
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

    def render_status(self, value, record):
        key, label = record.outcome(errors=record.errors, warnings=record.warnings)
        return format_html('<span class="badge pdas-status-{}">{}</span>', key, label)

    def value_status(self, value, record):
        return record.outcome(errors=record.errors, warnings=record.warnings)[1]

    def render_errors(self, value):
        return format_html('<span class="badge text-bg-danger">{}</span>', value) if value else value

    def render_raw_bytes(self, value):
        return f"{(value or 0) / 1e6:,.1f}"

    def value_raw_bytes(self, value):
        return value or 0


class PatientResultTable(tables.Table):
    result = tables.Column(verbose_name=_("Result"), attrs={"td": {"class": "result"}})
    mrn = tables.Column(accessor="patient__mrn", verbose_name=_("MRN"))
    name = tables.Column(accessor="patient__last_name", verbose_name=_("Name"), order_by=("patient__last_name",))
    tps_path = tables.Column(accessor="patient__tps_path", verbose_name=_("TPS path"))
    archive = tables.Column(accessor="archive__name", verbose_name=_("Archive"), default="",
                            attrs={"td": {"class": "archive text-break"}})
    step = tables.Column(verbose_name=_("Step"), attrs={"td": {"class": "step"}})
    progress = tables.Column(empty_values=(), orderable=False, verbose_name=_("Progress"), exclude_from_export=True)
    bytes_done = tables.Column(verbose_name=_("Bytes done"), attrs={"td": {"class": "bytes-done text-nowrap"}})
    bytes_total = tables.Column(verbose_name=_("Bytes total"), attrs={"td": {"class": "bytes-total text-nowrap"}})
    reason = tables.Column(verbose_name=_("Reason"), attrs={"td": {"class": "reason text-break"}})

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

    def render_bytes_done(self, value):
        return filesizeformat(value)

    def render_bytes_total(self, value):
        return filesizeformat(value)

    def value_bytes_done(self, value):
        return value

    def value_bytes_total(self, value):
        return value

    def render_progress(self, record):
        percent = int(100 * record.bytes_done / record.bytes_total) if record.bytes_total else 0
        percent = min(percent, 100)
        return format_html(
            '<div class="progress" style="min-width:6rem" role="progressbar" aria-valuenow="{0}" aria-valuemin="0" '
            'aria-valuemax="100"><div class="progress-bar" style="width:{0}%">{0}%</div></div>', percent)


def _status_label(value: str) -> str:
    """A candidate's status in the reader's language (the export keeps the code)."""
    if value == "not indexed":
        return str(_("not indexed"))
    return str(Archive.Status(value).label) if value in Archive.Status.values else value


class RestoreCandidateTable(tables.Table):
    """Archives a restore could use (``archiver.services.restore.Candidate`` objects), newest first."""

    packed_at = DateTimeColumn(verbose_name=_("Packed"), format="Y-m-d H:i")
    patient = tables.Column(accessor="display_name", verbose_name=_("Patient"), orderable=False)
    mrn = tables.Column(verbose_name=_("MRN"))
    folder = tables.Column(accessor="tps_path", verbose_name=_("Pinnacle folder"))
    plans = tables.Column(verbose_name=_("Plans"), orderable=False)
    size = tables.Column(verbose_name=_("Size (MB)"))
    targets = tables.Column(verbose_name=_("Targets"), orderable=False)
    status = tables.Column(verbose_name=_("Status"))
    name = tables.Column(verbose_name=_("Archive"))
    dicom = tables.Column(accessor="archive_id", verbose_name=_("DICOM (reference copy, not for treatment)"),
                          orderable=False, empty_values=(), exclude_from_export=True)
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

    def render_dicom(self, value):
        """The rendition's status (``renditions``: DicomRendition by archive id, set by the view): made, with the
        download link (and the anonymised export for ``can_export``); failed, with the reason; waiting or running;
        or not attempted; and, for ``can_render``, the "Make DICOM" / "Make again" button (POST)."""
        if value is None:
            return "—"  # not indexed yet: nothing to render from
        context = getattr(self, "context", None)
        return render_to_string("archiver/includes/rendition_cell.html", {
            "rendition": getattr(self, "renditions", {}).get(value), "archive_id": value,
            "can_render": getattr(self, "can_render", False), "can_export": getattr(self, "can_export", False),
        }, request=context.get("request") if context is not None else None)

    def render_status(self, value):
        css = {"verified": "text-bg-success", "not indexed": "text-bg-secondary", "failed": "text-bg-danger"}
        return format_html('<span class="badge {}">{}</span>', css.get(value, "text-bg-warning"),
                           _status_label(value))

    def value_status(self, value):
        return value


class RestoreRecordTable(tables.Table):
    id = tables.LinkColumn("archiver:restore-detail", args=[tables.A("pk")], verbose_name=_("Restore"))
    started_at = DateTimeColumn(verbose_name=_("Started"), format="Y-m-d H:i")
    archive = tables.Column(accessor="archive__name", verbose_name=_("Archive"))
    mrn = tables.Column(accessor="archive__mrn", verbose_name=_("MRN"))

    class Meta:
        model = RestoreRecord
        fields = ("id", "started_at", "requested_by", "mrn", "archive", "destination", "tps_path", "status", "files",
                  "reason")
        attrs = {"class": "table table-sm align-middle"}
        orderable = False


def _when(value) -> str:
    return formats.date_format(timezone.localtime(value), "Y-m-d H:i") if value else "—"


class TargetOverviewTable(tables.Table):
    """Storage targets (``archiver.selectors.TargetOverview`` rows): copies by state and the cycle covered."""

    institution = tables.Column(verbose_name=_("Institution"))
    name = tables.Column(verbose_name=_("Target"), linkify=lambda record: reverse("archiver:target-detail",
                                                                               args=[record.target.pk]))
    copies = tables.Column(verbose_name=_("Copies"))
    verified = tables.Column(verbose_name=_("Verified"))
    missing = tables.Column(verbose_name=_("Missing"))
    corrupt = tables.Column(verbose_name=_("Corrupt"))
    unreachable = tables.Column(verbose_name=_("Unreachable"))
    other = tables.Column(verbose_name=_("Not verified yet"))
    cycle_covered = tables.Column(verbose_name=_("Checked within the cycle"))
    oldest_check = tables.Column(verbose_name=_("Oldest full check"))
    last_drill = tables.Column(verbose_name=_("Last restore drill"), accessor="last_drill", orderable=False,
                               default=_("none yet"))

    class Meta:
        attrs = {"class": "table table-sm table-hover align-middle"}
        row_attrs = {"class": lambda record: "table-danger" if record.problems or record.standing_alerts else ""}

    def _bad(self, value):
        return format_html('<span class="fw-bold text-danger">{}</span>', value) if value else "0"

    def render_missing(self, value):
        return self._bad(value)

    def render_corrupt(self, value):
        return self._bad(value)

    def render_unreachable(self, value):
        return self._bad(value)

    def render_cycle_covered(self, value):
        return "—" if value is None else f"{value:.1f} %"

    def value_cycle_covered(self, value):
        return "" if value is None else value

    def render_oldest_check(self, value):
        return _when(value)

    def value_oldest_check(self, value):
        return timezone.localtime(value).isoformat() if value else ""

    def render_last_drill(self, value):
        css = {"pass": "text-success", "fail": "text-danger fw-bold", "unknown": "text-warning"}[value.outcome]
        return format_html('<span class="{}">{}</span> <span class="small text-body-secondary">{}</span>', css,
                           value.get_outcome_display(), _when(value.started_at))

    def value_last_drill(self, value):
        return f"{value.outcome} {timezone.localtime(value.started_at).isoformat()}" if value else ""


COPY_MARKS = {"verified": "table-success", "missing": "table-danger", "corrupt": "table-danger",
              "unreachable": "table-warning"}


class TargetCopyTable(tables.Table):
    """The copies on one target, the bad ones first, with their latest check."""

    status = tables.Column(verbose_name=_("State"))
    mrn = tables.Column(accessor="archive__mrn", verbose_name=_("MRN"))
    patient = tables.Column(accessor="archive__last_name", verbose_name=_("Name"), order_by=("archive__last_name",))
    archive = tables.Column(accessor="archive__name", verbose_name=_("Archive"))
    size = tables.Column(accessor="archive__size", verbose_name=_("Size"))
    last_checked_at = tables.Column(verbose_name=_("Last full check"))
    last_listed_at = tables.Column(verbose_name=_("Last listed"))
    check_method = tables.Column(verbose_name=_("Method"), default="")
    check_reason = tables.Column(verbose_name=_("Reason"), default="", attrs={"td": {"class": "text-break"}})

    class Meta:
        attrs = {"class": "table table-sm align-middle"}
        row_attrs = {"class": lambda record: COPY_MARKS.get(record.status, "")}

    def render_status(self, value, record):
        return record.get_status_display()

    def value_status(self, value):
        return value

    def render_patient(self, value, record):
        return f"{record.archive.last_name} {record.archive.first_name}".strip()

    def render_size(self, value):
        return filesizeformat(value)

    def value_size(self, value):
        return value

    def render_last_checked_at(self, value):
        return _when(value)

    def render_last_listed_at(self, value):
        return _when(value)

    def value_last_checked_at(self, value):
        return timezone.localtime(value).isoformat() if value else ""

    def value_last_listed_at(self, value):
        return timezone.localtime(value).isoformat() if value else ""

    def render_check_method(self, value):
        return FixityCheck.Method(value).label if value in FixityCheck.Method.values else value
