from django import forms
from django.utils.translation import gettext_lazy as _

from sites.models import Institution


class StartArchiveRunForm(forms.Form):
    institution = forms.ModelChoiceField(queryset=Institution.objects.all(), label=_("Institution"),
                                         widget=forms.Select(attrs={"class": "form-select"}))


class RestoreSearchForm(forms.Form):
    institution = forms.ModelChoiceField(queryset=Institution.objects.all(), label=_("Institution"),
                                         widget=forms.Select(attrs={"class": "form-select"}))
    mrn = forms.CharField(label=_("MRN"), required=False, max_length=64,
                          widget=forms.TextInput(attrs={"class": "form-control", "autofocus": True}))
    name = forms.CharField(label=_("Name"), required=False, max_length=200,
                           help_text=_("Chinese or pinyin, any part"),
                           widget=forms.TextInput(attrs={"class": "form-control"}))

    def clean(self):
        data = super().clean()
        data["mrn"] = (data.get("mrn") or "").strip()
        data["name"] = (data.get("name") or "").strip()
        if not data["mrn"] and not data["name"]:
            raise forms.ValidationError(_("Give an MRN or a name."))
        return data


class StartRestoreForm(forms.Form):
    institution = forms.ModelChoiceField(queryset=Institution.objects.all())
    archive = forms.CharField(max_length=255)
