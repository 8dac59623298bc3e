"""Placing and releasing a legal hold on archives (docs/keeping.md, "Retention").

An archive under legal hold is never deleted, whatever its ``retain_until`` (``Archive.may_be_deleted``).
The flag is set by a person with the ``inventory.set_legal_hold`` permission, always with a reason,
and each change is audited with it in the same transaction.
"""
from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from audit.events import Event
from audit.services import record_event
from inventory.models import Archive


class LegalHoldError(ValueError):
    """The request cannot be carried out (one line, for the page)."""


def set_legal_hold(*, archives: Iterable[Archive], hold: bool, reason: str, actor) -> list[Archive]:
    """Place (``hold``) or release the hold on ``archives``; returns those that changed. Archives already in
    the requested state are left alone and not audited again."""
    reason = " ".join((reason or "").split())
    if not reason:
        raise LegalHoldError("a reason is required to place or release a legal hold")
    changed = []
    with transaction.atomic():
        for archive in Archive.objects.select_for_update().filter(pk__in=[a.pk for a in archives]) \
                .select_related("institution").order_by("pk"):
            if archive.legal_hold == hold:
                continue
            archive.legal_hold = hold
            archive.save(update_fields=["legal_hold"])
            record_event(actor=actor, event=Event.ARCHIVE_LEGAL_HOLD, institution=archive.institution.code,
                         obj=archive, mrns=[archive.mrn],
                         detail={"archive": archive.name, "hold": hold, "reason": reason[:1000]})
            changed.append(archive)
        _mirror_after_commit(changed)
    return changed


def _mirror_after_commit(archives: list[Archive]) -> None:
    """Stores that enforce retention (S3 Object Lock) get the new legal hold once the change committed."""
    from inventory.services.object_lock import has_locking_target, mirror_after_commit

    institutions = {archive.institution for archive in archives}
    if any(has_locking_target(institution) for institution in institutions):
        mirror_after_commit([archive.pk for archive in archives])
