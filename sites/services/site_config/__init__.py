"""Loading the site configuration (docs/contracts.md §6): ``site.toml`` -> Institution and StorageTarget rows.

The file describes each institution and storage target it names completely: a key left out takes
the model's default, so loading a file always gives the same rows whatever the admin did before
(the report names every field it changed back). Rows the file does not name are left alone and
reported. Loading is all or nothing: the whole file is checked before anything is written, and the
writes happen in one transaction. Secrets never sit in the file; it names an environment variable
or a file, and the loader checks that they are there without ever printing a value.

``institution_problems`` and ``storage_problems`` are the same rules for one row; the admin forms
call them too, so the browser and the command line accept exactly the same configurations.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from sites.models import Institution, StorageTarget
from sites.services.site_config.reader import Reader, Row, SiteConfigError
from sites.services.site_config.rules import institution_problems, shared_folder_problem, storage_problems
from audit.events import Event
from audit.services import record_event

__all__ = ["Change", "SiteConfigError", "SiteConfigReport", "institution_problems", "load_site_config",
           "shared_folder_problem", "storage_problems"]


@dataclass(frozen=True)
class Change:
    """One row the load created, updated, left unchanged, or found in the database but not the file."""

    kind: str  # "institution" or "storage"
    key: str  # "PUMCH" or "PUMCH/array-1"
    fields: tuple[str, ...] = ()  # the file keys whose values changed (updates only)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": self.key, "fields": list(self.fields)}


@dataclass
class SiteConfigReport:
    path: Path
    created: list[Change] = field(default_factory=list)
    updated: list[Change] = field(default_factory=list)
    unchanged: list[Change] = field(default_factory=list)
    not_in_file: list[Change] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated)

    def as_dict(self) -> dict[str, Any]:
        lists = {"created": self.created, "updated": self.updated, "unchanged": self.unchanged,
                 "not_in_file": self.not_in_file}
        return {
            "file": str(self.path),
            "counts": {name: len(changes) for name, changes in lists.items()},
            **{name: [change.as_dict() for change in changes] for name, changes in lists.items()},
        }


def _apply(reader: Reader, row: Row, instance, *, report: SiteConfigReport, kind: str, key: str) -> None:
    """Set ``row``'s values on ``instance``; full_clean and save only when something changed."""
    is_new = instance.pk is None
    changed = [name for name, value in row.values.items() if getattr(instance, name) != value]
    if not is_new and not changed:
        report.unchanged.append(Change(kind, key))
        return
    for name in changed:
        setattr(instance, name, row.values[name])
    try:
        instance.full_clean()
    except ValidationError as exc:
        raise reader.validation_error(row, exc) from None
    if is_new:
        instance.save()
        report.created.append(Change(kind, key))
    else:
        auto = [f.name for f in instance._meta.concrete_fields if getattr(f, "auto_now", False)]
        instance.save(update_fields=changed + auto)
        report.updated.append(Change(kind, key, tuple(row.key_name(name) for name in changed)))


def load_site_config(*, path: Path, actor: Any = None) -> SiteConfigReport:
    """Create or update the institutions and storage targets ``path`` describes.

    Raises SiteConfigError (one line naming file, row and key) before writing anything when the
    file is wrong. Loading the same file twice changes nothing the second time. Writes an audit
    event ``config.load`` naming what changed (field names only, never values).
    """
    path = Path(path)
    reader = Reader(path)
    rows = reader.load()
    report = SiteConfigReport(path=path)
    with transaction.atomic():
        existing = {institution.code: institution for institution in
                    Institution.objects.select_for_update().prefetch_related("storage_targets")}
        codes = {row.values["code"] for row in rows}
        reader.check_shared_folders(rows, others=[
            (code, target.name, target.url) for code, institution in existing.items() if code not in codes
            for target in institution.storage_targets.all()])
        for row in rows:
            code = row.values["code"]
            known = existing.get(code)
            institution = known or Institution()
            _apply(reader, row, institution, report=report, kind="institution", key=code)
            targets = {target.name: target for target in known.storage_targets.all()} if known else {}
            for target_row in row.targets:
                name = target_row.values["name"]
                target = targets.get(name) or StorageTarget(institution=institution)
                _apply(reader, target_row, target, report=report, kind="storage", key=f"{code}/{name}")
            named = {target_row.values["name"] for target_row in row.targets}
            report.not_in_file += [Change("storage", f"{code}/{name}") for name in sorted(set(targets) - named)]
        report.not_in_file += [Change("institution", code) for code in sorted(existing) if code not in codes]
        record_event(
            actor=actor,
            event=Event.CONFIG_LOAD,
            institution=rows[0].values["code"] if len(rows) == 1 else "",
            detail={
                "file": str(path.resolve()),
                "created": [change.key for change in report.created],
                "updated": {change.key: list(change.fields) for change in report.updated},
                "unchanged": len(report.unchanged),
                "not_in_file": [change.key for change in report.not_in_file],
            },
        )
    return report
