"""FilterSets of the loss detection pages."""
from __future__ import annotations

import datetime as dt

import django_filters
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from django.db.models import Q

from lossdetect.models import LossFinding, LossScan, MrnAlias, OtherTpsRecord, PendingPlan


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


class OtherTpsRecordFilter(django_filters.FilterSet):
    mrn = django_filters.CharFilter(lookup_expr="icontains", label=_("MRN"))
    patient_name = django_filters.CharFilter(lookup_expr="icontains", label=_("Name"))
    plan_label = django_filters.CharFilter(lookup_expr="icontains", label=_("Plan"))
    planning_system = django_filters.CharFilter(lookup_expr="icontains", label=_("Planning system"))

    class Meta:
        model = OtherTpsRecord
        fields = ["mrn", "patient_name", "plan_label", "planning_system"]


class MrnAliasFilter(django_filters.FilterSet):
    mrn = django_filters.CharFilter(method="filter_mrn", label=_("MRN (old or current)"))
    reason = django_filters.CharFilter(lookup_expr="icontains", label=_("Reason"))

    class Meta:
        model = MrnAlias
        fields = ["institution", "mrn", "reason", "source"]

    def filter_mrn(self, queryset, name, value):
        return queryset.filter(Q(old_mrn__icontains=value) | Q(mrn__icontains=value))


class PendingPlanFilter(django_filters.FilterSet):
    mrn = django_filters.CharFilter(lookup_expr="icontains", label=_("MRN"))
    plan_label = django_filters.CharFilter(lookup_expr="icontains", label=_("Plan"))
    min_age = django_filters.NumberFilter(method="filter_min_age", label=_("At least (days)"), min_value=0)

    class Meta:
        model = PendingPlan
        fields = ["institution", "status", "mrn", "plan_label"]

    def filter_min_age(self, queryset, name, value):
        return queryset.filter(first_delivery__lte=timezone.now() - dt.timedelta(days=int(value)))
