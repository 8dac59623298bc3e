"""Admin of the site configuration: institutions and storage targets are edited here, checked with the
site.toml rules and audited (the view-only base classes are in sites/admin_base.py)."""
from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db import transaction
from django.db.models import Count
from django.utils.translation import gettext_lazy as _

from audit.events import Event
from audit.services import record_event
from sites.admin_base import InstitutionScopedAdmin
from sites.models import Institution, StorageTarget
from sites.services.site_config import institution_problems, shared_folder_problem, storage_problems

# --- configuration: editable, checked like site.toml, every save audited --------------------------


class _RulesForm(forms.ModelForm):
    """Applies the site.toml rules for one row (``rules``, set by each form). Environment variables
    and files are not looked for: the workers that use them need not run on the web server."""

    def clean(self):
        cleaned = super().clean()
        # Fields the user may not edit are not in the form: the rules see the row's stored values.
        values = {f.attname: getattr(self.instance, f.attname) for f in self._meta.model._meta.concrete_fields}
        values.update(cleaned)
        for field_name, problem in self.rules(values, check_local=False):
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

    def clean(self):
        cleaned = super().clean()
        institution = cleaned.get("institution") or getattr(self.instance, "institution", None)
        url = cleaned.get("url", self.instance.url)
        if institution is not None and url and "url" not in self.errors:
            others = StorageTarget.objects.values_list("institution__code", "name", "url")
            if institution.pk is not None:  # an institution being added has no targets yet
                others = others.exclude(institution=institution)
            if problem := shared_folder_problem(url, institution=institution.code, others=others):
                self.add_error("url" if "url" in self.fields else None, problem)
        return cleaned


def _audit_config(request, obj: Institution | StorageTarget, *, action: str, fields=()) -> None:
    institution = obj if isinstance(obj, Institution) else obj.institution
    record_event(actor=request.user, event=Event.CONFIG_CHANGE, institution=institution.code, obj=obj,
                 detail={"action": action, "row": str(obj), "fields": sorted(fields)})


class _ConnectionsForSuperusers:
    """Connection settings (the model's ``CONNECTION_FIELDS``: hosts, secret names, key and CA files,
    the pack script) are shown read-only to everyone but a superuser, and only a superuser adds or
    deletes a storage target: an archive admin configures their institution, never where its secrets
    go. A posted value of a read-only field is ignored by the admin."""

    def get_readonly_fields(self, request, obj=None):
        fields = tuple(super().get_readonly_fields(request, obj))
        if request.user.is_superuser:
            return fields
        return fields + tuple(f for f in self.model.CONNECTION_FIELDS if f not in fields)


class _TargetsBySuperusers(_ConnectionsForSuperusers):
    # A model admin's has_add_permission takes (request), an inline's (request, obj).
    def has_add_permission(self, request, *args) -> bool:
        return request.user.is_superuser and super().has_add_permission(request, *args)

    def has_delete_permission(self, request, *args) -> bool:
        return request.user.is_superuser and super().has_delete_permission(request, *args)


class StorageTargetInline(_TargetsBySuperusers, admin.TabularInline):
    model = StorageTarget
    form = StorageTargetForm
    extra = 0
    fields = ("name", "url", "password_env", "password_file", "key_file", "known_hosts", "ca_file",
              "allow_plain_ftp", "access_key_env", "secret_key_env", "allow_plain_http", "encrypt_to", "identity_file",
              "identity_env", "enabled", "priority")


@admin.register(Institution)
class InstitutionAdmin(_ConnectionsForSuperusers, InstitutionScopedAdmin):
    form = InstitutionForm
    inlines = [StorageTargetInline]
    list_display = ("code", "name", "tps_url", "pending_group", "rv_url", "targets", "updated_at")
    search_fields = ("code", "name")
    readonly_fields = ("created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("code", "name")}),
        (_("Planning system (TPS)"), {"fields": ("tps_url", "tps_password_env", "tps_key_file", "tps_known_hosts", "pending_group",
                            "clinical_groups", "non_clinical_groups", "restore_group", "time_zone")}),
        (_("Record and verify (R&V)"), {"fields": ("rv_url", "rv_password_env", "recourse_gap_days", "lookback_days", "skew_days",
                                                 "planning_systems")}),
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
class StorageTargetAdmin(_TargetsBySuperusers, InstitutionScopedAdmin):
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
        # The admin's delete action runs outside its views' transactions: the deletes and their
        # audit rows commit together here.
        with transaction.atomic():
            for target in queryset.select_related("institution"):
                _audit_config(request, target, action="delete")
            super().delete_queryset(request, queryset)
