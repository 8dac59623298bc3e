"""Reconciliation imports in the admin: view-only (records of what a listing held); reading the entries,
which name patients, is audited."""
from __future__ import annotations

from django.contrib import admin

from sites.admin_base import PatientDataAdmin, ViewOnlyAdmin
from reports.models import ReconciliationEntry, ReconciliationImport


@admin.register(ReconciliationImport)
class ReconciliationImportAdmin(ViewOnlyAdmin):
    list_display = ("id", "created_at", "institution", "source", "listing_name", "status", "files")
    list_filter = ("institution", "source", "status")
    list_select_related = ("institution",)


@admin.register(ReconciliationEntry)
class ReconciliationEntryAdmin(PatientDataAdmin):
    list_display = ("reconciliation", "outcome", "path", "mrn", "archive_name")
    list_filter = ("outcome",)
    search_fields = ("mrn", "path", "archive_name")
    list_select_related = ("reconciliation__institution",)
