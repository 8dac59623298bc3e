"""The archiving workflow's own rows: archive runs with their patient tasks, and restores."""
from __future__ import annotations

from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from audit.events import Event
from core.jobs import JobQuerySet, JobRow, JobStatus, stale_cutoff
from inventory.models import Archive, TpsPatient
from sites.models import Institution, StorageTarget


class ArchiveRunQuerySet(JobQuerySet):
    def stale(self, now=None):
        """A run is alive while any of its pending patients is claimed, or any of its patients
        started or finished since the cutoff: its progress is on its patient tasks."""
        now = now or timezone.now()
        cutoff = stale_cutoff(now)
        alive = PatientArchiveTask.objects.filter(run=OuterRef("pk")).filter(
            Q(result=PatientArchiveTask.Result.PENDING, patient__claimed_by__gt="", patient__claim_expires__gt=now)
            | Q(started_at__gte=cutoff) | Q(finished_at__gte=cutoff))
        return super().stale(now).exclude(Exists(alive))


class ArchiveRun(JobRow):
    """One archiving run over an institution's pending group: a job of patient tasks (``core.jobs``)."""

    Status = JobStatus
    audit_event = Event.ARCHIVE_RUN

    institution = models.ForeignKey(
        Institution, on_delete=models.CASCADE, related_name="archive_runs", verbose_name=_("institution"),
    )

    objects = ArchiveRunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("archive run")
        verbose_name_plural = _("archive runs")

    def outcome(self, *, errors: int, warnings: int) -> tuple[str, str]:
        """(css key, label) a person reads: a finished run with a × is "Done with errors", never a plain
        "Done" (its ``status`` only says the run ended); with a ! and no ×, "Done with warnings"."""
        if self.status == JobStatus.DONE and errors:
            return "error", str(_("Done with errors"))
        if self.status == JobStatus.DONE and warnings:
            return "warning", str(_("Done with warnings"))
        return self.status, str(self.get_status_display())


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

    run = models.ForeignKey(ArchiveRun, on_delete=models.CASCADE, related_name="tasks", verbose_name=_("run"))
    patient = models.ForeignKey(
        TpsPatient, on_delete=models.PROTECT, related_name="archive_tasks", verbose_name=_("patient"),
    )
    archive = models.ForeignKey(
        Archive, null=True, blank=True, on_delete=models.SET_NULL, related_name="tasks", verbose_name=_("archive"),
    )
    step = models.CharField(verbose_name=_("Step"), max_length=16, choices=Step.choices, default=Step.QUEUED)
    result = models.CharField(verbose_name=_("Result"), max_length=16, choices=Result.choices, default=Result.PENDING)
    reason = models.TextField(verbose_name=_("Reason"), blank=True)
    bytes_done = models.BigIntegerField(verbose_name=_("Bytes done"), default=0)
    bytes_total = models.BigIntegerField(verbose_name=_("Bytes total"), default=0)
    claimed_by = models.CharField(max_length=200, blank=True, verbose_name=_("claimed by"))
    claimed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("claimed at"))
    attempts = models.PositiveSmallIntegerField(verbose_name=_("Attempts"), default=0)
    started_at = models.DateTimeField(null=True, blank=True, verbose_name=_("started at"))
    finished_at = models.DateTimeField(null=True, blank=True, verbose_name=_("finished at"))

    class Meta:
        ordering = ["run", "id"]
        constraints = [models.UniqueConstraint(fields=["run", "patient"], name="uniq_run_patient")]
        verbose_name = _("patient archive task")
        verbose_name_plural = _("patient archive tasks")

    def __str__(self) -> str:
        return f"{self.patient} ({self.run})"


class RestoreRecord(JobRow):
    """A restore of one archive back onto the TPS (or into a chosen folder): a job (``core.jobs``).

    ``reason`` is what the page shows: the step running, then the outcome (done or not); ``error``
    holds why a restore failed or was refused."""

    class Status(models.TextChoices):
        QUEUED = JobStatus.QUEUED.value, JobStatus.QUEUED.label
        RUNNING = JobStatus.RUNNING.value, JobStatus.RUNNING.label
        DONE = JobStatus.DONE.value, JobStatus.DONE.label
        FAILED = JobStatus.FAILED.value, JobStatus.FAILED.label
        REFUSED = "refused", _("Refused")

    audit_event = Event.RESTORE

    institution = models.ForeignKey(
        Institution, on_delete=models.CASCADE, related_name="restores", verbose_name=_("institution"),
    )
    archive = models.ForeignKey(Archive, on_delete=models.PROTECT, related_name="restores", verbose_name=_("archive"))
    destination = models.CharField(verbose_name=_("Destination"), max_length=1000)
    tps_path = models.CharField(verbose_name=_("TPS path"), max_length=500, blank=True)
    status = models.CharField(verbose_name=_("Status"), max_length=16, choices=Status.choices, default=Status.QUEUED)
    reason = models.TextField(verbose_name=_("Reason"), blank=True)
    files = models.PositiveIntegerField(verbose_name=_("Files"), default=0)
    bytes = models.BigIntegerField(verbose_name=_("Bytes"), default=0)
    from_target = models.ForeignKey(
        StorageTarget, verbose_name=_("From target"), null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text=_("Read from this target only (a restore drill); blank: the best copy"))

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("restore")
        verbose_name_plural = _("restores")


class RestoreDrill(models.Model):
    """A restore drill: one archive restored from one target into a scratch folder on the PDAS server, then
    compared file by file with its manifest (docs/keeping.md, "Restore drills"). Proves the copy opens and
    the restore path works, not only that the bytes hash right."""

    class Outcome(models.TextChoices):
        PASS = "pass", _("Pass")
        FAIL = "fail", _("Fail")
        UNKNOWN = "unknown", _("Unknown: the target could not be read")

    institution = models.ForeignKey(
        Institution, on_delete=models.CASCADE, related_name="restore_drills", verbose_name=_("institution"),
    )
    target = models.ForeignKey(StorageTarget, verbose_name=_("Target"),
                               on_delete=models.PROTECT, related_name="restore_drills")
    archive = models.ForeignKey(Archive, verbose_name=_("Archive"),
                                on_delete=models.PROTECT, related_name="restore_drills")
    restore = models.ForeignKey(
        RestoreRecord, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", verbose_name=_("restore"),
    )
    requested_by = models.CharField(max_length=150, verbose_name=_("requested by"))
    started_at = models.DateTimeField(verbose_name=_("Started"), default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True, verbose_name=_("finished at"))
    outcome = models.CharField(verbose_name=_("Outcome"), max_length=8, choices=Outcome.choices, default=Outcome.FAIL)
    files = models.PositiveIntegerField(verbose_name=_("Files"),
                                        default=0, help_text=_("Files compared with the manifest"))
    bytes = models.BigIntegerField(verbose_name=_("Bytes"), default=0, help_text=_("Bytes restored"))
    seconds = models.FloatField(verbose_name=_("Seconds"), null=True, blank=True)
    reason = models.TextField(verbose_name=_("Reason"), blank=True)

    class Meta:
        ordering = ["-started_at"]
        verbose_name = _("restore drill")
        verbose_name_plural = _("restore drills")

    def __str__(self) -> str:
        return f"{self._meta.verbose_name} #{self.pk}"
