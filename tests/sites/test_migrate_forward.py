"""A database made by the release before the apps were split migrates forward with its data.

Institutions, targets and memberships moved to ``sites``; the TPS inventory and the archive index to
``inventory``; their tables kept their names, so the migration writes no rows, and the permissions
(and the groups that hold them) follow their models. Run on SQLite and on a real PostgreSQL.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

SCRIPT = Path(__file__).with_name("migrate_forward_script.py")
EXPECTED = {
    "institution": "OLD", "targets": ["array-1"], "patient_plans": ["LT BREAST"], "archive_plans": ["LT BREAST"],
    "copy": ["array-1", "verified"], "fixity": "A_000123_1.tar.gz", "task": ["A_000123_1.tar.gz", "alice"],
    "jobs": [  # job rows keep who asked, their status and when; a refused restore's reason is its error
        ["RestoreRecord", "carol", "refused", "2024-03-04T05:06:07+00:00", "already in the TPS"],
        ["CurationRun", "bob", "done", "2024-03-04T05:06:07+00:00", ""],
        ["LossScan", "scheduler", "done", "2024-03-04T05:06:07+00:00", ""],
        ["ReconciliationImport", "qa", "done", "2024-03-04T05:06:07+00:00", ""],
    ],
    "perms": ["inventory.view_archive", "sites.view_institution"], "pending": 0,
}


def _migrate_forward(database_url: str, tmp_path: Path) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CELERY_", "DJANGO_SETTINGS"))}
    env.update(DATABASE_URL=database_url, PDAS_DATA_DIR=str(tmp_path / "data"), PDAS_ENV="development",
               PDAS_REPO=str(settings.BASE_DIR))
    done = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_previous_release_sqlite_database_migrates_forward(tmp_path):
    assert _migrate_forward(f"sqlite:///{tmp_path / 'previous.sqlite3'}", tmp_path) == EXPECTED


@pytest.mark.servers
def test_previous_release_postgresql_database_migrates_forward(postgres_server, tmp_path):
    url = postgres_server.create_database("pdas_migrate_forward")
    assert _migrate_forward(url, tmp_path) == EXPECTED
