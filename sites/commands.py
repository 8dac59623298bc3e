"""What the management commands share about the site: the institution an ``--institution CODE`` names."""
from __future__ import annotations

from django.core.management.base import CommandError

from sites.models import Institution


def institution_option(code: str) -> Institution:
    """The institution ``--institution CODE`` names; a one-line error (exit 2) when there is none."""
    try:
        return Institution.objects.get(code=code)
    except Institution.DoesNotExist:
        raise CommandError(f"--institution: no institution with code {code!r}", returncode=2) from None
