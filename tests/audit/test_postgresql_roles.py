"""On PostgreSQL the audit table is append-only in the database itself: the trigger refuses UPDATE and
DELETE to every role, the owner's included, and the app's role set up by deploy/postgresql-app-role.sql
cannot update, delete or truncate audit rows at all, yet PDAS runs with it (appends, verifies, and
concurrent writers keep one unbroken chain)."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from django.conf import settings
from psycopg import errors, sql

pytestmark = pytest.mark.servers
ROLE_SQL = Path(settings.BASE_DIR) / "deploy" / "postgresql-app-role.sql"
DATABASE = "pdas_audit_roles"


def _manage(database_url: str, tmp_path: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CELERY_", "DJANGO_SETTINGS"))}
    env.update(DATABASE_URL=database_url, PDAS_DATA_DIR=str(tmp_path / "data"), PDAS_ENV="development")
    return subprocess.run([sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def app_database(postgres_server, tmp_path_factory):
    """A migrated database and a role granted as deploy/postgresql-app-role.sql says: (owner URL, app URL, role)."""
    tmp_path = tmp_path_factory.mktemp("pg-roles")
    owner_url = postgres_server.create_database(DATABASE)
    migrated = _manage(owner_url, tmp_path, "migrate", "--no-input")
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    role, password = f"pdas_app_{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    statements = "\n".join(line for line in ROLE_SQL.read_text().splitlines() if not line.startswith("--"))
    statements = statements.replace("DATABASE pdas ", f"DATABASE {DATABASE} ").replace("pdas_app", role)
    with postgres_server.connect() as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
    with postgres_server.connect(DATABASE) as owner:
        owner.execute(statements)
    app_url = (f"postgres://{role}:{quote(password, safe='')}@{postgres_server.host}:{postgres_server.port}/"
               f"{DATABASE}")
    yield owner_url, app_url, role, tmp_path
    with postgres_server.connect(DATABASE) as owner:
        owner.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
    with postgres_server.connect() as admin:
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def _connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True, connect_timeout=5)


def test_the_app_role_appends_and_verifies(app_database):
    _owner_url, app_url, _role, tmp_path = app_database

    first = _manage(app_url, tmp_path, "verify_audit")
    second = _manage(app_url, tmp_path, "verify_audit")

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0 and second.stdout.startswith("audit chain intact: 1 events"), second.stdout


def test_the_app_role_cannot_update_delete_or_truncate_audit_rows(app_database):
    _owner_url, app_url, _role, tmp_path = app_database
    assert _manage(app_url, tmp_path, "verify_audit").returncode == 0  # at least one row to aim at
    with _connect(app_url) as app:
        for statement in ("UPDATE audit_auditevent SET actor = 'x'", "DELETE FROM audit_auditevent",
                          "TRUNCATE audit_auditevent"):
            with pytest.raises(errors.InsufficientPrivilege, match="permission denied"):
                app.execute(statement)
        app.execute("UPDATE archiver_institution SET name = name")  # the other tables stay writable
        assert app.execute("SELECT count(*) FROM audit_auditevent").fetchone()[0] >= 1


def test_the_trigger_refuses_even_the_owner(app_database):
    owner_url, _app_url, _role, tmp_path = app_database
    assert _manage(owner_url, tmp_path, "verify_audit").returncode == 0
    with _connect(owner_url) as owner:
        for statement in ("UPDATE audit_auditevent SET actor = 'x'", "DELETE FROM audit_auditevent"):
            with pytest.raises(errors.InsufficientPrivilege, match="audit events are append-only"):
                owner.execute(statement)


def test_concurrent_writers_keep_one_chain(app_database):
    """Two processes appending at once: each row links to the one before (the chain head is locked)."""
    _owner_url, app_url, _role, tmp_path = app_database
    script = ("from audit.services import record_event\n"
              "for n in range(40): record_event(actor='w', event='export', mrns=[str(n)])")

    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _: _manage(app_url, tmp_path, "shell", "-c", script), range(2)))

    assert all(run.returncode == 0 for run in runs), [run.stderr[-1000:] for run in runs]
    verified = _manage(app_url, tmp_path, "verify_audit")
    assert verified.returncode == 0, verified.stderr
    with _connect(app_url) as app:
        assert app.execute("SELECT count(*) FROM audit_auditevent WHERE event = 'export'").fetchone()[0] == 80
