"""Admin of what PDAS computes about the TPS and the archives: view-only (sites/admin_base.py)."""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _, ngettext

from inventory.models import Archive, ArchiveCopy, ArchivedPlan, FixityCheck, QuarantinedPatient, TpsPatient, TpsPlan
from inventory.services.legal_hold import LegalHoldError, set_legal_hold
from sites.admin_base import PatientDataAdmin, ViewOnlyInline


class TpsPlanInline(ViewOnlyInline):
    model = TpsPlan
    fields = ("plan_id", "name", "trial_names", "created", "edited", "has_directory")


@admin.register(TpsPatient)
class TpsPatientAdmin(PatientDataAdmin):
    list_display = ("mrn", "last_name", "first_name", "institution", "group", "tps_path", "present", "last_seen")
    list_filter = ("institution", "present", "group")
    list_select_related = ("institution",)
    search_fields = ("mrn", "last_name", "first_name", "tps_path")
    inlines = [TpsPlanInline]


@admin.register(TpsPlan)
class TpsPlanAdmin(PatientDataAdmin):
    mrn_path = "patient__mrn"
    list_display = ("patient", "plan_id", "name", "created", "edited")
    list_filter = ("patient__institution",)
    list_select_related = ("patient",)
    search_fields = ("patient__mrn", "patient__last_name", "patient__first_name", "name")


class ArchiveCopyInline(ViewOnlyInline):
    model = ArchiveCopy
    fields = ("target", "path", "status", "size", "checksum", "stored_at", "last_checked_at")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("target__institution", "archive")


class ArchivedPlanInline(ViewOnlyInline):
    model = ArchivedPlan
    fields = ("plan_id", "name", "trial_names", "created", "edited")
    show_change_link = False


class LegalHoldForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=1000, widget=forms.Textarea(attrs={"rows": 3}),
                             help_text=_("Recorded in the audit log with the change, e.g. the court order or request"))


@admin.register(Archive)
class ArchiveAdmin(PatientDataAdmin):
    """View-only but for the legal hold: placed or released with a reason by a holder of
    ``inventory.set_legal_hold`` (an action, so every change goes through the audited service)."""

    list_display = ("name", "mrn", "last_name", "first_name", "institution", "status", "size", "packed_at",
                    "verified_at", "retain_until", "legal_hold")
    list_filter = ("institution", "status", "codec", "legal_hold")
    list_select_related = ("institution",)
    search_fields = ("mrn", "last_name", "first_name", "name")
    date_hierarchy = "packed_at"
    inlines = [ArchiveCopyInline, ArchivedPlanInline]
    actions = ["place_legal_hold", "release_legal_hold"]

    def has_legal_hold_permission(self, request) -> bool:
        return request.user.has_perm("inventory.set_legal_hold")

    @admin.action(description=_("Place under legal hold"), permissions=["legal_hold"])
    def place_legal_hold(self, request, queryset):
        return self._legal_hold(request, queryset, hold=True)

    @admin.action(description=_("Release the legal hold"), permissions=["legal_hold"])
    def release_legal_hold(self, request, queryset):
        return self._legal_hold(request, queryset, hold=False)

    def _legal_hold(self, request, queryset, *, hold: bool):
        """First call: a page asking for the reason; its POST (``apply``) makes the change."""
        form = LegalHoldForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            try:
                changed = set_legal_hold(archives=list(queryset), hold=hold, reason=form.cleaned_data["reason"],
                                         actor=request.user)
            except LegalHoldError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                return None
            text = (ngettext("%(n)d archive placed under legal hold.", "%(n)d archives placed under legal hold.",
                             len(changed)) if hold else
                    ngettext("Legal hold released on %(n)d archive.", "Legal hold released on %(n)d archives.",
                             len(changed)))
            self.message_user(request, text % {"n": len(changed)}, messages.SUCCESS)
            return None
        return TemplateResponse(request, "admin/inventory/archive/legal_hold.html", {
            **self.admin_site.each_context(request), "opts": self.model._meta, "form": form, "archives": queryset,
            "hold": hold, "action": "place_legal_hold" if hold else "release_legal_hold",
            "title": _("Place under legal hold") if hold else _("Release the legal hold"),
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        })


@admin.register(ArchivedPlan)
class ArchivedPlanAdmin(PatientDataAdmin):
    mrn_path = "archive__mrn"
    list_display = ("archive", "plan_id", "name", "created", "edited")
    list_select_related = ("archive",)
    search_fields = ("archive__mrn", "archive__name", "name")


@admin.register(ArchiveCopy)
class ArchiveCopyAdmin(PatientDataAdmin):
    mrn_path = "archive__mrn"
    list_display = ("archive", "target", "status", "size", "stored_at", "last_checked_at")
    list_filter = ("status", "target__institution")
    list_select_related = ("archive", "target__institution")
    search_fields = ("archive__mrn", "archive__name")


@admin.register(FixityCheck)
class FixityCheckAdmin(PatientDataAdmin):
    mrn_path = "copy__archive__mrn"
    list_display = ("copy", "checked_at", "method", "outcome", "reason")
    list_filter = ("outcome", "method")
    list_select_related = ("copy__archive", "copy__target")
    search_fields = ("copy__archive__mrn", "copy__archive__name")
    date_hierarchy = "checked_at"


@admin.register(QuarantinedPatient)
class QuarantinedPatientAdmin(PatientDataAdmin):
    mrn_path = "archive__mrn"
    list_display = ("archive", "institution", "tps_path", "moved_at", "purge_after", "purged_at")
    list_filter = ("institution",)
    list_select_related = ("archive", "institution")
    search_fields = ("archive__mrn", "archive__last_name", "tps_path")
