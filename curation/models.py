"""Curation (数据整理): the rules a pending-archive patient is checked against, each run's findings,
and the physicist's acknowledgements ("reviewed, archive anyway").

A run classifies every present patient of the pending-archive group into the categories of
docs/contracts.md §7; a patient with several problems has one finding per category, a patient with none a
single ``ready`` finding. Findings record the patient's fingerprint when classified, and an
acknowledgement holds only while the patient's fingerprint is the one acknowledged: any change to
the patient's files voids it.
"""
from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from audit.events import Event
from core.jobs import JobRow, JobStatus
from inventory.models import TpsPatient
from sites.models import Institution


def validate_regex(value: str) -> None:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValidationError(_("bad regular expression: %(error)s"), params={"error": exc}) from None


class Category(models.TextChoices):
    READY = "ready", _("Ready")
    NAMING = "naming", _("Naming")
    RESTORED = "restored", _("Restored")
    TRANSITIONAL = "transitional", _("Transitional")
    DUPLICATE = "duplicate", _("Duplicate")
    IMAGE_ONLY = "image_only", _("Image only")
    UNREADABLE = "unreadable", _("Unreadable")


# The archiver never takes these, acknowledged or not: an unreadable patient cannot be packed
# faithfully, and a restored or duplicate patient is already in a verified archive.
NEVER_ARCHIVED = frozenset({Category.UNREADABLE, Category.RESTORED, Category.DUPLICATE})
ACKNOWLEDGEABLE = frozenset(set(Category) - NEVER_ARCHIVED - {Category.READY})


def needs_person(category: str, *, acknowledged: bool) -> bool:
    """A finding a physicist still has to decide: not ready, and not acknowledged where that is allowed."""
    if category == Category.READY:
        return False
    return not (acknowledged and category in ACKNOWLEDGEABLE)


class NamingRule(models.Model):
    """A regular expression a patient, MRN, plan or trial name must (or must not) match.

    ``re.search`` is used: anchor the expression (``^...$``) to test the whole value. A value that
    breaks the rule becomes a ``naming`` finding with ``message``.
    """

    class AppliesTo(models.TextChoices):
        LAST_NAME = "last_name", _("Patient last name")
        FIRST_NAME = "first_name", _("Patient first name")
        PATIENT_NAME = "patient_name", _("Patient name (Last^First^Middle)")
        MRN = "mrn", _("MRN")
        PLAN_NAME = "plan_name", _("Plan name")
        TRIAL_NAME = "trial_name", _("Trial name")

    class Mode(models.TextChoices):
        MUST_MATCH = "must_match", _("must match")
        MUST_NOT_MATCH = "must_not_match", _("must not match")

    institution = models.ForeignKey(
        Institution, on_delete=models.CASCADE, related_name="naming_rules", verbose_name=_("institution"),
    )
    applies_to = models.CharField(max_length=16, choices=AppliesTo.choices, verbose_name=_("applies to"))
    regex = models.CharField(max_length=500, validators=[validate_regex],
                             help_text=_("Python regular expression, searched anywhere in the value"),
                             verbose_name=_("regular expression"),
                         )
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.MUST_MATCH, verbose_name=_("mode"))
    message = models.CharField(
        max_length=300, help_text=_("What the physicist reads when the rule is broken"), verbose_name=_("message"),
    )
    enabled = models.BooleanField(default=True, verbose_name=_("enabled"))
    order = models.PositiveIntegerField(default=100, verbose_name=_("order"))

    class Meta:
        ordering = ["institution", "order", "pk"]
        verbose_name = _("naming rule")
        verbose_name_plural = _("naming rules")

    def __str__(self) -> str:
        return f"{self.get_applies_to_display()} {self.get_mode_display()} {self.regex}"


class TransitionalPattern(models.Model):
    """A plan name pattern (case-insensitive, searched anywhere) marking an intermediate plan."""

    institution = models.ForeignKey(
        Institution, on_delete=models.CASCADE, related_name="transitional_patterns", verbose_name=_("institution"),
    )
    regex = models.CharField(max_length=500, validators=[validate_regex],
                             help_text=_("Python regular expression, case-insensitive, searched in the plan name"),
                             verbose_name=_("regular expression"),
                         )
    message = models.CharField(max_length=300, verbose_name=_("message"))
    enabled = models.BooleanField(default=True, verbose_name=_("enabled"))

    class Meta:
        ordering = ["institution", "pk"]
        verbose_name = _("transitional plan pattern")
        verbose_name_plural = _("transitional plan patterns")

    def __str__(self) -> str:
        return self.regex


class CurationRun(JobRow):
    """One curation of an institution's pending-archive group: a job (``core.jobs``).

    ``status`` is ``failed`` when the TPS could not be read: then nothing is known and the last
    ``done`` run still decides what the archiver may take (for unchanged patients only).
    """

    Status = JobStatus
    audit_event = Event.CURATION_RUN

    institution = models.ForeignKey(
        Institution, on_delete=models.CASCADE, related_name="curation_runs", verbose_name=_("institution"),
    )
    counts = models.JSONField(
        default=dict, blank=True, help_text=_("Patients per category, and timings"), verbose_name=_("counts"),
    )
    warnings = models.JSONField(
        default=list, blank=True, help_text=_("Checks that could not be made"), verbose_name=_("warnings"),
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["institution", "status", "-finished_at"])]
        verbose_name = _("curation run")
        verbose_name_plural = _("curation runs")

    def __str__(self) -> str:
        return f"{self.institution.code} curation {self.pk} ({self.get_status_display()})"


class CurationFinding(models.Model):
    """One patient in one category of a run, with every reason. ``fingerprint``, ``mrn``,
    ``patient_name`` and ``tps_path`` are what the run saw."""

    run = models.ForeignKey(CurationRun, on_delete=models.CASCADE, related_name="findings", verbose_name=_("run"))
    patient = models.ForeignKey(
        TpsPatient, on_delete=models.CASCADE, related_name="curation_findings", verbose_name=_("patient"),
    )
    category = models.CharField(max_length=16, choices=Category.choices, db_index=True, verbose_name=_("category"))
    reasons = models.JSONField(default=list, blank=True, verbose_name=_("reasons"))
    plan_ids = models.JSONField(
        default=list, blank=True, help_text=_("PlanIDs the reasons concern"), verbose_name=_("plan ids"),
    )
    fingerprint = models.CharField(max_length=64, blank=True, verbose_name=_("fingerprint"))
    mrn = models.CharField(max_length=64, blank=True, db_index=True, verbose_name=_("MRN"))
    patient_name = models.CharField(max_length=400, blank=True, verbose_name=_("patient name"))
    tps_path = models.CharField(max_length=500, verbose_name=_("TPS path"))
    last_edit = models.DateTimeField(
        null=True, blank=True, help_text=_("Latest plan edit, else the folder's mtime"), verbose_name=_("last edit"),
    )

    class Meta:
        ordering = ["run", "tps_path", "category"]
        constraints = [models.UniqueConstraint(fields=["run", "patient", "category"], name="uniq_run_patient_category")]
        verbose_name = _("curation finding")
        verbose_name_plural = _("curation findings")

    def __str__(self) -> str:
        return f"{self.tps_path} {self.category}"

    @property
    def acknowledgeable(self) -> bool:
        return self.category in ACKNOWLEDGEABLE

    @property
    def needs_person(self) -> bool:
        """Uses the ``acknowledged`` annotation of ``curation.selectors`` (False when absent)."""
        return needs_person(self.category, acknowledged=getattr(self, "acknowledged", False))


class Acknowledgement(models.Model):
    """A physicist reviewed a patient's finding and lets the archiver take the patient anyway.

    Valid only while the patient's fingerprint equals ``fingerprint``.
    """

    patient = models.ForeignKey(
        TpsPatient, on_delete=models.CASCADE, related_name="curation_acknowledgements", verbose_name=_("patient"),
    )
    category = models.CharField(max_length=16, choices=Category.choices, verbose_name=_("category"))
    fingerprint = models.CharField(max_length=64, verbose_name=_("fingerprint"))
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+", verbose_name=_("user"))
    username = models.CharField(max_length=150, verbose_name=_("user name"))
    at = models.DateTimeField(default=timezone.now, verbose_name=_("time"))
    note = models.TextField(verbose_name=_("note"))
    reasons = models.JSONField(
        default=list, blank=True, help_text=_("The reasons that were reviewed"), verbose_name=_("reasons"),
    )

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["patient", "category", "fingerprint"])]
        verbose_name = _("acknowledgement")
        verbose_name_plural = _("acknowledgements")

    def __str__(self) -> str:
        return f"{self.patient_id} {self.category} by {self.username}"

    def holds_for(self, patient: TpsPatient) -> bool:
        return bool(self.fingerprint) and self.fingerprint == patient.fingerprint
