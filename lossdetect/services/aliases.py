"""Recording MRN aliases (docs/contracts.md §2.7): one function per change, each with its audit row.

Every write checks the alias against the institution's others first (``MrnAliasGraph.problem``: never
an MRN to itself, one MRN per old MRN, no cycle) and writes the row and its ``mrnalias.change`` event
in one transaction. The admin, ``manage.py import_mrn_aliases`` and the HL7 listener
(``lossdetect.services.hl7_listener``) all come through here.

Why strict: an alias makes a loss scan treat two MRNs as one patient, so a wrong one can make a lost
plan look archived (another patient's archive) while a missing one only shows a plan as lost that a
person then finds. Hence a refused row is reported, never guessed at.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.actors import actor_name
from audit.events import Event
from audit.services import record_event
from connectors.rv.base import RvError
from connectors.rv.csv_source import csv_rows, decode_text
from lossdetect.models import MrnAlias
from lossdetect.selectors import alias_graph
from lossdetect.services.alias_graph import MrnAliasGraph
from sites.models import Institution

ALIAS_COLUMNS = ("old_mrn", "new_mrn", "reason")
_MRN_LENGTH = MrnAlias._meta.get_field("mrn").max_length
_REASON_LENGTH = MrnAlias._meta.get_field("reason").max_length


class AliasRefused(ValueError):
    """The alias breaks a rule; the message says which, in one line."""


class AliasFileError(ValueError):
    """The alias file cannot be read at all (missing, not UTF-8, wrong header); one line naming the file."""


def _lock(institution: Institution) -> None:
    # Two writers checking for cycles at once could each add half of one; the institution row serialises them
    # (PostgreSQL; SQLite serialises every write transaction anyway).
    Institution.objects.select_for_update().only("pk").get(pk=institution.pk)


def _audit(actor: Any, alias: MrnAlias, *, action: str, mrns: list[str], detail: dict) -> None:
    record_event(actor=actor, event=Event.MRNALIAS_CHANGE, institution=alias.institution.code, mrns=mrns, obj=alias,
                 detail={"action": action, "source": alias.source, **detail})


def _checked(value: str, name: str) -> str:
    value = (value or "").strip()
    if not value:
        raise AliasRefused(f"{name} is empty")
    if len(value) > _MRN_LENGTH:
        raise AliasRefused(f"{name} is longer than {_MRN_LENGTH} characters")
    return value


def _reason(value: str) -> str:
    value = " ".join((value or "").split())
    if len(value) > _REASON_LENGTH:
        raise AliasRefused(f"reason is longer than {_REASON_LENGTH} characters")
    return value


def add_mrn_alias(*, institution: Institution, old_mrn: str, mrn: str, reason: str = "", actor: Any,
                  source: str = MrnAlias.Source.ADMIN, detail: dict | None = None) -> tuple[MrnAlias, bool]:
    """Record that ``old_mrn`` now goes by ``mrn``: (the alias, True when it was added).

    The same alias already recorded is returned with False and nothing is written. Raises
    ``AliasRefused`` for an alias of an MRN to itself, a second MRN for ``old_mrn`` or a cycle.
    ``detail``: more for the audit row's detail (an HL7 message's control ID, type and sender).
    """
    old_mrn, mrn, reason = _checked(old_mrn, "old_mrn"), _checked(mrn, "new_mrn"), _reason(reason)
    with transaction.atomic():
        _lock(institution)
        if problem := alias_graph(institution=institution).problem(old_mrn, mrn):
            raise AliasRefused(problem)
        existing = MrnAlias.objects.filter(institution=institution, old_mrn=old_mrn, mrn=mrn).first()
        if existing is not None:
            return existing, False
        alias = _create(institution, old_mrn, mrn, reason, actor, source, detail)
    return alias, True


def _create(institution: Institution, old_mrn: str, mrn: str, reason: str, actor: Any, source: str,
            detail: dict | None = None) -> MrnAlias:
    alias = MrnAlias(institution=institution, old_mrn=old_mrn, mrn=mrn, reason=reason, source=source,
                     recorded_by=actor_name(actor), recorded_at=timezone.now())
    alias.full_clean()
    alias.save()
    _audit(actor, alias, action="add", mrns=[old_mrn, mrn],
           detail={"old_mrn": old_mrn, "mrn": mrn, "reason": reason, **(detail or {})})
    return alias


def change_mrn_alias(*, alias: MrnAlias, old_mrn: str, mrn: str, reason: str, actor: Any) -> MrnAlias:
    """Change an alias (a typo in an MRN, a better reason) under the same rules as a new one; returns the
    stored row. Nothing changed: nothing is written."""
    old_mrn, mrn, reason = _checked(old_mrn, "old_mrn"), _checked(mrn, "new_mrn"), _reason(reason)
    with transaction.atomic():
        stored = MrnAlias.objects.select_related("institution").get(pk=alias.pk)  # the admin's instance holds the new values
        before = {"old_mrn": stored.old_mrn, "mrn": stored.mrn, "reason": stored.reason}
        after = {"old_mrn": old_mrn, "mrn": mrn, "reason": reason}
        changed = sorted(name for name in after if before[name] != after[name])
        if not changed:
            return stored
        _lock(stored.institution)
        if problem := alias_graph(institution=stored.institution).without(stored.old_mrn).problem(old_mrn, mrn):
            raise AliasRefused(problem)
        for name in changed:
            setattr(stored, name, after[name])
        stored.recorded_by, stored.recorded_at = actor_name(actor), timezone.now()
        stored.full_clean()
        stored.save(update_fields=[*changed, "recorded_by", "recorded_at"])
        _audit(actor, stored, action="change", mrns=[before["old_mrn"], before["mrn"], old_mrn, mrn],
               detail={**after, "fields": changed, "before": before})
    return stored


def delete_mrn_alias(*, alias: MrnAlias, actor: Any) -> None:
    with transaction.atomic():
        _audit(actor, alias, action="delete", mrns=[alias.old_mrn, alias.mrn],
               detail={"old_mrn": alias.old_mrn, "mrn": alias.mrn, "reason": alias.reason})
        alias.delete()


# --- the import file ---------------------------------------------------------------------------------


@dataclass
class AliasRow:
    row: int  # line of the file (the header is row 1)
    old_mrn: str
    new_mrn: str
    reason: str


@dataclass
class ImportReport:
    """What ``import_mrn_aliases`` did: the docs/contracts.md §7 JSON of ``manage.py import_mrn_aliases``."""

    path: str
    institution: str
    added: list[dict[str, str]] = field(default_factory=list)
    unchanged: list[dict[str, str]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.path, "institution": self.institution, "added": self.added,
                "unchanged": self.unchanged, "errors": self.errors}


def read_alias_file(path: Path) -> tuple[list[AliasRow], list[dict[str, Any]]]:
    """The rows of an alias CSV (header ``old_mrn,new_mrn,reason``; UTF-8 with or without BOM, or GB18030)
    and the rows that are malformed ({"row", "error"}). ``AliasFileError`` when the file cannot be used at all."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AliasFileError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        text = decode_text(data, name=str(path))
    except RvError as exc:
        raise AliasFileError(str(exc)) from None
    rows = csv_rows(csv.reader(io.StringIO(text, newline="")))
    line, cells, problem = next(rows, (1, [], ""))
    if problem:
        raise AliasFileError(f"{path}: row {line}: the header is {problem}")
    header = [cell.strip().lower() for cell in cells or []]
    if not header or header[:2] != ["old_mrn", "new_mrn"] or header[2:] not in ([], ["reason"]):
        raise AliasFileError(f"{path}: row 1: the header must be {','.join(ALIAS_COLUMNS)} "
                             f"(found {','.join(header) or 'nothing'})")
    aliases: list[AliasRow] = []
    errors: list[dict[str, Any]] = []
    for line, cells, problem in rows:
        if cells is None:
            errors.append({"row": line, "error": problem})
            continue
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            errors.append({"row": line, "error": f"has {len(cells)} fields, the header has {len(header)} "
                                                 f"({','.join(header)})"})
            continue
        aliases.append(AliasRow(line, cells[0], cells[1], cells[2] if len(cells) > 2 else ""))
    return aliases, errors


def import_mrn_aliases(*, institution: Institution, path: Path, actor: Any) -> ImportReport:
    """Add the aliases of an alias file (``read_alias_file``): each row added, unchanged (already
    recorded, or a repeat of an earlier row) or refused with its reason; the refused rows change nothing.

    Rows are checked in order against the aliases recorded and the rows before them. The aliases added
    and their audit rows, and one ``mrnalias.import`` event for the whole file, commit together.
    """
    path = Path(path)
    rows, malformed = read_alias_file(path)
    report = ImportReport(path=str(path), institution=institution.code)
    refused: dict[int, str] = {entry["row"]: entry["error"] for entry in malformed}
    with transaction.atomic():
        _lock(institution)
        graph: MrnAliasGraph = alias_graph(institution=institution)
        for row in rows:
            try:
                old_mrn, mrn = _checked(row.old_mrn, "old_mrn"), _checked(row.new_mrn, "new_mrn")
                reason = _reason(row.reason)
                if problem := graph.problem(old_mrn, mrn):
                    raise AliasRefused(problem)
            except AliasRefused as exc:
                refused[row.row] = str(exc)
                continue
            pair = {"old_mrn": old_mrn, "mrn": mrn}
            if graph.points_to.get(old_mrn) == mrn:
                report.unchanged.append(pair)
                continue
            _create(institution, old_mrn, mrn, reason, actor, MrnAlias.Source.IMPORT)
            graph.add(old_mrn, mrn)
            report.added.append(pair)
        report.errors = [{"row": number, "error": refused[number]} for number in sorted(refused)]
        record_event(actor=actor, event=Event.MRNALIAS_IMPORT, institution=institution.code,
                     mrns=[m for pair in report.added for m in pair.values()],
                     detail={"file": str(path.resolve()), "added": len(report.added),
                             "unchanged": len(report.unchanged), "refused": report.errors[:200]})
    return report
