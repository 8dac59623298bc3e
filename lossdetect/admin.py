"""Admin: scans, findings, the pending-archive table and the records of other planning systems are computed by
loss detection: view-only. MRN aliases are edited here, through the same services and rules as
``manage.py import_mrn_aliases``; every change is audited (``mrnalias.change``), and so is every read."""
from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db import transaction

from lossdetect.models import LossFinding, LossScan, MrnAlias, OtherTpsRecord, PendingPlan
from lossdetect.selectors import alias_graph
from lossdetect.services.aliases import add_mrn_alias, change_mrn_alias, delete_mrn_alias
from sites.admin_base import AuditedReadsMixin, InstitutionScopedAdmin, PatientDataAdmin, ViewOnlyAdmin


@admin.register(LossScan)
class LossScanAdmin(ViewOnlyAdmin):
    list_display = ("id", "institution", "window_from", "window_to", "trigger", "status", "requested_by",
                    "started_at", "finished_at")
    list_filter = ("institution", "status", "trigger")
    list_select_related = ("institution",)
    search_fields = ("requested_by",)
    date_hierarchy = "started_at"


@admin.register(LossFinding)
class LossFindingAdmin(PatientDataAdmin):
    list_display = ("mrn", "patient_name", "plan_label", "category", "course", "first_delivery", "found_in",
                    "scan")
    list_filter = ("category", "scan__institution")
    search_fields = ("mrn", "patient_name", "plan_label")


@admin.register(PendingPlan)
class PendingPlanAdmin(PatientDataAdmin):
    list_display = ("mrn", "patient_name", "plan_label", "institution", "status", "first_delivery", "tps_path",
                    "released_at", "lost_at")
    list_filter = ("institution", "status")
    list_select_related = ("institution",)
    search_fields = ("mrn", "patient_name", "plan_label")
    date_hierarchy = "first_delivery"


@admin.register(OtherTpsRecord)
class OtherTpsRecordAdmin(PatientDataAdmin):
    list_display = ("mrn", "patient_name", "plan_label", "planning_system", "first_delivery", "course", "scan")
    list_filter = ("planning_system", "scan__institution")
    search_fields = ("mrn", "patient_name", "plan_label", "planning_system")


class MrnAliasForm(forms.ModelForm):
    """The alias rules (lossdetect.services.alias_graph) shown as form errors before anything is saved."""

    class Meta:
        model = MrnAlias
        fields = ("institution", "old_mrn", "mrn", "reason")

    def clean(self):
        cleaned = super().clean()
        institution = cleaned.get("institution") or getattr(self.instance, "institution", None)
        old_mrn, mrn = (cleaned.get("old_mrn") or "").strip(), (cleaned.get("mrn") or "").strip()
        if institution is not None and old_mrn and mrn:
            graph = alias_graph(institution=institution)
            if self.instance.pk:  # the form has not copied its values onto the instance yet: these are the stored ones
                graph = graph.without(self.instance.old_mrn)
            if problem := graph.problem(old_mrn, mrn):
                self.add_error(None, problem)
        return cleaned


@admin.register(MrnAlias)
class MrnAliasAdmin(AuditedReadsMixin, InstitutionScopedAdmin):
    form = MrnAliasForm
    mrn_path = "mrns"
    list_display = ("old_mrn", "mrn", "institution", "reason", "source", "recorded_by", "recorded_at")
    list_display_links = ("old_mrn",)
    list_filter = ("institution", "source")
    list_select_related = ("institution",)
    search_fields = ("old_mrn", "mrn", "reason")
    date_hierarchy = "recorded_at"

    def get_readonly_fields(self, request, obj=None):
        fields = ("source", "recorded_by", "recorded_at")
        return (*fields, "institution") if obj is not None else fields

    def save_model(self, request, obj, form, change):
        if change:
            saved = change_mrn_alias(alias=obj, old_mrn=obj.old_mrn, mrn=obj.mrn, reason=obj.reason, actor=request.user)
        else:
            saved, _added = add_mrn_alias(institution=obj.institution, old_mrn=obj.old_mrn, mrn=obj.mrn,
                                          reason=obj.reason, actor=request.user, source=MrnAlias.Source.ADMIN)
        obj.pk, obj.recorded_by, obj.recorded_at = saved.pk, saved.recorded_by, saved.recorded_at

    def delete_model(self, request, obj):
        delete_mrn_alias(alias=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():  # the delete action has no transaction of its own
            for alias in queryset.select_related("institution"):
                delete_mrn_alias(alias=alias, actor=request.user)
