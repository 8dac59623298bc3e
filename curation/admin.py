"""Admin: naming rules and transitional patterns are edited here (every change audited as
``config.change``); runs, findings and acknowledgements are records: view-only."""
from __future__ import annotations

from django.contrib import admin
from django.db import transaction

from audit.events import Event
from audit.services import record_event
from curation.models import Acknowledgement, CurationFinding, CurationRun, NamingRule, TransitionalPattern
from sites.admin_base import InstitutionScopedAdmin, PatientDataAdmin, ViewOnlyAdmin


class _AuditedRuleAdmin(InstitutionScopedAdmin):
    """Saves and deletes of an institution's rule rows, each written to the audit log."""

    list_filter = ("institution", "enabled")
    list_select_related = ("institution",)

    def _audit(self, request, obj, *, action: str, fields=()) -> None:
        record_event(actor=request.user, event=Event.CONFIG_CHANGE, institution=obj.institution.code, obj=obj,
                     detail={"action": action, "model": self.opts.label_lower, "row": str(obj),
                             "regex": obj.regex, "fields": sorted(fields)})

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        self._audit(request, obj, action="change" if change else "add", fields=form.changed_data)

    def delete_model(self, request, obj):
        self._audit(request, obj, action="delete")
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():  # the delete action has no transaction of its own
            for obj in queryset.select_related("institution"):
                self._audit(request, obj, action="delete")
            super().delete_queryset(request, queryset)


@admin.register(NamingRule)
class NamingRuleAdmin(_AuditedRuleAdmin):
    list_display = ("institution", "order", "applies_to", "mode", "regex", "message", "enabled")
    list_display_links = ("regex",)
    list_filter = ("institution", "applies_to", "enabled")
    search_fields = ("regex", "message")


@admin.register(TransitionalPattern)
class TransitionalPatternAdmin(_AuditedRuleAdmin):
    list_display = ("institution", "regex", "message", "enabled")
    list_display_links = ("regex",)
    search_fields = ("regex", "message")


@admin.register(CurationRun)
class CurationRunAdmin(ViewOnlyAdmin):
    list_display = ("id", "institution", "requested_by", "status", "started_at", "finished_at", "error")
    list_filter = ("institution", "status")
    list_select_related = ("institution",)
    date_hierarchy = "started_at"


@admin.register(CurationFinding)
class CurationFindingAdmin(PatientDataAdmin):
    list_display = ("mrn", "patient_name", "tps_path", "category", "run")
    list_filter = ("category", "run__institution")
    search_fields = ("mrn", "patient_name", "tps_path")


@admin.register(Acknowledgement)
class AcknowledgementAdmin(PatientDataAdmin):
    mrn_path = "patient__mrn"
    list_display = ("patient", "category", "username", "at", "note")
    list_filter = ("category", "patient__institution")
    list_select_related = ("patient",)
    search_fields = ("patient__mrn", "username", "note")
    date_hierarchy = "at"
