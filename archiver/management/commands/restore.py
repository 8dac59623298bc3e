"""``manage.py restore --institution CODE --mrn MRN [--archive NAME] [--to DIR] [--json]`` (docs/contracts.md §7).

Without ``--archive`` the newest archive is restored only when every archive of the MRN is of one
patient; two patients sharing the MRN (or one person with two Pinnacle patients) stop with the
candidates listed, exit 2. Exit 0: restored. 1: no copy of the archive passed verification (a
person must look at the storage). 2: bad input, ambiguous, the destination exists, or the TPS or
targets cannot be used. See docs/restore.md.
"""
from __future__ import annotations

from pathlib import Path

from django.core.management.base import CommandError

from inventory.models import Archive
from sites.commands import institution_option
from archiver.naming import parse_archive_name
from archiver.services.restore import (
    RestoreError, choose_candidate, ensure_indexed, find_candidates, run_restore,
)
from core.commands import PdasCommand, cli_actor, dumps_json


class Command(PdasCommand):
    help = "Restore an archived patient to the institution's restore group on the TPS, or into a folder."

    def add_arguments(self, parser):
        parser.add_argument("--institution", required=True, help="Institution code")
        parser.add_argument("--mrn", required=True, help="The patient's MRN (exact)")
        parser.add_argument("--archive", help="The archive file name, when the MRN has several candidates")
        parser.add_argument("--to", dest="to_dir", help="Restore into this folder (DIR/<patient path>) "
                                                        "instead of the TPS")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON")

    def handle(self, *args, institution: str, mrn: str, archive: str | None, to_dir: str | None, json: bool,
               **options):
        inst = institution_option(institution)
        mrn = mrn.strip()
        if not mrn:
            raise CommandError("--mrn is empty", returncode=2)
        if archive is not None and parse_archive_name(archive) is None:
            raise CommandError(f"--archive {archive!r} is not an archive file name "
                               "(<NAME>_<MRN>_<YYYYMMDDHHMMSS>.tar.gz)", returncode=2)
        if to_dir is not None and Path(to_dir).exists() and not Path(to_dir).is_dir():
            raise CommandError(f"--to {to_dir}: exists and is not a folder", returncode=2)
        actor = cli_actor()
        try:
            candidates = find_candidates(institution=inst, mrn=mrn, actor=actor)
            chosen = choose_candidate(candidates, archive_name=archive, asked=f"MRN {mrn}")
            row = (Archive.objects.get(pk=chosen.archive_id) if chosen.archive_id is not None
                   else ensure_indexed(institution=inst, name=chosen.name, actor=actor,
                                       sha256=chosen.sha256))
            record = run_restore(archive=row, institution=inst, actor=actor,
                                     to_dir=Path(to_dir) if to_dir else None)
        except RestoreError as exc:
            if json:
                self.stdout.write(dumps_json({"restored": [], "error": str(exc)}))
            raise CommandError(str(exc), returncode=exc.exit_code) from None
        for problem in candidates.unreachable:
            self.stderr.write(f"warning: not searched (its archives are unknown): {problem}")
        restored = {"archive": row.name, "tps_path": record.tps_path, "files": record.files, "bytes": record.bytes,
                    "destination": record.destination, "restore": record.pk}
        if json:
            self.stdout.write(dumps_json({"restored": [restored]}))
        else:
            self.stdout.write(f"{row.name} ({record.files} files): {record.reason}")
