"""/healthz and /metrics as IT's monitoring reads them: the checks, a failing target or R&V source, who may
ask, the Prometheus text, and (with a real Redis and Celery worker) the broker, workers and beat."""
from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from alerts.services import settle_alerts
from tests.factories import (
    ArchiveCopyFactory, ArchiveFactory, InstitutionFactory, LossScanFactory, StorageTargetFactory,
)
from tests.reports.factories import ArchiveRunFactory, PatientArchiveTaskFactory

pytestmark = pytest.mark.django_db

SECRET_NAME = "ZHANGSANFENG"  # a patient's name: must appear in no answer


@pytest.fixture
def site():
    inst = InstitutionFactory(code="PUMCH", rv_url="csv:/data/rv.csv")
    target = StorageTargetFactory(institution=inst, name="array-1", url="file:///srv/array-1")
    archive = ArchiveFactory(institution=inst, mrn="000123", last_name=SECRET_NAME, status="verified", size=1000,
                             raw_bytes=3000)
    ArchiveCopyFactory(archive=archive, target=target, status="verified", last_checked_at=timezone.now())
    run = ArchiveRunFactory(institution=inst, status="done")
    PatientArchiveTaskFactory(run=run, result="error")
    LossScanFactory(institution=inst, status="done", finished_at=timezone.now(),
                    summary={"first_course_lost": 2, "first_course_archived": 5, "other_tps": 1, "lost": 2})
    return inst, target


def _get(name, **headers):
    return Client(**headers).get(reverse(name))


def test_healthz_in_the_embedded_mode(site):
    response = _get("healthz")
    assert response.status_code == 200 and response["Cache-Control"].startswith("max-age=0")
    body = response.json()
    assert body["status"] == "ok" and body["failed"] == []
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "database": "ok", "broker": "off", "workers": "off", "beat": "off", "target:PUMCH/array-1": "ok",
        "rv:PUMCH": "ok"}


def test_a_target_down_or_an_unreadable_rv_source_fails_the_health_check(site):
    inst, _target = site
    settle_alerts(institution=inst, kind="target_unreachable", standing={"array-1": {"days": 3}}, actor="t")
    LossScanFactory(institution=inst, status="failed", error="R&V source of PUMCH cannot be read: no such file")
    response = _get("healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["target:PUMCH/array-1", "rv:PUMCH"]
    assert body["checks"]["rv:PUMCH"]["detail"].endswith("cannot be read: no such file")
    assert _get("healthz").status_code == 503 and Client().get(reverse("healthz"), {"live": "1"}).status_code == 200


def test_only_monitoring_addresses_or_the_token_get_an_answer(site):
    far = {"REMOTE_ADDR": "10.20.30.40"}
    for name in ("healthz", "metrics"):
        assert _get(name, **far).status_code == 403
    with override_settings(PDAS_MONITORING_TOKEN="s3cret-token-for-prometheus"):
        assert _get("metrics", HTTP_AUTHORIZATION="Bearer s3cret-token-for-prometheus", **far).status_code == 200
        assert _get("metrics", HTTP_AUTHORIZATION="Bearer wrong", **far).status_code == 403
    with override_settings(PDAS_MONITORING_ALLOW=["10.20.0.0/16"]):
        assert _get("healthz", **far).status_code == 200
    # Behind one proxy, the address is the client's, not the proxy's loopback.
    with override_settings(PDAS_PROXY_COUNT=1):
        assert _get("healthz", HTTP_X_FORWARDED_FOR="10.20.30.40").status_code == 403
        assert _get("healthz", HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 200
    assert Client().post(reverse("healthz")).status_code == 405


def test_metrics_are_prometheus_text_without_a_patient(site):
    response = _get("metrics")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain; version=0.0.4")
    text = response.content.decode()
    assert SECRET_NAME not in text and "000123" not in text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("pdas_archive_runs_total", (("institution", "PUMCH"), ("status", "done")))] == 1
    assert samples[("pdas_archive_patients_total", (("institution", "PUMCH"), ("result", "error")))] == 1
    assert samples[("pdas_archived_bytes_total", (("institution", "PUMCH"),))] == 1000
    assert samples[("pdas_archive_copies", (("institution", "PUMCH"), ("state", "verified"), ("target", "array-1")))] == 1
    assert samples[("pdas_loss_findings", (("category", "first_course_lost"), ("institution", "PUMCH")))] == 2
    assert samples[("pdas_loss_findings", (("category", "other_tps"), ("institution", "PUMCH")))] == 1
    assert samples[("pdas_health_check", (("check", "database"),))] == 1
    assert samples[("pdas_up", ())] == 1


@pytest.mark.servers
def test_broker_workers_and_beat_with_a_real_worker(celery_worker, site):
    from django_celery_beat.models import PeriodicTask

    PeriodicTask.objects.update(last_run_at=timezone.now() - dt.timedelta(minutes=5))
    body = _get("healthz").json()
    assert [body["checks"][name]["status"] for name in ("broker", "workers", "beat")] == ["ok", "ok", "ok"], body
    samples = {s.name: s for family in text_string_to_metric_families(_get("metrics").content.decode())
               for s in family.samples if s.name == "pdas_queue_length"}
    assert samples["pdas_queue_length"].labels == {"queue": "celery"}

    PeriodicTask.objects.update(last_run_at=timezone.now() - dt.timedelta(hours=3))
    response = _get("healthz")
    assert response.status_code == 503 and response.json()["failed"] == ["beat"]

    # A new installation: nothing has run yet. Fine while the schedule is younger than the limit, a
    # failure once it is older.
    PeriodicTask.objects.update(last_run_at=None, date_changed=timezone.now() - dt.timedelta(minutes=5))
    assert _get("healthz").json()["checks"]["beat"]["status"] == "ok"
    PeriodicTask.objects.update(date_changed=timezone.now() - dt.timedelta(hours=1))
    response = _get("healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["beat"] == {"status": "fail", "detail": "no periodic task has ever run"}

    celery_worker.kill()
    response = _get("healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["workers"] == {"status": "fail", "detail": "no worker answered a ping"}
