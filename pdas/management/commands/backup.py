"""``manage.py backup --output FOLDER [--json]``: a consistent copy of PDAS's own database, with its SHA-256
beside it (pdas/services/backup.py; docs/operations.md, "Backup and restore"). Audited (``database.backup``)."""
from __future__ import annotations

from pathlib import Path

from django.core.management.base import CommandError

from audit.events import Event
from audit.services import record_event
from core.commands import PdasCommand, cli_actor, dumps_json
from pdas.services.backup import BackupError, backup_database


class Command(PdasCommand):
    help = "Back up PDAS's own database (pg_dump, or SQLite's online backup) into a folder, with a .sha256."

    def add_arguments(self, parser):
        parser.add_argument("--output", required=True, help="Folder the backup file is written into")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON")

    def handle(self, *args, output: str, json: bool, **options):
        try:
            backup = backup_database(folder=Path(output))
        except BackupError as exc:
            raise CommandError(str(exc), returncode=2) from None
        record_event(actor=cli_actor(), event=Event.DATABASE_BACKUP, detail=backup.as_dict())
        if json:
            self.stdout.write(dumps_json(backup.as_dict()))
        else:
            self.stdout.write(f"{backup.path} ({backup.size:,} bytes, SHA-256 {backup.sha256}, {backup.seconds:.1f} s)")
