"""Standing alerts: conditions a person must act on, raised once, e-mailed, shown until resolved.

An alert is one row per (institution, kind, subject) while it stands (``cleared_at`` blank); the
check that raised it clears it when the condition is gone, and a later recurrence is a new row. The
message is rebuilt from ``detail`` in the reader's language (docs/keeping.md, "Alerts").
"""
from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from sites.models import Institution


class AlertQuerySet(models.QuerySet):
    def standing(self) -> "AlertQuerySet":
        return self.filter(cleared_at__isnull=True)


class Alert(models.Model):
    class Kind(models.TextChoices):
        ARCHIVE_UNSAFE = "archive_unsafe", _("Archive with no verified copy")
        NO_ARCHIVE_RUN = "no_archive_run", _("No archive run")
        NO_LOSS_SCAN = "no_loss_scan", _("No loss scan")
        FIXITY_BEHIND = "fixity_behind", _("Archive checks behind their cycle")
        TARGET_UNREACHABLE = "target_unreachable", _("Storage target unreachable")

    institution = models.ForeignKey(
        Institution, on_delete=models.CASCADE, related_name="alerts", verbose_name=_("institution"),
    )
    kind = models.CharField(max_length=32, choices=Kind.choices, verbose_name=_("kind"))
    subject = models.CharField(max_length=300, blank=True,
                               help_text=_("What the alert is about: an archive or target name; blank for the "
                                           "whole institution"), verbose_name=_("subject"))
    detail = models.JSONField(default=dict, blank=True, verbose_name=_("detail"))
    raised_at = models.DateTimeField(verbose_name=_("raised at"))
    last_seen_at = models.DateTimeField(
        help_text=_("When a check last found the condition"), verbose_name=_("last seen at"),
    )
    cleared_at = models.DateTimeField(null=True, blank=True, verbose_name=_("cleared at"))
    notified_at = models.DateTimeField(
        null=True, blank=True, help_text=_("When the e-mail went out"), verbose_name=_("notified at"),
    )
    notify_error = models.CharField(max_length=500, blank=True, verbose_name=_("notification error"))

    objects = AlertQuerySet.as_manager()

    class Meta:
        ordering = ["-raised_at"]
        constraints = [models.UniqueConstraint(fields=["institution", "kind", "subject"],
                                               condition=Q(cleared_at__isnull=True), name="one_standing_alert")]
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")

    def __str__(self) -> str:
        return f"{self.institution.code} {self.kind} {self.subject}".strip()

    @property
    def mrn(self) -> str:
        """The patient an alert is about, if any (an archive's): the admin audits its reading."""
        return str(self.detail.get("mrn", "")) if isinstance(self.detail, dict) else ""

    def message(self) -> str:
        """One line in the active language, from ``detail`` (the names in it are PDAS's own, not a patient's)."""
        from alerts.messages import alert_message

        return alert_message(self.kind, self.subject, self.detail)
