"""Forms of the curation pages."""
from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from sites.models import Institution


class RerunForm(forms.Form):
    institution = forms.ModelChoiceField(queryset=Institution.objects.all(), to_field_name="code")


class AcknowledgeForm(forms.Form):
    finding = forms.IntegerField(widget=forms.HiddenInput)
    note = forms.CharField(label=_("Note"), max_length=5000, widget=forms.Textarea(attrs={"rows": 2}),
                           help_text=_("What was reviewed, and why the patient may be archived anyway"))
