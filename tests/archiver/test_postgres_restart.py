"""PostgreSQL restarted under a running Celery worker, mid-upload: the worker reconnects, the run converges.

PostgreSQL only (on SQLite there is no server to restart): it runs in the PostgreSQL pass of
``deploy/dev.sh test``, or under ``python -m tests.servers.postgres -- pytest ...``. The session's server is
shared by every other test, so this test restarts a cluster of its own (``postgres_disposable``): Django's
connection and the worker are pointed at a database there, migrated for the test. A private redis-server
and a real worker on it (as in test_broker_restart.py); the worker pauses a few seconds at ``upload``
(``PDAS_FAULT_PAUSE_SECONDS``) on each patient, and during the first pause PostgreSQL is stopped (fast
shutdown: every connection dropped) and started again.

The worker's connection died under the patient it holds: the patient is retried on a new connection and
resumed where it stood (no second archive, no temporary file), the run converges by itself with nothing
lost, the worker answers on the database again, and this process, holding a persistent connection as a
web process with ``DATABASE_CONN_MAX_AGE`` does, finds its connection replaced at its next request
(``CONN_HEALTH_CHECKS``) instead of failing it.
"""
from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import close_old_connections, connection
from django.test import override_settings

from archiver.models import ArchiveRun, PatientArchiveTask
from archiver.services import archiving
from archiver.tasks import start_archive_run
from pdas.celery import app
from tests.archiver import convergence
from tests.archiver.crash_tools import wait_for
from tests.archiver.test_archive_crash import PASSWORD_ENV, site  # noqa: F401 - a fixture
from tests.servers.celery_worker import CeleryWorker, _drop_broker_connections, worker_database_url
from tests.servers.redis import start_redis

ON_POSTGRES = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"

pytestmark = [
    pytest.mark.servers,
    pytest.mark.skipif(not ON_POSTGRES, reason="PostgreSQL only: the suite runs on SQLite here; this test runs in "
                                               "the PostgreSQL pass of deploy/dev.sh test (docs/testing.md)"),
]


@pytest.fixture
def database(transactional_db, postgres_disposable):
    """This process's Django connection on a migrated database of the disposable cluster, kept open between
    requests as a web process's with ``DATABASE_CONN_MAX_AGE`` is; the session's test database afterwards."""
    url = postgres_disposable.create_database("pdas_restart")
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(NAME=url.rsplit("/", 1)[1], HOST=postgres_disposable.host,
                                    PORT=str(postgres_disposable.port), USER=postgres_disposable.user,
                                    PASSWORD=postgres_disposable.password, CONN_MAX_AGE=600)
    ContentType.objects.clear_cache()
    try:
        call_command("migrate", interactive=False, verbosity=0)
        yield postgres_disposable
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)
        ContentType.objects.clear_cache()


@pytest.fixture
def worker(database, site, tmp_path):  # noqa: F811 - site is created on the disposable database
    """A real worker on a private broker and the disposable database, pausing 5 s at every ``upload``."""
    redis, broker_url = start_redis(tmp_path / "redis")
    marker = tmp_path / "paused"
    worker = CeleryWorker(broker_url=broker_url, database_url=worker_database_url(), workdir=tmp_path,
                          extra_env={PASSWORD_ENV: site["sshd"].password, "PDAS_FAULT_PAUSE": "upload",
                                     "PDAS_FAULT_PAUSE_SECONDS": "5", "PDAS_FAULT_MARKER": str(marker),
                                     "PDAS_RETRY_BACKOFF_SECONDS": "1", "DATABASE_CONN_MAX_AGE": "600"})
    keys = ("broker_url", "result_backend", "task_always_eager")
    saved = {key: app.conf[key] for key in keys}
    try:
        worker.start()
        _drop_broker_connections(app, worker.control)
        app.conf.update(broker_url=broker_url, result_backend=broker_url, task_always_eager=False)
        with override_settings(CELERY_BROKER_URL=broker_url, CELERY_RESULT_BACKEND=broker_url,
                               CELERY_TASK_ALWAYS_EAGER=False):
            yield worker, marker
    finally:
        worker.close()
        _drop_broker_connections(app, worker.control)
        app.conf.update(saved)
        redis.stop()


def test_postgres_restarted_mid_upload_the_worker_reconnects_and_the_run_converges(database, site, worker):  # noqa: F811
    worker, marker = worker
    run = archiving.prepare_archive_run(institution=site["inst"], actor="test")
    start_archive_run(run)
    wait_for(marker.exists, 60, "the worker to pause in the first upload", worker.log_tail)
    held = run.tasks.get(started_at__isnull=False)

    database.restart()  # every connection dropped: the worker's, mid-task, and this process's

    # A request of a process with a persistent connection: the dead one is found and replaced, not used.
    close_old_connections()
    assert ArchiveRun.objects.filter(pk=run.pk).exists()

    wait_for(lambda: not run.tasks.filter(result=PatientArchiveTask.Result.PENDING).exists(), 150,
             "the run's patients to be decided", worker.log_tail)
    results = {t.patient.tps_path: (t.result, t.reason, t.attempts) for t in run.tasks.select_related("patient")}
    assert {result for result, _, _ in results.values()} == {"pass"}, results
    assert PatientArchiveTask.objects.get(pk=held.pk).attempts >= 2, "the held patient was tried again"
    run.refresh_from_db()
    assert run.finished_at is not None and run.status == ArchiveRun.Status.DONE
    targets = {"array": site["array"]}
    # The run ends by queueing a fresh curation (curation is re-run after every archive run): the worker
    # finishes it after the run's row is closed, so converging includes waiting for it.
    wait_for(lambda: not convergence.unfinished(institution=site["inst"]), 60, "the curation queued by the run",
             worker.log_tail)
    assert convergence.violations(institution=site["inst"], root=site["root"], targets=targets,
                                  patients=site["plans"]) == []
    for path in site["paths"]:
        assert not (site["root"] / path).exists(), path

    # The worker is on the database again, and a further run has nothing to do.
    reply = app.send_task("pdas.ping").get(timeout=30)
    assert reply == {"pong": "pong", "database": "pdas_restart"}
    again = archiving.prepare_archive_run(institution=site["inst"], actor="test")
    assert start_archive_run(again).tasks.count() == 0
    assert convergence.violations(institution=site["inst"], root=site["root"], targets=targets,
                                  patients=site["plans"]) == []
