"""Loss scans over R&V first deliveries, their findings, and the pending-archive table (待归档表)."""
from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from audit.events import Event
from core.jobs import JobRow, JobStatus
from inventory.models import Archive, TpsPlan
from sites.models import Institution


class Category(models.TextChoices):
    FIRST_COURSE_LOST = "first_course_lost", _("First course · lost")
    FIRST_COURSE_UNARCHIVED = "first_course_unarchived", _("First course · unarchived")
    FIRST_COURSE_ARCHIVED = "first_course_archived", _("First course · archived")
    RECOURSE_LOST = "recourse_lost", _("Re-course · lost")
    RECOURSE_UNARCHIVED = "recourse_unarchived", _("Re-course · unarchived")
    RECOURSE_ARCHIVED = "recourse_archived", _("Re-course · archived")


class LossScan(JobRow):
    """One scan of an institution's first deliveries in a window: a job (``core.jobs``).

    ``status`` is ``failed`` (and the counts meaningless) when the R&V source or the TPS could not
    be read: an unreadable source is "unknown", never "nothing lost".
    """

    class Trigger(models.TextChoices):
        SCHEDULED = "scheduled", _("Automatic")
        MANUAL = "manual", _("Manual")

    Status = JobStatus
    audit_event = Event.LOSSSCAN_RUN

    institution = models.ForeignKey(Institution, on_delete=models.CASCADE, related_name="loss_scans")
    window_from = models.DateField()
    window_to = models.DateField()
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.MANUAL)
    summary = models.JSONField(default=dict, blank=True)
    source_warnings = models.JSONField(default=list, blank=True, help_text=_("Bad R&V rows, skipped"))

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.institution.code} {self.window_from}..{self.window_to} ({self.get_status_display()})"

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("lossdetect:scan-detail", args=[self.pk])


class LossFinding(models.Model):
    """One delivered plan of a scan and its category."""

    scan = models.ForeignKey(LossScan, on_delete=models.CASCADE, related_name="findings")
    mrn = models.CharField(max_length=64, db_index=True)
    patient_name = models.CharField(max_length=200, blank=True)
    plan_label = models.CharField(max_length=200)
    plan_uid = models.CharField(max_length=128, blank=True)
    course = models.IntegerField(null=True, blank=True)
    is_recourse = models.BooleanField(default=False)
    first_delivery = models.DateTimeField()
    category = models.CharField(max_length=32, choices=Category.choices, db_index=True)
    match = models.CharField(max_length=1000, blank=True, help_text=_("TPS path or archive name matched"))
    found_in = models.CharField(max_length=1000, blank=True, help_text=_("Non-clinical group a lost plan sits in"))
    tps_plan = models.ForeignKey(TpsPlan, null=True, blank=True, on_delete=models.SET_NULL)
    archive = models.ForeignKey(Archive, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["scan", "category", "mrn"]


class PendingPlan(models.Model):
    """A delivered plan still only in the TPS, re-checked by every scan until archived or gone."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending archive")
        RELEASED = "released", _("Archived")
        LOST = "lost", _("Lost")

    institution = models.ForeignKey(Institution, on_delete=models.CASCADE, related_name="pending_plans")
    mrn = models.CharField(max_length=64, db_index=True)
    patient_name = models.CharField(max_length=200, blank=True)
    plan_label = models.CharField(max_length=200)
    plan_uid = models.CharField(max_length=128, blank=True)
    course = models.IntegerField(null=True, blank=True)
    is_recourse = models.BooleanField(default=False)
    first_delivery = models.DateTimeField()
    tps_plan = models.ForeignKey(TpsPlan, null=True, blank=True, on_delete=models.SET_NULL)
    tps_path = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    first_seen_scan = models.ForeignKey(LossScan, on_delete=models.PROTECT, related_name="+")
    last_checked_scan = models.ForeignKey(LossScan, on_delete=models.PROTECT, related_name="+")
    released_at = models.DateTimeField(null=True, blank=True)
    released_archive = models.ForeignKey(Archive, null=True, blank=True, on_delete=models.SET_NULL)
    lost_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["first_delivery"]
        constraints = [
            models.UniqueConstraint(
                fields=["institution", "mrn", "plan_label", "plan_uid", "first_delivery"], name="uniq_pending_plan"
            )
        ]

    def age_days(self, now=None) -> int:
        now = now or timezone.now()
        return (now - self.first_delivery).days
