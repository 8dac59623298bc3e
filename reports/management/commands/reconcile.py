"""``manage.py reconcile --institution CODE (--listing FILE [--target NAME] | --target NAME) [--json]``.

Compares a listing of an archive folder (CSV/TSV: file name, size, optional sha256) or of a
configured storage target with the PDAS archive index, stores the result and prints it.
Exit 0: every file and archive is in both and agrees. 1: something needs a person (only in one
of the two, duplicate, size or checksum differs, a name that names no patient, an unreadable
row). 2: bad input (unknown institution or target, unreadable or empty listing).
"""
from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import CommandError

from sites.commands import institution_option
from sites.models import StorageTarget
from core.commands import Findings, PdasCommand, cli_actor
from reports.models import ReconciliationImport
from reports.services.reconcile import import_listing, reconcile_target


def reconciliation_json(reconciliation: ReconciliationImport) -> dict:
    entries = [
        {"line": e.line, "path": e.path, "file_name": e.file_name, "size": e.size, "sha256": e.sha256,
         "mrn": e.mrn, "archive": e.archive_name, "outcome": e.outcome, "detail": e.detail}
        for e in reconciliation.entries.order_by("outcome", "file_name", "id")
    ]
    return {"reconciliation": reconciliation.pk, "institution": reconciliation.institution.code,
            "source": reconciliation.source, "listing": reconciliation.listing_name,
            "target": reconciliation.target.name if reconciliation.target else None,
            "status": reconciliation.status, "error": reconciliation.error, "files": reconciliation.files,
            "skipped": reconciliation.skipped, "counts": reconciliation.counts, "entries": entries}


class Command(PdasCommand):
    help = "Reconcile a listing of an archive folder, or a storage target, with the PDAS archive index."

    def add_arguments(self, parser):
        parser.add_argument("--institution", required=True, help="Institution code")
        parser.add_argument("--listing", help="CSV or TSV file: header with name, size and optionally sha256")
        parser.add_argument("--target", help="Storage target name: the listing is of this target, or, "
                                             "without --listing, list it directly")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON")

    def handle(self, *args, institution: str, listing: str | None, target: str | None, json: bool, **options):
        if not listing and not target:
            raise CommandError("give --listing FILE, --target NAME, or both", returncode=2)
        inst = institution_option(institution)
        storage = None
        if target:
            storage = StorageTarget.objects.filter(institution=inst, name=target).first()
            if storage is None:
                raise CommandError(f"--target: {inst.code} has no storage target named {target!r}", returncode=2)
        if listing:
            try:
                data = Path(listing).read_bytes()
            except OSError as exc:
                raise CommandError(f"--listing {listing}: {exc.strerror}", returncode=2) from None
            result = import_listing(institution=inst, data=data, listing_name=Path(listing).name, target=storage,
                                    actor=cli_actor())
        else:
            result = reconcile_target(institution=inst, target=storage, actor=cli_actor())
        if result.status != ReconciliationImport.Status.DONE:
            raise CommandError(f"reconciliation {result.pk} failed: {result.error}", returncode=2)
        data = reconciliation_json(result)
        if json:
            self.stdout.write(_dumps(data))
        else:
            for entry in data["entries"]:
                where = entry["path"] or entry["archive"]
                self.stdout.write(f"{entry['outcome']:<18} {entry['mrn'] or '-':<12} {where} {entry['detail']}".rstrip())
        if result.needs_attention:
            counts = ", ".join(f"{n} {outcome}" for outcome, n in result.counts.items() if n and outcome != "matched")
            self.stderr.write(f"reconciliation {result.pk}: {counts}")
            raise Findings()


def _dumps(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2)
