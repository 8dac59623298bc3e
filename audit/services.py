"""Writing and checking the audit chain."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from django.db import connection, transaction
from django.utils import timezone

from audit.actors import Actor, actor_name
from audit.events import Event, as_event
from audit.models import AuditEvent

GENESIS_HASH = "0" * 64
# PostgreSQL advisory lock key of the chain's head ("PDAS" "AUDT" in ASCII).
CHAIN_LOCK_KEY = 0x5044_4153_4155_4454 & 0x7FFF_FFFF_FFFF_FFFF


def _lock_chain_head():
    """Serialise writers of the chain until the transaction ends; returns the queryset to read the head with.

    Two writers must never read the same head, or the chain forks. A row lock on the head does not do
    it on PostgreSQL (the second writer, once let through, still sees the old head) and needs UPDATE
    on the table, which the app's database role does not have (docs/audit.md): PostgreSQL takes a
    transaction-scoped advisory lock instead. SQLite transactions start with the write lock
    (settings: ``transaction_mode=IMMEDIATE``); other databases lock the head row (MySQL: grant
    LOCK TABLES).
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])
        return AuditEvent.objects.all()
    if connection.vendor == "sqlite":
        return AuditEvent.objects.all()
    return AuditEvent.objects.select_for_update()


def record_event(
    *,
    actor: Actor,
    event: Event | str,
    institution: str = "",
    mrns: Iterable[str] = (),
    obj: Any = None,
    outcome: str = AuditEvent.Outcome.OK,
    detail: dict | None = None,
) -> AuditEvent:
    """Append one event to the chain, inside the caller's transaction when there is one.

    ``actor`` is a user, a name or None for the scheduler (``audit.actors``). ``event`` is an
    ``audit.events.Event`` (its exact keyword is accepted too); anything else raises ``UnknownEvent``
    before anything is written. A state change and its event belong in one ``transaction.atomic()``
    (docs/audit.md): the event then commits, or rolls back, with the change it records.
    """
    kind = as_event(event)
    name = actor_name(actor)
    with transaction.atomic():
        last = _lock_chain_head().order_by("-id").only("hash").first()
        row = AuditEvent(
            at=timezone.now(),
            actor=name,
            event=kind.value,
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


@dataclass(frozen=True)
class ChainReport:
    """What a walk of the chain found. ``broken_id`` None: every row checks out. ``head_id``/``head_hash``
    are the last row's, to be noted outside PDAS: the chain alone cannot show rows cut off its end."""

    checked: int
    broken_id: int | None = None
    reason: str = ""
    head_id: int | None = None
    head_hash: str = GENESIS_HASH


def verify_chain() -> ChainReport:
    """Recompute every row's hash in id order and check that each links to the one before.

    An edited row fails its own hash. A deleted row leaves the next row linking to a hash that is not
    there. An inserted row may carry a valid hash and link, but the row after it still links to the row
    before it: that names the inserted row.
    """
    previous, before_previous, checked, head_id = GENESIS_HASH, None, 0, None
    for row in AuditEvent.objects.order_by("id").iterator(chunk_size=2000):
        if row.prev_hash != previous:
            if row.prev_hash == before_previous:
                return ChainReport(checked, head_id, f"it was inserted: row {row.id} after it links to the row "
                                                     "before it", head_id, previous)
            before = f"row {head_id}" if head_id is not None else "the start of the log"
            return ChainReport(checked, row.id, f"it does not link to {before}: a row between was deleted, or "
                                                "one before it edited and re-hashed", head_id, previous)
        if row.compute_hash() != row.hash:
            return ChainReport(checked, row.id, "its hash does not match its content: the row was edited",
                               head_id, previous)
        before_previous, previous, checked, head_id = previous, row.hash, checked + 1, row.id
    return ChainReport(checked, head_id=head_id, head_hash=previous)


def record_event_per_institution(*, actor: Actor, event: Event | str, mrns_by_institution: dict[str, Iterable[str]],
                                 default_institution: str = "", obj: Any = None, detail: dict | None = None,
                                 outcome: str = AuditEvent.Outcome.OK) -> list[AuditEvent]:
    """One event per institution of a page or export that spans several, each naming that institution's
    patients, so the auditors of each institution see what concerned theirs. With nothing shown, one
    event for ``default_institution``."""
    groups = {code: set(mrns) for code, mrns in mrns_by_institution.items()} or {default_institution: set()}
    return [record_event(actor=actor, event=event, institution=code, mrns=mrns, obj=obj, outcome=outcome,
                         detail=detail) for code, mrns in sorted(groups.items())]
