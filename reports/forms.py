"""Forms of the reports pages: the institution and period of a report, and a reconciliation import."""
from __future__ import annotations

import datetime as dt

from django import forms
from django.utils.translation import gettext_lazy as _

from sites.models import Institution, StorageTarget
from reports.periods import Kind, Period

PERIOD_CHOICES = [(Kind.MONTH, _("Month")), (Kind.QUARTER, _("Quarter")), (Kind.YEAR, _("Year")),
                  (Kind.CUSTOM, _("Custom range"))]
MAX_CUSTOM_DAYS = 366 * 10


class ReportForm(forms.Form):
    """Bound to the query string over defaults for the current month; ``cleaned_data['report_period']``
    is the ``Period`` in the institution's time zone."""

    institution = forms.ModelChoiceField(queryset=Institution.objects.order_by("code"), to_field_name="code",
                                         empty_label=None, label=_("Institution"))
    period = forms.ChoiceField(choices=PERIOD_CHOICES, label=_("Period"))
    year = forms.IntegerField(min_value=1990, max_value=2200, label=_("Year"))
    month = forms.TypedChoiceField(choices=[(m, f"{m:02d}") for m in range(1, 13)], coerce=int, label=_("Month"))
    quarter = forms.TypedChoiceField(choices=[(q, f"Q{q}") for q in range(1, 5)], coerce=int, label=_("Quarter"))
    first_day = forms.DateField(required=False, label=_("From"), widget=forms.DateInput(attrs={"type": "date"}))
    last_day = forms.DateField(required=False, label=_("To"), widget=forms.DateInput(attrs={"type": "date"}))

    @classmethod
    def defaults(cls, today: dt.date) -> dict[str, str]:
        return {"period": Kind.MONTH, "year": str(today.year), "month": str(today.month),
                "quarter": str((today.month - 1) // 3 + 1)}

    def clean(self):
        data = super().clean()
        institution, kind = data.get("institution"), data.get("period")
        if institution is None or kind is None or self.errors:
            return data
        zone = institution.zone
        if kind == Kind.MONTH:
            data["report_period"] = Period.month(data["year"], data["month"], zone)
        elif kind == Kind.QUARTER:
            data["report_period"] = Period.quarter(data["year"], data["quarter"], zone)
        elif kind == Kind.YEAR:
            data["report_period"] = Period.year(data["year"], zone)
        else:
            first, last = data.get("first_day"), data.get("last_day")
            if first is None or last is None:
                raise forms.ValidationError(_("A custom range needs both a first and a last day."))
            if last < first:
                raise forms.ValidationError(_("The last day %(last)s is before the first day %(first)s."),
                                            params={"first": first, "last": last})
            if (last - first).days > MAX_CUSTOM_DAYS:
                raise forms.ValidationError(_("A custom range spans at most ten years."))
            data["report_period"] = Period.custom(first, last, zone)
        return data

    def error_lines(self) -> list[str]:
        """Each error on one line, naming the field."""
        lines = []
        for name, errors in self.errors.items():
            label = self.fields[name].label if name in self.fields else ""
            lines += [f"{label}: {error}" if label else str(error) for error in errors]
        return lines


class ReconcileForm(forms.Form):
    """Upload a CSV/TSV listing (optionally saying which target it lists), or list a target directly."""

    institution = forms.ModelChoiceField(queryset=Institution.objects.order_by("code"), empty_label=None,
                                         label=_("Institution"))
    target = forms.ModelChoiceField(
        queryset=StorageTarget.objects.select_related("institution").order_by("institution__code", "name"),
        required=False, label=_("Storage target"),
        help_text=_("Without a listing: PDAS lists this target. With one: the listing is of this target."),
    )
    listing = forms.FileField(required=False, label=_("Listing (CSV or TSV)"),
                              help_text=_("Header row with the file name, size and optionally sha256 columns"))

    def clean(self):
        data = super().clean()
        institution, target = data.get("institution"), data.get("target")
        if not data.get("listing") and target is None and not self.errors:
            raise forms.ValidationError(_("Upload a listing, or choose a storage target to list."))
        if institution is not None and target is not None and target.institution_id != institution.pk:
            self.add_error("target", _("%(target)s is not a target of %(code)s.")
                           % {"target": target.name, "code": institution.code})
        return data
