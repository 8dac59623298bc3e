"""``manage.py restore_backup FILE --yes``: put a backup of PDAS's own database back, after checking its
``.sha256`` (pdas/services/backup.py). Stop the web server, workers and beat first. The restore is audited
(``database.restore``) in the restored log, after its last row."""
from __future__ import annotations

from pathlib import Path

from django.core.management.base import CommandError

from audit.events import Event
from audit.services import record_event
from core.commands import PdasCommand, cli_actor
from pdas.services.backup import BackupError, checked_backup, restore_database


class Command(PdasCommand):
    help = "Replace PDAS's database with a backup made by 'manage.py backup' (checked against its .sha256 first)."

    def add_arguments(self, parser):
        parser.add_argument("file", help="The backup file (its .sha256 beside it)")
        parser.add_argument("--yes", action="store_true", help="Replace the database's content (required)")

    def handle(self, *args, file: str, yes: bool, **options):
        try:
            backup = checked_backup(Path(file))
            if not yes:
                raise CommandError(f"{backup.path} is intact; add --yes to replace the database with it "
                                   "(stop the web server, workers and beat first)", returncode=2)
            restore_database(backup)
        except BackupError as exc:
            raise CommandError(str(exc), returncode=2) from None
        record_event(actor=cli_actor(), event=Event.DATABASE_RESTORE,
                     detail={"file": str(backup.path), "sha256": backup.sha256})
        self.stdout.write(f"restored {backup.path}")
