"""Checkpoints of the audit log kept off the PDAS host: its head, written to the storage targets.

The chain and the MACs show a row edited or forged, but not rows cut off the end of the log: the rows
left still check out. A checkpoint is the head at one moment (id, hash, MAC, the number of rows up to
it, the time), a small JSON file signed with the MAC key, stored like a sidecar on a storage target
(a new file each time, never overwritten). ``verify_audit --checkpoints`` reads them back: a checkpoint
whose row is gone, or has another hash or MAC, or whose row count no longer holds, shows the log was
cut or rewritten; a target that cannot be read leaves the answer unknown, never a pass.

The audit log belongs to no institution; the callers (``audit.tasks``) pick the targets: the first
enabled target of each institution. This module takes them as ``Destination``s, so it needs no
knowledge of institutions (audit stands left of sites). docs/audit.md, "Checkpoints".
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from django.utils import timezone

from audit import mac
from audit.actors import Actor
from audit.events import Event
from audit.models import AuditEvent
from audit.services import GENESIS_HASH, record_event
from connectors.errors import ConnectorError, unforeseen
from connectors.storage.base import StorageBackend

log = logging.getLogger(__name__)

PREFIX = "pdas-audit-checkpoint-"
SUFFIX = ".json"
FORMAT = "pdas-audit-checkpoint/1"
_NAME = re.compile(re.escape(PREFIX) + r"\d{8}T\d{12}Z-\d+" + re.escape(SUFFIX) + r"\Z")
_FIELDS = ("format", "head_id", "head_hash", "head_mac", "rows", "written_at", "key_id")

# What a check of one checkpoint (or one target) concluded.
MATCH = "match"
TAMPERED = "tampered"
UNKNOWN = "unknown"


def is_checkpoint_name(name: str) -> bool:
    """A checkpoint's file name: not an archive (reconciliation of a target skips it)."""
    return bool(_NAME.match(name))


class CheckpointError(ValueError):
    """A file that is not a readable checkpoint."""


@dataclass(frozen=True)
class Checkpoint:
    head_id: int | None  # None: the log was empty
    head_hash: str
    head_mac: str
    rows: int
    written_at: str  # UTC, ISO 8601
    key_id: str = ""  # the MAC key that signed it; "" unsigned (no key configured when it was written)
    signature: str = ""

    def body(self) -> dict[str, Any]:
        return {"format": FORMAT, "head_id": self.head_id, "head_hash": self.head_hash, "head_mac": self.head_mac,
                "rows": self.rows, "written_at": self.written_at, "key_id": self.key_id}

    def signed_text(self) -> str:
        return json.dumps(self.body(), sort_keys=True, separators=(",", ":"))

    def to_bytes(self) -> bytes:
        return (json.dumps({**self.body(), "signature": self.signature}, indent=1, sort_keys=True) + "\n").encode()

    @property
    def file_name(self) -> str:
        written = dt.datetime.fromisoformat(self.written_at).astimezone(dt.timezone.utc)
        return f"{PREFIX}{written:%Y%m%dT%H%M%S%f}Z-{self.head_id or 0}{SUFFIX}"

    @classmethod
    def parse(cls, data: bytes) -> "Checkpoint":
        try:
            found = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise CheckpointError("not JSON") from None
        if not isinstance(found, dict) or found.get("format") != FORMAT:
            raise CheckpointError(f"not a checkpoint of format {FORMAT}")
        missing = [name for name in (*_FIELDS, "signature") if name not in found]
        if missing:
            raise CheckpointError(f"lacks {', '.join(missing)}")
        head_id, rows = found["head_id"], found["rows"]
        texts = [found[name] for name in ("head_hash", "head_mac", "written_at", "key_id", "signature")]
        if not (head_id is None or type(head_id) is int) or type(rows) is not int or not all(
                isinstance(text, str) for text in texts):
            raise CheckpointError("a field has the wrong type")
        try:
            dt.datetime.fromisoformat(found["written_at"])
        except ValueError:
            raise CheckpointError("written_at is not a time") from None
        return cls(head_id=head_id, head_hash=found["head_hash"], head_mac=found["head_mac"], rows=rows,
                   written_at=found["written_at"], key_id=found["key_id"], signature=found["signature"])

    def signed(self, key: mac.MacKey | None) -> "Checkpoint":
        """This checkpoint signed with ``key`` (None: left unsigned)."""
        if key is None:
            return self
        with_key = dataclasses.replace(self, key_id=key.id, signature="")
        return dataclasses.replace(with_key, signature=key.sign(mac.CHECKPOINT_PURPOSE, with_key.signed_text()))


def current_checkpoint() -> Checkpoint:
    """The log's head now, signed with the current key (unsigned when none is configured)."""
    head = AuditEvent.objects.order_by("-id").values("id", "hash", "mac").first()
    rows = AuditEvent.objects.filter(id__lte=head["id"]).count() if head else 0
    unsigned = Checkpoint(head["id"] if head else None, head["hash"] if head else GENESIS_HASH,
                          head["mac"] if head else "", rows, timezone.now().astimezone(dt.timezone.utc).isoformat())
    return unsigned.signed(mac.current_key())


@dataclass(frozen=True)
class Destination:
    """Where checkpoints are kept: a storage target, by its name for messages (``PUMCH/nas1``)."""

    name: str
    open: Callable[[], StorageBackend] = field(compare=False, repr=False)


def _failure(exc: Exception) -> str:
    # A connector's message is written for people (the URL redacted); anything else is shown by its type.
    return str(exc) if isinstance(exc, ConnectorError) else unforeseen(exc)


@dataclass
class CheckpointRun:
    checkpoint: Checkpoint
    written: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.written) and not self.failed


def write_checkpoint(destinations: list[Destination], *, actor: Actor) -> CheckpointRun:
    """Write the head to every destination under a new name (an existing file is never replaced) and
    record ``audit.checkpoint``, ``failed`` when a destination could not be written or there is none.
    One destination failing does not stop the others."""
    run = CheckpointRun(current_checkpoint())
    data, name = run.checkpoint.to_bytes(), run.checkpoint.file_name
    for destination in destinations:
        try:
            with destination.open() as backend:
                backend.write_bytes(name, data)
            run.written.append(destination.name)
        except Exception as exc:  # noqa: BLE001 - said per destination; the others are still written
            if not isinstance(exc, ConnectorError):
                log.exception("audit checkpoint on %s failed", destination.name)
            run.failed[destination.name] = _failure(exc)
    checkpoint = run.checkpoint
    record_event(actor=actor, event=Event.AUDIT_CHECKPOINT,
                 outcome=AuditEvent.Outcome.OK if run.ok else AuditEvent.Outcome.FAILED,
                 detail={"file": name, "head_id": checkpoint.head_id, "head_hash": checkpoint.head_hash,
                         "rows": checkpoint.rows, "signed": bool(checkpoint.signature), "written": run.written,
                         "failed": run.failed,
                         **({} if destinations else {"reason": "no enabled storage target to keep it on"})})
    return run


@dataclass(frozen=True)
class Finding:
    """What one checkpoint file (``file`` "": the target as a whole) showed about the log."""

    target: str
    file: str
    status: str  # MATCH, TAMPERED or UNKNOWN
    message: str

    def line(self) -> str:
        if not self.target:
            return f"checkpoints: {self.message}"
        where = f"{self.target}: {self.file}" if self.file else self.target
        return f"checkpoint {where}: {self.message}"


def check_checkpoints(destinations: list[Destination]) -> list[Finding]:
    """Read every checkpoint back from every destination and check it against the log. A destination
    that cannot be listed or read, or holds none, is UNKNOWN: what it holds was not seen."""
    keys = mac.known_keys()
    if not destinations:
        return [Finding("", "", UNKNOWN, "no institution has an enabled storage target to read them from (unknown)")]
    findings: list[Finding] = []
    for destination in destinations:
        try:
            with destination.open() as backend:
                names = sorted(item.name for item in backend.list_files() if is_checkpoint_name(item.name))
                if not names:
                    findings.append(Finding(destination.name, "", UNKNOWN, "holds no audit checkpoint yet (unknown)"))
                    continue
                for name in names:
                    findings.append(_check_file(destination.name, name, backend.read_bytes(name), keys))
        except Exception as exc:  # noqa: BLE001 - an unreadable target is an unknown, never a pass
            if not isinstance(exc, ConnectorError):
                log.exception("reading audit checkpoints from %s failed", destination.name)
            findings.append(Finding(destination.name, "", UNKNOWN, f"cannot be read (unknown): {_failure(exc)}"))
    return findings


def _check_file(target: str, name: str, data: bytes, keys: dict[str, mac.MacKey]) -> Finding:
    def tampered(message: str) -> Finding:
        return Finding(target, name, TAMPERED, message)

    try:
        found = Checkpoint.parse(data)
    except CheckpointError as exc:
        return tampered(f"{exc}: the file was altered")
    key = keys.get(found.key_id)
    signature_note = ""
    if not found.signature:
        signature_note = " (unsigned: written without a MAC key)"
    elif key is None:
        signature_note = f" (its key {found.key_id} is not configured here: signature not checked)"
    elif not mac.same(key.sign(mac.CHECKPOINT_PURPOSE, found.signed_text()), found.signature):
        return tampered("its signature does not match: the file was altered or forged")
    if found.head_id is None:
        return Finding(target, name, MATCH, f"the log was empty then{signature_note}")
    row = AuditEvent.objects.filter(pk=found.head_id).values("hash", "mac").first()
    if row is None:
        return tampered(f"event {found.head_id} is gone from the log: rows were cut off its end or deleted")
    if row["hash"] != found.head_hash:
        return tampered(f"event {found.head_id} has hash {row['hash']}, not {found.head_hash}: the log was rewritten")
    if row["mac"] != found.head_mac:
        return tampered(f"event {found.head_id} has another MAC than when the checkpoint was written: the log "
                        "was rewritten")
    rows = AuditEvent.objects.filter(id__lte=found.head_id).count()
    if rows != found.rows:
        return tampered(f"{rows} events up to event {found.head_id}, the checkpoint counted {found.rows}: rows were "
                        "deleted or inserted")
    return Finding(target, name, MATCH, f"event {found.head_id} and the {found.rows} events up to it match"
                                        f"{signature_note}")
