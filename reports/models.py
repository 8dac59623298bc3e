"""Reconciliation of the PDAS archive index with a listing of an archive folder or storage target.

The report figures themselves are not stored: they are computed from the archiver and loss
detection tables by aggregate queries (``reports.selectors``). What is stored is each
reconciliation import and what it found, so QA can go back to the answer given on a day.
"""
from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from audit.events import Event
from core.jobs import JobRow, JobStatus
from inventory.models import Archive
from sites.models import Institution, StorageTarget


class ReconciliationImport(JobRow):
    """One listing compared with the archive index: a file someone uploaded, or a target listed.

    A job (``core.jobs``) done at once: the page or command that asks for it waits for the answer."""

    class Source(models.TextChoices):
        LISTING = "listing", _("Listing file")
        TARGET = "target", _("Storage target listed by PDAS")

    Status = JobStatus
    audit_event = Event.RECONCILE_IMPORT

    institution = models.ForeignKey(
        Institution, on_delete=models.CASCADE, related_name="reconciliations", verbose_name=_("institution"),
    )
    source = models.CharField(verbose_name=_("Source"), max_length=16, choices=Source.choices)
    listing_name = models.CharField(verbose_name=_("Listing"),
                                    max_length=255, help_text=_("File name of the listing, or the target's name"))
    target = models.ForeignKey(
        StorageTarget, verbose_name=_("Target"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text=_("The target listed; blank: the listing is compared with every verified archive"),
    )
    files = models.PositiveIntegerField(verbose_name=_("Files"),
                                        default=0, help_text=_("Archive files listed (sidecars not counted)"))
    skipped = models.PositiveIntegerField(verbose_name=_("Skipped"),
                                          default=0, help_text=_("Sidecar and temporary files left out"))
    counts = models.JSONField(default=dict, blank=True, help_text=_("Entries per outcome"), verbose_name=_("counts"))

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("reconciliation import")
        verbose_name_plural = _("reconciliation imports")

    def __str__(self) -> str:
        return f"{self.institution.code} {self.listing_name} ({self.created_at:%Y-%m-%d %H:%M})"

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("reports:reconcile-detail", args=[self.pk])

    @property
    def needs_attention(self) -> int:
        """Entries other than ``matched``: what a person must look at."""
        return sum(n for outcome, n in self.counts.items() if outcome != ReconciliationEntry.Outcome.MATCHED)


class ReconciliationEntry(models.Model):
    """One file of the listing, or one PDAS archive the listing lacks, and what was found."""

    class Outcome(models.TextChoices):
        MATCHED = "matched", _("In both")
        ONLY_IN_LISTING = "only_in_listing", _("Only in the listing")
        ONLY_IN_PDAS = "only_in_pdas", _("Only in PDAS")
        DUPLICATE = "duplicate", _("Duplicate")
        SIZE_MISMATCH = "size_mismatch", _("Size differs")
        CHECKSUM_MISMATCH = "checksum_mismatch", _("Checksum differs")
        UNPARSEABLE = "unparseable", _("Name names no patient")
        UNREADABLE = "unreadable", _("Unreadable row")

    reconciliation = models.ForeignKey(
        ReconciliationImport, on_delete=models.CASCADE, related_name="entries", verbose_name=_("reconciliation"),
    )
    line = models.PositiveIntegerField(verbose_name=_("Line"),
                                       null=True, blank=True, help_text=_("Row of the listing; blank: PDAS only"))
    path = models.CharField(verbose_name=_("Path"), max_length=1000, blank=True, help_text=_("As listed"))
    file_name = models.CharField(verbose_name=_("File name"), max_length=255, blank=True)
    size = models.BigIntegerField(verbose_name=_("Size"), null=True, blank=True)
    sha256 = models.CharField(verbose_name=_("SHA-256"), max_length=64, blank=True)
    mrn = models.CharField(verbose_name=_("MRN"), max_length=64, blank=True, db_index=True)
    archive = models.ForeignKey(Archive, verbose_name=_("Archive"),
                                null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    archive_name = models.CharField(verbose_name=_("Archive name"),
                                    max_length=255, blank=True, help_text=_("The PDAS archive compared with"))
    outcome = models.CharField(verbose_name=_("Outcome"), max_length=24, choices=Outcome.choices)
    detail = models.CharField(verbose_name=_("Detail"), max_length=1000, blank=True)

    class Meta:
        ordering = ["reconciliation", "outcome", "file_name", "id"]
        indexes = [models.Index(fields=["reconciliation", "outcome"])]
        verbose_name = _("reconciliation entry")
        verbose_name_plural = _("reconciliation entries")

    def __str__(self) -> str:
        return self.file_name or self.archive_name or f"#{self.pk}"
