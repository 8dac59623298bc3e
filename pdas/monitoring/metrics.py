"""``/metrics``: the figures IT watches, in Prometheus' text format (prometheus_client), read from the
database at each scrape (a handful of grouped queries; nothing is kept in the web process, so every
gunicorn worker answers the same).

Labels are institution codes, target names, statuses and categories: never a patient.
"""
from __future__ import annotations

from django.conf import settings
from django.db.models import Count, Max, Min, Sum
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from pdas.monitoring.health import FAIL, health

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _timestamp(value) -> float:
    return value.timestamp() if value is not None else 0.0


class PdasCollector:
    """One scrape: runs, patients, bytes, copies by state, loss-scan findings, alerts, queues, health."""

    def collect(self):
        from alerts.models import Alert
        from archiver.models import ArchiveRun, PatientArchiveTask
        from inventory.models import Archive, ArchiveCopy
        from lossdetect.models import Category, LossScan
        from sites.models import Institution

        runs = CounterMetricFamily("pdas_archive_runs", "Archive runs by final status.", labels=["institution", "status"])
        for row in ArchiveRun.objects.values("institution__code", "status").annotate(n=Count("id")):
            runs.add_metric([row["institution__code"], row["status"]], row["n"])
        yield runs

        patients = CounterMetricFamily("pdas_archive_patients", "Patients of archive runs by result (pass, error, "
                                       "warning, pending).", labels=["institution", "result"])
        for row in PatientArchiveTask.objects.values("run__institution__code", "result").annotate(n=Count("id")):
            patients.add_metric([row["run__institution__code"], row["result"]], row["n"])
        yield patients

        archives = GaugeMetricFamily("pdas_archives", "Archives by status.", labels=["institution", "status"])
        archived = CounterMetricFamily("pdas_archived_bytes", "Bytes of verified archives.", labels=["institution"])
        raw = CounterMetricFamily("pdas_archived_raw_bytes", "Uncompressed bytes of verified archives.",
                                  labels=["institution"])
        for row in Archive.objects.values("institution__code", "status").annotate(
                n=Count("id"), size=Sum("size"), raw=Sum("raw_bytes")):
            archives.add_metric([row["institution__code"], row["status"]], row["n"])
            if row["status"] == Archive.Status.VERIFIED:
                archived.add_metric([row["institution__code"]], row["size"] or 0)
                raw.add_metric([row["institution__code"]], row["raw"] or 0)
        yield from (archives, archived, raw)

        copies = GaugeMetricFamily("pdas_archive_copies", "Stored copies by fixity state, per target.",
                                   labels=["institution", "target", "state"])
        oldest = GaugeMetricFamily("pdas_archive_copy_oldest_check_timestamp_seconds", "The oldest full check of "
                                   "a verified copy on each target (Unix time; 0: never).", labels=["institution", "target"])
        for row in ArchiveCopy.objects.values("target__institution__code", "target__name", "status").annotate(
                n=Count("id")):
            copies.add_metric([row["target__institution__code"], row["target__name"], row["status"]], row["n"])
        for row in ArchiveCopy.objects.filter(status=ArchiveCopy.Status.VERIFIED).values(
                "target__institution__code", "target__name").annotate(oldest=Min("last_checked_at")):
            oldest.add_metric([row["target__institution__code"], row["target__name"]], _timestamp(row["oldest"]))
        yield from (copies, oldest)

        findings = GaugeMetricFamily("pdas_loss_findings", "Delivered plans of the latest finished loss scan, by "
                                     "category (other_tps: another planning system's).", labels=["institution", "category"])
        last_scan = GaugeMetricFamily("pdas_loss_scan_last_success_timestamp_seconds",
                                      "When the latest loss scan that read its R&V source finished (Unix time).",
                                      labels=["institution"])
        last_run = GaugeMetricFamily("pdas_archive_run_last_timestamp_seconds", "When the latest archive run was "
                                     "started (Unix time).", labels=["institution"])
        started = dict(ArchiveRun.objects.values_list("institution__code").annotate(last=Max("created_at")))
        for institution in Institution.objects.order_by("code"):
            scan = (LossScan.objects.filter(institution=institution, status=LossScan.Status.DONE)
                    .order_by("-finished_at", "-id").only("summary", "finished_at").first())
            if scan is not None:
                for category in [*Category.values, "other_tps"]:
                    findings.add_metric([institution.code, category], (scan.summary or {}).get(category, 0))
                last_scan.add_metric([institution.code], _timestamp(scan.finished_at))
            last_run.add_metric([institution.code], _timestamp(started.get(institution.code)))
        yield from (findings, last_scan, last_run)

        alerts = GaugeMetricFamily("pdas_alerts_standing", "Standing alerts by kind.", labels=["institution", "kind"])
        for row in Alert.objects.standing().values("institution__code", "kind").annotate(n=Count("id")):
            alerts.add_metric([row["institution__code"], row["kind"]], row["n"])
        yield alerts

        queue = GaugeMetricFamily("pdas_queue_length", "Tasks waiting in each Celery queue (Redis broker only).",
                                  labels=["queue"])
        for name, length in _queue_lengths(Institution):
            queue.add_metric([name], length)
        yield queue

        status, body = health()
        checks = GaugeMetricFamily("pdas_health_check", "1 when the /healthz check passes (or is not used), 0 when "
                                   "it fails.", labels=["check"])
        for name, check in body["checks"].items():
            checks.add_metric([name], 0 if check["status"] == FAIL else 1)
        yield checks
        up = GaugeMetricFamily("pdas_up", "1: every /healthz check passes.")
        up.add_metric([], 1 if status == 200 else 0)
        yield up


def _queue_lengths(Institution) -> list[tuple[str, int]]:
    """(queue, waiting tasks) for Celery's default queue and each institution's own; none without Redis."""
    url = settings.CELERY_BROKER_URL or ""
    if not url.startswith(("redis://", "rediss://")):
        return []
    import redis

    names = ["celery", *sorted({q for q in Institution.objects.exclude(worker_queue="")
                                .values_list("worker_queue", flat=True)})]
    try:
        client = redis.Redis.from_url(url, socket_timeout=settings.PDAS_HEALTH_TIMEOUT)
        return [(name, int(client.llen(name))) for name in names]
    except redis.RedisError:
        return []  # the broker's own check in pdas_health_check says it is down


def metrics_text() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PdasCollector())
    return generate_latest(registry)
