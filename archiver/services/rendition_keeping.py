"""Keeping the DICOM-RT renditions whole on their targets (docs/rendition.md, "Keeping it whole").

A rendition is derived data, stored beside its archive as ``<archive>.dicom.zip`` with two sidecars. Each
stored copy (``RenditionCopy``) is re-hashed on its target by the same run that checks the archive copies
(``check_archives``, the nightly check): ``stored`` (its SHA-256 and size are the rendition's, its sidecars
there; ``last_checked_at`` set), ``missing``, ``corrupt`` or ``unreachable`` (the target could not be asked:
unknown, never taken for missing). A copy the index learnt from a target (``indexed``) is measured at the next
run whatever the cycle says.

Repair (``repair_rendition_copy``) re-makes a missing or corrupt copy from another copy of the same rendition,
read whole and re-hashed against the record before it is written; when no copy is whole, the rendition is
made again from the archive (``make_rendition(force=True)``). The archive, its copies and its sidecars are
never written here.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import math
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from archiver.services.rendition import (
    CHUNK, INSIDE_JSON, SHA256_SIDECAR, make_rendition, rendition_objects, request_rendition,
    store_rendition,
)
from audit.events import Event
from audit.services import record_event
from connectors.errors import SecretError
from connectors.storage.base import StorageBackend, StorageError
from inventory.models import DicomRendition, RenditionCopy
from sites.connections import open_target
from sites.models import Institution, StorageTarget

State = RenditionCopy.Status
KEPT_STATES = (State.STORED, State.INDEXED, State.MISSING, State.CORRUPT, State.UNREACHABLE)
SOURCE_STATES = (State.STORED, State.INDEXED)  # copies a repair may read (their bytes are re-hashed first)


@dataclass
class RenditionCopyResult:
    rendition: str
    archive: str
    target: str
    status: str
    checked: bool = False
    repaired: bool = False
    regenerated: bool = False
    reason: str = ""

    def as_dict(self) -> dict:
        return {"rendition": self.rendition, "archive": self.archive, "target": self.target, "status": self.status,
                "checked": self.checked, "repaired": self.repaired, "regenerated": self.regenerated,
                "reason": self.reason}


@dataclass
class RenditionCheckReport:
    copies: list[RenditionCopyResult] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        counts = {"copies": len(self.copies), "checked": sum(c.checked for c in self.copies), "stored": 0,
                  "indexed": 0, "missing": 0, "corrupt": 0, "unreachable": 0,
                  "repaired": sum(c.repaired for c in self.copies),
                  "regenerated": sum(c.regenerated for c in self.copies)}
        for copy in self.copies:
            if copy.status in counts:
                counts[copy.status] += 1
        return counts

    @property
    def all_whole(self) -> bool:
        return all(c.status == State.STORED for c in self.copies)

    def as_dict(self) -> dict:
        return {"copies": [c.as_dict() for c in self.copies], "summary": self.summary()}


# --- checking ------------------------------------------------------------------------------------------------


def kept_rendition_copies(*, institution: Institution, target: StorageTarget | None = None):
    """The rendition copies PDAS keeps an eye on: of renditions made, on enabled plain targets."""
    copies = (RenditionCopy.objects.filter(rendition__institution=institution, rendition__status=DicomRendition.Status.MADE,
                                           target__enabled=True, status__in=KEPT_STATES)
              .select_related("rendition__archive", "rendition__institution", "target")
              .defer("rendition__object_list", "rendition__archive__manifest"))
    return copies.filter(target=target) if target is not None else copies


def _due(copies: list[RenditionCopy], *, institution: Institution, check_all: bool, now: dt.datetime) -> set[int]:
    """The copies to re-hash this run: all with ``check_all``; else the oldest-checked share of the rolling cycle,
    every overdue copy, and every copy not measured whole since it was stored or indexed."""
    if check_all:
        return {c.pk for c in copies}
    cycle = max(institution.fixity_cycle_days, 1)
    overdue_after = now - dt.timedelta(days=cycle)
    ordered = sorted(copies, key=lambda c: (c.last_checked_at is not None, c.last_checked_at or now, c.pk))
    share = math.ceil(len(copies) / cycle)
    due = {c.pk for c in ordered[:share]}
    due |= {c.pk for c in copies if c.status != State.STORED or c.last_checked_at is None
            or c.last_checked_at < overdue_after}
    return due


def _set_state(copy: RenditionCopy, *, status: str, reason: str, actor, method: str, whole_at=None) -> None:
    """The copy's new state, and (when it changed) its ``rendition.copy_state`` audit row, in one transaction."""
    rendition = copy.rendition
    with transaction.atomic():
        old = copy.status
        copy.status, copy.last_check_reason = status, reason[:2000]
        fields = ["status", "last_check_reason"]
        if whole_at is not None:
            copy.last_checked_at = whole_at
            fields.append("last_checked_at")
        copy.save(update_fields=fields)
        if old != status:
            record_event(actor=actor, event=Event.RENDITION_COPY_STATE, institution=rendition.institution.code,
                         obj=copy, mrns=[rendition.archive.mrn], outcome="ok" if status == State.STORED else "failed",
                         detail={"rendition": rendition.name, "target": copy.target.name, "from": old, "to": status,
                                 "method": method, "reason": reason[:500]})


def measure_rendition_copy(*, copy: RenditionCopy, backend: StorageBackend) -> tuple[str, str, str]:
    """(state, method, reason) of one copy measured on its target: its zip's SHA-256 and size against the
    rendition's, and its two sidecars present (the ``.sha256`` one naming the same digest)."""
    rendition = copy.rendition
    absent = [name for name in rendition_objects(rendition.name) if backend.stat(name) is None]
    if absent:
        return State.MISSING, "listed", f"{rendition.name}: not on {copy.target.name}: {', '.join(absent)}"
    found = backend.digest(rendition.name)
    if (found.sha256, found.size) != (rendition.sha256, rendition.size):
        return State.CORRUPT, found.method, (f"{rendition.name} on {copy.target.name}: SHA-256 {found.sha256[:12]}… "
                                             f"size {found.size}, recorded {rendition.sha256[:12]}… size {rendition.size}")
    sidecar = backend.read_bytes(rendition.name + SHA256_SIDECAR).decode("utf-8", "replace").split(" ", 1)[0]
    if sidecar.strip().lower() != rendition.sha256:
        return State.CORRUPT, found.method, f"{rendition.name}{SHA256_SIDECAR} on {copy.target.name} names another digest"
    return State.STORED, found.method, ""


def check_rendition_copy(*, copy: RenditionCopy, backend: StorageBackend, actor) -> str:
    """Re-hash one copy on its target and record its state; returns it."""
    try:
        status, method, reason = measure_rendition_copy(copy=copy, backend=backend)
    except (StorageError, OSError) as exc:
        status, method, reason = State.UNREACHABLE, "read_back", f"{copy.target.name}: {exc}"
    _set_state(copy, status=status, reason=reason, actor=actor, method=method,
               whole_at=timezone.now() if status == State.STORED else None)
    return status


def _check_presence(copies: list[RenditionCopy], *, backend: StorageBackend, actor) -> None:
    """One listing of the target for the copies not due for a full check: an absent object is ``missing``, a zip
    of the wrong size ``corrupt``. A listing that fails or holds nothing proves nothing: the copies are left."""
    if not copies:
        return
    try:
        listing = {f.name: f.size for f in backend.list_files()}
    except StorageError:
        return
    if not listing:
        return
    for copy in copies:
        rendition = copy.rendition
        absent = [name for name in rendition_objects(rendition.name) if name not in listing]
        if absent:
            _set_state(copy, status=State.MISSING, actor=actor, method="listed",
                       reason=f"{rendition.name}: not on {copy.target.name}: {', '.join(absent)}")
        elif listing[rendition.name] != rendition.size:
            _set_state(copy, status=State.CORRUPT, actor=actor, method="listed",
                       reason=f"{rendition.name} on {copy.target.name}: size {listing[rendition.name]}, "
                              f"recorded {rendition.size}")


# --- repairing -----------------------------------------------------------------------------------------------


def _read_whole(source: RenditionCopy, scratch: Path) -> Path:
    """The source copy's zip read into ``scratch``; ``StorageError`` unless its bytes are the rendition's."""
    rendition = source.rendition
    path = scratch / rendition.name
    hasher, size = hashlib.sha256(), 0
    with open_target(source.target) as backend, open(path, "wb") as handle:
        for data in backend.read_chunks(rendition.name, CHUNK):
            handle.write(data)
            hasher.update(data)
            size += len(data)
    if (hasher.hexdigest(), size) != (rendition.sha256, rendition.size):
        raise StorageError(f"{rendition.name} on {source.target.name} differs from the one recorded (SHA-256 or size)")
    return path


def repair_rendition_copy(*, copy: RenditionCopy, actor) -> bool:
    """Re-make a missing or corrupt copy from another copy of the rendition whose bytes re-hash to the record
    (a source found damaged is recorded ``corrupt`` and the next one tried). True when the copy is whole again."""
    rendition = copy.rendition
    sources = (rendition.copies.filter(status__in=SOURCE_STATES, target__enabled=True).exclude(pk=copy.pk)
               .select_related("target").order_by("target__priority", "target__name"))
    scratch_root = Path(settings.DATA_DIR) / "renditions"
    scratch_root.mkdir(parents=True, exist_ok=True)
    for source in sources:
        source.rendition = rendition
        scratch = Path(tempfile.mkdtemp(prefix=f"repair-{rendition.pk}-", dir=scratch_root))
        try:
            try:
                path = _read_whole(source, scratch)
            except (StorageError, SecretError, OSError) as exc:
                damaged = "differs from the one recorded" in str(exc)
                _set_state(source, status=State.CORRUPT if damaged else State.UNREACHABLE, reason=str(exc),
                           actor=actor, method="read_back")
                continue
            with zipfile.ZipFile(path) as bundle:
                manifest = bundle.read(INSIDE_JSON)
            try:
                with open_target(copy.target) as backend:
                    measured = store_rendition(backend, name=rendition.name, path=path, manifest=manifest)
            except (StorageError, SecretError, OSError) as exc:
                _audit_repair(copy, actor=actor, ok=False, source=source.target.name, reason=str(exc))
                return False
            whole = (measured.sha256, measured.size) == (rendition.sha256, rendition.size)
            reason = "" if whole else f"{rendition.name} measured on {copy.target.name} after the repair differs"
            _set_state(copy, status=State.STORED if whole else State.CORRUPT, reason=reason, actor=actor,
                       method=measured.method, whole_at=timezone.now() if whole else None)
            if whole:
                RenditionCopy.objects.filter(pk=copy.pk).update(sha256=measured.sha256, size=measured.size,
                                                                stored_at=timezone.now(), reason="")
            _audit_repair(copy, actor=actor, ok=whole, source=source.target.name, reason=reason)
            return whole
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return False


def regenerate_rendition(*, rendition: DicomRendition, actor) -> DicomRendition:
    """No copy of the rendition is whole: make it again from the archive (derived data), on every target."""
    request_rendition(archive=rendition.archive, actor=actor)
    made = make_rendition(archive_id=rendition.archive_id, force=True)
    ok = made.status == DicomRendition.Status.MADE
    record_event(actor=actor, event=Event.RENDITION_REPAIR, institution=rendition.institution.code, obj=made,
                 mrns=[rendition.archive.mrn], outcome="ok" if ok else "failed",
                 detail={"rendition": made.name, "from": "archive", "regenerated": True,
                         "targets": {c.target.name: c.status for c in made.copies.select_related("target")},
                         "reason": made.reason[:500]})
    return made


def _audit_repair(copy: RenditionCopy, *, actor, ok: bool, source: str, reason: str) -> None:
    rendition = copy.rendition
    record_event(actor=actor, event=Event.RENDITION_REPAIR, institution=rendition.institution.code, obj=copy,
                 mrns=[rendition.archive.mrn], outcome="ok" if ok else "failed",
                 detail={"rendition": rendition.name, "target": copy.target.name, "from": source,
                         "regenerated": False, "reason": reason[:500]})


# --- one run -------------------------------------------------------------------------------------------------


def check_renditions(*, institution: Institution, actor, target: StorageTarget | None = None, check_all: bool = False,
                     repair: bool = False, time_budget: float | None = None,
                     now: dt.datetime | None = None) -> RenditionCheckReport:
    """Re-hash the institution's rendition copies that are due (all with ``check_all``) and, with ``repair``,
    re-make the missing and corrupt ones (from another copy, else from the archive). One ``rendition.check``
    audit row for the run, naming the patients whose rendition copy is not whole."""
    now = now or timezone.now()
    started = time.monotonic()
    copies = list(kept_rendition_copies(institution=institution, target=target))
    due = _due(copies, institution=institution, check_all=check_all, now=now)
    checked: set[int] = set()
    by_target: dict[int, list[RenditionCopy]] = {}
    for copy in copies:
        by_target.setdefault(copy.target_id, []).append(copy)
    for target_copies in by_target.values():
        todo = [c for c in target_copies if c.pk in due]
        try:
            backend = open_target(target_copies[0].target)
        except (StorageError, SecretError) as exc:
            for copy in todo:
                _set_state(copy, status=State.UNREACHABLE, reason=f"{copy.target.name}: {exc}", actor=actor,
                           method="read_back")
                checked.add(copy.pk)
            continue
        with backend:
            _check_presence([c for c in target_copies if c.pk not in due], backend=backend, actor=actor)
            for copy in todo:
                if time_budget is not None and time.monotonic() - started > time_budget:
                    break
                check_rendition_copy(copy=copy, backend=backend, actor=actor)
                checked.add(copy.pk)
    repaired: set[int] = set()
    regenerated: set[int] = set()
    if repair:
        for rendition_id in sorted({c.rendition_id for c in copies if c.status in (State.MISSING, State.CORRUPT)}):
            bad = [c for c in copies if c.rendition_id == rendition_id and c.status in (State.MISSING, State.CORRUPT)]
            for copy in bad:
                if repair_rendition_copy(copy=copy, actor=actor):
                    repaired.add(copy.pk)
            if any(c.status in (State.MISSING, State.CORRUPT) for c in bad):
                rendition = bad[0].rendition
                siblings = rendition.copies.exclude(pk__in=[c.pk for c in bad])
                if not siblings.filter(status__in=SOURCE_STATES).exists():
                    made = regenerate_rendition(rendition=rendition, actor=actor)
                    if made.status == DicomRendition.Status.MADE:
                        regenerated.update(c.pk for c in copies if c.rendition_id == rendition_id)
        for copy in copies:
            copy.refresh_from_db(fields=["status", "last_check_reason", "last_checked_at"])
    report = RenditionCheckReport()
    for copy in copies:
        report.copies.append(RenditionCopyResult(
            rendition=copy.rendition.name, archive=copy.rendition.archive.name, target=copy.target.name,
            status=copy.status, checked=copy.pk in checked, repaired=copy.pk in repaired,
            regenerated=copy.pk in regenerated, reason=copy.last_check_reason))
    if copies:
        record_event(actor=actor, event=Event.RENDITION_CHECK, institution=institution.code,
                     mrns=sorted({c.rendition.archive.mrn for c in copies if c.status != State.STORED}),
                     outcome="ok" if report.all_whole else "failed",
                     detail={"target": target.name if target else "", "all": check_all, "repair": repair,
                             **report.summary()})
    return report
