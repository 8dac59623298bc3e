"""The manual scan form: an institution and any window of first-delivery dates."""
from __future__ import annotations

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from sites.models import Institution
from lossdetect.models import LossScan
from lossdetect.services.schedule import previous_week


class ManualScanForm(forms.Form):
    institution = forms.ModelChoiceField(
        queryset=Institution.objects.exclude(rv_url=""), label=_("Institution"),
        widget=forms.Select(attrs={"class": "form-select"}),
    )
    # type="date" takes only ISO dates: a localised value ("2024年3月4日") would show an empty field.
    window_from = forms.DateField(label=_("First delivery from"), widget=forms.DateInput(
        format="%Y-%m-%d", attrs={"type": "date", "class": "form-control"}))
    window_to = forms.DateField(label=_("to"), widget=forms.DateInput(
        format="%Y-%m-%d", attrs={"type": "date", "class": "form-control"}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            # The window of the latest finished scan, to look again (the weekly scan's: last week), else
            # the previous Monday..Sunday.
            latest = (LossScan.objects.filter(status=LossScan.Status.DONE, institution__in=self.fields[
                "institution"].queryset).order_by("-finished_at", "-pk").only("window_from", "window_to").first())
            window_from, window_to = ((latest.window_from, latest.window_to) if latest is not None
                                      else previous_week(timezone.localdate()))
            self.initial.setdefault("window_from", window_from)
            self.initial.setdefault("window_to", window_to)

    def clean(self):
        data = super().clean()
        if data.get("window_from") and data.get("window_to") and data["window_from"] > data["window_to"]:
            raise forms.ValidationError(_("The window starts after it ends."))
        return data
