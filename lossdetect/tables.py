"""Declarative tables of the loss detection pages."""
from __future__ import annotations

import django_tables2 as tables
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from core.columns import DateTimeColumn
from lossdetect.models import Category, LossFinding, LossScan, MrnAlias, OtherTpsRecord, PendingPlan

# Colour of each category (Bootstrap contextual names): lost red, unarchived amber, archived green;
# the re-course tab of each pair is the stronger shade.
CATEGORY_COLOURS = {
    Category.FIRST_COURSE_LOST: "danger",
    Category.RECOURSE_LOST: "danger",
    Category.FIRST_COURSE_UNARCHIVED: "warning",
    Category.RECOURSE_UNARCHIVED: "warning",
    Category.FIRST_COURSE_ARCHIVED: "success",
    Category.RECOURSE_ARCHIVED: "success",
}
STATUS_COLOURS = {"running": "secondary", "done": "success", "failed": "danger",
                  "pending": "warning", "released": "success", "lost": "danger"}


def _badge(colour: str, text) -> str:
    return format_html('<span class="badge text-bg-{}">{}</span>', colour, text)


class LossScanTable(tables.Table):
    id = tables.LinkColumn("lossdetect:scan-detail", args=[tables.A("pk")], verbose_name=_("Scan"))
    institution = tables.Column(accessor="institution__code", verbose_name=_("Institution"))
    started_at = DateTimeColumn(verbose_name=_("Started"), format="Y-m-d H:i")
    window = tables.Column(empty_values=(), order_by=("window_from", "window_to"), verbose_name=_("Window"))
    checked = tables.Column(accessor="summary__checked", default="", orderable=False, verbose_name=_("Plans checked"))
    pending = tables.Column(accessor="summary__pending", default="", orderable=False, verbose_name=_("Pending"))
    first_course_lost = tables.Column(accessor="summary__first_course_lost", default="", orderable=False,
                                      verbose_name=_("First-course lost"))
    recourse_lost = tables.Column(accessor="summary__recourse_lost", default="", orderable=False,
                                  verbose_name=_("Re-course lost"))

    class Meta:
        model = LossScan
        fields = ("id", "institution", "started_at", "trigger", "window", "status", "checked", "pending",
                  "first_course_lost", "recourse_lost", "requested_by")
        attrs = {"class": "table table-sm table-hover align-middle"}

    def render_window(self, record):
        return f"{record.window_from:%Y-%m-%d} – {record.window_to:%Y-%m-%d}"

    def value_window(self, record):
        return f"{record.window_from:%Y-%m-%d}/{record.window_to:%Y-%m-%d}"

    def render_status(self, value, record):
        badge = _badge(STATUS_COLOURS.get(record.status, "secondary"), value)
        return format_html('{} <small class="text-danger">{}</small>', badge, record.error) if record.error else badge

    def value_status(self, record):
        return record.status

    def _lost(self, value):
        return _badge("danger", value) if value else value

    def _count(self, value):
        return value

    render_first_course_lost = render_recourse_lost = _lost
    value_first_course_lost = value_recourse_lost = _count


def _mrn_list(value) -> str:
    return ", ".join(value or [])


# Yes / no in words: ✔ and ✘ would read like the archive results' ✓ and × (a × means "failed" here).
YES_NO = (_("yes"), _("no"))  # BooleanColumn: (true, false)


class LossFindingTable(tables.Table):
    mrn = tables.Column(verbose_name=_("MRN"))
    is_recourse = tables.BooleanColumn(verbose_name=_("Re-course"), yesno=YES_NO)
    first_delivery = DateTimeColumn(verbose_name=_("First delivery"), format="Y-m-d H:i")
    also_known_as = tables.Column(verbose_name=_("Also known as"), orderable=False, default="")

    class Meta:
        model = LossFinding
        fields = ("mrn", "patient_name", "plan_label", "first_delivery", "course", "is_recourse", "category",
                  "match", "found_in", "also_known_as", "plan_uid")
        attrs = {"class": "table table-sm table-hover align-middle"}

    def render_also_known_as(self, value):
        return _mrn_list(value)

    def value_also_known_as(self, value):
        return _mrn_list(value)

    def render_category(self, value, record):
        return _badge(CATEGORY_COLOURS.get(record.category, "secondary"), value)

    def value_category(self, record):
        return record.category

    def value_first_delivery(self, value):
        return timezone.localtime(value).isoformat() if value else ""


class OtherTpsRecordTable(tables.Table):
    """The scan's records of other planning systems: the same columns as a finding's where they apply."""

    mrn = tables.Column(verbose_name=_("MRN"))
    planning_system = tables.Column(verbose_name=_("Planning system"))
    first_delivery = DateTimeColumn(verbose_name=_("First delivery"), format="Y-m-d H:i")

    class Meta:
        model = OtherTpsRecord
        fields = ("mrn", "patient_name", "plan_label", "first_delivery", "course", "planning_system", "machine",
                  "plan_uid")
        attrs = {"class": "table table-sm table-hover align-middle"}

    def value_first_delivery(self, value):
        return timezone.localtime(value).isoformat() if value else ""


class MrnAliasTable(tables.Table):
    institution = tables.Column(accessor="institution__code", verbose_name=_("Institution"))
    old_mrn = tables.Column(verbose_name=_("Old MRN"))
    mrn = tables.Column(verbose_name=_("Goes by MRN"))
    recorded_at = DateTimeColumn(verbose_name=_("Recorded"), format="Y-m-d H:i")

    class Meta:
        model = MrnAlias
        fields = ("institution", "old_mrn", "mrn", "reason", "source", "recorded_by", "recorded_at")
        attrs = {"class": "table table-sm table-hover align-middle"}

    def value_source(self, record):
        return record.source

    def value_recorded_at(self, value):
        return timezone.localtime(value).isoformat() if value else ""


class PendingPlanTable(tables.Table):
    institution = tables.Column(accessor="institution__code", verbose_name=_("Institution"))
    mrn = tables.Column(verbose_name=_("MRN"))
    age = tables.Column(empty_values=(), order_by=("-first_delivery",), verbose_name=_("Age (days)"))
    first_delivery = DateTimeColumn(verbose_name=_("First delivery"), format="Y-m-d H:i")
    released_archive = tables.Column(accessor="released_archive__name", default="", verbose_name=_("Archive"))
    is_recourse = tables.BooleanColumn(verbose_name=_("Re-course"), yesno=YES_NO)

    class Meta:
        model = PendingPlan
        fields = ("institution", "mrn", "patient_name", "plan_label", "first_delivery", "age", "course",
                  "is_recourse", "status", "tps_path", "first_seen_scan", "released_at", "released_archive",
                  "lost_at")
        attrs = {"class": "table table-sm table-hover align-middle"}

    def render_age(self, record):
        return record.age_days()

    def value_age(self, record):
        return record.age_days()

    def render_status(self, value, record):
        return _badge(STATUS_COLOURS.get(record.status, "secondary"), value)

    def value_status(self, record):
        return record.status

    def render_first_seen_scan(self, value):
        return format_html('<a href="{}">{}</a>', value.get_absolute_url(), value.pk) if value else ""

    def value_first_seen_scan(self, value):
        return value.pk if value else ""

    def value_first_delivery(self, value):
        return timezone.localtime(value).isoformat() if value else ""
