"""The loss scan: R&V first deliveries in a window, matched to the TPS and the archives (docs/contracts.md §2, §3).

``run_loss_scan`` = ``create_loss_scan`` (the ``queued`` row) + ``execute_loss_scan`` (the work), so
a page or the scheduler can create the row and hand its id to a task (``lossdetect.tasks``).

A scan never reports "nothing lost" from missing data: when the TPS cannot be refreshed, the R&V
source cannot be read or returns no records at all, the scan is ``failed`` with a one-line reason.
Rows the source had to skip are kept in ``source_warnings``.

The pending-archive table (待归档表, ``PendingPlan``): every unarchived delivery is kept and
re-checked by every later scan of the institution, whatever its window, until it is archived
(``released``) or vanishes from the TPS (``lost``, reported as a lost finding of that scan).

Records of another planning system (docs/contracts.md §2.6) are set apart first: the window's are
kept as ``OtherTpsRecord`` rows and counted as ``other_tps``, none is matched or takes part in the
re-course rule. The institution's MRN aliases (docs/contracts.md §2.7) are read once, as a graph:
matching and the re-course rule see one patient wherever several MRNs are one, and each finding
names the patient's other MRNs in ``also_known_as``.
"""
from __future__ import annotations

import datetime as dt
import logging
from zoneinfo import ZoneInfo

import pandas as pd
from django.db import transaction
from django.utils import timezone

from sites.models import Institution
from audit.actors import actor_name
from audit.models import AuditEvent
from audit.events import Event
from audit.services import record_event
from lossdetect.models import Category, LossFinding, LossScan, OtherTpsRecord, PendingPlan
from inventory.services.retention import extend_retention
from connectors.rv import RowProblem, RvError, RvReadResult
from connectors.urls import redact_url
from sites.connections import open_institution_rv
from lossdetect.selectors import alias_graph, archived_plan_frame, tps_plan_frame, unsafe_archived_plan_frame
from lossdetect.services import notify
from lossdetect.services.alias_graph import MrnAliasGraph
from lossdetect.services.classify import (
    ARCHIVED, DAY, LOST, UNARCHIVED, MatchRules, candidates_frame, category, classify, deliveries_frame,
    match_deliveries, patient_keys, split_other_tps, status_of, within,
)

logger = logging.getLogger(__name__)

_LIMITS = {"mrn": 64, "plan_label": 200, "plan_uid": 128}  # LossFinding/PendingPlan column sizes


class ScanFailed(Exception):
    """The scan cannot give an answer (unknown, not "nothing lost"); the message is one line."""


def window_bounds(*, window_from: dt.date, window_to: dt.date, zone: ZoneInfo) -> tuple[float, float]:
    """The window's dates (both inclusive, site time) as epoch seconds [start, end)."""
    start = dt.datetime.combine(window_from, dt.time.min, tzinfo=zone)
    end = dt.datetime.combine(window_to + dt.timedelta(days=1), dt.time.min, tzinfo=zone)
    return start.timestamp(), end.timestamp()


def rules_of(institution: Institution) -> MatchRules:
    return MatchRules(lookback_days=institution.lookback_days, skew_days=institution.skew_days,
                      recourse_gap_days=institution.recourse_gap_days)


def create_loss_scan(
    *, institution: Institution, window_from: dt.date, window_to: dt.date, trigger: str, actor
) -> LossScan:
    """Create the scan row (``queued``); ``execute_loss_scan`` does the work."""
    if window_from > window_to:
        raise ValueError(f"window starts {window_from} after it ends {window_to}")
    scan = LossScan(institution=institution, window_from=window_from, window_to=window_to, trigger=trigger,
                    requested_by=actor_name(actor), status=LossScan.Status.QUEUED)
    scan.full_clean()
    scan.save()
    return scan


def run_loss_scan(
    *, institution: Institution, window_from: dt.date, window_to: dt.date, trigger: str, actor,
    refresh_tps: bool = True,
) -> LossScan:
    scan = create_loss_scan(institution=institution, window_from=window_from, window_to=window_to,
                            trigger=trigger, actor=actor)
    return execute_loss_scan(scan=scan, refresh_tps=refresh_tps)


def execute_loss_scan(*, scan: LossScan, refresh_tps: bool = True) -> LossScan:
    """Run a created scan to ``done`` or ``failed``; safe to rerun after a crash.

    Never raises for a source or TPS problem: the scan row says what went wrong.
    """
    institution = scan.institution
    scan.mark_running()
    try:
        if refresh_tps:
            _refresh_tps(institution, scan.requested_by)
        source = _read_source(institution)
        _finish_scan(scan, source)
    except ScanFailed as exc:
        _fail(scan, str(exc))
    except Exception as exc:  # a bug must not leave the scan "running" for ever
        logger.exception("loss scan %s failed", scan.pk)
        _fail(scan, f"internal error: {' '.join(str(exc).split()) or type(exc).__name__}")
    return scan


def _refresh_tps(institution: Institution, actor: str) -> None:
    from inventory.services.tps_sync import sync_institution
    from connectors.tps.base import TpsError

    try:
        sync_institution(institution=institution, actor=actor)
    except TpsError as exc:
        raise ScanFailed(f"TPS of {institution.code} cannot be read: {exc}") from None


def _read_source(institution: Institution) -> RvReadResult:
    try:
        with open_institution_rv(institution) as source:
            read = source.read()
    except RvError as exc:
        raise ScanFailed(f"R&V source of {institution.code} cannot be read: {exc}") from None
    usable = []
    for record in read.records:
        too_long = [f"{name} longer than {limit} characters" for name, limit in _LIMITS.items()
                    if len(getattr(record, name)) > limit]
        if too_long:
            read.problems.append(RowProblem(f"{record.mrn[:64]} {record.plan_label[:64]}", ", ".join(too_long)))
        else:
            usable.append(record)
    read.records = usable
    if not read.records:
        detail = f" ({len(read.problems)} rows skipped, first: {read.problems[0]})" if read.problems else ""
        raise ScanFailed(f"R&V source {redact_url(institution.rv_url)} returned no first-delivery records{detail}")
    return read


def _fail(scan: LossScan, reason: str) -> None:
    scan.status = LossScan.Status.FAILED
    scan.error = reason
    scan.summary = {}
    scan.finished_at = timezone.now()
    with transaction.atomic():  # the failed scan and its audit row commit together
        scan.save(update_fields=["status", "error", "summary", "finished_at"])
        record_event(actor=scan.requested_by, event=Event.LOSSSCAN_RUN, institution=scan.institution.code, obj=scan,
                     outcome=AuditEvent.Outcome.FAILED,
                     detail={"window": [str(scan.window_from), str(scan.window_to)], "error": reason[:1000]})
        transaction.on_commit(lambda: notify.send_scan_alert(scan=scan))


def _finish_scan(scan: LossScan, read: RvReadResult) -> None:
    institution = scan.institution
    rules = rules_of(institution)
    aliases = alias_graph(institution=institution)
    deliveries, other_tps = split_other_tps(deliveries_frame(read.records, patients=aliases.patients),
                                            is_other=institution.is_other_planning_system)
    pending = list(PendingPlan.objects.filter(institution=institution, status=PendingPlan.Status.PENDING))
    bounds = window_bounds(window_from=scan.window_from, window_to=scan.window_to, zone=institution.zone)
    # Only the window's deliveries and the pending plans are matched: ask the indexes for those
    # patients (all of their MRNs) and for plans created where any of them can match.
    times = [*bounds, *(p.first_delivery.timestamp() for p in pending)]
    created = (_utc(min(times) - rules.lookback_days * DAY), _utc(max(times) + rules.skew_days * DAY))
    mrns = aliases.expand(set(within(deliveries, bounds)["mrn"]) | {p.mrn.strip() for p in pending})
    candidates = candidates_frame(
        tps_plan_frame(institution=institution, mrns=mrns, created=created),
        archived_plan_frame(institution=institution, mrns=mrns, created=created),
        active_groups=[institution.pending_group, *institution.clinical_groups],
        unsafe_plans=unsafe_archived_plan_frame(institution=institution, mrns=mrns, created=created),
        patients=aliases.patients,
    )
    window = classify(deliveries, candidates, rules=rules, window=bounds)
    other_window = within(other_tps, bounds)
    now = timezone.now()
    with transaction.atomic():
        scan.findings.all().delete()  # a rerun after a crash starts clean
        scan.other_tps_records.all().delete()
        findings = [_finding(scan, row, aliases) for row in window.itertuples(index=False)]
        changes = _update_pending(scan, pending, candidates, rules, now, findings, aliases)
        LossFinding.objects.bulk_create(findings, batch_size=2000)
        OtherTpsRecord.objects.bulk_create([_other_tps_record(scan, row) for row in other_window.itertuples(index=False)],
                                           batch_size=2000)
        counts = {c: 0 for c in Category.values}
        for finding in findings:
            counts[finding.category] += 1
        lost_mrns = sorted({f.mrn for f in findings if f.category.endswith(LOST)})
        scan.summary = {
            "total": len(findings),
            "pending": PendingPlan.objects.filter(institution=institution, status=PendingPlan.Status.PENDING).count(),
            **counts,
            "lost": counts[Category.FIRST_COURSE_LOST] + counts[Category.RECOURSE_LOST],
            "other_tps": len(other_window),
            "checked": len(window) + changes["rechecked"],
            "in_window": len(window),
            **changes,
            "source_records": len(read.records),
            "source_problems": len(read.problems),
        }
        scan.source_warnings = [p.as_dict() for p in read.problems]
        scan.status = LossScan.Status.DONE
        scan.error = ""
        scan.finished_at = timezone.now()
        scan.save(update_fields=["summary", "source_warnings", "status", "error", "finished_at"])
        _extend_retention(institution, deliveries, aliases, actor=scan.requested_by)
        record_event(actor=scan.requested_by, event=Event.LOSSSCAN_RUN, institution=institution.code, mrns=lost_mrns,
                     obj=scan, detail={"window": [str(scan.window_from), str(scan.window_to)],
                                       "trigger": scan.trigger, **scan.summary})
        if lost_mrns or read.problems:
            transaction.on_commit(lambda: notify.send_scan_alert(scan=scan))


def _extend_retention(institution: Institution, deliveries: pd.DataFrame, aliases: MrnAliasGraph, *, actor) -> int:
    """Every delivery the source holds (not only the window's) moves its patient's archives' ``retain_until``
    later where it ends too early (docs/keeping.md, "Retention"): a re-course, or a delivery known late."""
    if deliveries.empty:
        return 0
    latest = deliveries.groupby("patient", sort=False)["ts"].max()
    return extend_retention(institution=institution, latest_delivery={key: _utc(ts) for key, ts in latest.items()},
                            patient_of=aliases.patient_of, actor=actor)


def _utc(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc)


def _nullable(value):
    return None if pd.isna(value) else int(value)


def _finding(scan: LossScan, row, aliases: MrnAliasGraph) -> LossFinding:
    return LossFinding(
        scan=scan, mrn=row.mrn, patient_name=row.patient_name[:200], plan_label=row.plan_label,
        plan_uid=row.plan_uid, course=_nullable(row.course), is_recourse=bool(row.is_recourse),
        first_delivery=row.first_delivery, category=row.category, match=row.match[:1000],
        found_in=row.found_in[:1000], tps_plan_id=_nullable(row.tps_plan_pk), archive_id=_nullable(row.archive_pk),
        also_known_as=aliases.also_known_as(row.mrn) if aliases else [],
    )


def _other_tps_record(scan: LossScan, row) -> OtherTpsRecord:
    return OtherTpsRecord(
        scan=scan, mrn=row.mrn, patient_name=row.patient_name[:200], plan_label=row.plan_label,
        plan_uid=row.plan_uid, course=_nullable(row.course), first_delivery=row.first_delivery,
        planning_system=row.planning_system[:200], machine=row.machine[:200],
    )


def _key(mrn: str, plan_label: str, plan_uid: str, first_delivery: dt.datetime) -> tuple:
    # Aware datetimes compare and hash by instant, whatever their zone.
    return mrn, plan_label, plan_uid, first_delivery


def _update_pending(
    scan: LossScan, pending: list[PendingPlan], candidates: pd.DataFrame,
    rules: MatchRules, now: dt.datetime, findings: list[LossFinding], aliases: MrnAliasGraph,
) -> dict[str, int]:
    """Bring the pending-archive table up to date; append lost findings of vanished pending plans."""
    institution = scan.institution
    window_keys = {_key(f.mrn, f.plan_label, f.plan_uid, f.first_delivery): f for f in findings}
    start, end = window_bounds(window_from=scan.window_from, window_to=scan.window_to, zone=institution.zone)
    known = {
        _key(p.mrn, p.plan_label, p.plan_uid, p.first_delivery): p
        for p in PendingPlan.objects.filter(
            institution=institution, first_delivery__gte=_utc(start), first_delivery__lt=_utc(end))
    }
    to_create, to_update = [], []
    for key, finding in window_keys.items():
        status = status_of(finding.category)
        plan = known.get(key)
        if status == UNARCHIVED:
            if plan is None:
                to_create.append(PendingPlan(
                    institution=institution, mrn=finding.mrn, patient_name=finding.patient_name,
                    plan_label=finding.plan_label, plan_uid=finding.plan_uid, course=finding.course,
                    is_recourse=finding.is_recourse, first_delivery=finding.first_delivery,
                    tps_plan_id=finding.tps_plan_id, tps_path=finding.match[:500],
                    first_seen_scan=scan, last_checked_scan=scan,
                ))
            else:
                _still_pending(plan, scan, tps_plan_id=finding.tps_plan_id, tps_path=finding.match)
                to_update.append(plan)
        elif plan is not None and plan.status == PendingPlan.Status.PENDING:
            _settle(plan, scan, now, status=status, archive_id=finding.archive_id)
            to_update.append(plan)
    changes = {"rechecked": 0, "released": 0, "pending_lost": 0, "new_pending": len(to_create)}
    changes["released"] = sum(1 for p in to_update if p.status == PendingPlan.Status.RELEASED)
    recheck = [p for p in pending if _key(p.mrn, p.plan_label, p.plan_uid, p.first_delivery) not in window_keys]
    if recheck:
        frame = pd.DataFrame({"mrn": [p.mrn for p in recheck], "plan_label": [p.plan_label for p in recheck],
                              "ts": [p.first_delivery.timestamp() for p in recheck]})
        frame["patient"] = patient_keys(frame["mrn"], aliases.patients)
        result = match_deliveries(frame, candidates, rules=rules)
        for plan, match in zip(recheck, result.itertuples(index=False)):
            if match.status == UNARCHIVED:
                _still_pending(plan, scan, tps_plan_id=_nullable(match.tps_plan_pk), tps_path=match.match)
            else:
                _settle(plan, scan, now, status=match.status, archive_id=_nullable(match.archive_pk))
                changes["released" if match.status == ARCHIVED else "pending_lost"] += 1
                if match.status == LOST:
                    findings.append(LossFinding(
                        scan=scan, mrn=plan.mrn, patient_name=plan.patient_name, plan_label=plan.plan_label,
                        plan_uid=plan.plan_uid, course=plan.course, is_recourse=plan.is_recourse,
                        first_delivery=plan.first_delivery, category=category(is_recourse=plan.is_recourse, status=LOST),
                        found_in=match.found_in[:1000], tps_plan_id=_nullable(match.tps_plan_pk),
                        match=f"pending since scan {plan.first_seen_scan_id}, last seen at {plan.tps_path}"[:1000],
                        also_known_as=aliases.also_known_as(plan.mrn),
                    ))
            to_update.append(plan)
        changes["rechecked"] = len(recheck)
    PendingPlan.objects.bulk_create(to_create, batch_size=1000, ignore_conflicts=True)
    PendingPlan.objects.bulk_update(
        to_update, ["status", "tps_plan", "tps_path", "last_checked_scan", "released_at", "released_archive",
                    "lost_at"], batch_size=1000,
    )
    return changes


def _still_pending(plan: PendingPlan, scan: LossScan, *, tps_plan_id: int | None, tps_path: str) -> None:
    plan.status = PendingPlan.Status.PENDING
    plan.tps_plan_id, plan.tps_path = tps_plan_id, tps_path[:500]
    plan.last_checked_scan = scan
    plan.released_at = plan.released_archive = plan.lost_at = None


def _settle(plan: PendingPlan, scan: LossScan, now: dt.datetime, *, status: str, archive_id: int | None) -> None:
    plan.last_checked_scan = scan
    if status == ARCHIVED:
        plan.status, plan.released_at, plan.released_archive_id = PendingPlan.Status.RELEASED, now, archive_id
    else:
        plan.status, plan.lost_at = PendingPlan.Status.LOST, now
