"""Writing and checking the audit chain, its keyed MACs (``audit.mac``) and rows pinned from outside."""
from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable

from django.db import connection, transaction
from django.utils import timezone

from audit import mac
from audit.actors import Actor, actor_name
from audit.events import Event, as_event
from audit.models import AuditEvent

GENESIS_HASH = "0" * 64
# PostgreSQL advisory lock key of the chain's head ("PDAS" "AUDT" in ASCII).
CHAIN_LOCK_KEY = 0x5044_4153_4155_4454 & 0x7FFF_FFFF_FFFF_FFFF


def _lock_chain_head() -> tuple[Any, dt.datetime | None]:
    """Serialise writers of the chain until the transaction ends; returns the queryset to read the head with,
    and on PostgreSQL the database's clock once the lock is held (read in the same round trip).

    Two writers must never read the same head, or the chain forks. A row lock on the head does not do
    it on PostgreSQL (the second writer, once let through, still sees the old head) and needs UPDATE
    on the table, which the app's database role does not have (docs/audit.md): PostgreSQL takes a
    transaction-scoped advisory lock instead. SQLite transactions start with the write lock
    (settings: ``transaction_mode=IMMEDIATE``); other databases lock the head row (MySQL: grant
    LOCK TABLES).
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # OFFSET 0 keeps the subquery apart: the clock is read after the lock is granted.
            cursor.execute("SELECT clock_timestamp() FROM (SELECT pg_advisory_xact_lock(%s) OFFSET 0) AS locked",
                           [CHAIN_LOCK_KEY])
            return AuditEvent.objects.all(), cursor.fetchone()[0]
    if connection.vendor == "sqlite":
        return AuditEvent.objects.all(), None
    return AuditEvent.objects.select_for_update(), None


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
    key = mac.current_key()
    with transaction.atomic():
        head, database_now = _lock_chain_head()
        last = head.order_by("-id").only("hash", "mac").first()
        row = AuditEvent(
            at=event_time(database_now),
            actor=name,
            event=kind.value,
            institution=institution,
            mrns=sorted({m for m in mrns if m}),
            object_type=type(obj).__name__ if obj is not None else "",
            object_id=str(getattr(obj, "pk", "") or "") if obj is not None else "",
            outcome=outcome,
            detail=stored_form(detail or {}),
            prev_hash=last.hash if last else GENESIS_HASH,
        )
        row.hash = row.compute_hash()
        if key is not None:  # none: the row goes in without a MAC, and verify_audit fails on it (docs/audit.md)
            row.mac, row.mac_key = mac.row_mac(key, row.hash, last.mac if last else ""), key.id
        row.save()
        return row


def event_time(database_now: dt.datetime | None) -> dt.datetime:
    """The time of a new row, read once the chain is locked. PostgreSQL: the database's own clock
    (``database_now``), which its insert trigger checks the row against (audit/0004_mac_and_insert_check),
    so an application host's clock being off never refuses a row; elsewhere this host's clock."""
    return database_now if database_now is not None else timezone.now()


def stored_form(value: Any) -> Any:
    """``value`` as the database gives it back: what the row's hash is computed over, so that it is the
    hash a later check (and PostgreSQL's insert trigger) computes from the stored row. Tuples become lists,
    keys strings; a float of 1e16 or more that is whole comes back from PostgreSQL as an integer, -0.0 as 0.0."""
    def whole_big_floats(item: Any) -> Any:
        if isinstance(item, float) and abs(item) >= 1e16 and item.is_integer():
            return int(item)
        if isinstance(item, float) and item == 0:
            return 0.0  # -0.0: PostgreSQL's numbers have no negative zero
        if isinstance(item, list):
            return [whole_big_floats(each) for each in item]
        if isinstance(item, dict):
            return {key: whole_big_floats(each) for key, each in item.items()}
        return item

    return whole_big_floats(json.loads(json.dumps(value, ensure_ascii=False)))


@dataclass(frozen=True)
class ChainReport:
    """What a walk of the chain found. ``broken_id`` None: every row checks out. ``head_id``/``head_hash``
    are the last row's, to be noted outside PDAS: the chain alone cannot show rows cut off its end
    (checkpoints and ``--expect`` do). MACs: ``macs_checked`` rows carry a MAC that matched,
    ``before_macs`` were written before MACs existed, ``macs_unchecked`` carry one but no key is
    configured here to check it with."""

    checked: int
    broken_id: int | None = None
    reason: str = ""
    head_id: int | None = None
    head_hash: str = GENESIS_HASH
    macs_checked: int = 0
    before_macs: int = 0
    macs_unchecked: int = 0
    head_mac: str = ""


def verify_chain() -> ChainReport:
    """Recompute every row's hash in id order, check that each links to the one before, and check its MAC.

    An edited row fails its own hash. A deleted row leaves the next row linking to a hash that is not
    there. An inserted row may carry a valid hash and link, but the row after it still links to the row
    before it: that names the inserted row. An edit whose hashes were all recomputed, or a row appended
    with a correct hash, fails its MAC (the key is not in the database). Rows without a MAC are accepted
    only before the first row that has one: they were written before MACs existed.
    """
    keys = mac.known_keys()
    previous, before_previous, checked, head_id = GENESIS_HASH, None, 0, None
    previous_mac, macs = "", {"checked": 0, "before": 0, "unchecked": 0}

    def broken(row_id: int | None, reason: str) -> ChainReport:
        return ChainReport(checked, row_id, reason, head_id, previous, macs["checked"], macs["before"],
                           macs["unchecked"], previous_mac)

    for row in AuditEvent.objects.order_by("id").iterator(chunk_size=2000):
        if row.prev_hash != previous:
            if row.prev_hash == before_previous:
                return broken(head_id, f"it was inserted: row {row.id} after it links to the row before it")
            before = f"row {head_id}" if head_id is not None else "the start of the log"
            return broken(row.id, f"it does not link to {before}: a row between was deleted, or one before it "
                                  "edited and re-hashed")
        if row.compute_hash() != row.hash:
            return broken(row.id, "its hash does not match its content: the row was edited")
        if problem := _mac_problem(row, previous_mac, keys, macs):
            return broken(row.id, problem)
        before_previous, previous, checked, head_id, previous_mac = previous, row.hash, checked + 1, row.id, row.mac
    return broken(None, "")


def _mac_problem(row: AuditEvent, previous_mac: str, keys: dict[str, mac.MacKey], counts: dict[str, int]) -> str:
    """Why the row's MAC fails, or "" (and the row counted)."""
    if not row.mac:
        if counts["checked"] or counts["unchecked"]:
            return ("it has no MAC, though rows before it have one: it was written without PDAS's key "
                    "(forged, or by a process not given PDAS_AUDIT_MAC_KEY)")
        counts["before"] += 1
        return ""
    if not keys:
        counts["unchecked"] += 1
        return ""
    key = keys.get(row.mac_key)
    if key is None:
        return (f"its MAC was made with key {row.mac_key or '(none)'}, which is not configured here: add that key "
                "to PDAS_AUDIT_MAC_OLD_KEYS, or the row was forged")
    if not mac.same(mac.row_mac(key, row.hash, previous_mac), row.mac):
        return "its MAC does not match: the row was edited or forged"
    counts["checked"] += 1
    return ""


@dataclass(frozen=True)
class Expectation:
    """A row noted outside PDAS (``verify_audit --expect ID:HASH``): its id and hash."""

    id: int
    hash: str

    @classmethod
    def parse(cls, text: str) -> "Expectation":
        found = re.fullmatch(r"\s*(\d+)\s*:\s*([0-9a-fA-F]{64})\s*", text)
        if found is None:
            raise ValueError(f"--expect {text!r}: write ID:HASH, the event id and its 64-digit hash as "
                             "verify_audit printed them")
        return cls(int(found.group(1)), found.group(2).lower())


def expectation_problem(expected: Expectation) -> str:
    """Why the log no longer holds the row noted outside it, or "" when it does."""
    stored = AuditEvent.objects.filter(pk=expected.id).values_list("hash", flat=True).first()
    if stored is None:
        return (f"event {expected.id} is missing: rows were cut off the end of the log or deleted "
                f"(expected hash {expected.hash})")
    if stored != expected.hash:
        return f"event {expected.id} has hash {stored}, not {expected.hash}: the log was rewritten"
    return ""


def record_event_per_institution(*, actor: Actor, event: Event | str, mrns_by_institution: dict[str, Iterable[str]],
                                 default_institution: str = "", obj: Any = None, detail: dict | None = None,
                                 outcome: str = AuditEvent.Outcome.OK) -> list[AuditEvent]:
    """One event per institution of a page or export that spans several, each naming that institution's
    patients, so the auditors of each institution see what concerned theirs. With nothing shown, one
    event for ``default_institution``."""
    groups = {code: set(mrns) for code, mrns in mrns_by_institution.items()} or {default_institution: set()}
    return [record_event(actor=actor, event=event, institution=code, mrns=mrns, obj=obj, outcome=outcome,
                         detail=detail) for code, mrns in sorted(groups.items())]
