"""What every benchmark shares: a throw-away SQLite database under the run's work folder, migrated."""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def setup_django(work: Path, *, fast: bool = False, test_client: bool = False) -> None:
    """Point PDAS at ``work`` (database and data folder), in embedded mode, and migrate. ``fast``: a
    throw-away database without journal or fsync; ``test_client``: Django's test client may call pages."""
    os.environ["PDAS_DATA_DIR"] = str(work)
    if test_client:
        os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver"
    os.environ["DATABASE_URL"] = f"sqlite:///{work / 'bench.sqlite3'}"
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pdas.settings")
    os.environ.setdefault("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
    if str(REPO) not in sys.path[:1]:
        sys.path.insert(0, str(REPO))  # first: the script's own folder would make ``reports`` a script
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    if fast:
        with connection.cursor() as cursor:  # a throw-away database: speed over durability
            cursor.execute("PRAGMA journal_mode=OFF")
            cursor.execute("PRAGMA synchronous=OFF")
