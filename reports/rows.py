"""The report as rows of plain values: what the page shows, the charts draw and the exports write.

Sizes are in GB (10^9 bytes) or MB (10^6), rounded for reading; an unknown figure (no run timed,
no delivered plan checked) is None, never 0.
"""
from __future__ import annotations

import datetime as dt

from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from archiver.models import ArchiveRun, PatientArchiveTask
from reports.selectors import Report, megabytes_per_second

Result = PatientArchiveTask.Result


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _percent(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 2)


def _local(value: dt.datetime | None, zone) -> dt.datetime | None:
    """Site time, with its offset: what the page shows and what an export writes."""
    return None if value is None else timezone.localtime(value, zone)


def figure_rows(report: Report) -> list[dict]:
    """The period's figures as (section, figure, value, unit) rows."""
    volume, throughput, restores = report.volume, report.throughput, report.restores
    losses, quarantine, pending = report.losses, report.quarantine, report.pending
    rows: list[dict] = []

    def add(section, figure, value, unit: str = "") -> None:
        rows.append({"section": section, "figure": figure, "value": value, "unit": unit})

    archived, runs, restored, loss, now = _("Archived"), _("Archive runs"), _("Restores"), _("Loss detection"), _("Now")
    add(archived, _("Patients archived"), volume.patients)
    add(archived, _("Archives"), volume.archives)
    add(archived, _("Plans archived"), volume.plans)
    add(archived, _("Raw data"), _round(volume.raw_bytes / 1e9, 3), "GB")
    add(archived, _("Compressed (stored)"), _round(volume.compressed_bytes / 1e9, 3), "GB")
    add(archived, _("Compression ratio (raw / stored)"), _round(volume.compression_ratio), ": 1")
    add(runs, _("Runs"), throughput.runs)
    add(runs, _("Runs finished"), throughput.finished_runs)
    add(runs, _("Time of the finished runs"), _round(throughput.seconds / 3600), "h")
    add(runs, _("Throughput"), _round(throughput.mb_per_s), "MB/s")
    add(runs, _("✓ archived, verified, originals removed"), throughput.results.get(Result.PASS, 0))
    add(runs, _("× not archived, originals kept"), throughput.results.get(Result.ERROR, 0))
    add(runs, _("! archived, originals kept"), throughput.results.get(Result.WARNING, 0))
    add(runs, _("Still pending"), throughput.results.get(Result.PENDING, 0))
    add(restored, _("Restores"), restores.restores)
    add(restored, _("Restores done"), restores.done)
    add(restored, _("Restores failed or refused"), restores.failed)
    add(restored, _("Data restored"), _round(restores.bytes / 1e9, 3), "GB")
    add(loss, _("Delivered plans checked"), losses.delivered)
    add(loss, _("Lost, first course"), losses.first_course_lost)
    add(loss, _("Lost, re-course"), losses.recourse_lost)
    add(loss, _("Loss rate (lost / delivered)"), _percent(losses.loss_rate), "%")
    add(now, _("Quarantine: patients not yet purged"), quarantine.patients)
    add(now, _("Quarantine size"), _round(quarantine.bytes / 1e9, 3), "GB")
    add(now, _("Pending-archive table: plans"), pending.plans)
    add(now, _("Pending-archive table: oldest"), _round(pending.oldest_days, 1), _("days"))
    add(now, _("Pending-archive table: median age"), _round(pending.median_days, 1), _("days"))
    return rows


def month_rows(report: Report) -> list[dict]:
    rows = []
    for row in report.months:
        volume, throughput, losses = row.volume, row.throughput, row.losses
        rows.append({
            "month": f"{row.month:%Y-%m}", "patients": volume.patients, "archives": volume.archives,
            "plans": volume.plans, "raw_gb": _round(volume.raw_bytes / 1e9, 3),
            "compressed_gb": _round(volume.compressed_bytes / 1e9, 3), "ratio": _round(volume.compression_ratio),
            "runs": throughput.runs, "mb_per_s": _round(throughput.mb_per_s),
            "passed": throughput.results.get(Result.PASS, 0), "errors": throughput.results.get(Result.ERROR, 0),
            "warnings": throughput.results.get(Result.WARNING, 0), "restores": row.restores.restores,
            "delivered": losses.delivered, "lost": losses.lost, "loss_rate": _percent(losses.loss_rate),
            "pending": row.pending,
        })
    return rows


def chart_data(report: Report) -> dict[str, list]:
    """The monthly rows as one series per column (``month`` becomes ``labels``), for the charts."""
    rows = month_rows(report)
    series = {key: [row[key] for row in rows] for key in rows[0]} if rows else {}
    series["labels"] = series.pop("month", [])
    return series


def run_rows(report: Report, *, latest: int | None = None) -> list[dict]:
    """The period's runs, oldest first (only the ``latest`` ones when given): duration in minutes and MB/s
    (None until the run finished)."""
    statuses, zone = dict(ArchiveRun.Status.choices), report.period.zone
    runs = report.runs().values("id", "started_at", "finished_at", "requested_by", "status", "patients", "passed",
                                "errors", "warnings", "archived_bytes")
    if latest is not None:
        runs = reversed(runs.order_by("-started_at", "-id")[:latest])
    rows = []
    for run in runs:
        seconds = (run["finished_at"] - run["started_at"]).total_seconds() if run["finished_at"] else None
        archived = run["archived_bytes"] or 0
        rows.append({
            "id": run["id"], "id_url": reverse("archiver:run-detail", args=[run["id"]]),
            "started_at": _local(run["started_at"], zone), "finished_at": _local(run["finished_at"], zone),
            "minutes": _round(seconds / 60 if seconds is not None else None), "requested_by": run["requested_by"],
            "status": str(statuses.get(run["status"], run["status"])), "patients": run["patients"],
            "passed": run["passed"], "errors": run["errors"], "warnings": run["warnings"],
            "archived_mb": _round(archived / 1e6, 1), "mb_per_s": _round(megabytes_per_second(archived, seconds)),
        })
    return rows
