"""Admin of the archiving workflow's rows (runs, patient tasks, restores, restore drills): view-only."""
from __future__ import annotations

from django.contrib import admin

from archiver.models import ArchiveRun, PatientArchiveTask, RestoreDrill, RestoreRecord
from sites.admin_base import PatientDataAdmin, ViewOnlyAdmin


@admin.register(ArchiveRun)
class ArchiveRunAdmin(ViewOnlyAdmin):
    list_display = ("id", "institution", "requested_by", "status", "created_at", "started_at", "finished_at")
    list_filter = ("institution", "status")
    list_select_related = ("institution",)
    search_fields = ("requested_by",)
    date_hierarchy = "created_at"


@admin.register(PatientArchiveTask)
class PatientArchiveTaskAdmin(PatientDataAdmin):
    mrn_path = "patient__mrn"
    list_display = ("run", "patient", "step", "result", "reason", "attempts", "finished_at")
    list_filter = ("result", "step", "run__institution")
    list_select_related = ("patient",)
    search_fields = ("patient__mrn", "patient__last_name", "patient__first_name")


@admin.register(RestoreRecord)
class RestoreRecordAdmin(PatientDataAdmin):
    mrn_path = "archive__mrn"
    list_display = ("archive", "institution", "requested_by", "status", "files", "started_at", "finished_at")
    list_filter = ("institution", "status")
    list_select_related = ("archive", "institution")
    search_fields = ("archive__mrn", "archive__last_name", "requested_by")


@admin.register(RestoreDrill)
class RestoreDrillAdmin(PatientDataAdmin):
    mrn_path = "archive__mrn"
    list_display = ("started_at", "institution", "target", "archive", "outcome", "files", "bytes", "seconds",
                    "reason")
    list_filter = ("institution", "outcome")
    list_select_related = ("archive", "institution", "target")
    search_fields = ("archive__mrn", "archive__name", "target__name")
    date_hierarchy = "started_at"
