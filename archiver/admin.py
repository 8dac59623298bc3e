"""Admin: institutions and storage targets are edited here (with the site.toml rules, audited);
everything PDAS computes is view-only (pdas.admin)."""
from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import Count
from django.utils.translation import gettext_lazy as _

from archiver.models import (
    Archive,
    ArchiveCopy,
    ArchivedPlan,
    ArchiveRun,
    FixityCheck,
    Institution,
    PatientArchiveTask,
    QuarantinedPatient,
    RestoreRecord,
    StorageTarget,
    TpsPatient,
    TpsPlan,
)
from archiver.services.site_config import institution_problems, storage_problems
from audit.services import record_event
from pdas.admin import InstitutionScopedAdmin, PatientDataAdmin, ViewOnlyAdmin, ViewOnlyInline

# --- configuration: editable, checked like site.toml, every save audited --------------------------


class _RulesForm(forms.ModelForm):
    """Applies the site.toml rules for one row (``rules``, set by each form). Environment variables
    and files are not looked for: the workers that use them need not run on the web server."""

    def clean(self):
        cleaned = super().clean()
        for field_name, problem in self.rules(cleaned, check_local=False):
            if field_name in self.errors:
                continue  # the field's own error says enough
            self.add_error(field_name if field_name in self.fields else None, problem)
        return cleaned


class InstitutionForm(_RulesForm):
    rules = staticmethod(institution_problems)

    class Meta:
        model = Institution
        fields = "__all__"


class StorageTargetForm(_RulesForm):
    rules = staticmethod(storage_problems)

    class Meta:
        model = StorageTarget
        fields = "__all__"


def _audit_config(request, obj: Institution | StorageTarget, *, action: str, fields=()) -> None:
    institution = obj if isinstance(obj, Institution) else obj.institution
    record_event(actor=request.user, event="config.change", institution=institution.code, obj=obj,
                 detail={"action": action, "row": str(obj), "fields": sorted(fields)})


class StorageTargetInline(admin.TabularInline):
    model = StorageTarget
    form = StorageTargetForm
    extra = 0
    fields = ("name", "url", "password_env", "password_file", "key_file", "known_hosts", "ca_file",
              "allow_plain_ftp", "enabled", "priority")


@admin.register(Institution)
class InstitutionAdmin(InstitutionScopedAdmin):
    form = InstitutionForm
    inlines = [StorageTargetInline]
    list_display = ("code", "name", "tps_url", "pending_group", "rv_url", "targets", "updated_at")
    search_fields = ("code", "name")
    readonly_fields = ("created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("code", "name")}),
        (_("Planning system (TPS)"), {"fields": ("tps_url", "tps_password_env", "tps_key_file", "tps_known_hosts", "pending_group",
                            "clinical_groups", "non_clinical_groups", "restore_group", "time_zone")}),
        (_("Record and verify (R&V)"), {"fields": ("rv_url", "rv_password_env", "recourse_gap_days", "lookback_days", "skew_days")}),
        (_("Archiving"), {"fields": ("codec", "codec_level", "pack_script", "quarantine_dir", "quarantine_days",
                           "mrn_pattern", "notify_emails", "created_at", "updated_at")}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(target_count=Count("storage_targets"))

    @admin.display(description=_("Storage targets"), ordering="target_count")
    def targets(self, obj: Institution) -> int:
        return obj.target_count

    def has_delete_permission(self, request, obj=None) -> bool:
        # Deleting an institution would cascade away its archive index and loss history; a retired
        # site stays, with its targets disabled.
        return False

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        _audit_config(request, obj, action="change" if change else "add", fields=form.changed_data)

    def save_formset(self, request, form, formset, change):
        super().save_formset(request, form, formset, change)
        for target in formset.deleted_objects:
            _audit_config(request, target, action="delete")
        for target, fields in formset.changed_objects:
            _audit_config(request, target, action="change", fields=fields)
        added = {id(target) for target in formset.new_objects}
        for target_form in formset.forms:
            if id(target_form.instance) in added:
                _audit_config(request, target_form.instance, action="add", fields=target_form.changed_data)


@admin.register(StorageTarget)
class StorageTargetAdmin(InstitutionScopedAdmin):
    form = StorageTargetForm
    list_display = ("__str__", "url", "enabled", "priority", "allow_plain_ftp")
    list_filter = ("institution", "enabled")
    list_select_related = ("institution",)
    search_fields = ("name", "url", "institution__code")

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        _audit_config(request, obj, action="change" if change else "add", fields=form.changed_data)

    def delete_model(self, request, obj):
        _audit_config(request, obj, action="delete")
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for target in queryset.select_related("institution"):
            _audit_config(request, target, action="delete")
        super().delete_queryset(request, queryset)


# --- computed rows: view-only ---------------------------------------------------------------------


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


@admin.register(Archive)
class ArchiveAdmin(PatientDataAdmin):
    list_display = ("name", "mrn", "last_name", "first_name", "institution", "status", "size", "packed_at",
                    "verified_at")
    list_filter = ("institution", "status", "codec")
    list_select_related = ("institution",)
    search_fields = ("mrn", "last_name", "first_name", "name")
    date_hierarchy = "packed_at"
    inlines = [ArchiveCopyInline, ArchivedPlanInline]


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


@admin.register(ArchiveRun)
class ArchiveRunAdmin(ViewOnlyAdmin):
    list_display = ("id", "institution", "started_by", "status", "created_at", "started_at", "finished_at")
    list_filter = ("institution", "status")
    list_select_related = ("institution",)
    search_fields = ("started_by",)
    date_hierarchy = "created_at"


@admin.register(PatientArchiveTask)
class PatientArchiveTaskAdmin(PatientDataAdmin):
    mrn_path = "patient__mrn"
    list_display = ("run_id", "patient", "step", "result", "reason", "attempts", "finished_at")
    list_filter = ("result", "step", "run__institution")
    list_select_related = ("patient",)
    search_fields = ("patient__mrn", "patient__last_name", "patient__first_name")


@admin.register(QuarantinedPatient)
class QuarantinedPatientAdmin(PatientDataAdmin):
    mrn_path = "archive__mrn"
    list_display = ("archive", "institution", "tps_path", "moved_at", "purge_after", "purged_at")
    list_filter = ("institution",)
    list_select_related = ("archive", "institution")
    search_fields = ("archive__mrn", "archive__last_name", "tps_path")


@admin.register(RestoreRecord)
class RestoreRecordAdmin(PatientDataAdmin):
    mrn_path = "archive__mrn"
    list_display = ("archive", "institution", "requested_by", "status", "files", "started_at", "finished_at")
    list_filter = ("institution", "status")
    list_select_related = ("archive", "institution")
    search_fields = ("archive__mrn", "archive__last_name", "requested_by")
