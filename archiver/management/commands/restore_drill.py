"""``manage.py restore_drill --institution CODE [--target NAME] [--json]``: restore one random archive per
target into a scratch folder on this server and compare it with its manifest (docs/keeping.md).

JSON: ``{"drills": [{"target", "archive", "mrn", "outcome", "files", "bytes", "seconds", "reason"}]}``.
Exit 0 when every drill passed, 1 when one failed or could not read its target, 2 on bad input.
"""
from __future__ import annotations

from archiver.services.drills import run_drills
from core.commands import Findings, PdasCommand, cli_actor, dumps_json
from sites.commands import institution_option, target_option


class Command(PdasCommand):
    help = "Restore a random archive from each storage target into a scratch folder and compare it with its manifest."

    def add_arguments(self, parser):
        parser.add_argument("--institution", required=True, help="Institution code")
        parser.add_argument("--target", help="Only this storage target (its name)")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON")

    def handle(self, *args, institution: str, target: str | None, json: bool, **options):
        inst = institution_option(institution)
        chosen = target_option(inst, target)
        drills = run_drills(institution=inst, actor=cli_actor(), target=chosen)
        rows = [{"target": d.target.name, "archive": d.archive.name, "mrn": d.archive.mrn, "outcome": d.outcome,
                 "files": d.files, "bytes": d.bytes, "seconds": d.seconds, "reason": d.reason} for d in drills]
        if json:
            self.stdout.write(dumps_json({"drills": rows}))
        else:
            if not rows:
                self.stdout.write("no target holds a verified copy: nothing to drill")
            for row in rows:
                self.stdout.write(f"{row['outcome']:7} {row['target']}: {row['archive']} — {row['reason']}")
        if any(d.outcome != d.Outcome.PASS for d in drills):
            raise Findings
