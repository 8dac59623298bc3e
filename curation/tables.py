"""Declarative tables of the curation pages."""
from __future__ import annotations

import django_tables2 as tables
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from core.columns import DateTimeColumn
from curation.models import Category, CurationFinding

# Bootstrap contextual colour of each category: rows use ``table-<colour>``, tabs and badges
# ``text-bg-<colour>``. Green restored, red naming, amber transitional, blue duplicate, grey image
# only, dark unreadable; ready rows stay plain (light).
CATEGORY_COLOURS = {
    Category.READY: "light",
    Category.NAMING: "danger",
    Category.RESTORED: "success",
    Category.TRANSITIONAL: "warning",
    Category.DUPLICATE: "primary",
    Category.IMAGE_ONLY: "secondary",
    Category.UNREADABLE: "dark",
}
CATEGORY_HELP = {
    Category.READY: _("Nothing to fix: archived by the next run."),
    Category.NAMING: _("A patient, MRN, plan or trial name breaks the site's rules, or two patients share an MRN."),
    Category.RESTORED: _("Restored by PDAS and unchanged since: not archived again."),
    Category.TRANSITIONAL: _("Intermediate plans (copies, test/QA, never delivered while a sibling was): "
                             "delete them before archiving."),
    Category.DUPLICATE: _("The same content is already in a verified archive: not archived again."),
    Category.IMAGE_ONLY: _("Image sets but no plan: archived only when acknowledged."),
    Category.UNREADABLE: _("Files that cannot be read or parsed: fix them first."),
}


def colour(category: str) -> str:
    return CATEGORY_COLOURS.get(category, "secondary")


class CurationFindingTable(tables.Table):
    mrn = tables.Column(verbose_name=_("MRN"))
    patient_name = tables.Column(verbose_name=_("Name"))
    tps_path = tables.Column(verbose_name=_("TPS path"))
    category = tables.Column(verbose_name=_("Category"))
    reasons = tables.Column(verbose_name=_("Reasons"), orderable=False)
    size = tables.Column(accessor="patient__total_bytes", verbose_name=_("Size"))
    last_edit = DateTimeColumn(verbose_name=_("Last edit"), format="Y-m-d H:i")
    # In words: ✘ would read like the archive results' × ("failed").
    acknowledged = tables.BooleanColumn(verbose_name=_("Acknowledged"), orderable=False, yesno=(_("yes"), _("no")))

    class Meta:
        model = CurationFinding
        fields = ("mrn", "patient_name", "tps_path", "category", "reasons", "size", "last_edit", "acknowledged")
        attrs = {"class": "table table-sm table-hover align-middle pdas-curation", "id": "curation-table"}
        row_attrs = {"class": lambda record: f"table-{colour(record.category)} curation-{record.category}",
                     "data-category": lambda record: record.category}

    def _patient_url(self, record) -> str:
        return reverse("curation:patient", args=[record.patient_id])

    def render_mrn(self, value, record):
        return format_html('<a href="{}">{}</a>', self._patient_url(record), value or "—")

    def render_patient_name(self, value, record):
        return format_html('<a href="{}">{}</a>', self._patient_url(record), value)

    # Exports carry the values themselves, not the links around them.
    def value_mrn(self, value):
        return value

    def value_patient_name(self, value):
        return value

    def render_category(self, value, record):
        return format_html('<span class="badge text-bg-{}">{}</span>', colour(record.category), value)

    def value_category(self, record):
        return record.category

    def render_reasons(self, value):
        items = format_html_join("", "<li>{}</li>", ((reason,) for reason in value))
        return format_html('<ul class="mb-0 ps-3 small">{}</ul>', items)

    def value_reasons(self, value):
        return "; ".join(value or [])

    def render_size(self, value):
        return filesizeformat(value or 0)

    def value_size(self, value):
        return value or 0

    def value_last_edit(self, value):
        return timezone.localtime(value).isoformat() if value else ""
