"""What PDAS knows about a site: institutions, the TPS as last read, archives and their copies.

The storage targets are canonical: every ``Archive``/``ArchiveCopy`` row can be rebuilt from the
``.manifest.json`` and ``.sha256`` files beside the archives (``manage.py rebuild_index``).
"""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


def _validate_timezone(value: str) -> None:
    try:
        ZoneInfo(value)
    except Exception:  # zoneinfo raises several types for a bad key
        raise ValidationError(_("%(value)s is not a time zone name"), params={"value": value}) from None


class Codec(models.TextChoices):
    GZIP = "gzip", "gzip (.tar.gz)"
    ZSTD = "zstd", "zstd (.tar.zst)"


class Institution(models.Model):
    """One Pinnacle site: its TPS tree, its groups, its R&V source and its rules."""

    code = models.SlugField(max_length=32, unique=True, help_text=_("Short code used on the command line"))
    name = models.CharField(max_length=200)
    tps_url = models.CharField(
        max_length=500, help_text=_("file:///path/Patients or ssh://user@host:22/path/Patients")
    )
    tps_password_env = models.CharField(max_length=100, blank=True)
    tps_key_file = models.CharField(max_length=500, blank=True)
    tps_known_hosts = models.CharField(max_length=500, blank=True)
    pending_group = models.CharField(max_length=200, help_text=_("The pending-archive group (待归档组)"))
    clinical_groups = models.JSONField(default=list, blank=True)
    non_clinical_groups = models.JSONField(default=list, blank=True)
    restore_group = models.CharField(
        max_length=200, blank=True, help_text=_("Group restored patients go to; blank: the pending group")
    )
    rv_url = models.CharField(max_length=500, blank=True, help_text=_("csv:, dicom-dir: or mosaiq+<db-url>"))
    rv_password_env = models.CharField(max_length=100, blank=True)
    recourse_gap_days = models.PositiveIntegerField(default=90)
    lookback_days = models.PositiveIntegerField(default=365)
    skew_days = models.PositiveIntegerField(default=1)
    time_zone = models.CharField(
        max_length=64, default="", blank=True, validators=[_validate_timezone],
        help_text=_("Site time of Pinnacle timestamps; blank: the server's TIME_ZONE"),
    )
    codec = models.CharField(max_length=8, choices=Codec.choices, default=Codec.GZIP)
    codec_level = models.PositiveSmallIntegerField(default=0, help_text=_("0: the codec's default"))
    pack_script = models.CharField(
        max_length=500, blank=True, help_text=_("Site pack script on the TPS host; blank: PDAS's own")
    )
    worker_queue = models.CharField(
        max_length=100, blank=True,
        help_text=_("Celery queue of this institution's archiving tasks, e.g. served by a worker on the TPS "
                    "host (celery -A pdas worker -Q NAME); blank: the default queue"),
    )
    quarantine_dir = models.CharField(
        max_length=500, blank=True, help_text=_("Where removed originals wait; blank: <tps_root>/.pdas-quarantine")
    )
    quarantine_days = models.PositiveIntegerField(default=30)
    mrn_pattern = models.CharField(max_length=200, blank=True, help_text=_("Regular expression an MRN must match"))
    notify_emails = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} ({self.name})"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone or settings.TIME_ZONE)

    @property
    def effective_restore_group(self) -> str:
        return self.restore_group or self.pending_group

    def group_role(self, group: str) -> str:
        """'pending', 'clinical', 'non_clinical' or 'other' for a TPS group name."""
        if group == self.pending_group:
            return "pending"
        if group in self.clinical_groups:
            return "clinical"
        if group in self.non_clinical_groups:
            return "non_clinical"
        return "other"


class StorageTarget(models.Model):
    """A place archives are copied to: file://, ftp://, ftps:// or sftp://."""

    institution = models.ForeignKey(Institution, on_delete=models.CASCADE, related_name="storage_targets")
    name = models.SlugField(max_length=64)
    url = models.CharField(max_length=500)
    password_env = models.CharField(max_length=100, blank=True)
    password_file = models.CharField(max_length=500, blank=True)
    key_file = models.CharField(max_length=500, blank=True)
    known_hosts = models.CharField(max_length=500, blank=True)
    ca_file = models.CharField(
        max_length=500, blank=True, help_text=_("CA certificate(s) that sign an FTPS server's certificate")
    )
    allow_plain_ftp = models.BooleanField(
        default=False, help_text=_("Allow ftp:// without TLS (only on a private storage network)")
    )
    enabled = models.BooleanField(default=True)
    priority = models.PositiveSmallIntegerField(default=0, help_text=_("Lower first when restoring"))

    class Meta:
        ordering = ["institution", "priority", "name"]
        constraints = [models.UniqueConstraint(fields=["institution", "name"], name="uniq_target_name")]

    def __str__(self) -> str:
        return f"{self.institution.code}/{self.name}"


class TpsPatient(models.Model):
    """A patient directory as PDAS last read it from the TPS.

    ``fingerprint`` digests the names, sizes and mtimes of the patient's files: a rescan re-parses
    only patients whose fingerprint changed. A directory gone from the TPS is kept with
    ``present=False`` so findings can still point at it.
    """

    institution = models.ForeignKey(Institution, on_delete=models.CASCADE, related_name="tps_patients")
    group = models.CharField(max_length=200, db_index=True)
    tps_path = models.CharField(max_length=500, help_text=_("Relative to the TPS root"))
    tps_patient_id = models.IntegerField(null=True, blank=True)
    mrn = models.CharField(max_length=64, blank=True, db_index=True)
    last_name = models.CharField(max_length=200, blank=True)
    first_name = models.CharField(max_length=200, blank=True)
    middle_name = models.CharField(max_length=200, blank=True)
    image_sets = models.JSONField(default=list, blank=True)
    file_count = models.PositiveIntegerField(default=0)
    total_bytes = models.BigIntegerField(default=0)
    latest_mtime = models.DateTimeField(null=True, blank=True)
    fingerprint = models.CharField(max_length=64, blank=True)
    read_error = models.TextField(blank=True, help_text=_("Why the patient could not be read; blank: read fine"))
    present = models.BooleanField(default=True, db_index=True)
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)
    restored_from = models.ForeignKey(
        "Archive", null=True, blank=True, on_delete=models.SET_NULL, related_name="restored_patients",
        help_text=_("Set when PDAS restored this directory; cleared when its content changes"),
    )
    restored_fingerprint = models.CharField(max_length=64, blank=True)
    # The archiving claim: a worker owns the patient while ``claim_expires`` is in the future and
    # renews it as it works; a killed worker's claim simply runs out.
    claimed_by = models.CharField(max_length=200, blank=True)
    claim_expires = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["institution", "group", "tps_path"]
        constraints = [models.UniqueConstraint(fields=["institution", "tps_path"], name="uniq_tps_path")]
        indexes = [models.Index(fields=["institution", "present", "group"])]

    def __str__(self) -> str:
        return f"{self.display_name} [{self.mrn or '?'}] {self.tps_path}"

    @property
    def display_name(self) -> str:
        return ", ".join(part for part in (self.last_name, self.first_name) if part) or "?"

    @property
    def is_readable(self) -> bool:
        return not self.read_error

    @property
    def is_unchanged_restore(self) -> bool:
        """True while the directory is exactly what PDAS restored (curation shows it green)."""
        return bool(self.restored_from_id and self.restored_fingerprint == self.fingerprint)


class TpsPlan(models.Model):
    """A plan of a TPS patient, from the Patient file's PlanList and its Plan_N directory."""

    patient = models.ForeignKey(TpsPatient, on_delete=models.CASCADE, related_name="plans")
    plan_id = models.IntegerField()
    name = models.CharField(max_length=200, blank=True)
    trial_names = models.JSONField(default=list, blank=True)
    created = models.DateTimeField(null=True, blank=True)
    edited = models.DateTimeField(null=True, blank=True)
    has_directory = models.BooleanField(default=True)

    class Meta:
        ordering = ["patient", "plan_id"]
        constraints = [models.UniqueConstraint(fields=["patient", "plan_id"], name="uniq_tps_plan")]

    def __str__(self) -> str:
        return f"Plan_{self.plan_id} {self.name}"


class ChecksumAlgorithm(models.TextChoices):
    SHA256 = "sha256", "SHA-256"


class Archive(models.Model):
    """One packed patient: the archive file and what it holds (its manifest).

    ``status`` starts at ``packing`` and becomes ``verified`` only once at least one copy on a
    target was re-read or re-hashed there and matched.
    """

    class Status(models.TextChoices):
        PACKING = "packing", _("Packing")
        PACKED = "packed", _("Packed")
        VERIFIED = "verified", _("Verified")
        FAILED = "failed", _("Failed")

    institution = models.ForeignKey(Institution, on_delete=models.CASCADE, related_name="archives")
    patient = models.ForeignKey(
        TpsPatient, null=True, blank=True, on_delete=models.SET_NULL, related_name="archives"
    )
    name = models.CharField(max_length=255, help_text=_("File name on the targets"))
    mrn = models.CharField(max_length=64, db_index=True)
    last_name = models.CharField(max_length=200, blank=True)
    first_name = models.CharField(max_length=200, blank=True)
    group = models.CharField(max_length=200, blank=True)
    tps_path = models.CharField(max_length=500, blank=True)
    codec = models.CharField(max_length=8, choices=Codec.choices, default=Codec.GZIP)
    size = models.BigIntegerField(null=True, blank=True, help_text=_("Bytes of the archive file"))
    raw_bytes = models.BigIntegerField(null=True, blank=True, help_text=_("Bytes of the packed files"))
    checksum = models.CharField(max_length=128, blank=True)
    checksum_algorithm = models.CharField(
        max_length=16, choices=ChecksumAlgorithm.choices, default=ChecksumAlgorithm.SHA256
    )
    manifest = models.JSONField(default=dict, blank=True)
    source_fingerprint = models.CharField(max_length=64, blank=True, help_text=_("Patient fingerprint when packed"))
    packed_at = models.DateTimeField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PACKING)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["institution", "name"], name="uniq_archive_name")]
        indexes = [models.Index(fields=["institution", "mrn"])]

    def __str__(self) -> str:
        return self.name


class ArchivedPlan(models.Model):
    """A plan inside an archive, from its manifest: the index loss detection matches against."""

    archive = models.ForeignKey(Archive, on_delete=models.CASCADE, related_name="plans")
    plan_id = models.IntegerField()
    name = models.CharField(max_length=200, blank=True)
    trial_names = models.JSONField(default=list, blank=True)
    created = models.DateTimeField(null=True, blank=True)
    edited = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["archive", "plan_id"]
        constraints = [models.UniqueConstraint(fields=["archive", "plan_id"], name="uniq_archived_plan")]


class ArchiveCopy(models.Model):
    """An archive file on one storage target, with the checksum found there."""

    class Status(models.TextChoices):
        UPLOADING = "uploading", _("Uploading")
        UPLOADED = "uploaded", _("Uploaded, not verified")
        VERIFIED = "verified", _("Verified")
        CORRUPT = "corrupt", _("Corrupt")
        MISSING = "missing", _("Missing")

    archive = models.ForeignKey(Archive, on_delete=models.CASCADE, related_name="copies")
    target = models.ForeignKey(StorageTarget, on_delete=models.PROTECT, related_name="copies")
    path = models.CharField(max_length=1000, help_text=_("Path on the target"))
    size = models.BigIntegerField(null=True, blank=True)
    checksum = models.CharField(max_length=128, blank=True, help_text=_("Digest measured on the target"))
    checksum_algorithm = models.CharField(
        max_length=16, choices=ChecksumAlgorithm.choices, default=ChecksumAlgorithm.SHA256
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UPLOADING)
    stored_at = models.DateTimeField(null=True, blank=True, help_text=_("Set only after verification"))
    last_checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["archive", "target"]
        constraints = [models.UniqueConstraint(fields=["archive", "target"], name="uniq_archive_copy")]

    def __str__(self) -> str:
        return f"{self.archive.name} @ {self.target.name}"


class FixityCheck(models.Model):
    """One verification of one copy: how it was checked and what was found."""

    class Method(models.TextChoices):
        REMOTE_HASH = "remote_hash", _("Hashed on the target (sha256sum over SSH)")
        READ_BACK = "read_back", _("Read back and hashed")
        LOCAL_HASH = "local_hash", _("Hashed on a local target")

    class Outcome(models.TextChoices):
        PASS = "pass", _("Pass")
        FAIL = "fail", _("Fail")

    copy = models.ForeignKey(ArchiveCopy, on_delete=models.CASCADE, related_name="fixity_checks")
    checked_at = models.DateTimeField(default=timezone.now)
    method = models.CharField(max_length=16, choices=Method.choices)
    outcome = models.CharField(max_length=8, choices=Outcome.choices, default=Outcome.FAIL)
    size = models.BigIntegerField(null=True, blank=True)
    checksum = models.CharField(max_length=128, blank=True)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-checked_at"]


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


class QuarantinedPatient(models.Model):
    """Originals moved off the TPS after a verified archive, kept until ``purge_after``.

    The row is written before the move (``moved_at`` blank), so a crash mid-move is found and
    finished by the next run.
    """

    institution = models.ForeignKey(Institution, on_delete=models.CASCADE, related_name="quarantine")
    archive = models.ForeignKey(Archive, on_delete=models.PROTECT, related_name="quarantined")
    tps_path = models.CharField(max_length=500)
    quarantine_path = models.CharField(max_length=1000)
    total_bytes = models.BigIntegerField(default=0)
    moved_at = models.DateTimeField(null=True, blank=True, help_text=_("Blank while the move is under way"))
    purge_after = models.DateTimeField()
    purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-moved_at"]
        # The reports' "quarantine now" figure and the purge both ask for an institution's unpurged rows.
        indexes = [models.Index(fields=["institution", "purged_at"], name="quarantine_unpurged")]


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
