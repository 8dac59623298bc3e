"""The manual scan form: an institution and any window of first-delivery dates."""
from __future__ import annotations

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from sites.models import Institution
from lossdetect.services.schedule import previous_week


class ManualScanForm(forms.Form):
    institution = forms.ModelChoiceField(
        queryset=Institution.objects.exclude(rv_url=""), label=_("Institution"),
        widget=forms.Select(attrs={"class": "form-select"}),
    )
    window_from = forms.DateField(label=_("First delivery from"),
                                  widget=forms.DateInput(attrs={"type": "date", "class": "form-control"}))
    window_to = forms.DateField(label=_("to"), widget=forms.DateInput(attrs={"type": "date", "class": "form-control"}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            window_from, window_to = previous_week(timezone.localdate())
            self.initial.setdefault("window_from", window_from)
            self.initial.setdefault("window_to", window_to)

    def clean(self):
        data = super().clean()
        if data.get("window_from") and data.get("window_to") and data["window_from"] > data["window_to"]:
            raise forms.ValidationError(_("The window starts after it ends."))
        return data
