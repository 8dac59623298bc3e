"""``celery_worker``: a real ``celery -A pdas worker`` process on the test Redis and the test database.

``celery_worker_process`` (session) runs the worker; ``celery_worker`` (per test) also needs
``transactional_db`` (the worker is another process: it sees only committed rows), points this
process's Celery app and Django settings at the broker with ``task_always_eager=False`` for the
test, and afterwards purges what the test left queued and restores the embedded mode.

``celery_worker.kill()`` SIGKILLs the worker and its pool child, as a crash would;
``.restart()`` starts a new one. A task that was running when the worker was killed is not
redelivered until the broker's visibility timeout (hours, see settings): crash tests rerun the
job, as an operator would.
"""
from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

import pytest
from celery import Celery
from kombu import pools as kombu_pools

from tests.servers.process import REPO_ROOT, ServerProcess


def worker_database_url() -> str:
    """A DATABASE_URL naming the test database this process uses (after pytest-django created it)."""
    from django.db import connections

    database = connections["default"].settings_dict
    engine = database["ENGINE"]
    name = str(database["NAME"])
    if engine == "django.db.backends.sqlite3":
        if name == ":memory:" or "mode=memory" in name:
            raise RuntimeError("the SQLite test database is in memory; a worker process cannot share it "
                               "(tests/conftest.py makes it a file)")
        return f"sqlite:///{Path(name).resolve()}"
    if engine == "django.db.backends.postgresql":
        credentials = quote(database.get("USER") or "", safe="")
        if database.get("PASSWORD"):
            credentials += ":" + quote(database["PASSWORD"], safe="")
        return f"postgres://{credentials}@{database.get('HOST') or '127.0.0.1'}:{database.get('PORT') or 5432}/{name}"
    raise RuntimeError(f"no DATABASE_URL form for the test database engine {engine}")


class CeleryWorker:
    """One worker process (pool ``prefork`` with one child, or ``solo``), restartable."""

    def __init__(self, *, broker_url: str, database_url: str, workdir: Path, pool: str = "prefork",
                 extra_env: dict[str, str] | None = None):
        self.broker_url = broker_url
        self.database_url = database_url
        self.workdir = workdir
        self.pool = pool
        self.extra_env = dict(extra_env or {})
        self.nodename = f"pdas-test-{uuid.uuid4().hex[:8]}@localhost"
        self.control = Celery("pdas-test-control", broker=broker_url, set_as_current=False)
        self.process: ServerProcess | None = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.alive

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "pdas.settings",
            "DATABASE_URL": self.database_url,
            "CELERY_BROKER_URL": self.broker_url,
            "CELERY_RESULT_BACKEND": self.broker_url,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
            **self.extra_env,
        }

    def answers_ping(self, timeout: float = 0.5) -> bool:
        replies = self.control.control.ping(destination=[self.nodename], timeout=timeout)
        return any(self.nodename in reply for reply in replies)

    def start(self, *, timeout: float = 90) -> "CeleryWorker":
        argv = [sys.executable, "-m", "celery", "-A", "pdas", "worker", "--pool", self.pool, "--concurrency", "1",
                "--loglevel", "INFO", "-n", self.nodename, "--without-gossip", "--without-mingle",
                "--without-heartbeat", "-O", "fair"]
        self.process = ServerProcess("celery worker", argv, log_path=self.workdir / "celery-worker.log",
                                     env=self._env(), cwd=REPO_ROOT).start()
        self.process.wait_ready(self.answers_ping, timeout=timeout)
        return self

    def kill(self) -> None:
        """SIGKILL the worker and its pool child: no warm shutdown, no acknowledgement."""
        if self.process is not None:
            self.process.kill()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=20)

    def restart(self, *, extra_env: dict[str, str] | None = None) -> "CeleryWorker":
        if self.alive:
            self.stop()
        if extra_env is not None:
            self.extra_env = dict(extra_env)
        return self.start()

    def purge(self) -> int:
        """Drop messages still waiting in the queue; returns how many."""
        return self.control.control.purge()

    def log_tail(self, lines: int = 40) -> str:
        return self.process.log_tail(lines) if self.process else "(not started)"

    def close(self) -> None:
        self.stop()
        self.control.close()


def _drop_broker_connections(*apps: Celery) -> None:
    """Forget pooled broker connections and result backends, so the next call uses the new config.

    Celery caches both on first use and kombu keeps its pools in a process-wide registry shared by
    every app with the same broker URL; there is no public per-app reset (these are the attributes
    Celery's own fork handler clears).
    """
    kombu_pools.reset()
    for app in apps:
        app._pool = None
        amqp = app.__dict__.get("amqp")
        if amqp is not None:
            amqp._producer_pool = None
        app._backend_cache = None
        if hasattr(app._local, "backend"):
            del app._local.backend


@pytest.fixture(scope="session")
def celery_worker_process(redis_server: str, django_db_setup, tmp_path_factory) -> Iterator[CeleryWorker]:
    worker = CeleryWorker(broker_url=redis_server, database_url=worker_database_url(),
                          workdir=tmp_path_factory.mktemp("celery"))
    worker.start()
    try:
        yield worker
    finally:
        worker.close()


@pytest.fixture
def celery_worker(celery_worker_process: CeleryWorker, transactional_db) -> Iterator[CeleryWorker]:
    """The session's worker, alive, with this process's Celery app sending to it for this test."""
    from django.test import override_settings

    from pdas.celery import app

    worker = celery_worker_process
    if not worker.alive or worker.extra_env:
        worker.restart(extra_env={})  # a dead worker, or one a previous test started with its own settings
    keys = ("broker_url", "result_backend", "task_always_eager")
    saved = {key: app.conf[key] for key in keys}
    _drop_broker_connections(app, worker.control)
    app.conf.update(broker_url=worker.broker_url, result_backend=worker.broker_url, task_always_eager=False)
    try:
        with override_settings(CELERY_BROKER_URL=worker.broker_url, CELERY_RESULT_BACKEND=worker.broker_url,
                               CELERY_TASK_ALWAYS_EAGER=False):
            yield worker
    finally:
        worker.purge()  # what this test queued must not run during the next one
        _drop_broker_connections(app, worker.control)
        app.conf.update(saved)
