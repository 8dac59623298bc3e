"""FilterSets of the loss detection pages."""
from __future__ import annotations

import datetime as dt

import django_filters
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from lossdetect.models import LossFinding, LossScan, PendingPlan


class LossScanFilter(django_filters.FilterSet):
    started_after = django_filters.DateFilter(field_name="created_at", lookup_expr="date__gte", label=_("From"))
    started_before = django_filters.DateFilter(field_name="created_at", lookup_expr="date__lte", label=_("To"))

    class Meta:
        model = LossScan
        fields = ["institution", "trigger", "status"]


class LossFindingFilter(django_filters.FilterSet):
    mrn = django_filters.CharFilter(lookup_expr="icontains", label=_("MRN"))
    patient_name = django_filters.CharFilter(lookup_expr="icontains", label=_("Name"))
    plan_label = django_filters.CharFilter(lookup_expr="icontains", label=_("Plan"))

    class Meta:
        model = LossFinding
        fields = ["mrn", "patient_name", "plan_label", "is_recourse"]


class PendingPlanFilter(django_filters.FilterSet):
    mrn = django_filters.CharFilter(lookup_expr="icontains", label=_("MRN"))
    plan_label = django_filters.CharFilter(lookup_expr="icontains", label=_("Plan"))
    min_age = django_filters.NumberFilter(method="filter_min_age", label=_("At least (days)"), min_value=0)

    class Meta:
        model = PendingPlan
        fields = ["institution", "status", "mrn", "plan_label"]

    def filter_min_age(self, queryset, name, value):
        return queryset.filter(first_delivery__lte=timezone.now() - dt.timedelta(days=int(value)))
