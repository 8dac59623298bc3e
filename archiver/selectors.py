"""Reads of the archiver app: querysets for views, commands and services."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from django.db.models import (Case, Count, F, IntegerField, Min, OuterRef, Q, QuerySet, Subquery, Value,
                              When)
from django.utils import timezone

from alerts.models import Alert
from core.kept import kept
from archiver.models import RestoreDrill
from inventory.models import Archive, ArchiveCopy, DicomRendition, FixityCheck, TpsPatient
from sites.models import Institution, StorageTarget

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


def archive_runs_with_counts(*, every_run: bool = False):
    """Runs with their patients' counts by result and the raw bytes archived.

    For a page (the default): correlated subqueries, so a page of 50 runs reads only its own runs' tasks
    (by the run index) and the paginator's count is a plain count of runs, at any number of patients.
    ``every_run`` (an export of the whole list): one join grouped by run, which reads every task once
    instead of five subqueries per run."""
    from django.db.models import Count, IntegerField, OuterRef, Q, Subquery, Sum
    from django.db.models.functions import Coalesce

    from archiver.models import ArchiveRun, PatientArchiveTask

    result = PatientArchiveTask.Result
    if every_run:
        return ArchiveRun.objects.select_related("institution").annotate(
            patients=Count("tasks"),
            passed=Count("tasks", filter=Q(tasks__result=result.PASS)),
            errors=Count("tasks", filter=Q(tasks__result=result.ERROR)),
            warnings=Count("tasks", filter=Q(tasks__result=result.WARNING)),
            raw_bytes=Sum("tasks__archive__raw_bytes", filter=Q(tasks__result=result.PASS)),
        ).order_by("-created_at")
    tasks = PatientArchiveTask.objects.filter(run=OuterRef("pk")).order_by().values("run")

    def count(**only):
        counted = tasks.filter(**only).annotate(n=Count("id")).values("n")
        return Coalesce(Subquery(counted, output_field=IntegerField()), 0)

    return ArchiveRun.objects.select_related("institution").annotate(
        patients=count(),
        passed=count(result=result.PASS),
        errors=count(result=result.ERROR),
        warnings=count(result=result.WARNING),
        raw_bytes=Subquery(tasks.filter(result=result.PASS).annotate(s=Sum("archive__raw_bytes")).values("s")),
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
    from django.template.defaultfilters import filesizeformat

    from archiver.models import PatientArchiveTask

    tasks = list(run.tasks.values("id", "result", "step", "bytes_done", "bytes_total", "reason", "archive__name"))
    steps = dict(PatientArchiveTask.Step.choices)
    for task in tasks:
        task["step_display"] = str(steps.get(task["step"], task["step"]))
        task["archive"] = task.pop("archive__name") or ""
        task["bytes_done_display"] = str(filesizeformat(task["bytes_done"]))
        task["bytes_total_display"] = str(filesizeformat(task["bytes_total"]))
    counts = run_result_counts(run=run)
    outcome, outcome_display = run.outcome(errors=counts["error"], warnings=counts["warning"])
    return {
        "status": run.status, "status_display": str(run.get_status_display()), "counts": counts,
        "outcome": outcome, "outcome_display": outcome_display,
        "bytes_done": sum(t["bytes_done"] for t in tasks), "bytes_total": sum(t["bytes_total"] for t in tasks),
        "finished": run.finished, "tasks": tasks, "error": run.error,
    }


# --- restoring ---------------------------------------------------------------------------------------


def recent_restores():
    """Patients put back (to the TPS or a folder someone chose). PDAS's own reads into its data folder, restore
    drills and DICOM renditions, are left out: they restore nobody (the audit log has them, as restores)."""
    from django.conf import settings

    from archiver.models import RestoreRecord

    internal = [str(Path(settings.DATA_DIR) / folder) + "/" for folder in ("drills", "renditions")]
    records = RestoreRecord.objects.select_related("archive", "institution").order_by("-created_at")
    for prefix in internal:
        records = records.exclude(destination__startswith=prefix)
    return records


def restore_progress(*, record) -> dict:
    """What the restore page polls: status, the step or outcome, files and bytes so far."""
    total = record.archive.raw_bytes or 0
    return {
        "id": record.pk, "status": record.status, "status_display": str(record.get_status_display()),
        "finished": record.finished, "reason": record.reason, "files": record.files,
        "bytes": record.bytes, "bytes_total": total, "tps_path": record.tps_path, "destination": record.destination,
        "archive": record.archive.name,
    }


# --- storage targets and their copies ---------------------------------------------------------------


@dataclass
class TargetOverview:
    """One storage target's copies as the checks last found them (docs/keeping.md, "Pages")."""

    target: StorageTarget
    copies: int = 0
    verified: int = 0
    missing: int = 0
    corrupt: int = 0
    unreachable: int = 0
    other: int = 0  # uploading or uploaded, not verified yet
    checked_in_cycle: int = 0  # fully checked within the institution's fixity_cycle_days
    oldest_check: dt.datetime | None = None
    last_drill: RestoreDrill | None = None
    standing_alerts: int = 0
    counted_at: dt.datetime | None = None  # when the copies were counted (core.kept)

    @property
    def institution(self) -> str:
        return self.target.institution.code

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def problems(self) -> int:
        return self.missing + self.corrupt + self.unreachable

    @property
    def cycle_covered(self) -> float | None:
        """Percentage of the copies fully checked within the cycle (None: no copy yet)."""
        return round(100 * self.checked_in_cycle / self.copies, 1) if self.copies else None


def target_overviews(*, targets: QuerySet[StorageTarget], now: dt.datetime | None = None, keep_seconds: int = 0,
                     recount: bool = False) -> list[TargetOverview]:
    """Every target of ``targets`` with its copies by state, the oldest full check, the share of the cycle
    covered and its latest restore drill: one aggregate query per institution plus two, however many copies.
    With ``keep_seconds`` the copies' counts are as counted within that time (``core.kept``; ``recount``: now),
    for the list of every target: they are aggregates over every copy."""
    now = now or timezone.now()
    targets = list(targets.select_related("institution").order_by("institution__code", "priority", "name"))
    rows = {t.pk: TargetOverview(target=t) for t in targets}
    state = ArchiveCopy.Status
    by_institution: dict[int, list[int]] = {}
    for target in targets:
        by_institution.setdefault(target.institution_id, []).append(target.pk)
    for target_ids in by_institution.values():
        cycle = rows[target_ids[0]].target.institution.fixity_cycle_days

        def count(target_ids=target_ids, cycle=cycle) -> list[dict]:
            return list(ArchiveCopy.objects.filter(target_id__in=target_ids, archive__status=Archive.Status.VERIFIED)
                        .order_by().values("target_id").annotate(
                            copies=Count("pk"),
                            **{s: Count("pk", filter=Q(status=s)) for s in
                               (state.VERIFIED, state.MISSING, state.CORRUPT, state.UNREACHABLE)},
                            checked_in_cycle=Count("pk", filter=Q(last_checked_at__gte=now - dt.timedelta(days=cycle))),
                            oldest_check=Min("last_checked_at")))

        counted = kept(f"pdas:copies-by-state:{','.join(map(str, target_ids))}:{cycle}", count,
                       seconds=keep_seconds, recount=recount)
        for found in counted.value:
            row = rows[found["target_id"]]
            for key, value in found.items():
                if key != "target_id":
                    setattr(row, key, value)
            row.other = row.copies - row.verified - row.missing - row.corrupt - row.unreachable
        for target_id in target_ids:
            rows[target_id].counted_at = counted.counted_at
    latest = RestoreDrill.objects.filter(target_id__in=rows).order_by("target_id", "-started_at", "-pk")
    for drill in latest.select_related("archive").defer("archive__manifest"):
        if rows[drill.target_id].last_drill is None:
            rows[drill.target_id].last_drill = drill
    by_name = {(row.target.institution_id, row.target.name): row for row in rows.values()}
    for key in (Alert.objects.standing().filter(kind=Alert.Kind.TARGET_UNREACHABLE, institution_id__in=by_institution)
                .values_list("institution_id", "subject")):
        if key in by_name:
            by_name[key].standing_alerts += 1
    return list(rows.values())


def target_copies(*, target: StorageTarget) -> QuerySet[ArchiveCopy]:
    """The copies on ``target`` of archives verified once, each with its latest check's method and reason;
    copies that are not verified first, then the longest unchecked."""
    latest = FixityCheck.objects.filter(copy=OuterRef("pk")).order_by("-checked_at", "-pk")
    problem_first = Case(When(status=ArchiveCopy.Status.VERIFIED, then=Value(1)), default=Value(0),
                         output_field=IntegerField())
    return (ArchiveCopy.objects.filter(target=target, archive__status=Archive.Status.VERIFIED)
            .select_related("archive").defer("archive__manifest")
            .annotate(check_method=Subquery(latest.values("method")[:1]),
                      check_reason=Subquery(latest.values("reason")[:1]), problem_first=problem_first)
            .order_by("problem_first", F("last_checked_at").asc(nulls_first=True), "pk"))


def renditions_by_archive(archive_ids) -> dict[int, DicomRendition]:
    """The DICOM renditions of these archives, by archive id (an archive without one: not attempted)."""
    return {r.archive_id: r for r in DicomRendition.objects.filter(archive_id__in=list(archive_ids))}
