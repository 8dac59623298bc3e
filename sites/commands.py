"""What the management commands share about the site: the institution an ``--institution CODE`` names, and the
enabled storage target a ``--target NAME`` names."""
from __future__ import annotations

from django.core.management.base import CommandError

from sites.models import Institution, StorageTarget


def institution_option(code: str) -> Institution:
    """The institution ``--institution CODE`` names; a one-line error (exit 2) when there is none."""
    try:
        return Institution.objects.get(code=code)
    except Institution.DoesNotExist:
        raise CommandError(f"--institution: no institution with code {code!r}", returncode=2) from None


def target_option(institution: Institution, name: str | None) -> StorageTarget | None:
    """The enabled storage target ``--target NAME`` names (None without the option); exit 2 otherwise."""
    if name is None:
        return None
    try:
        target = StorageTarget.objects.get(institution=institution, name=name)
    except StorageTarget.DoesNotExist:
        raise CommandError(f"--target: institution {institution.code} has no storage target {name!r}",
                           returncode=2) from None
    if not target.enabled:
        raise CommandError(f"--target: storage target {name!r} is disabled (enabled = false)", returncode=2)
    return target
