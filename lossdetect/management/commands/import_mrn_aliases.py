"""``manage.py import_mrn_aliases FILE [--institution CODE] [--json]``: MRN aliases from a CSV file.

The file's header is ``old_mrn,new_mrn,reason`` (the reason may be empty); UTF-8 with or without a
byte-order mark, or GB18030. Each row is added, unchanged (already recorded) or refused with its row
number and reason (docs/contracts.md §7; docs/loss-detection.md, "MRN changes and merges").
``--institution`` may be left out when there is one institution only.

Exit 0: every row added or unchanged. 1: some rows were refused (a person must look; the others
were added). 2: the file cannot be read, its header is wrong, or the institution is unknown.
"""
from __future__ import annotations

from pathlib import Path

from django.core.management.base import CommandError

from core.commands import Findings, PdasCommand, cli_actor, dumps_json
from lossdetect.services.aliases import AliasFileError, import_mrn_aliases
from sites.commands import institution_option
from sites.models import Institution


def _institution(code: str | None) -> Institution:
    if code:
        return institution_option(code)
    institutions = list(Institution.objects.order_by("code")[:2])
    if len(institutions) == 1:
        return institutions[0]
    if not institutions:
        raise CommandError("no institution is configured: load the site configuration first", returncode=2)
    raise CommandError("there are several institutions: name the one the aliases belong to with --institution CODE",
                       returncode=2)


class Command(PdasCommand):
    help = "Import MRN aliases (old_mrn,new_mrn,reason) from a CSV file."

    def add_arguments(self, parser):
        parser.add_argument("file", help="CSV file with the header old_mrn,new_mrn,reason")
        parser.add_argument("--institution", help="Institution code (needed when there are several)")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON")

    def handle(self, *args, file: str, institution: str | None, json: bool, **options):
        inst = _institution(institution)
        try:
            report = import_mrn_aliases(institution=inst, path=Path(file), actor=cli_actor())
        except AliasFileError as exc:
            raise CommandError(str(exc), returncode=2) from None
        if json:
            self.stdout.write(dumps_json(report.as_dict()))
        else:
            for pair in report.added:
                self.stdout.write(f"added      {pair['old_mrn']} -> {pair['mrn']}")
            for pair in report.unchanged:
                self.stdout.write(f"unchanged  {pair['old_mrn']} -> {pair['mrn']}")
            self.stdout.write(f"{file}: {len(report.added)} added, {len(report.unchanged)} unchanged, "
                              f"{len(report.errors)} refused ({inst.code})")
        for error in report.errors:
            self.stderr.write(f"{file}: row {error['row']}: {error['error']}")
        if report.errors:
            raise Findings()
