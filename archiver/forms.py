from django import forms
from django.utils.translation import gettext_lazy as _

from archiver.models import Institution


class StartArchiveRunForm(forms.Form):
    institution = forms.ModelChoiceField(queryset=Institution.objects.all(), label=_("Institution"),
                                         widget=forms.Select(attrs={"class": "form-select"}))
