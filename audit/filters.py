"""The auditor page's search: user, event, MRN, date range (site time), institution, outcome."""
from __future__ import annotations

import datetime as dt
import json

import django_filters
from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from sites.models import Institution
from audit.models import AuditEvent


def _midnight(day: dt.date) -> dt.datetime:
    """The start of ``day`` in the active (the site's) time zone: the dates a person picks are the page's."""
    return dt.datetime.combine(day, dt.time.min, tzinfo=timezone.get_current_timezone())


class AuditEventFilter(django_filters.FilterSet):
    actor = django_filters.CharFilter(lookup_expr="icontains", label=_("User"))
    event = django_filters.CharFilter(lookup_expr="startswith", label=_("Event"),
                                      help_text=_("A keyword or its start, e.g. auth. (docs/audit.md)"))
    mrn = django_filters.CharFilter(method="filter_mrn", label=_("MRN"))
    institution = django_filters.ModelChoiceFilter(queryset=Institution.objects.order_by("code"),
                                                   to_field_name="code", method="filter_institution",
                                                   label=_("Institution"))
    outcome = django_filters.ChoiceFilter(choices=AuditEvent.Outcome.choices, label=_("Outcome"))
    day_from = django_filters.DateFilter(method="filter_day_from", label=_("From"),
                                         widget=forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"}))
    day_to = django_filters.DateFilter(method="filter_day_to", label=_("To"),
                                       widget=forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"}))

    class Meta:
        model = AuditEvent
        fields = ["actor", "event", "mrn", "institution", "outcome", "day_from", "day_to"]

    def filter_mrn(self, queryset, name, value):
        # The MRN as one whole element of the JSON list ("00123" does not find "000123"); the text of a
        # JSON list is the same on SQLite and PostgreSQL for the ASCII MRNs of R&V systems.
        return queryset.filter(mrns__icontains=json.dumps(value.strip()))

    def filter_institution(self, queryset, name, value):
        return queryset.filter(institution=value.code)

    def filter_day_from(self, queryset, name, value):
        return queryset.filter(at__gte=_midnight(value))

    def filter_day_to(self, queryset, name, value):
        return queryset.filter(at__lt=_midnight(value + dt.timedelta(days=1)))
