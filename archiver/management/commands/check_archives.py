"""``manage.py check_archives --institution CODE [--target NAME] [--all] [--repair] [--json]``.

Checks the institution's archive copies where they are stored (docs/keeping.md): the presence and
size of every copy from one listing per target, and the full check (digest measured on the target, or
the file read back) of what the rolling cycle says is due; ``--all`` fully checks every copy now.
With ``--repair`` a missing or corrupt copy is re-made from a verified copy on another target, and the
status printed is the one after repair. Exit 0 when every copy checked is ``verified``, 1 otherwise,
2 on bad input.
"""
from __future__ import annotations

from archiver.services.fixity import check_archives
from core.commands import Findings, PdasCommand, cli_actor, dumps_json
from sites.commands import institution_option, target_option


class Command(PdasCommand):
    help = "Check (and optionally repair) the institution's archive copies on their storage targets."

    def add_arguments(self, parser):
        parser.add_argument("--institution", required=True, help="Institution code")
        parser.add_argument("--target", help="Only this storage target (its name)")
        parser.add_argument("--all", action="store_true", help="Fully check every copy now, not only what is due")
        parser.add_argument("--repair", action="store_true",
                            help="Re-make missing or corrupt copies from a verified copy on another target")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON")

    def handle(self, *args, institution: str, target: str | None, all: bool, repair: bool, json: bool, **options):
        inst = institution_option(institution)
        storage_target = target_option(inst, target)
        report = check_archives(institution=inst, actor=cli_actor(), target=storage_target, check_all=all,
                                repair=repair)
        if json:
            self.stdout.write(dumps_json(report.as_dict()))
        else:
            summary = report.summary()
            self.stdout.write(", ".join(f"{key} {value}" for key, value in summary.items()))
            for copy in report.copies:
                if copy.status != "verified":
                    self.stdout.write(f"{copy.status}: {copy.archive} on {copy.target}: {copy.reason}")
            if report.renditions is not None and report.renditions.copies:
                self.stdout.write("renditions: " + ", ".join(f"{key} {value}" for key, value in
                                                             report.renditions.summary().items()))
                for item in report.renditions.copies:
                    if item.status != "stored":
                        self.stdout.write(f"{item.status}: {item.rendition} on {item.target}: {item.reason}")
        if not report.all_verified:
            raise Findings
