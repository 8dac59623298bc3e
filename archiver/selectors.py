"""Reads of the archiver app: querysets for views, commands and services."""
from __future__ import annotations

from django.db.models import QuerySet

from inventory.models import TpsPatient
from sites.models import Institution

# --- the TPS as last read ------------------------------------------------------------------------


def present_tps_patients(*, institution: Institution) -> QuerySet[TpsPatient]:
    """Patient folders found by the last TPS sync, with their plans."""
    return (TpsPatient.objects.filter(institution=institution, present=True)
            .prefetch_related("plans").order_by("group", "tps_path"))


def tps_patients_in_group(*, institution: Institution, group: str) -> QuerySet[TpsPatient]:
    """Patient folders of one TPS group (by its name) found by the last sync, with their plans."""
    return present_tps_patients(institution=institution).filter(group=group)


# --- archiving -------------------------------------------------------------------------------------


def archive_candidates(*, institution: Institution) -> QuerySet[TpsPatient]:
    """Patients the archiver takes from the pending group: present, readable, not an unchanged PDAS
    restore, and allowed by the latest curation (``ready``, or every finding acknowledged for the
    patient's current files; see ``curation.selectors.curation_allows``)."""
    from django.db.models import F, Q

    from curation.selectors import curation_allows

    pending = (
        TpsPatient.objects.filter(institution=institution, group=institution.pending_group, present=True,
                                  read_error="")
        .exclude(Q(restored_from__isnull=False) & Q(restored_fingerprint=F("fingerprint")))
    )
    return curation_allows(pending, institution=institution).order_by("tps_path")


def archive_runs_with_counts():
    from django.db.models import Count, Q, Sum

    from archiver.models import ArchiveRun, PatientArchiveTask

    result = PatientArchiveTask.Result
    return ArchiveRun.objects.select_related("institution").annotate(
        patients=Count("tasks"),
        passed=Count("tasks", filter=Q(tasks__result=result.PASS)),
        errors=Count("tasks", filter=Q(tasks__result=result.ERROR)),
        warnings=Count("tasks", filter=Q(tasks__result=result.WARNING)),
        raw_bytes=Sum("tasks__archive__raw_bytes", filter=Q(tasks__result=result.PASS)),
    ).order_by("-created_at")


def run_tasks(*, run):
    return run.tasks.select_related("patient", "archive").order_by("id")


def run_result_counts(*, run) -> dict[str, int]:
    from django.db.models import Count

    counts = {"pass": 0, "error": 0, "warning": 0, "pending": 0}
    for row in run.tasks.values("result").annotate(n=Count("id")):
        counts[row["result"]] = row["n"]
    return counts


def run_progress(*, run) -> dict:
    """What the run page polls: counts, bytes, and each patient's step and result."""
    tasks = list(run.tasks.values("id", "result", "step", "bytes_done", "bytes_total", "reason"))
    from archiver.models import PatientArchiveTask

    steps = dict(PatientArchiveTask.Step.choices)
    for task in tasks:
        task["step_display"] = str(steps.get(task["step"], task["step"]))
    counts = run_result_counts(run=run)
    return {
        "status": run.status, "status_display": str(run.get_status_display()), "counts": counts,
        "bytes_done": sum(t["bytes_done"] for t in tasks), "bytes_total": sum(t["bytes_total"] for t in tasks),
        "finished": run.finished, "tasks": tasks, "error": run.error,
    }


# --- restoring ---------------------------------------------------------------------------------------


def recent_restores():
    from archiver.models import RestoreRecord

    return RestoreRecord.objects.select_related("archive", "institution").order_by("-created_at")


def restore_progress(*, record) -> dict:
    """What the restore page polls: status, the step or outcome, files and bytes so far."""
    total = record.archive.raw_bytes or 0
    return {
        "id": record.pk, "status": record.status, "status_display": str(record.get_status_display()),
        "finished": record.finished, "reason": record.reason, "files": record.files,
        "bytes": record.bytes, "bytes_total": total, "tps_path": record.tps_path, "destination": record.destination,
        "archive": record.archive.name,
    }
