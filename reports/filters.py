"""FilterSets of the reconciliation pages."""
from __future__ import annotations

import django_filters
from django.utils.translation import gettext_lazy as _

from reports.models import ReconciliationEntry, ReconciliationImport


class ReconciliationImportFilter(django_filters.FilterSet):
    class Meta:
        model = ReconciliationImport
        fields = ["institution", "status"]


class ReconciliationEntryFilter(django_filters.FilterSet):
    mrn = django_filters.CharFilter(field_name="mrn", lookup_expr="icontains", label=_("MRN"))
    name = django_filters.CharFilter(field_name="path", lookup_expr="icontains", label=_("File"))

    class Meta:
        model = ReconciliationEntry
        fields = ["outcome"]
