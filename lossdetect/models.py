"""Loss scans over R&V first deliveries, their findings, the pending-archive table (待归档表), the R&V
records of other planning systems, and the MRN aliases that make one patient of several MRNs."""
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

    institution = models.ForeignKey(
        Institution, on_delete=models.CASCADE, related_name="loss_scans", verbose_name=_("institution"),
    )
    window_from = models.DateField(verbose_name=_("From"))
    window_to = models.DateField(verbose_name=_("To"))
    trigger = models.CharField(verbose_name=_("Trigger"),
                               max_length=16, choices=Trigger.choices, default=Trigger.MANUAL)
    summary = models.JSONField(default=dict, blank=True, verbose_name=_("summary"))
    source_warnings = models.JSONField(
        default=list, blank=True, help_text=_("Bad R&V rows, skipped"), verbose_name=_("source warnings"),
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("loss scan")
        verbose_name_plural = _("loss scans")

    def __str__(self) -> str:
        return f"{self.institution.code} {self.window_from}..{self.window_to} ({self.get_status_display()})"

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("lossdetect:scan-detail", args=[self.pk])


class LossFinding(models.Model):
    """One delivered plan of a scan and its category."""

    scan = models.ForeignKey(LossScan, on_delete=models.CASCADE, related_name="findings", verbose_name=_("scan"))
    mrn = models.CharField(verbose_name=_("MRN"), max_length=64, db_index=True)
    patient_name = models.CharField(verbose_name=_("Patient name"), max_length=200, blank=True)
    plan_label = models.CharField(verbose_name=_("Plan label"), max_length=200)
    plan_uid = models.CharField(verbose_name=_("Plan UID"), max_length=128, blank=True)
    course = models.IntegerField(verbose_name=_("Course"), null=True, blank=True)
    is_recourse = models.BooleanField(verbose_name=_("Re-course"), default=False)
    first_delivery = models.DateTimeField(verbose_name=_("First delivery"))
    category = models.CharField(verbose_name=_("Category"), max_length=32, choices=Category.choices, db_index=True)
    match = models.CharField(verbose_name=_("Matched"),
                             max_length=1000, blank=True, help_text=_("TPS path or archive name matched"))
    found_in = models.CharField(verbose_name=_("Found in"),
                                max_length=1000, blank=True, help_text=_("Non-clinical group a lost plan sits in"))
    also_known_as = models.JSONField(default=list, blank=True, verbose_name=_("also known as"),
                                     help_text=_("The patient's other MRNs (MRN aliases), when the scan ran"))
    tps_plan = models.ForeignKey(TpsPlan, null=True, blank=True, on_delete=models.SET_NULL,
                                 verbose_name=_("TPS plan"))
    archive = models.ForeignKey(Archive, null=True, blank=True, on_delete=models.SET_NULL,
                                verbose_name=_("archive"))

    class Meta:
        ordering = ["scan", "category", "mrn"]
        verbose_name = _("loss finding")
        verbose_name_plural = _("loss findings")

    def __str__(self) -> str:
        return f"{self.mrn} {self.plan_label} ({self.get_category_display()})"


class OtherTpsRecord(models.Model):
    """A first delivery of the scan's window whose plan was made in another planning system
    (``Institution.planning_systems``): listed apart, never lost, unarchived or archived."""

    scan = models.ForeignKey(LossScan, on_delete=models.CASCADE, related_name="other_tps_records",
                             verbose_name=_("scan"))
    mrn = models.CharField(verbose_name=_("MRN"), max_length=64, db_index=True)
    patient_name = models.CharField(verbose_name=_("Patient name"), max_length=200, blank=True)
    plan_label = models.CharField(verbose_name=_("Plan label"), max_length=200)
    plan_uid = models.CharField(verbose_name=_("Plan UID"), max_length=128, blank=True)
    course = models.IntegerField(verbose_name=_("Course"), null=True, blank=True)
    first_delivery = models.DateTimeField(verbose_name=_("First delivery"))
    planning_system = models.CharField(verbose_name=_("Planning system"), max_length=200)
    machine = models.CharField(verbose_name=_("Machine"), max_length=200, blank=True)

    class Meta:
        ordering = ["scan", "first_delivery", "mrn"]
        verbose_name = _("record of another planning system")
        verbose_name_plural = _("records of other planning systems")

    def __str__(self) -> str:
        return f"{self.mrn} {self.plan_label} ({self.planning_system})"


class PendingPlan(models.Model):
    """A delivered plan still only in the TPS, re-checked by every scan until archived or gone."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending archive")
        RELEASED = "released", _("Archived")
        LOST = "lost", _("Lost")

    institution = models.ForeignKey(
        Institution, on_delete=models.CASCADE, related_name="pending_plans", verbose_name=_("institution"),
    )
    mrn = models.CharField(verbose_name=_("MRN"), max_length=64, db_index=True)
    patient_name = models.CharField(verbose_name=_("Patient name"), max_length=200, blank=True)
    plan_label = models.CharField(verbose_name=_("Plan label"), max_length=200)
    plan_uid = models.CharField(verbose_name=_("Plan UID"), max_length=128, blank=True)
    course = models.IntegerField(verbose_name=_("Course"), null=True, blank=True)
    is_recourse = models.BooleanField(verbose_name=_("Re-course"), default=False)
    first_delivery = models.DateTimeField(verbose_name=_("First delivery"))
    tps_plan = models.ForeignKey(TpsPlan, null=True, blank=True, on_delete=models.SET_NULL,
                                 verbose_name=_("TPS plan"))
    tps_path = models.CharField(verbose_name=_("TPS path"), max_length=500, blank=True)
    status = models.CharField(verbose_name=_("Status"),
                              max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    first_seen_scan = models.ForeignKey(LossScan, verbose_name=_("First seen in scan"),
                                        on_delete=models.PROTECT, related_name="+")
    last_checked_scan = models.ForeignKey(LossScan, verbose_name=_("Last checked in scan"),
                                          on_delete=models.PROTECT, related_name="+")
    released_at = models.DateTimeField(verbose_name=_("Archived at"), null=True, blank=True)
    released_archive = models.ForeignKey(
        Archive, null=True, blank=True, on_delete=models.SET_NULL, verbose_name=_("released by archive"),
    )
    lost_at = models.DateTimeField(verbose_name=_("Lost at"), null=True, blank=True)

    class Meta:
        ordering = ["first_delivery"]
        constraints = [
            models.UniqueConstraint(
                fields=["institution", "mrn", "plan_label", "plan_uid", "first_delivery"], name="uniq_pending_plan"
            )
        ]
        verbose_name = _("pending plan")
        verbose_name_plural = _("pending plans")

    def __str__(self) -> str:
        return f"{self.mrn} {self.plan_label}"

    def age_days(self, now=None) -> int:
        now = now or timezone.now()
        return (now - self.first_delivery).days


class MrnAlias(models.Model):
    """One MRN of an institution's patient that now goes by another: ``old_mrn`` -> ``mrn`` (renumbered, or
    merged into ``mrn``), with who recorded it, when and why.

    Aliases chain (A -> B, then B -> C): every MRN reached through them, in either direction, is one
    patient (``lossdetect.services.alias_graph``). An MRN points to one MRN at most, never to itself,
    and no chain comes back to where it started; the services check it before any write.
    """

    class Source(models.TextChoices):
        ADMIN = "admin", _("Admin")
        IMPORT = "import", _("Imported file")
        HL7 = "hl7", _("HL7 message")

    institution = models.ForeignKey(Institution, on_delete=models.CASCADE, related_name="mrn_aliases",
                                    verbose_name=_("institution"))
    old_mrn = models.CharField(_("old MRN"), max_length=64)
    mrn = models.CharField(_("MRN"), max_length=64, help_text=_("The MRN the old one now goes by"))
    reason = models.CharField(verbose_name=_("Reason"),
                              max_length=500, blank=True, help_text=_("Why: renumbered, duplicate merged, ..."))
    source = models.CharField(verbose_name=_("Source"), max_length=16, choices=Source.choices, default=Source.ADMIN)
    recorded_by = models.CharField(verbose_name=_("Recorded by"), max_length=150, blank=True)
    recorded_at = models.DateTimeField(verbose_name=_("Recorded at"), default=timezone.now)

    class Meta:
        ordering = ["institution", "old_mrn"]
        verbose_name = _("MRN alias")
        verbose_name_plural = _("MRN aliases")
        constraints = [
            models.UniqueConstraint(fields=["institution", "old_mrn"], name="uniq_mrn_alias_old_mrn"),
            models.CheckConstraint(condition=~models.Q(old_mrn=models.F("mrn")), name="mrn_alias_not_itself"),
        ]
        indexes = [models.Index(fields=["institution", "mrn"], name="mrn_alias_new_mrn")]

    def __str__(self) -> str:
        return f"{self.old_mrn} -> {self.mrn}"

    @property
    def mrns(self) -> list[str]:
        """Both MRNs: the patient data a page showing this row names (audit)."""
        return [self.old_mrn, self.mrn]

    def clean(self) -> None:
        self.old_mrn, self.mrn = self.old_mrn.strip(), self.mrn.strip()
