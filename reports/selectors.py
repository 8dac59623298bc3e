"""The report figures, each from a fixed number of aggregate queries, whatever the number of rows.

Figures that happen over time are counted into buckets cut by a sorted list of instants
(``bounds``: ``[b0, b1, ..., bn]`` gives n buckets ``[b0, b1)``, ``[b1, b2)`` ...). The period's
totals are the one bucket ``[start, end)``; the monthly trend uses the months' midnights in the
site's time zone. The bucket of a row is a ``CASE`` over the stored instants, computed by the
database in one pass: no per-row time-zone conversion (SQLite would call Python for every row
of a ``TruncMonth``) and no per-row Python.

Definitions (docs/reports.md):
- *runs*: ``ArchiveRun`` rows, in the bucket of ``started_at``. A run's MB/s is the raw bytes of the
  patients it archived (✓ and !) over its wall-clock time (started to finished); unfinished runs
  count as runs but not in the MB/s. MB is 10^6 bytes.
- *✓ × !*: the results of the patients of those runs.
- *archived*: what those runs archived: the archives of their ✓ and ! patients (verified), with
  distinct MRNs as patients, the archives' plans, raw and stored bytes. Led by the runs, these
  queries read the archive table by key only, so they cost what the period holds, not what the
  archive holds.
- *delivered / lost*: delivered plans (MRN, label, UID, first delivery) found by any finished loss
  scan, in the bucket of their first delivery; a plan is lost when the latest scan that reported
  it reported it lost.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields, replace

from django.conf import settings
from django.db import connections
from django.db.models import (
    Case, Count, F, Func, IntegerField, Max, Min, OuterRef, Q, QuerySet, Subquery, Sum, Value, When,
)
from django.db.models.fields.json import KT
from django.db.models.functions import Left, StrIndex
from django.utils import timezone

from archiver.models import ArchiveRun, PatientArchiveTask, RestoreDrill, RestoreRecord
from inventory.models import Archive, ArchivedPlan, QuarantinedPatient
from sites.models import Institution
from lossdetect.models import Category, LossFinding, LossScan, PendingPlan
from core.kept import kept
from reports.periods import Period

Result = PatientArchiveTask.Result
ARCHIVED_RESULTS = (Result.PASS, Result.WARNING)
REASON_GROUPS = 50  # reason groups shown; the rest are summed into the last line


def bucket_of(field_name: str, bounds: list[dt.datetime]) -> Case:
    """The index of the bucket ``field_name`` falls in, for rows already filtered to ``[bounds[0], bounds[-1])``."""
    whens = [When(**{f"{field_name}__lt": bound}, then=Value(i)) for i, bound in enumerate(bounds[1:-1])]
    return Case(*whens, default=Value(len(bounds) - 2), output_field=IntegerField())


def _in(field_name: str, bounds: list[dt.datetime]) -> Q:
    return Q(**{f"{field_name}__gte": bounds[0], f"{field_name}__lt": bounds[-1]})


def _by_bucket(rows, size: int) -> list[dict]:
    """``values('bucket').annotate(...)`` rows as one dict per bucket, empty buckets as ``{}``."""
    found = {row.pop("bucket"): row for row in rows}
    return [found.get(i, {}) for i in range(size)]


def megabytes_per_second(num_bytes: int | None, seconds: float | None) -> float | None:
    """None when nothing was timed: an unknown rate is not a zero rate."""
    if not seconds or num_bytes is None:
        return None
    return num_bytes / seconds / 1e6


def ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


# --- archive runs and what they archived ---------------------------------------------------------------------


@dataclass(frozen=True)
class Volume:
    archives: int = 0
    patients: int = 0
    plans: int = 0
    raw_bytes: int = 0
    compressed_bytes: int = 0

    @property
    def compression_ratio(self) -> float | None:
        """Raw bytes per stored byte (3.0: the archives take a third of the original)."""
        return ratio(self.raw_bytes, self.compressed_bytes)


@dataclass(frozen=True)
class Throughput:
    runs: int = 0
    finished_runs: int = 0
    seconds: float = 0.0  # wall-clock time of the finished runs
    archived_bytes: int = 0  # raw bytes of the patients the finished runs archived (✓ and !)
    results: dict[str, int] = field(default_factory=dict)  # pass / error / warning / pending

    @property
    def mb_per_s(self) -> float | None:
        return megabytes_per_second(self.archived_bytes, self.seconds)

    @property
    def patients(self) -> int:
        return sum(self.results.values())


# Django makes this a duration on every backend (an ExpressionWrapper would hide that from it on SQLite).
_RUN_SECONDS = F("finished_at") - F("started_at")
# A patient a run archived: ✓ or ! with the archive verified.
_ARCHIVED = Q(result__in=ARCHIVED_RESULTS, archive__status=Archive.Status.VERIFIED)


def runs_started(*, institution: Institution, bounds: list[dt.datetime]) -> QuerySet[ArchiveRun]:
    return ArchiveRun.objects.filter(_in("started_at", bounds), institution=institution)


def archive_runs(*, institution: Institution, bounds: list[dt.datetime]) -> QuerySet[ArchiveRun]:
    """The runs started in the range, oldest first, with their ✓ × ! counts and archived raw bytes."""
    return runs_started(institution=institution, bounds=bounds).annotate(
        patients=Count("tasks"),
        passed=Count("tasks", filter=Q(tasks__result=Result.PASS)),
        errors=Count("tasks", filter=Q(tasks__result=Result.ERROR)),
        warnings=Count("tasks", filter=Q(tasks__result=Result.WARNING)),
        archived_bytes=Sum("tasks__bytes_total", filter=Q(tasks__result__in=ARCHIVED_RESULTS)),
    ).order_by("started_at", "id")


def _plans_in_archive() -> Subquery:
    # COUNT as a plain function: as an aggregate Django would add a GROUP BY the subquery does not need.
    plans = (ArchivedPlan.objects.filter(archive_id=OuterRef("archive_id")).order_by()
             .annotate(n=Func(F("id"), function="COUNT")).values("n"))
    return Subquery(plans, output_field=IntegerField())


def run_figures(*, institution: Institution, bounds: list[dt.datetime]) -> list[tuple[Volume, Throughput]]:
    """Per bucket of run start: the runs, their time, their patients' ✓ × ! results, and what they archived
    (archives, distinct patients, plans, raw and stored bytes). Two queries, both led by the runs of the
    range: the tasks through their run index, each archived task's archive by its key."""
    size = len(bounds) - 1
    runs = runs_started(institution=institution, bounds=bounds)
    per_run = _by_bucket(
        runs.annotate(bucket=bucket_of("started_at", bounds)).values("bucket")
        .annotate(runs=Count("id"), finished=Count("id", filter=Q(finished_at__isnull=False)),
                  duration=Sum(_RUN_SECONDS, filter=Q(finished_at__isnull=False))).order_by(), size)
    per_task = _by_bucket(
        PatientArchiveTask.objects.filter(run__in=runs.values("id"))
        .annotate(bucket=bucket_of("run__started_at", bounds)).values("bucket").annotate(
            archived_bytes=Sum("bytes_total", filter=Q(result__in=ARCHIVED_RESULTS, run__finished_at__isnull=False)),
            archives=Count("archive_id", filter=_ARCHIVED),
            patients=Count("archive__mrn", filter=_ARCHIVED, distinct=True),
            plans=Sum(_plans_in_archive(), filter=_ARCHIVED),
            raw_bytes=Sum("archive__raw_bytes", filter=_ARCHIVED),
            compressed_bytes=Sum("archive__size", filter=_ARCHIVED),
            **{result: Count("id", filter=Q(result=result)) for result in Result.values},
        ).order_by(), size)
    return [
        (Volume(archives=t.get("archives", 0), patients=t.get("patients", 0), plans=t.get("plans") or 0,
                raw_bytes=t.get("raw_bytes") or 0, compressed_bytes=t.get("compressed_bytes") or 0),
         Throughput(runs=r.get("runs", 0), finished_runs=r.get("finished", 0),
                    seconds=r["duration"].total_seconds() if r.get("duration") else 0.0,
                    archived_bytes=t.get("archived_bytes") or 0,
                    results={result: t.get(result, 0) for result in Result.values}))
        for r, t in zip(per_run, per_task)
    ]


def result_reasons(*, institution: Institution, bounds: list[dt.datetime]) -> list[dict]:
    """× and ! results of the range's runs grouped by their reason's head (the text before the first
    colon, which drops the patient-specific tail), most frequent first, with one full example."""
    rows = list(
        PatientArchiveTask.objects.filter(_in("run__started_at", bounds), run__institution=institution,
                                          result__in=[Result.ERROR, Result.WARNING])
        .alias(colon=StrIndex("reason", Value(":")))
        .annotate(head=Case(When(colon__gt=1, then=Left("reason", F("colon") - 1)), default=Left("reason", 200)))
        .values("result", "head").annotate(count=Count("id"), example=Min("reason"))
        .order_by("-count", "result", "head")
    )
    marks = dict(Result.choices)
    for row in rows:
        row["mark"] = str(marks[row["result"]])
        row["head"] = row["head"] or "(no reason given)"
    if len(rows) > REASON_GROUPS:
        rest = rows[REASON_GROUPS - 1:]
        rows = rows[:REASON_GROUPS - 1] + [{"result": "", "mark": "", "head": f"{len(rest)} other reasons",
                                            "count": sum(r["count"] for r in rest), "example": ""}]
    return rows


# --- restores, quarantine, pending-archive table -------------------------------------------------------------


@dataclass(frozen=True)
class Restores:
    restores: int = 0
    done: int = 0
    failed: int = 0  # failed or refused
    bytes: int = 0  # restored by the finished ones


def restore_counts(*, institution: Institution, bounds: list[dt.datetime]) -> list[Restores]:
    status = RestoreRecord.Status
    rows = _by_bucket(
        RestoreRecord.objects.filter(_in("started_at", bounds), institution=institution)
        .annotate(bucket=bucket_of("started_at", bounds)).values("bucket")
        .annotate(restores=Count("id"), done=Count("id", filter=Q(status=status.DONE)),
                  failed=Count("id", filter=Q(status__in=[status.FAILED, status.REFUSED])),
                  bytes=Sum("bytes", filter=Q(status=status.DONE))).order_by(), len(bounds) - 1)
    return [Restores(restores=r.get("restores", 0), done=r.get("done", 0), failed=r.get("failed", 0),
                     bytes=r.get("bytes") or 0) for r in rows]


@dataclass(frozen=True)
class Quarantine:
    patients: int
    bytes: int
    oldest_moved_at: dt.datetime | None
    next_purge: dt.datetime | None


def quarantine_now(*, institution: Institution) -> Quarantine:
    """Originals moved off the TPS and not yet purged, as of now (one query)."""
    row = QuarantinedPatient.objects.filter(institution=institution, moved_at__isnull=False,
                                            purged_at__isnull=True).aggregate(
        patients=Count("id"), bytes=Sum("total_bytes"), oldest=Min("moved_at"), next_purge=Min("purge_after"))
    return Quarantine(patients=row["patients"], bytes=row["bytes"] or 0, oldest_moved_at=row["oldest"],
                      next_purge=row["next_purge"])


@dataclass(frozen=True)
class Pending:
    plans: int
    oldest_days: float | None  # None: the table is empty
    median_days: float | None


def _days(delta: dt.timedelta) -> float:
    return delta.total_seconds() / 86400


def pending_now(*, institution: Institution, now: dt.datetime | None = None) -> Pending:
    """The pending-archive table (待归档表) as of now: its size and the age of its plans since first
    delivery (oldest and median). Two queries."""
    now = now or timezone.now()
    pending = PendingPlan.objects.filter(institution=institution, status=PendingPlan.Status.PENDING)
    row = pending.aggregate(count=Count("id"), oldest=Min("first_delivery"))
    count = row["count"]
    if not count:
        return Pending(plans=0, oldest_days=None, median_days=None)
    # The middle one (odd count) or two (even count) first deliveries, in one query.
    ordered = pending.order_by("first_delivery").values_list("first_delivery", flat=True)
    picked = list(ordered[(count - 1) // 2:count // 2 + 1])
    median = sum(_days(now - t) for t in picked) / len(picked)
    return Pending(plans=count, oldest_days=_days(now - row["oldest"]), median_days=median)


def pending_trend(*, institution: Institution, bounds: list[dt.datetime]) -> list[int | None]:
    """The pending-archive table's size after the last finished scan of each bucket (None: no scan).

    Scans are a handful per month, so they are read one row each; the JSON key is extracted by
    the database."""
    values: list[int | None] = [None] * (len(bounds) - 1)
    scans = (LossScan.objects.filter(_in("finished_at", bounds), institution=institution,
                                     status=LossScan.Status.DONE)
             .annotate(bucket=bucket_of("finished_at", bounds), pending=KT("summary__pending"))
             .order_by("finished_at", "id").values_list("bucket", "pending"))
    for bucket, pending in scans:
        if pending not in (None, ""):
            values[bucket] = int(pending)
    return values


# --- loss rate ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Losses:
    delivered: int = 0
    first_course_lost: int = 0
    recourse_lost: int = 0

    @property
    def lost(self) -> int:
        return self.first_course_lost + self.recourse_lost

    @property
    def loss_rate(self) -> float | None:
        """Lost / delivered; None when no delivered plan was checked (unknown, not zero)."""
        return ratio(self.lost, self.delivered)


def _latest_scan_of(category: str):
    return Max(Case(When(category=category, then=F("scan_id")), output_field=IntegerField()))


def loss_rates(*, institution: Institution, bounds: list[dt.datetime]) -> list[Losses]:
    """Delivered plans checked by finished loss scans and those lost, per bucket of first delivery: one query.

    A plan reported by several scans (overlapping windows, a pending plan that a later scan found
    gone) counts once, with the category of the latest scan that reported it.
    """
    # A finding's first delivery precedes its scan, so only scans created since the range began (a day of
    # slack for the R&V clock) can hold findings inside it: findings are read through their scan index.
    scans = LossScan.objects.filter(institution=institution, status=LossScan.Status.DONE,
                                    created_at__gte=bounds[0] - dt.timedelta(days=1)).values("id")
    per_plan = (
        LossFinding.objects.filter(_in("first_delivery", bounds), scan__in=scans)
        .values("mrn", "plan_label", "plan_uid", "first_delivery")
        .annotate(bucket=Min(bucket_of("first_delivery", bounds)), last_scan=Max("scan_id"),
                  last_fc_lost=_latest_scan_of(Category.FIRST_COURSE_LOST),
                  last_rc_lost=_latest_scan_of(Category.RECOURSE_LOST))
        .order_by()
    )
    inner, params = per_plan.query.sql_with_params()
    sql = ("SELECT plan.bucket, COUNT(*), "
           "SUM(CASE WHEN plan.last_fc_lost = plan.last_scan THEN 1 ELSE 0 END), "
           "SUM(CASE WHEN plan.last_rc_lost = plan.last_scan THEN 1 ELSE 0 END) "
           f"FROM ({inner}) plan GROUP BY plan.bucket")
    with connections[per_plan.db].cursor() as cursor:
        cursor.execute(sql, params)
        found = {bucket: Losses(delivered=n, first_course_lost=fc or 0, recourse_lost=rc or 0)
                 for bucket, n, fc, rc in cursor.fetchall()}
    return [found.get(i, Losses()) for i in range(len(bounds) - 1)]


# --- the whole report ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Keeping:
    """The archives of the institution as they stand now (docs/keeping.md)."""

    archives: int  # verified once
    safely_stored: int
    without_verified_copy: int  # a copy was lost and none is verified: an alert

    @property
    def not_safely_stored(self) -> int:
        return self.archives - self.safely_stored


def keeping_now(*, institution: Institution, now: dt.datetime | None = None) -> Keeping:
    """Archives verified once, safely stored now, and with no verified copy left (one query)."""
    return Keeping(**Archive.objects.filter(institution=institution).keeping_counts(now=now))


def latest_activity_day(*, institution: Institution) -> dt.date | None:
    """The latest day (site time) an archive run started or a finished loss scan's window ended (two queries)."""
    run = (ArchiveRun.objects.filter(institution=institution).order_by().aggregate(last=Max("created_at"))["last"])
    scan = (LossScan.objects.filter(institution=institution, status=LossScan.Status.DONE).order_by()
            .aggregate(last=Max("window_to"))["last"])
    days = [timezone.localtime(run, institution.zone).date()] if run else []
    return max(days + ([scan] if scan else []), default=None)


@dataclass(frozen=True)
class Drills:
    """The latest restore drill of each target of the institution (docs/keeping.md, "Restore drills")."""

    targets: int  # enabled targets
    passed: int
    failed: int
    unknown: int
    last_at: dt.datetime | None

    @property
    def drilled(self) -> int:
        return self.passed + self.failed + self.unknown


def drills_now(*, institution: Institution) -> Drills:
    """Two queries: the enabled targets, and the drills newest first (the first per target counts)."""
    targets = set(institution.storage_targets.filter(enabled=True).values_list("pk", flat=True))
    latest: dict[int, tuple[str, dt.datetime]] = {}
    for target_id, outcome, started in (RestoreDrill.objects.filter(target_id__in=targets)
                                        .order_by("target_id", "-started_at", "-pk")
                                        .values_list("target_id", "outcome", "started_at")):
        latest.setdefault(target_id, (outcome, started))
    outcomes = [outcome for outcome, _ in latest.values()]
    return Drills(targets=len(targets), passed=outcomes.count(RestoreDrill.Outcome.PASS),
                  failed=outcomes.count(RestoreDrill.Outcome.FAIL), unknown=outcomes.count(RestoreDrill.Outcome.UNKNOWN),
                  last_at=max((started for _, started in latest.values()), default=None))


@dataclass(frozen=True)
class MonthRow:
    month: dt.date
    volume: Volume
    throughput: Throughput
    restores: Restores
    losses: Losses
    pending: int | None


@dataclass(frozen=True)
class Report:
    institution: Institution
    period: Period
    generated_at: dt.datetime
    volume: Volume
    throughput: Throughput
    restores: Restores
    losses: Losses
    quarantine: Quarantine
    pending: Pending
    keeping: Keeping
    drills: Drills
    reasons: list[dict]
    months: list[MonthRow]

    def runs(self) -> QuerySet[ArchiveRun]:
        return archive_runs(institution=self.institution, bounds=[self.period.start, self.period.end])


def _sum(figures: list):
    """Field-wise sum of figures of one kind (dict fields are summed key by key)."""
    values = {}
    for spec in fields(figures[0]):
        parts = [getattr(item, spec.name) for item in figures]
        if isinstance(parts[0], dict):
            values[spec.name] = {key: sum(part.get(key, 0) for part in parts) for key in parts[0]}
        else:
            values[spec.name] = sum(parts)
    return type(figures[0])(**values)


def archived_patients(*, institution: Institution, bounds: list[dt.datetime]) -> int:
    """Distinct patients the runs of the range archived (one query)."""
    return PatientArchiveTask.objects.filter(
        _ARCHIVED, run__in=runs_started(institution=institution, bounds=bounds).values("id"),
    ).aggregate(n=Count("archive__mrn", distinct=True))["n"]


def recent_report(*, institution: Institution, period: Period, recount: bool = False) -> Report:
    """``build_report``, or the one built for the same institution and period within the last
    ``PDAS_REPORT_CACHE_SECONDS`` (0: never kept) in this process; its ``generated_at`` says when.

    At 100,000 archives the report's aggregates take about half a second of the database's time; an
    admin reading, switching tabs and coming back should not make the server count them again each time.
    ``recount`` builds it anew (the page's "Count again")."""
    return kept(f"pdas:report:{institution.pk}:{period.start.isoformat()}:{period.end.isoformat()}",
                lambda: build_report(institution=institution, period=period),
                seconds=settings.PDAS_REPORT_CACHE_SECONDS, recount=recount).value


def build_report(*, institution: Institution, period: Period, now: dt.datetime | None = None) -> Report:
    """Every figure of the report page in about fifteen queries, independent of the number of rows.

    A period of whole months (a month, quarter or year) is the sum of its months in the trend, which
    ends with it: only its distinct patients need a query of their own. Other ranges are queried.
    """
    now = now or timezone.now()
    whole = [period.start, period.end]
    months = period.month_bounds()
    month_runs = run_figures(institution=institution, bounds=months)
    month_restores = restore_counts(institution=institution, bounds=months)
    month_losses = loss_rates(institution=institution, bounds=months)
    month_pending = pending_trend(institution=institution, bounds=months)
    if period.is_whole_months:
        inside = slice(len(months) - 1 - len(period.months()), None)
        volume = _sum([v for v, _ in month_runs[inside]])
        throughput = _sum([t for _, t in month_runs[inside]])
        restores, losses = _sum(month_restores[inside]), _sum(month_losses[inside])
        if len(period.months()) > 1:
            volume = replace(volume, patients=archived_patients(institution=institution, bounds=whole))
    else:
        volume, throughput = run_figures(institution=institution, bounds=whole)[0]
        restores = restore_counts(institution=institution, bounds=whole)[0]
        losses = loss_rates(institution=institution, bounds=whole)[0]
    return Report(
        institution=institution, period=period, generated_at=now, volume=volume, throughput=throughput,
        restores=restores, losses=losses, quarantine=quarantine_now(institution=institution),
        pending=pending_now(institution=institution, now=now), keeping=keeping_now(institution=institution, now=now),
        drills=drills_now(institution=institution), reasons=result_reasons(institution=institution, bounds=whole),
        months=[MonthRow(month=m, volume=v, throughput=t, restores=r, losses=loss, pending=p)
                for m, (v, t), r, loss, p in zip(period.trend_months(), month_runs, month_restores, month_losses,
                                                 month_pending)],
    )
