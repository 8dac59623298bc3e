"""Admin: the audit log, strictly read-only (no add, change or delete, no delete action)."""
from __future__ import annotations

from django.contrib import admin

from audit.models import AuditEvent
from pdas.admin import PatientDataAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(PatientDataAdmin):
    mrn_path = "mrns"
    list_display = ("at", "actor", "event", "institution", "mrns", "outcome", "object_type", "object_id")
    list_filter = ("event", "outcome", "institution")
    search_fields = ("actor", "event", "mrns", "object_id")
    date_hierarchy = "at"

    def get_actions(self, request):
        return {}  # not even the delete action, whatever the user's permissions
