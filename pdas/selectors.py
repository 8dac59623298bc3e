"""Reads for the project-wide pages (the home page's institution cards, in four queries)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from alerts.models import Alert
from alerts.selectors import standing_alerts
from archiver.models import ArchiveRun, PatientArchiveTask
from core.kept import kept
from inventory.models import Archive, TpsPatient
from sites.models import Institution
from lossdetect.models import LossScan


@dataclass(frozen=True)
class InstitutionCard:
    institution: Institution
    pending_patients: int | None  # None: the TPS has never been read, so the count is unknown
    tps_read_at: dt.datetime | None
    last_run: ArchiveRun | None
    last_scan: LossScan | None
    unsafe_archives: int = 0  # verified once, no verified copy left (docs/keeping.md): a standing alert
    unsafe_counted_at: dt.datetime | None = None  # when unsafe_archives was counted (core.kept)
    alerts: tuple[Alert, ...] = ()  # the other standing alerts (no run, no scan, checks behind, target down)
    run_outcome: tuple[str, str] = ("", "")  # the last run's (css key, label): "Done with errors" when a × is in it


def institution_cards(*, institutions: QuerySet[Institution] | None = None, recount: bool = False
                      ) -> list[InstitutionCard]:
    """One card per institution (of ``institutions``, default all) in six queries, however many there are.
    The archives without a verified copy, an aggregate over every archive, are as counted within the last
    ``PDAS_COUNTS_CACHE_SECONDS`` (``core.kept``; ``recount``: now)."""
    latest_run = ArchiveRun.objects.filter(institution=OuterRef("pk")).order_by("-created_at", "-id")
    latest_scan = LossScan.objects.filter(institution=OuterRef("pk")).order_by("-created_at", "-id")
    # Subqueries on the (institution, present, group) and (institution, last_seen) indexes: a join with
    # every patient the TPS ever held took 90 ms at 100,000 of them, on every view of the home page.
    patients = TpsPatient.objects.filter(institution=OuterRef("pk")).order_by()
    pending = (patients.filter(present=True, group=OuterRef("pending_group"))
               .values("institution").annotate(n=Count("pk")).values("n"))
    institutions = list(
        (Institution.objects.all() if institutions is None else institutions).annotate(
            pending_patients=Coalesce(Subquery(pending, output_field=IntegerField()), 0),
            tps_read_at=Subquery(patients.order_by("-last_seen").values("last_seen")[:1]),
            last_run_id=Subquery(latest_run.values("id")[:1]),
            last_scan_id=Subquery(latest_scan.values("id")[:1]),
        ).order_by("code")
    )
    ids = sorted(i.pk for i in institutions)
    unsafe = kept(f"pdas:unsafe-archives:{','.join(map(str, ids))}",
                  lambda: dict(Archive.objects.filter(institution__in=ids).without_verified_copy().order_by()
                               .values("institution").annotate(n=Count("pk")).values_list("institution", "n")),
                  seconds=settings.PDAS_COUNTS_CACHE_SECONDS, recount=recount)
    alerts = standing_alerts(institutions=[i.pk for i in institutions])
    runs = ArchiveRun.objects.in_bulk([i.last_run_id for i in institutions if i.last_run_id])
    results = PatientArchiveTask.Result
    marks = {row["run"]: row for row in PatientArchiveTask.objects.filter(run__in=list(runs)).order_by()
             .values("run").annotate(errors=Count("pk", filter=Q(result=results.ERROR)),
                                     warnings=Count("pk", filter=Q(result=results.WARNING)))}
    scans = LossScan.objects.in_bulk([i.last_scan_id for i in institutions if i.last_scan_id])
    return [
        InstitutionCard(
            institution=institution,
            pending_patients=institution.pending_patients if institution.tps_read_at else None,
            tps_read_at=institution.tps_read_at,
            last_run=runs.get(institution.last_run_id),
            last_scan=scans.get(institution.last_scan_id),
            unsafe_archives=unsafe.value.get(institution.pk, 0),
            unsafe_counted_at=unsafe.counted_at,
            alerts=tuple(a for a in alerts.get(institution.pk, []) if a.kind != Alert.Kind.ARCHIVE_UNSAFE),
            run_outcome=_outcome(runs.get(institution.last_run_id), marks),
        )
        for institution in institutions
    ]


def _outcome(run: ArchiveRun | None, marks: dict) -> tuple[str, str]:
    if run is None:
        return ("", "")
    found = marks.get(run.pk, {})
    return run.outcome(errors=found.get("errors", 0), warnings=found.get("warnings", 0))
