"""Alerts in the admin: view-only (raised and cleared by the checks, never by hand); reading an alert about an
archive names its patient's MRN, so it is audited like patient data."""
from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from alerts.models import Alert
from sites.admin_base import PatientDataAdmin


@admin.register(Alert)
class AlertAdmin(PatientDataAdmin):
    list_display = ("institution", "kind", "subject", "text", "raised_at", "last_seen_at", "cleared_at",
                    "notified_at")
    list_filter = ("institution", "kind", ("cleared_at", admin.EmptyFieldListFilter))
    list_select_related = ("institution",)
    search_fields = ("subject",)

    @admin.display(description=_("Message"))
    def text(self, alert: Alert) -> str:
        return alert.message()
