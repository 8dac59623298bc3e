"""``manage.py rebuild_index --institution CODE [--verify] [--json]``: the archive index from the targets.

For the day the PDAS database is lost: every enabled target's ``.manifest.json`` and ``.sha256``
files become Archive, ArchivedPlan and ArchiveCopy rows again. Copies are ``uploaded`` until a
fixity check; ``--verify`` runs it now. Idempotent. Exit 0: every archive indexed. 1: something
needs a person (a target that cannot be listed, sidecars missing or damaged, a failed check).
2: bad input.
"""
from __future__ import annotations



from sites.commands import institution_option
from archiver.services.archive_index import rebuild_index
from core.commands import Findings, PdasCommand, cli_actor, dumps_json


class Command(PdasCommand):
    help = "Rebuild the institution's archive records from the sidecar files on its storage targets."

    def add_arguments(self, parser):
        parser.add_argument("--institution", required=True, help="Institution code")
        parser.add_argument("--verify", action="store_true",
                            help="Run a fixity check on every copy not verified yet (reads or hashes each archive)")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON")

    def handle(self, *args, institution: str, verify: bool, json: bool, **options):
        inst = institution_option(institution)
        report = rebuild_index(institution=inst, actor=cli_actor(), verify=verify)
        if json:
            self.stdout.write(dumps_json({"institution": inst.code, "counts": report.counts(), "created": report.created,
                                      "targets": report.targets, "problems": report.problems}))
        else:
            counts = report.counts()
            self.stdout.write(f"{counts['archives_seen']} archives on {counts['targets']} targets: "
                              f"{counts['created']} added to the index, {counts['known']} already there, "
                              f"{counts['copies_added']} copies added, {counts['verified']} verified")
            for problem in report.problems:
                self.stderr.write(f"problem: {problem}")
        if report.problems:
            raise Findings
