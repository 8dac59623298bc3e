"""Admin: the audit log, strictly read-only (no add, change or delete, no delete action), scoped like the
auditor page (sites.access.scope_audit_events)."""
from __future__ import annotations

from django.contrib import admin

from audit.models import AuditEvent
from sites.access import scope_audit_events
from sites.admin_base import PatientDataAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(PatientDataAdmin):
    mrn_path = "mrns"
    list_display = ("at", "actor", "event", "institution", "mrns", "outcome", "object_type", "object_id")
    list_filter = ("event", "outcome", "institution")
    search_fields = ("actor", "event", "mrns", "object_id")
    date_hierarchy = "at"

    def scope_queryset(self, request, queryset):
        return scope_audit_events(queryset, request.user)

    def get_actions(self, request):
        return {}  # not even the delete action, whatever the user's permissions
