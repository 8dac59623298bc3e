"""On PostgreSQL the audit table is append-only in the database itself: the trigger refuses UPDATE and
DELETE to every role, the owner's included, and the app's role set up by deploy/postgresql-app-role.sql
cannot update, delete or truncate audit rows at all, yet PDAS runs with it (appends, verifies, and
concurrent writers keep one unbroken chain). The insert check (audit/0004_mac_and_insert_check) refuses
a back-dated row, a row out of the chain and a row whose hash is not the hash of its content, computed
in SQL exactly as Python does; a row it lets in without PDAS's key fails verify_audit on its MAC."""
from __future__ import annotations

import datetime as dt
import json
import os
import random
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

from audit.models import AuditEvent
from audit.services import stored_form

pytestmark = pytest.mark.servers
ROLE_SQL = Path(settings.BASE_DIR) / "deploy" / "postgresql-app-role.sql"
# One database per xdist worker: the module's tests may be spread over workers sharing one server.
DATABASE = "_".join(filter(None, ("pdas_audit_roles", os.environ.get("PYTEST_XDIST_WORKER"))))


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


def _python_json(value) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


TRICKY_VALUES = [
    {}, [], None, True, False, 0, -7, 2**70, -(2**64), "", "plain", 'quote " and \\ backslash',
    "".join(chr(code) for code in range(1, 32)) + "\x7f\u2028\u2029", "中文 Ünïcödé 😀 ｱ",
    {"b": 1, "a": 2, "é": 3, "Z": 4, "aa": 5, "😀": 6, "ｱ": 7, "": 8, "a\nb": 9},
    {"nested": [{"y": [1, 2.5, None, {"z": "\t"}]}, [], {}], "count": 3, "ok": True},
    0.1, 1.0, -2.5, 100.0, 1e-4, 1e-5, 1.5e-7, 123456.789, 1e15, 9007199254740993.0, 1e16, 1.5e16, 1e22,
    -1e300, 5e-324, 2.2250738585072014e-308, 1 / 3, -0.0, float(2**53),
]


def test_the_database_writes_json_exactly_as_python_does(app_database):
    """What the insert check hashes: every kind of JSON value, and thousands of floats over the whole range."""
    owner_url, _app_url, _role, _tmp = app_database
    rng = random.Random(20261126)
    floats = [rng.uniform(-10, 10) * 10.0 ** rng.randint(-320, 300) for _ in range(3000)]
    floats += [rng.randint(1, 10**rng.randint(1, 17)) / 10 ** rng.randint(0, 20) for _ in range(2000)]
    with _connect(owner_url) as owner:
        for value in [*TRICKY_VALUES, floats, {"detail": floats[:50], "mrns": ["000001", "中"]}]:
            written = stored_form(value)  # what record_event hashes
            got = owner.execute("SELECT audit_py_json(%s::jsonb)", [json.dumps(written)]).fetchone()[0]
            assert got == _python_json(written), value
            # ... which is also what verify_audit hashes, from the stored value read back
            read_back = owner.execute("SELECT %s::jsonb::text", [json.dumps(written)]).fetchone()[0]
            assert _python_json(json.loads(read_back)) == got, value


def _row_for(app: psycopg.Connection, *, at: dt.datetime | None = None, prev_hash: str | None = None,
             detail=None) -> AuditEvent:
    """A row as an intruder with the app's role would write it: a correct hash and link, but no key."""
    head = app.execute("SELECT hash FROM audit_auditevent ORDER BY id DESC LIMIT 1").fetchone()
    now = app.execute("SELECT clock_timestamp()").fetchone()[0].astimezone(dt.timezone.utc)
    row = AuditEvent(at=at or now, actor="intruder", event="export", institution="PUMCH", mrns=["000001"],
                     object_type="", object_id="", outcome="ok", detail=stored_form(detail or {"rows": 1}),
                     prev_hash=head[0] if prev_hash is None else prev_hash)
    row.hash = row.compute_hash()
    return row


def _insert(app: psycopg.Connection, row: AuditEvent, *, id: int | None = None, hash: str | None = None) -> None:
    columns = "at, actor, event, institution, mrns, object_type, object_id, outcome, detail, prev_hash, hash, mac, mac_key"
    values = [row.at, row.actor, row.event, row.institution, json.dumps(row.mrns), row.object_type, row.object_id,
              row.outcome, json.dumps(row.detail), row.prev_hash, hash or row.hash, "", ""]
    if id is not None:
        columns, values = "id, " + columns, [id, *values]
    placeholders = ", ".join(["%s"] * len(values))
    app.execute(f"INSERT INTO audit_auditevent ({columns}) VALUES ({placeholders})", values)


def test_the_app_role_cannot_insert_a_back_dated_or_out_of_chain_row(app_database):
    _owner_url, app_url, _role, tmp_path = app_database
    assert _manage(app_url, tmp_path, "verify_audit").returncode == 0
    with _connect(app_url) as app:
        count = app.execute("SELECT count(*) FROM audit_auditevent").fetchone()[0]
        refused = {
            "its time": lambda: _insert(app, _row_for(app, at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3))),
            "in the future": lambda: _insert(app, _row_for(app, at=dt.datetime.now(dt.timezone.utc)
                                                           + dt.timedelta(minutes=5))),
            "it does not link to the last row": lambda: _insert(app, _row_for(app, prev_hash="1" * 64)),
            "its hash is not the hash of its content": lambda: _insert(app, _row_for(app), hash="f" * 64),
            "id 0 is not after the last row": lambda: _insert(app, _row_for(app), id=0),
        }
        for reason, attempt in refused.items():
            with pytest.raises(errors.CheckViolation, match="audit event refused: " + (
                    "its time" if reason == "in the future" else reason)):
                attempt()
        assert app.execute("SELECT count(*) FROM audit_auditevent").fetchone()[0] == count


def test_a_row_the_check_lets_in_without_the_key_fails_its_mac(app_database, postgres_server):
    """Correct time, link and hash (tricky content too, to show the SQL hash agrees): the database takes it,
    verify_audit names it. Removed afterwards by the owner, the triggers switched off for that."""
    _owner_url, app_url, _role, tmp_path = app_database
    assert _manage(app_url, tmp_path, "verify_audit").returncode == 0
    with _connect(app_url) as app:
        row = _row_for(app, detail={"tricky": TRICKY_VALUES})
        _insert(app, row)
        forged_id = app.execute("SELECT max(id) FROM audit_auditevent").fetchone()[0]
    try:
        verified = _manage(app_url, tmp_path, "verify_audit")
        assert verified.returncode == 1
        assert verified.stderr.strip().startswith(f"audit chain broken at event {forged_id}: it has no MAC, though "
                                                  "rows before it have one"), verified.stderr
    finally:
        with postgres_server.connect(DATABASE) as owner:
            owner.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
            owner.execute("DELETE FROM audit_auditevent WHERE id >= %s", [forged_id])
            owner.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")
    assert _manage(app_url, tmp_path, "verify_audit").returncode == 0


def test_a_row_at_a_whole_second_hashes_alike(app_database):
    """Python writes the time without microseconds when they are 0; so does the SQL."""
    _owner_url, app_url, _role, _tmp = app_database
    with _connect(app_url) as app, app.transaction(force_rollback=True):
        row = _row_for(app)
        row.at = row.at.replace(microsecond=0)
        row.hash = row.compute_hash()
        _insert(app, row)  # accepted: the hash the SQL computes is Python's (and rolled back)
