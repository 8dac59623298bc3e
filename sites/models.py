"""The site: institutions (one Pinnacle patient group set each), their storage targets, and who may see them.

Every other app reads these rows; the site configuration (``manage.py load_site_config``, the admin)
writes them. The tables keep the names they were created with (``archiver_*``, ``pdas_membership``)
so an existing database moves forward without copying data.
"""
from __future__ import annotations

from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _


def _validate_timezone(value: str) -> None:
    try:
        ZoneInfo(value)
    except Exception:  # zoneinfo raises several types for a bad key
        raise ValidationError(_("%(value)s is not a time zone name"), params={"value": value}) from None


# The planning systems whose plans PDAS archives (docs/contracts.md §2.6): matched as parts of the name
# an R&V source gives, in any case ("Philips Pinnacle3", "ADAC Pinnacle 3", "Pinnacle3 9.10").
DEFAULT_PLANNING_SYSTEMS = ("Pinnacle", "ADAC", "Philips")


def default_planning_systems() -> list[str]:
    return list(DEFAULT_PLANNING_SYSTEMS)


class Codec(models.TextChoices):
    GZIP = "gzip", "gzip (.tar.gz)"
    ZSTD = "zstd", "zstd (.tar.zst)"


class Institution(models.Model):
    """One Pinnacle site: its TPS tree, its groups, its R&V source and its rules."""

    # Where PDAS connects, with which secrets, and what it runs there: set by a superuser or the site
    # file only. An archive admin who could set them could point a secret at their own server or run
    # a script on the TPS host (docs/security.md).
    CONNECTION_FIELDS = ("tps_url", "tps_password_env", "tps_key_file", "tps_known_hosts", "rv_url",
                         "rv_password_env", "pack_script", "worker_queue", "quarantine_dir")

    code = models.SlugField(
        max_length=32, unique=True, help_text=_("Short code used on the command line"), verbose_name=_("code"),
    )
    name = models.CharField(max_length=200, verbose_name=_("institution name"))
    tps_url = models.CharField(
        max_length=500, help_text=_("file:///path/Patients or ssh://user@host:22/path/Patients"),
        verbose_name=_("TPS source"),
    )
    tps_password_env = models.CharField(max_length=100, blank=True, verbose_name=_("TPS password variable"))
    tps_key_file = models.CharField(max_length=500, blank=True, verbose_name=_("TPS key file"))
    tps_known_hosts = models.CharField(max_length=500, blank=True, verbose_name=_("TPS known hosts file"))
    pending_group = models.CharField(
        max_length=200, help_text=_("The pending-archive group (待归档组)"), verbose_name=_("pending-archive group"),
    )
    clinical_groups = models.JSONField(default=list, blank=True, verbose_name=_("clinical groups"))
    non_clinical_groups = models.JSONField(default=list, blank=True, verbose_name=_("non-clinical groups"))
    restore_group = models.CharField(
        max_length=200, blank=True, help_text=_("Group restored patients go to; blank: the pending group"),
        verbose_name=_("restore group"),
    )
    rv_url = models.CharField(
        max_length=500, blank=True, help_text=_("csv:, dicom-dir: or mosaiq+<db-url>"), verbose_name=_("R&V source"),
    )
    rv_password_env = models.CharField(max_length=100, blank=True, verbose_name=_("R&V password variable"))
    recourse_gap_days = models.PositiveIntegerField(default=90, verbose_name=_("re-course gap (days)"))
    planning_systems = models.JSONField(
        default=default_planning_systems,
        help_text=_("R&V records of a planning system matching none of these names (in any case, as part of "
                    "the name) are counted apart as another planning system's"), verbose_name=_("planning systems"),
    )
    lookback_days = models.PositiveIntegerField(default=365, verbose_name=_("lookback (days)"))
    skew_days = models.PositiveIntegerField(default=1, verbose_name=_("clock skew (days)"))
    time_zone = models.CharField(
        max_length=64, default="", blank=True, validators=[_validate_timezone],
        help_text=_("Site time of Pinnacle timestamps; blank: the server's TIME_ZONE"), verbose_name=_("time zone"),
    )
    codec = models.CharField(max_length=8, choices=Codec.choices, default=Codec.GZIP, verbose_name=_("compression"))
    codec_level = models.PositiveSmallIntegerField(
        default=0, help_text=_("0: the codec's default"), verbose_name=_("compression level"),
    )
    pack_script = models.CharField(
        max_length=500, blank=True, help_text=_("Site pack script on the TPS host; blank: PDAS's own"),
        verbose_name=_("pack script"),
    )
    worker_queue = models.CharField(
        max_length=100, blank=True,
        help_text=_("Celery queue of this institution's archiving tasks, e.g. served by a worker on the TPS "
                    "host (celery -A pdas worker -Q NAME); blank: the default queue"), verbose_name=_("worker queue"),
    )
    quarantine_dir = models.CharField(
        max_length=500, blank=True, help_text=_("Where removed originals wait; blank: <tps_root>/.pdas-quarantine"),
        verbose_name=_("quarantine folder"),
    )
    quarantine_days = models.PositiveIntegerField(default=30, verbose_name=_("quarantine (days)"))
    min_copies = models.PositiveSmallIntegerField(
        default=1, help_text=_("Verified copies an archive needs to count as safely stored"),
        verbose_name=_("minimum copies"),
    )
    fixity_cycle_days = models.PositiveIntegerField(
        default=90, help_text=_("Every copy is re-checked on its target within this many days"),
        verbose_name=_("fixity cycle (days)"),
    )
    retention_years = models.PositiveSmallIntegerField(
        default=30, help_text=_("An archive is kept at least this long after the patient's latest first delivery"),
        verbose_name=_("retention (years)"),
    )
    mrn_pattern = models.CharField(
        max_length=200, blank=True, help_text=_("Regular expression an MRN must match"), verbose_name=_("MRN pattern"),
    )
    notify_emails = models.JSONField(default=list, blank=True, verbose_name=_("notification emails"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        db_table = "archiver_institution"  # the table keeps the name of the app it was created in
        ordering = ["code"]
        verbose_name = _("institution")
        verbose_name_plural = _("institutions")

    def __str__(self) -> str:
        return f"{self.code} ({self.name})"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone or settings.TIME_ZONE)

    @property
    def effective_restore_group(self) -> str:
        return self.restore_group or self.pending_group

    def is_other_planning_system(self, planning_system: str) -> bool:
        """True when an R&V record's planning system is named and matches none of ``planning_systems``
        (case-insensitive, as a part of the name). A record naming none is one of ours: classified as usual."""
        name = planning_system.strip().casefold()
        if not name:
            return False
        return not any(own.strip().casefold() in name for own in self.planning_systems or () if own.strip())

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
    """A place archives are copied to: file://, ftp://, ftps://, sftp://, smb:// or s3://; any of them
    encrypted to age recipients (``encrypt_to``)."""

    # As Institution.CONNECTION_FIELDS: superuser or site file only. The recipients and the identity are
    # among them: whoever sets them decides who can read the archives.
    CONNECTION_FIELDS = ("url", "password_env", "password_file", "key_file", "known_hosts", "ca_file",
                         "allow_plain_ftp", "access_key_env", "secret_key_env", "allow_plain_http", "encrypt_to",
                         "identity_file", "identity_env")

    institution = models.ForeignKey(
        Institution, on_delete=models.CASCADE, related_name="storage_targets", verbose_name=_("institution"),
    )
    name = models.SlugField(max_length=64, verbose_name=_("target name"))
    url = models.CharField(max_length=500, verbose_name=_("URL"))
    password_env = models.CharField(max_length=100, blank=True, verbose_name=_("password variable"))
    password_file = models.CharField(max_length=500, blank=True, verbose_name=_("password file"))
    key_file = models.CharField(max_length=500, blank=True, verbose_name=_("key file"))
    known_hosts = models.CharField(max_length=500, blank=True, verbose_name=_("known hosts file"))
    ca_file = models.CharField(
        max_length=500, blank=True, help_text=_("CA certificate(s) that sign an FTPS server's certificate"),
        verbose_name=_("CA certificate file"),
    )
    allow_plain_ftp = models.BooleanField(
        default=False, help_text=_("Allow ftp:// without TLS (only on a private storage network)"),
        verbose_name=_("allow plain FTP"),
    )
    access_key_env = models.CharField(
        max_length=100, blank=True, help_text=_("s3: environment variable holding the access key ID"),
        verbose_name=_("access key variable"),
    )
    secret_key_env = models.CharField(
        max_length=100, blank=True, help_text=_("s3: environment variable holding the secret access key"),
        verbose_name=_("secret key variable"),
    )
    allow_plain_http = models.BooleanField(
        default=False, help_text=_("Allow an s3 endpoint over http:// (only on a private storage network)"),
        verbose_name=_("allow plain HTTP"),
    )
    encrypt_to = models.JSONField(
        default=list, blank=True, help_text=_("age recipients (age1...): every object on this target is encrypted to them"),
        verbose_name=_("encrypt to (age recipients)"),
    )
    identity_file = models.CharField(
        max_length=500, blank=True, help_text=_("File holding the age identity that decrypts this target (restores)"),
        verbose_name=_("identity file"),
    )
    identity_env = models.CharField(
        max_length=100, blank=True, help_text=_("Environment variable holding the age identity (restores)"),
        verbose_name=_("identity variable"),
    )
    enabled = models.BooleanField(default=True, verbose_name=_("enabled"))
    priority = models.PositiveSmallIntegerField(
        default=0, help_text=_("Lower first when restoring"), verbose_name=_("priority"),
    )

    class Meta:
        db_table = "archiver_storagetarget"  # the table keeps the name of the app it was created in
        ordering = ["institution", "priority", "name"]
        constraints = [models.UniqueConstraint(fields=["institution", "name"], name="uniq_target_name")]
        verbose_name = _("storage target")
        verbose_name_plural = _("storage targets")

    def __str__(self) -> str:
        return f"{self.institution.code}/{self.name}"


class Membership(models.Model):
    """One user's access to one institution's patients, archives, runs, scans and audit events."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("user"),
    )
    institution = models.ForeignKey(
        Institution, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("institution"),
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        db_table = "pdas_membership"  # the table keeps the name of the app it was created in
        ordering = ["user", "institution"]
        constraints = [models.UniqueConstraint(fields=["user", "institution"], name="uniq_membership")]
        verbose_name = _("institution membership")
        verbose_name_plural = _("institution memberships")

    def __str__(self) -> str:
        return f"{self.user} @ {self.institution.code}"
