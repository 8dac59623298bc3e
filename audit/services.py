"""Writing and checking the audit chain."""
from __future__ import annotations

from typing import Any, Iterable

from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent

GENESIS_HASH = "0" * 64


def _actor_name(actor: Any) -> str:
    if actor is None:
        return "system"
    if isinstance(actor, str):
        return actor
    return getattr(actor, "get_username", lambda: str(actor))() or "anonymous"


def record_event(
    *,
    actor: Any,
    event: str,
    institution: str = "",
    mrns: Iterable[str] = (),
    obj: Any = None,
    outcome: str = AuditEvent.Outcome.OK,
    detail: dict | None = None,
) -> AuditEvent:
    """Append one event to the chain. ``actor`` is a user, a name, or None for the system."""
    with transaction.atomic():
        last = AuditEvent.objects.select_for_update().order_by("-id").only("hash").first()
        row = AuditEvent(
            at=timezone.now(),
            actor=_actor_name(actor),
            event=event,
            institution=institution,
            mrns=sorted({m for m in mrns if m}),
            object_type=type(obj).__name__ if obj is not None else "",
            object_id=str(getattr(obj, "pk", "") or "") if obj is not None else "",
            outcome=outcome,
            detail=detail or {},
            prev_hash=last.hash if last else GENESIS_HASH,
        )
        row.hash = row.compute_hash()
        row.save()
        return row


def first_broken_event() -> tuple[int | None, str]:
    """Walk the chain; return (id, reason) of the first row that breaks it, or (None, '')."""
    previous = GENESIS_HASH
    for row in AuditEvent.objects.order_by("id").iterator(chunk_size=2000):
        if row.prev_hash != previous:
            return row.id, "prev_hash does not match the previous row (a row was deleted or inserted)"
        if row.compute_hash() != row.hash:
            return row.id, "hash does not match the row's content (the row was edited)"
        previous = row.hash
    return None, ""
