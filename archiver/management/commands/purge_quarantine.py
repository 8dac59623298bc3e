"""``manage.py purge_quarantine --institution CODE [--json]``: delete quarantined originals past their time.

Only while their archive is safely stored, after re-checking its copies on the targets right before
deleting (docs/keeping.md); the others are kept, with the reason. Exit 0, or 1 when something past its
time was kept; 2 on bad input or an unreachable TPS.
"""
from __future__ import annotations


from django.core.management.base import CommandError

from archiver.services.purge import purge_quarantine
from connectors.tps.base import TpsError
from core.commands import Findings, PdasCommand, cli_actor, dumps_json
from sites.connections import open_institution_tps
from sites.commands import institution_option


class Command(PdasCommand):
    help = "Delete quarantined originals past their keeping time whose archive is safely stored."

    def add_arguments(self, parser):
        parser.add_argument("--institution", required=True, help="Institution code")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON")

    def handle(self, *args, institution: str, json: bool, **options):
        inst = institution_option(institution)
        try:
            with open_institution_tps(inst) as source:
                report = purge_quarantine(institution=inst, source=source, actor=cli_actor())
        except TpsError as exc:
            raise CommandError(f"TPS of {inst.code}: {exc}", returncode=2) from None
        if json:
            self.stdout.write(dumps_json(report.as_dict()))
        else:
            self.stdout.write(f"purged {len(report.purged)}, kept {len(report.kept)}")
            for kept in report.kept:
                self.stdout.write(f"kept {kept['tps_path']} ({kept['mrn']}): {kept['reason']}")
        if report.kept:
            raise Findings
