"""PostgreSQL for tests: a throw-away cluster on a free loopback port.

    python -m tests.servers.postgres -- pytest -q      # runs the command with DATABASE_URL set

starts a cluster (initdb + postgres from the installed Debian binaries), runs the command with
``DATABASE_URL`` pointing at it, stops the cluster, deletes its files and exits with the command's
status. PostgreSQL refuses to run as root, so under root the cluster runs as the ``postgres``
account (created as ``pdas-postgres`` if the package did not). Data safety settings (fsync,
synchronous commit) are off: the cluster lives for one run.

The ``postgres_server`` fixture yields a cluster for tests that need PostgreSQL explicitly; when
``DATABASE_URL`` already points at PostgreSQL (the second half of ``deploy/dev.sh test``) it is
reused instead of starting another. ``postgres_disposable`` is a cluster of one test's own, which the
test may restart (``restart()``: every connection dropped, the same port and files).
"""
from __future__ import annotations

import argparse
import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from urllib.parse import quote, urlsplit, unquote

import psycopg
import pytest
from psycopg import sql

from tests.servers.ports import HOST, free_port
from tests.servers.process import ServerProcess, require_binary, start_on_free_port

SUPERUSER = "pdas"
DATABASE = "pdas"


@dataclass
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    database: str
    process: ServerProcess | None = None  # None: a server this session did not start
    base_dir: Path | None = None
    _created: list[str] = field(default_factory=list)

    def url_for(self, database: str) -> str:
        return f"postgres://{quote(self.user, safe='')}:{quote(self.password, safe='')}@{self.host}:{self.port}/{database}"

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    def connect(self, database: str | None = None) -> psycopg.Connection:
        return psycopg.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                               dbname=database or self.database, connect_timeout=5, autocommit=True)

    def create_database(self, name: str) -> str:
        """A fresh, empty database (dropped first if a previous run left it); returns its URL."""
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self._created.append(name)
        return self.url_for(name)

    def drop_created_databases(self) -> None:
        with self.connect() as conn:
            for name in self._created:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        self._created.clear()

    def restart(self, *, timeout: float = 30) -> None:
        """Stop the server and start it again on the same port and files, and wait until it answers. The
        stop is PostgreSQL's fast shutdown: every client connection is dropped at once, as in a real restart.
        Only a server this process started can be restarted (not one ``DATABASE_URL`` names: a session's
        shared server is never restarted under its other tests; start a disposable one instead)."""
        if self.process is None:
            raise RuntimeError(f"PostgreSQL on {self.host}:{self.port} was not started here and cannot be restarted")
        old = self.process
        old.stop(timeout=20)
        again = ServerProcess(old.name, old.argv, log_path=old.log_path, cwd=old.cwd, user=old.user, group=old.group,
                              stop_signal=old.stop_signal)
        self.process = again.start()
        again.wait_ready(lambda: _answers(self.port, self.password), timeout=timeout)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=20)
        if self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)


def pg_bindir() -> Path:
    """The newest installed server's bin directory (Debian keeps initdb off PATH)."""
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                      key=lambda path: int(Path(path).parent.parent.name) if Path(path).parent.parent.name.isdigit() else 0)
    if versions:
        return Path(versions[-1]).parent
    return Path(require_binary("initdb", package="postgresql")).parent


def _cluster_owner() -> str | None:
    """The account the server runs as under root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "pdas-postgres"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "pdas-postgres"],
                   check=False, capture_output=True)  # status 9 (exists) means another session just made it
    pwd.getpwnam("pdas-postgres")
    return "pdas-postgres"


def _answers(port: int, password: str) -> bool:
    try:
        with psycopg.connect(host=HOST, port=port, user=SUPERUSER, password=password, dbname="postgres",
                             connect_timeout=1) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def start_postgres() -> PostgresServer:
    bindir = pg_bindir()
    owner = _cluster_owner()
    # Outside pytest's 0700 temp tree, so the unprivileged owner can reach it.
    base = Path(tempfile.mkdtemp(prefix="pdas-pg-"))
    password = secrets.token_urlsafe(18)
    pwfile = base / "pwfile"
    pwfile.write_text(password + "\n")
    pwfile.chmod(0o600)
    if owner:
        shutil.chown(base, owner)
        shutil.chown(pwfile, owner)
    as_owner = {"user": owner, "group": pwd.getpwnam(owner).pw_gid, "extra_groups": []} if owner else {}
    initdb = subprocess.run(
        [bindir / "initdb", "-D", base / "data", "-U", SUPERUSER, f"--pwfile={pwfile}", "--auth=scram-sha-256",
         "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"],
        cwd=base, capture_output=True, text=True, **as_owner)
    if initdb.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"initdb failed ({initdb.returncode}): {(initdb.stderr or initdb.stdout).strip()[-800:]}")

    def make(port: int) -> ServerProcess:
        argv = [bindir / "postgres", "-D", base / "data", "-p", str(port), "-c", f"listen_addresses={HOST}",
                "-c", "unix_socket_directories=", "-c", "fsync=off", "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off", "-c", "max_connections=60"]
        # SIGINT is PostgreSQL's "fast" shutdown: it does not wait for clients to disconnect.
        return ServerProcess("postgres", argv, log_path=base / "postgres.log", cwd=base,
                             user=owner, group=as_owner.get("group"), stop_signal=signal.SIGINT)

    try:
        process, port = start_on_free_port(make, lambda port: _answers(port, password), pick_port=free_port)
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    server = PostgresServer(host=HOST, port=port, user=SUPERUSER, password=password, database=DATABASE,
                            process=process, base_dir=base)
    with server.connect("postgres") as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    return server


def server_from_url(url: str) -> PostgresServer:
    parts = urlsplit(url)
    return PostgresServer(host=parts.hostname or HOST, port=parts.port or 5432, user=unquote(parts.username or ""),
                          password=unquote(parts.password or ""), database=parts.path.lstrip("/") or "postgres")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A running PostgreSQL: the one DATABASE_URL names if it is PostgreSQL, else a cluster for this session.

    Use ``postgres_server.create_database(name)`` for a database of your own (MOSAIQ fixtures);
    those are dropped at the end of the session.
    """
    current = os.environ.get("DATABASE_URL", "")
    if current.startswith(("postgres://", "postgresql://")):
        server = server_from_url(current)
    else:
        require_binary("initdb", *glob.glob("/usr/lib/postgresql/*/bin/initdb"), package="postgresql")
        server = start_postgres()
    try:
        yield server
    finally:
        try:
            server.drop_created_databases()
        finally:
            server.stop()


@pytest.fixture
def postgres_disposable() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster of this test's own (about a second to start), to restart or stop: ``restart()``."""
    require_binary("initdb", *glob.glob("/usr/lib/postgresql/*/bin/initdb"), package="postgresql")
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.servers.postgres",
                                     description="Run a command with DATABASE_URL set to a throw-away PostgreSQL.")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (usage: python -m tests.servers.postgres -- COMMAND ...)")

    def stop_on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop_on_signal)
    signal.signal(signal.SIGINT, stop_on_signal)
    try:
        server = start_postgres()
    except Exception as exc:
        print(f"tests.servers.postgres: cannot start PostgreSQL: {exc}", file=sys.stderr)
        return 2
    print(f"tests.servers.postgres: PostgreSQL on {HOST}:{server.port} (database {DATABASE}, files {server.base_dir})",
          file=sys.stderr, flush=True)
    try:
        env = {**os.environ, "DATABASE_URL": server.url}
        child = subprocess.Popen(command, env=env)
        try:
            code = child.wait()
        except BaseException:
            child.terminate()
            child.wait()
            raise
        return 128 - code if code < 0 else code
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
