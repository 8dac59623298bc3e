"""Backups of PDAS's own database (docs/operations.md, "Backup and restore").

The archives themselves are on the storage targets and the index can be rebuilt from them
(``rebuild_index``); what only this database holds is the rest: runs, findings, scans, acknowledgements,
aliases, the audit log. ``backup`` writes one consistent copy: ``pg_dump --format=custom`` of a PostgreSQL
database (run beside a live PDAS: pg_dump reads one snapshot), or SQLite's online backup of the embedded
database. The file is written under a temporary name, then renamed, with a ``.sha256`` beside it.
``restore_backup`` checks that digest before it touches anything, then replaces the database's content
(PostgreSQL: ``pg_restore --clean --if-exists --single-transaction``, as the database's owner).

Passwords reach pg_dump and pg_restore in the environment (``PGPASSWORD``), never on a command line.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from django.db import connection

SIDECAR = ".sha256"
CHUNK = 1 << 20


class BackupError(Exception):
    """One line: what could not be backed up or restored, and why."""


@dataclass(frozen=True)
class Backup:
    path: Path
    vendor: str
    size: int
    sha256: str
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"file": str(self.path), "database": self.vendor, "size": self.size, "sha256": self.sha256,
                "seconds": round(self.seconds, 2)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while data := handle.read(CHUNK):
            digest.update(data)
    return digest.hexdigest()


def _pg_command(tool: str) -> tuple[list[str], dict[str, str]]:
    """The connection arguments of the default database for pg_dump/pg_restore, and their environment."""
    if shutil.which(tool) is None:
        raise BackupError(f"{tool} is not installed (Debian package postgresql-client)")
    settings = connection.settings_dict
    args = [tool, "--dbname", settings["NAME"]]
    if settings.get("HOST"):
        args += ["--host", settings["HOST"]]
    if settings.get("PORT"):
        args += ["--port", str(settings["PORT"])]
    if settings.get("USER"):
        args += ["--username", settings["USER"]]
    env = {**os.environ, "PGPASSWORD": settings.get("PASSWORD") or "", "PGCONNECT_TIMEOUT": "15"}
    return args, env


def _first_line(output: bytes) -> str:
    text = output.decode("utf-8", "replace").strip()
    return text.splitlines()[-1] if text else "no message"


def backup_database(*, folder: Path, now: dt.datetime | None = None) -> Backup:
    """Write a backup of the default database into ``folder``; ``BackupError`` when it cannot."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"{folder}: cannot create the folder ({exc.strerror})") from None
    vendor = connection.vendor
    stamp = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    final = folder / f"pdas-{vendor}-{stamp}.{'dump' if vendor == 'postgresql' else 'sqlite3'}"
    if final.exists():
        raise BackupError(f"{final}: already exists")
    temporary = folder / f".{final.name}.part"
    started = time.monotonic()
    try:
        if vendor == "postgresql":
            args, env = _pg_command("pg_dump")
            done = subprocess.run([*args, "--format=custom", "--file", str(temporary)], env=env,
                                  capture_output=True, timeout=6 * 3600, check=False)
            if done.returncode != 0:
                raise BackupError(f"pg_dump failed: {_first_line(done.stderr)}")
        elif vendor == "sqlite":
            connection.ensure_connection()
            target = sqlite3.connect(temporary)
            try:
                connection.connection.backup(target)  # online: a consistent copy while PDAS runs
            finally:
                target.close()
        else:
            raise BackupError(f"backups of a {vendor} database are not built in: use the database's own tool")
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, final)
    except OSError as exc:
        raise BackupError(f"{final}: cannot write ({exc.strerror})") from None
    finally:
        temporary.unlink(missing_ok=True)
    digest = _sha256(final)
    Path(f"{final}{SIDECAR}").write_text(f"{digest}  {final.name}\n")
    return Backup(final, vendor, final.stat().st_size, digest, time.monotonic() - started)


def checked_backup(path: Path) -> Backup:
    """The backup at ``path`` once its bytes match its ``.sha256``; ``BackupError`` otherwise."""
    path = Path(path)
    sidecar = Path(f"{path}{SIDECAR}")
    try:
        expected = sidecar.read_text().split()[0].lower()
    except (OSError, IndexError):
        raise BackupError(f"{sidecar}: missing or empty; a backup is restored only with its digest") from None
    try:
        digest = _sha256(path)
    except OSError as exc:
        raise BackupError(f"{path}: cannot read ({exc.strerror})") from None
    if digest != expected:
        raise BackupError(f"{path}: SHA-256 {digest} is not the {expected} of {sidecar.name}: damaged; nothing restored")
    vendor = "postgresql" if path.suffix == ".dump" else "sqlite"
    return Backup(path, vendor, path.stat().st_size, digest)


def restore_database(backup: Backup) -> None:
    """Replace the default database's content with ``backup`` (checked by ``checked_backup``)."""
    if backup.vendor != connection.vendor:
        raise BackupError(f"{backup.path}: a {backup.vendor} backup cannot be restored into a {connection.vendor} "
                          "database")
    if backup.vendor == "postgresql":
        connection.close()  # pg_restore --clean drops the tables this process would hold open
        args, env = _pg_command("pg_restore")
        done = subprocess.run([*args, "--clean", "--if-exists", "--single-transaction", "--exit-on-error",
                               str(backup.path)], env=env, capture_output=True, timeout=6 * 3600, check=False)
        if done.returncode != 0:
            raise BackupError(f"pg_restore failed, nothing changed: {_first_line(done.stderr)}")
        return
    source = sqlite3.connect(backup.path)
    try:
        connection.ensure_connection()
        source.backup(connection.connection)
    finally:
        source.close()
