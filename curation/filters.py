"""FilterSets of the curation pages."""
from __future__ import annotations

import django_filters
from django import forms
from django.utils.translation import gettext_lazy as _

from curation.models import CurationFinding


class CurationFindingFilter(django_filters.FilterSet):
    mrn = django_filters.CharFilter(lookup_expr="icontains", label=_("MRN"))
    name = django_filters.CharFilter(field_name="patient_name", lookup_expr="icontains", label=_("Name"))
    edited_from = django_filters.DateFilter(field_name="last_edit", lookup_expr="date__gte", label=_("Edited from"),
                                            widget=forms.DateInput(attrs={"type": "date"}))
    edited_to = django_filters.DateFilter(field_name="last_edit", lookup_expr="date__lte", label=_("Edited to"),
                                          widget=forms.DateInput(attrs={"type": "date"}))

    class Meta:
        model = CurationFinding
        fields = ["mrn", "name", "edited_from", "edited_to"]

