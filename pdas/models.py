"""Who may see which institution's data.

A user sees the data of the institutions they are a member of, and nothing else; a superuser sees
every institution. What a user may *do* there comes from their roles (Django groups, pdas/roles.py).
The single place that applies both to querysets is ``pdas.access``.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Membership(models.Model):
    """One user's access to one institution's patients, archives, runs, scans and audit events."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    institution = models.ForeignKey("archiver.Institution", on_delete=models.CASCADE, related_name="memberships")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["user", "institution"]
        constraints = [models.UniqueConstraint(fields=["user", "institution"], name="uniq_membership")]
        verbose_name = _("institution membership")

    def __str__(self) -> str:
        return f"{self.user} @ {self.institution.code}"
