"""FilterSets of the archiving pages."""
from __future__ import annotations

import django_filters
from django.utils.translation import gettext_lazy as _

from archiver.models import ArchiveRun, PatientArchiveTask
from inventory.models import ArchiveCopy


class ArchiveRunFilter(django_filters.FilterSet):
    created_after = django_filters.DateFilter(field_name="created_at", lookup_expr="date__gte", label=_("From"))
    created_before = django_filters.DateFilter(field_name="created_at", lookup_expr="date__lte", label=_("To"))

    class Meta:
        model = ArchiveRun
        fields = ["institution", "status"]


class PatientResultFilter(django_filters.FilterSet):
    mrn = django_filters.CharFilter(field_name="patient__mrn", lookup_expr="icontains", label=_("MRN"))
    name = django_filters.CharFilter(method="filter_name", label=_("Name"))

    class Meta:
        model = PatientArchiveTask
        fields = ["result", "step"]

    def filter_name(self, queryset, name, value):
        from django.db.models import Q

        return queryset.filter(Q(patient__last_name__icontains=value) | Q(patient__first_name__icontains=value))


class TargetCopyFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ArchiveCopy.Status.choices, label=_("State"))
    mrn = django_filters.CharFilter(field_name="archive__mrn", lookup_expr="icontains", label=_("MRN"))
    checked_before = django_filters.DateFilter(field_name="last_checked_at", lookup_expr="date__lt",
                                               label=_("Last full check before"))

    class Meta:
        model = ArchiveCopy
        fields = ["status"]
