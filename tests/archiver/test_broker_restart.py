"""The broker restarted under a running Celery worker, mid-run: the run still converges after a rerun.

A private redis-server (no persistence, as in production's default) and a real worker on it. The worker
pauses a few seconds at ``upload`` (archiver/faults.py, ``PDAS_FAULT_PAUSE_SECONDS``) on the first
patient; meanwhile Redis is stopped and started again on the same port, which drops every queued and
unacknowledged message. The worker finishes the patient it holds, reconnects, and serves the rerun the
operator starts; nothing is lost and every patient ends archived exactly once.
"""
from __future__ import annotations

import pytest
import redis as redis_client
from django.test import override_settings

from archiver.models import PatientArchiveTask
from archiver.services import archiving
from archiver.tasks import start_archive_run
from inventory.models import Archive, QuarantinedPatient
from pdas.celery import app
from tests.archiver.crash_tools import wait_for
from tests.archiver.test_archive_crash import PASSWORD_ENV, _assert_nothing_lost, site  # noqa: F401 - a fixture
from tests.servers.celery_worker import CeleryWorker, _drop_broker_connections, worker_database_url
from tests.servers.process import ServerProcess
from tests.servers.redis import start_redis

pytestmark = pytest.mark.servers


def _answers(url: str) -> bool:
    client = redis_client.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except redis_client.RedisError:
        return False
    finally:
        client.close()


@pytest.fixture
def broker(tmp_path, transactional_db):
    """A redis-server of this test's own, restartable on its port: ``{"url", "restart"}``."""
    server, url = start_redis(tmp_path / "redis")
    current = {"server": server}

    def restart() -> None:
        current["server"].stop()
        assert not _answers(url)
        again = ServerProcess("redis-server", current["server"].argv, log_path=current["server"].log_path)
        current["server"] = again.start()
        again.wait_ready(lambda: _answers(url), timeout=20)

    try:
        yield {"url": url, "restart": restart}
    finally:
        current["server"].stop()


@pytest.fixture
def worker(site, broker, tmp_path):  # noqa: F811
    """A real worker on ``broker``, pausing 3 s at ``upload``; this process's Celery app sends to it."""
    marker = tmp_path / "paused"
    worker = CeleryWorker(broker_url=broker["url"], database_url=worker_database_url(), workdir=tmp_path,
                          extra_env={PASSWORD_ENV: site["sshd"].password, "PDAS_FAULT_PAUSE": "upload",
                                     "PDAS_FAULT_PAUSE_SECONDS": "3", "PDAS_FAULT_MARKER": str(marker)})
    keys = ("broker_url", "result_backend", "task_always_eager")
    saved = {key: app.conf[key] for key in keys}
    worker.start()
    _drop_broker_connections(app, worker.control)
    app.conf.update(broker_url=broker["url"], result_backend=broker["url"], task_always_eager=False)
    try:
        with override_settings(CELERY_BROKER_URL=broker["url"], CELERY_RESULT_BACKEND=broker["url"],
                               CELERY_TASK_ALWAYS_EAGER=False):
            yield worker, marker
    finally:
        worker.close()
        _drop_broker_connections(app, worker.control)
        app.conf.update(saved)


def test_redis_restarted_mid_run_the_worker_carries_on_and_a_rerun_converges(transactional_db, site, broker,
                                                                             worker):  # noqa: F811
    worker, marker = worker
    first = archiving.prepare_archive_run(institution=site["inst"], actor="test")
    start_archive_run(first)
    wait_for(marker.exists, 60, "the worker to reach the first upload", worker.log_tail)

    broker["restart"]()  # the queue and the unacknowledged message are gone with it
    _drop_broker_connections(app, worker.control)
    held = first.tasks.get(started_at__isnull=False)
    wait_for(lambda: PatientArchiveTask.objects.get(pk=held.pk).result != "pending", 60,
             "the worker to finish the patient it held", worker.log_tail)
    assert PatientArchiveTask.objects.get(pk=held.pk).result == "pass"
    wait_for(lambda: worker.alive and worker.answers_ping(), 30, "the worker to reconnect", worker.log_tail)
    _assert_nothing_lost(site)

    rerun = archiving.prepare_archive_run(institution=site["inst"], actor="test")
    start_archive_run(rerun)
    wait_for(lambda: not rerun.tasks.filter(result="pending").exists(), 90, "the rerun", worker.log_tail)
    assert set(rerun.tasks.values_list("result", flat=True)) <= {"pass"}

    _assert_nothing_lost(site)
    for path in site["paths"]:  # every patient archived exactly once, its originals in the quarantine
        assert not (site["root"] / path).exists()
        assert Archive.objects.filter(tps_path=path, status=Archive.Status.VERIFIED).count() == 1
        assert QuarantinedPatient.objects.get(tps_path=path).moved_at is not None
    names = sorted(p.name for p in site["array"].iterdir())
    assert len([n for n in names if n.endswith(".tar.gz")]) == 2 and not [n for n in names if n.startswith(".")]
