"""Admin of what PDAS computes about the TPS and the archives: view-only (sites/admin_base.py)."""
from __future__ import annotations

from django.contrib import admin

from inventory.models import Archive, ArchiveCopy, ArchivedPlan, FixityCheck, QuarantinedPatient, TpsPatient, TpsPlan
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


@admin.register(QuarantinedPatient)
class QuarantinedPatientAdmin(PatientDataAdmin):
    mrn_path = "archive__mrn"
    list_display = ("archive", "institution", "tps_path", "moved_at", "purge_after", "purged_at")
    list_filter = ("institution",)
    list_select_related = ("archive", "institution")
    search_fields = ("archive__mrn", "archive__last_name", "tps_path")
