"""Admin: scans, findings and the pending-archive table are computed by loss detection: view-only."""
from __future__ import annotations

from django.contrib import admin

from lossdetect.models import LossFinding, LossScan, PendingPlan
from sites.admin_base import PatientDataAdmin, ViewOnlyAdmin


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
                    "scan_id")
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
