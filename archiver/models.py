"""The archiving workflow's own rows: archive runs with their patient tasks, and restores."""
from __future__ import annotations

import datetime as dt

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from inventory.models import Archive, TpsPatient
from sites.models import Institution


class ArchiveRun(models.Model):
    """One archiving run over an institution's pending group (a Celery job of patient tasks)."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    institution = models.ForeignKey(Institution, on_delete=models.CASCADE, related_name="archive_runs")
    started_by = models.CharField(max_length=150, help_text=_("User name, or 'scheduler'"))
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]

    @property
    def duration(self) -> dt.timedelta | None:
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None


class PatientArchiveTask(models.Model):
    """One patient of an archive run: its claim, its progress and its ✓ × ! result.

    A worker claims the row with a conditional UPDATE on ``claimed_by``; the result stays
    ``error`` until every step passed, so a crash never reads as success.
    """

    class Step(models.TextChoices):
        QUEUED = "queued", _("Queued")
        PACKING = "packing", _("Packing")
        UPLOADING = "uploading", _("Uploading")
        VERIFYING = "verifying", _("Verifying")
        REMOVING = "removing", _("Removing originals")
        DONE = "done", _("Done")

    class Result(models.TextChoices):
        PENDING = "pending", _("Pending")
        PASS = "pass", "✓"
        ERROR = "error", "×"
        WARNING = "warning", "!"

    run = models.ForeignKey(ArchiveRun, on_delete=models.CASCADE, related_name="tasks")
    patient = models.ForeignKey(TpsPatient, on_delete=models.PROTECT, related_name="archive_tasks")
    archive = models.ForeignKey(Archive, null=True, blank=True, on_delete=models.SET_NULL, related_name="tasks")
    step = models.CharField(max_length=16, choices=Step.choices, default=Step.QUEUED)
    result = models.CharField(max_length=16, choices=Result.choices, default=Result.PENDING)
    reason = models.TextField(blank=True)
    bytes_done = models.BigIntegerField(default=0)
    bytes_total = models.BigIntegerField(default=0)
    claimed_by = models.CharField(max_length=200, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "id"]
        constraints = [models.UniqueConstraint(fields=["run", "patient"], name="uniq_run_patient")]


class RestoreRecord(models.Model):
    """A restore of one archive back onto the TPS (or into a chosen folder)."""

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")
        REFUSED = "refused", _("Refused")

    institution = models.ForeignKey(Institution, on_delete=models.CASCADE, related_name="restores")
    archive = models.ForeignKey(Archive, on_delete=models.PROTECT, related_name="restores")
    requested_by = models.CharField(max_length=150)
    destination = models.CharField(max_length=1000)
    tps_path = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    reason = models.TextField(blank=True)
    files = models.PositiveIntegerField(default=0)
    bytes = models.BigIntegerField(default=0)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
