"""Reconciliation of the archive index with a listing of an archive folder or a storage target.

A listing is either a CSV/TSV file someone exported from an existing (often manual, historical)
archive folder, with a header row naming the file name, the size in bytes and optionally the
SHA-256 of each file, or what ``open_target(target).list_files()`` returns for a configured target.

Each listed archive file is matched to a patient by its archive name (docs/contracts.md §4.1)
(``archiver.naming.parse_archive_name``), else by a known MRN standing as a word of the name,
and to the PDAS archive of the same file name. The outcome of each file is one of
``ReconciliationEntry.Outcome``; every PDAS archive the listing lacks is an ``only_in_pdas`` entry.
A listing that cannot be read, or that lists nothing, is refused as a whole: an empty listing is
"unknown", never "everything is missing".
"""
from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from inventory.models import Archive, ArchiveCopy, TpsPatient
from sites.models import Institution, StorageTarget
from archiver.naming import mrn_part, parse_archive_name
from connectors.storage import StorageError
from sites.connections import open_target
from connectors.storage.base import is_temporary
from connectors.urls import redact_url
from audit.actors import actor_name
from audit.checkpoints import is_checkpoint_name
from audit.models import AuditEvent
from audit.events import Event
from audit.services import record_event
from connectors.rv.base import RvError
from connectors.rv.csv_source import csv_rows, decode_text
from reports.models import ReconciliationEntry, ReconciliationImport

Outcome = ReconciliationEntry.Outcome
NAME_COLUMNS = ("name", "file_name", "filename", "file", "path")
SIZE_COLUMNS = ("size", "bytes", "size_bytes")
SHA256_COLUMNS = ("sha256", "checksum", "sha256sum")
SIDECAR_SUFFIXES = (".sha256", ".manifest.json")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_WORDS = (re.compile(r"[^A-Za-z0-9]+"), re.compile(r"[^A-Za-z0-9-]+"))


class ReconcileError(Exception):
    """The listing as a whole cannot be used; the message is one line naming the file, line or field."""


@dataclass(frozen=True)
class ListedFile:
    """One file of a listing. ``problem`` non-empty: the row could not be read (the reason, with its line)."""

    line: int | None
    path: str
    size: int | None = None
    sha256: str = ""
    problem: str = ""

    @property
    def file_name(self) -> str:
        return re.split(r"[\\/]", self.path)[-1]


# --- reading listings ---------------------------------------------------------------------------------------


def _column(header: list[str], names: tuple[str, ...], *, listing: str, line: int, required: bool) -> int | None:
    found = [i for i, column in enumerate(header) if column in names]
    if len(found) > 1:
        raise ReconcileError(f"{listing}: line {line}: the header has several {names[0]} columns "
                             f"({', '.join(header[i] for i in found)})")
    if not found:
        if required:
            raise ReconcileError(f"{listing}: line {line}: the header has no {names[0]} column "
                                 f"(one of {', '.join(names)})")
        return None
    return found[0]


def _listed(row: list[str], line: int, columns: tuple[int, int, int | None]) -> ListedFile:
    name_at, size_at, sha_at = columns
    needed = max(i for i in columns if i is not None) + 1
    path = row[name_at].strip() if len(row) > name_at else ""
    if len(row) < needed:
        return ListedFile(line, path, problem=f"line {line}: {len(row)} fields, the header has {needed}")
    if not path:
        return ListedFile(line, path, problem=f"line {line}: the file name is empty")
    size_text = row[size_at].strip()
    if not size_text.isdigit() or not size_text.isascii():
        return ListedFile(line, path, problem=f"line {line}: size {size_text!r} is not a whole number of bytes")
    sha256 = row[sha_at].strip().lower() if sha_at is not None else ""
    if sha256 and not _SHA256.match(sha256):
        return ListedFile(line, path, int(size_text),
                          problem=f"line {line}: sha256 {sha256[:80]!r} is not 64 hexadecimal digits")
    return ListedFile(line, path, int(size_text), sha256)


def read_listing(data: bytes, *, name: str) -> list[ListedFile]:
    """The files of a CSV (comma) or TSV (tab) listing with a header row; UTF-8 (BOM or not) or GB18030.

    A row that cannot be read is returned with its ``problem``; a file that cannot be read at all
    raises ``ReconcileError``."""
    try:
        text = decode_text(data, name=name)
    except RvError as exc:
        raise ReconcileError(str(exc)) from None
    first = next((line for line in text.splitlines() if line.strip()), None)
    if first is None:
        raise ReconcileError(f"{name}: the listing is empty")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if "\t" in first else ",")
    files: list[ListedFile] = []
    columns = None
    for line, row, problem in csv_rows(reader):
        if row is None:
            if columns is None:
                raise ReconcileError(f"{name}: line {line}: the header is {problem}")
            files.append(ListedFile(line, "", problem=f"line {line}: {problem}"))
            continue
        if not any(cell.strip() for cell in row):
            continue
        if columns is None:
            header = [cell.strip().lower().replace(" ", "_") for cell in row]
            columns = (_column(header, NAME_COLUMNS, listing=name, line=line, required=True),
                       _column(header, SIZE_COLUMNS, listing=name, line=line, required=True),
                       _column(header, SHA256_COLUMNS, listing=name, line=line, required=False))
            continue
        files.append(_listed(row, line, columns))
    if not files:
        raise ReconcileError(f"{name}: no file rows after the header")
    return files


def _printable(name: str) -> tuple[str, str]:
    """A listed name fit to store, and a problem when it was not valid UTF-8 (raw bytes from the server)."""
    try:
        name.encode("utf-8")
        return name, ""
    except UnicodeEncodeError:
        fixed = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        return fixed, f"the file name {fixed!r} is not valid UTF-8"


def list_target(target: StorageTarget) -> list[ListedFile]:
    """The files of a storage target as its own listing reports them; ``ReconcileError`` when it cannot be
    listed or lists nothing."""
    try:
        with open_target(target) as storage:
            remote = storage.list_files()
    except StorageError as exc:
        raise ReconcileError(f"storage {target.name}: {exc}") from None
    if not remote:
        raise ReconcileError(f"storage {target.name}: the listing is empty ({redact_url(target.url)}); "
                             "an empty listing is not taken as 'every archive is missing'")
    files = []
    for item in sorted(remote, key=lambda f: f.name):
        path, problem = _printable(item.name)
        files.append(ListedFile(None, path, item.size, problem=problem))
    return files


# --- matching -----------------------------------------------------------------------------------------------


def is_sidecar(file_name: str) -> bool:
    """Sidecars (``.sha256``, ``.manifest.json``), half-finished uploads and the audit log's checkpoints
    (docs/audit.md) are not archives."""
    return file_name.endswith(SIDECAR_SUFFIXES) or is_temporary(file_name) or is_checkpoint_name(file_name)


@dataclass(frozen=True)
class _Known:
    """What the institution's index holds, read once per import."""

    archives: dict[str, tuple[int, int | None, str, str]]  # name -> (id, size, checksum, mrn)
    mrns: dict[str, set[str]]  # the MRN as it appears in a name (``mrn_part``) -> MRNs
    archives_per_mrn: Counter

    @classmethod
    def read(cls, institution: Institution) -> "_Known":
        archives = {name: (pk, size, checksum, mrn) for pk, name, size, checksum, mrn in
                    Archive.objects.filter(institution=institution).values_list("id", "name", "size", "checksum",
                                                                                "mrn")}
        mrns: dict[str, set[str]] = {}
        patient_mrns = TpsPatient.objects.filter(institution=institution).exclude(mrn="").values_list("mrn", flat=True)
        for mrn in {*patient_mrns, *(row[3] for row in archives.values())}:
            mrns.setdefault(mrn_part(mrn), set()).add(mrn)
        return cls(archives, mrns, Counter(row[3] for row in archives.values()))

    def patient_of(self, file_name: str) -> tuple[str, str]:
        """(MRN, note) of the patient a file name names; MRN blank when it names none or several."""
        parsed = parse_archive_name(file_name)
        if parsed is not None:
            mrns = self.mrns.get(parsed["mrn"], set())
            if len(mrns) == 1:
                return next(iter(mrns)), ""
            if not mrns:
                return parsed["mrn"], "patient not known to PDAS"
            return "", f"MRN part {parsed['mrn']} fits several patients: {', '.join(sorted(mrns))}"
        words = {word for pattern in _WORDS for word in pattern.split(file_name) if word}
        found = sorted({mrn for word in words for mrn in self.mrns.get(word, ())})
        if len(found) == 1:
            return found[0], "not a PDAS archive name; patient found by MRN"
        if found:
            return "", f"not a PDAS archive name and it holds several known MRNs: {', '.join(found[:5])}"
        return "", "neither a PDAS archive name (docs/contracts.md §4.1) nor does it hold a known MRN"


def _entry(listed: ListedFile, outcome: str, detail: str = "", **fields: Any) -> ReconciliationEntry:
    return ReconciliationEntry(line=listed.line, path=listed.path[:1000], file_name=listed.file_name[:255],
                               size=listed.size, sha256=listed.sha256, outcome=outcome, detail=detail[:1000],
                               **fields)


def _compare(listed: ListedFile, archive: tuple[int, int | None, str, str], mrn: str) -> ReconciliationEntry:
    archive_id, size, checksum, archive_mrn = archive
    fields = {"archive_id": archive_id, "archive_name": listed.file_name[:255], "mrn": archive_mrn or mrn}
    if size is not None and listed.size != size:
        return _entry(listed, Outcome.SIZE_MISMATCH, f"listed {listed.size} bytes, PDAS recorded {size}", **fields)
    if listed.sha256 and checksum and listed.sha256 != checksum.lower():
        return _entry(listed, Outcome.CHECKSUM_MISMATCH,
                      f"listed sha256 {listed.sha256[:12]}…, PDAS recorded {checksum[:12]}…", **fields)
    note = "" if listed.sha256 else "size compared; the listing has no checksum"
    return _entry(listed, Outcome.MATCHED, note, **fields)


def match_listing(files: list[ListedFile], *, known: _Known) -> tuple[list[ReconciliationEntry], set[str], int]:
    """Entries for the listed files, the archive names seen, and the number of sidecars left out."""
    entries: list[ReconciliationEntry] = []
    by_name: dict[str, ListedFile] = {}
    by_sha256: dict[str, ListedFile] = {}
    skipped = 0
    for listed in files:
        if listed.problem:
            entries.append(_entry(listed, Outcome.UNREADABLE, listed.problem))
            continue
        name = listed.file_name
        if is_sidecar(name):
            skipped += 1
            continue
        where = f"line {listed.line}" if listed.line else "the listing"
        if name in by_name:
            first = by_name[name]
            entries.append(_entry(listed, Outcome.DUPLICATE, f"{where}: the same name as {first.path}"
                                  + (f" (line {first.line})" if first.line else "")))
            continue
        by_name[name] = listed
        if listed.sha256 and listed.sha256 in by_sha256:
            first = by_sha256[listed.sha256]
            entries.append(_entry(listed, Outcome.DUPLICATE, f"{where}: the same content (sha256) as {first.path}"))
            continue
        if listed.sha256:
            by_sha256[listed.sha256] = listed
        mrn, note = known.patient_of(name)
        archive = known.archives.get(name)
        if archive is not None:
            entries.append(_compare(listed, archive, mrn))
        elif listed.size == 0:
            entries.append(_entry(listed, Outcome.UNREADABLE, "0 bytes: an empty file holds no patient", mrn=mrn))
        elif not mrn:
            entries.append(_entry(listed, Outcome.UNPARSEABLE, note))
        else:
            others = known.archives_per_mrn.get(mrn, 0)
            detail = "; ".join(part for part in (
                note, f"PDAS has {others} archive(s) of this patient under other names" if others else "") if part)
            entries.append(_entry(listed, Outcome.ONLY_IN_LISTING, detail, mrn=mrn))
    return entries, set(by_name), skipped


def _only_in_pdas(*, institution: Institution, target: StorageTarget | None, seen: set[str]) -> list[ReconciliationEntry]:
    """Archives PDAS believes the listed place holds and the listing lacks: with a target, those with a copy
    there that is not missing or half-uploaded; without one, every verified archive of the institution."""
    if target is not None:
        held = ArchiveCopy.objects.filter(target=target).exclude(
            status__in=[ArchiveCopy.Status.UPLOADING, ArchiveCopy.Status.MISSING]).values("archive_id")
        archives = Archive.objects.filter(institution=institution, id__in=held)
        where = f"a copy on {target.name}"
    else:
        # Every archive PDAS recorded as verified, also those whose copies it has since found missing or
        # corrupt (docs/keeping.md): the listing lacking one of those confirms it, and is worth a row.
        archives = Archive.objects.filter(institution=institution, status=Archive.Status.VERIFIED)
        where = "verified"
    return [
        ReconciliationEntry(file_name=name[:255], size=size, sha256=(checksum or "")[:64], mrn=mrn, archive_id=pk,
                            archive_name=name[:255], outcome=Outcome.ONLY_IN_PDAS,
                            detail=f"PDAS records this archive ({where}) but the listing does not hold it")
        for pk, name, size, checksum, mrn in archives.values_list("id", "name", "size", "checksum", "mrn")
        if name not in seen
    ]


# --- imports ------------------------------------------------------------------------------------------------


def _record(*, reconciliation: ReconciliationImport, actor, mrns: set[str]) -> None:
    record_event(actor=actor, event=Event.RECONCILE_IMPORT, institution=reconciliation.institution.code, mrns=mrns,
                 obj=reconciliation,
                 outcome=AuditEvent.Outcome.OK if reconciliation.status == ReconciliationImport.Status.DONE
                 else AuditEvent.Outcome.FAILED,
                 detail={"source": reconciliation.source, "listing": reconciliation.listing_name,
                         "target": reconciliation.target.name if reconciliation.target else "",
                         "files": reconciliation.files, "counts": reconciliation.counts,
                         "error": reconciliation.error})


def reconcile(*, institution: Institution, files: list[ListedFile], source: str, listing_name: str,
              target: StorageTarget | None, actor) -> ReconciliationImport:
    """Compare ``files`` with the index and store the import and its entries (one transaction, audited)."""
    started = timezone.now()
    known = _Known.read(institution)
    plain, entries, seen, skipped = files, [], set(), 0
    if target is not None and target.encrypt_to:  # objects named after digests: matched through the copies
        from reports.services.reconcile_encrypted import match_encrypted

        plain, entries, seen, skipped = match_encrypted(files, institution=institution, target=target)
    more, names, left_out = match_listing(plain, known=known)
    entries, seen, skipped = entries + more, seen | names, skipped + left_out
    entries += _only_in_pdas(institution=institution, target=target, seen=seen)
    counts = Counter(entry.outcome for entry in entries)
    with transaction.atomic():
        reconciliation = ReconciliationImport.objects.create(
            institution=institution, source=source, listing_name=listing_name[:255], target=target,
            requested_by=actor_name(actor), status=ReconciliationImport.Status.DONE,
            created_at=started, started_at=started, finished_at=timezone.now(),
            files=len(files) - skipped, skipped=skipped, counts={o: counts.get(o, 0) for o in Outcome.values})
        for entry in entries:
            entry.reconciliation = reconciliation
        ReconciliationEntry.objects.bulk_create(entries, batch_size=2000)
        _record(reconciliation=reconciliation, actor=actor, mrns={e.mrn for e in entries})
    return reconciliation


def _failed(*, institution: Institution, source: str, listing_name: str, target: StorageTarget | None, actor,
            error: str) -> ReconciliationImport:
    now = timezone.now()
    with transaction.atomic():
        reconciliation = ReconciliationImport.objects.create(
            institution=institution, source=source, listing_name=listing_name[:255], target=target,
            requested_by=actor_name(actor), status=ReconciliationImport.Status.FAILED, error=error,
            created_at=now, started_at=now, finished_at=now)
        _record(reconciliation=reconciliation, actor=actor, mrns=set())
    return reconciliation


def _check_target(institution: Institution, target: StorageTarget | None) -> None:
    if target is not None and target.institution_id != institution.pk:
        raise ReconcileError(f"storage {target.name} belongs to {target.institution.code}, not {institution.code}")


def import_listing(*, institution: Institution, data: bytes, listing_name: str, actor,
                   target: StorageTarget | None = None) -> ReconciliationImport:
    """Reconcile an uploaded CSV/TSV listing. ``target``: the listing is of that target, so only archives with
    a copy there can be missing from it. A listing that cannot be read gives a ``failed`` import with the
    one-line reason in ``error``."""
    source = ReconciliationImport.Source.LISTING
    try:
        _check_target(institution, target)
        files = read_listing(data, name=listing_name)
    except ReconcileError as exc:
        return _failed(institution=institution, source=source, listing_name=listing_name, target=target,
                       actor=actor, error=str(exc))
    return reconcile(institution=institution, files=files, source=source, listing_name=listing_name,
                     target=target, actor=actor)


def reconcile_target(*, institution: Institution, target: StorageTarget, actor) -> ReconciliationImport:
    """List ``target`` and reconcile it with the archives that have a copy there; ``failed`` with the reason
    when it cannot be listed."""
    source = ReconciliationImport.Source.TARGET
    try:
        _check_target(institution, target)
        files = list_target(target)
    except ReconcileError as exc:
        return _failed(institution=institution, source=source, listing_name=target.name, target=target,
                       actor=actor, error=str(exc))
    return reconcile(institution=institution, files=files, source=source, listing_name=target.name, target=target,
                     actor=actor)
