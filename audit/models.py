"""The append-only audit log: who did what to which patient, when, with what outcome.

Each row's ``hash`` covers its own fields and the previous row's hash, so an edited, deleted or
inserted row breaks the chain (``manage.py verify_audit``); its ``mac``, keyed outside the database
(``audit.mac``), shows a row rewritten or forged by whoever can write the database. Rows are only ever created through
``audit.services.record_event``; ``save()`` refuses updates and ``delete()`` refuses always.
"""
from __future__ import annotations

import hashlib
import json

from django.db import models
from django.utils.translation import gettext_lazy as _


class AuditEvent(models.Model):
    class Outcome(models.TextChoices):
        OK = "ok", _("OK")
        DENIED = "denied", _("Denied")
        FAILED = "failed", _("Failed")

    at = models.DateTimeField(db_index=True, help_text=_("UTC"), verbose_name=_("time"))
    actor = models.CharField(
        max_length=150, help_text=_("User name, or 'scheduler' / 'system'"), verbose_name=_("actor"),
    )
    event = models.CharField(
        max_length=64, db_index=True, help_text=_("Keyword, see docs/audit.md"), verbose_name=_("event"),
    )
    institution = models.CharField(max_length=32, blank=True, db_index=True, verbose_name=_("institution"))
    mrns = models.JSONField(default=list, blank=True, verbose_name=_("MRNs"))
    object_type = models.CharField(max_length=64, blank=True, verbose_name=_("object type"))
    object_id = models.CharField(max_length=64, blank=True, verbose_name=_("object id"))
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.OK, verbose_name=_("outcome"))
    detail = models.JSONField(default=dict, blank=True, verbose_name=_("detail"))
    prev_hash = models.CharField(max_length=64, verbose_name=_("previous hash"))
    hash = models.CharField(max_length=64, unique=True, verbose_name=_("hash"))
    # HMAC under a key the database does not hold (audit.mac); blank on rows written before MACs existed.
    mac = models.CharField(max_length=64, blank=True, default="", verbose_name=_("MAC"))
    mac_key = models.CharField(
        max_length=16, blank=True, default="", help_text=_("Fingerprint of the key the MAC was made with"),
        verbose_name=_("MAC key"),
    )

    class Meta:
        ordering = ["id"]
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.event}"

    def compute_hash(self) -> str:
        payload = json.dumps(
            {
                "at": self.at.isoformat(),
                "actor": self.actor,
                "event": self.event,
                "institution": self.institution,
                "mrns": self.mrns,
                "object_type": self.object_type,
                "object_id": self.object_id,
                "outcome": self.outcome,
                "detail": self.detail,
                "prev_hash": self.prev_hash,
            },
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("audit events are append-only")
