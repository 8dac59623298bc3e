"""Reads for loss detection: the plan indexes a scan matches against, and the page querysets.

Each index read is one query for the patients and the creation times a scan can match; for a
weekly scan (hundreds of MRNs) it names the MRNs, so its cost follows the size of the scan, not
the size of the archive. The rows are read through the queryset's own SQL on a plain
cursor: Django's per-row conversion of datetimes and JSON would cost more than the matching.
Creation times (SQLite: cast to text, so the driver does not parse them one by one) are parsed
in bulk by pandas, trial-name lists once per distinct value. MRNs are stored trimmed (the TPS
reader and the archive manifests trim them).
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Collection

import pandas as pd
from django.db import connections
from django.db.models import CharField, F, QuerySet
from django.db.models.functions import Cast

from inventory.models import Archive, ArchiveCopy, ArchivedPlan, TpsPlan
from sites.models import Institution
from lossdetect.models import LossFinding, LossScan, MrnAlias, OtherTpsRecord, PendingPlan
from lossdetect.services.alias_graph import MrnAliasGraph
from lossdetect.services.classify import ARCHIVED_PLAN_COLUMNS, TPS_PLAN_COLUMNS

# Up to this many MRNs the query names them (answered from the MRN indexes); beyond, it reads the
# whole index and drops the other patients in Python, which is faster for such big scans. Well
# under the bound-parameter limits of SQLite and PostgreSQL.
MRN_IN_LIMIT = 5_000
_MRN = 4  # position of the MRN in both index rows


def _index_frame(queryset: QuerySet, columns: list[str], *, mrn_field: str, mrns: Collection[str] | None,
                 created: tuple[dt.datetime, dt.datetime] | None) -> pd.DataFrame:
    """Rows of a ``values_list`` queryset (raw creation time 4th) as a DataFrame, ``created_ts`` in epoch seconds.

    ``mrns``: only these patients (None: all). ``created``: only plans created in this range.
    """
    if created is not None:
        queryset = queryset.filter(created__range=created)
    queryset = queryset.order_by()
    wanted = None if mrns is None else {m.strip() for m in mrns}
    if wanted and len(wanted) <= MRN_IN_LIMIT:
        queryset = queryset.filter(**{f"{mrn_field}__in": sorted(wanted)})
        wanted = None
    rows: list[tuple] = []
    if wanted is None or wanted:  # no query when no patient is asked for
        sql, params = queryset.query.sql_with_params()
        with connections[queryset.db].cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
    if wanted is not None:
        rows = [row for row in rows if row[_MRN] in wanted]
    frame = pd.DataFrame.from_records(rows, columns=columns)
    frame["mrn"] = frame["mrn"].astype(object)
    # SQLite gives UTC text, PostgreSQL aware datetimes: both parse here.
    parsed = pd.to_datetime(frame["created_ts"], utc=True, format="ISO8601")
    frame["created_ts"] = (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    decoded = {key: _trial_list(key) for key in pd.unique(frame["trial_names"].map(_json_key))}
    frame["trial_names"] = frame["trial_names"].map(lambda raw: decoded[_json_key(raw)])
    return frame


def _created_raw(queryset: QuerySet):
    # The sqlite3 driver would parse every timestamp into a datetime; text is parsed in bulk later.
    if connections[queryset.db].vendor == "sqlite":
        return Cast("created", output_field=CharField())
    return F("created")


def _json_key(raw):
    """A hashable form of a JSON value: SQLite returns text, PostgreSQL decoded lists."""
    return raw if raw is None or isinstance(raw, str) else json.dumps(raw)


def _trial_list(raw: str | None) -> list[str]:
    value = json.loads(raw) if isinstance(raw, str) else raw
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def tps_plan_frame(*, institution: Institution, mrns: Collection[str] | None = None,
                   created: tuple[dt.datetime, dt.datetime] | None = None) -> pd.DataFrame:
    """Plans of the patients present in the TPS as last read (``TPS_PLAN_COLUMNS``)."""
    plans = TpsPlan.objects.filter(patient__institution=institution, patient__present=True)
    rows = plans.annotate(created_raw=_created_raw(plans)).values_list(
        "pk", "name", "trial_names", "created_raw", "patient__mrn", "patient__group", "patient__tps_path")
    return _index_frame(rows, TPS_PLAN_COLUMNS, mrn_field="patient__mrn", mrns=mrns, created=created)


def archived_plan_frame(*, institution: Institution, mrns: Collection[str] | None = None,
                        created: tuple[dt.datetime, dt.datetime] | None = None) -> pd.DataFrame:
    """Plans inside archives that have a verified copy on an enabled target (``ARCHIVED_PLAN_COLUMNS``):
    the rows of ``Archive.objects.with_verified_copy()``, read as a join."""
    # A join, not EXISTS: SQLite plans it better. An archive verified on two targets comes twice.
    plans = ArchivedPlan.objects.filter(archive__institution=institution, archive__status=Archive.Status.VERIFIED,
                                        archive__copies__status=ArchiveCopy.Status.VERIFIED,
                                        archive__copies__target__enabled=True)
    rows = plans.annotate(created_raw=_created_raw(plans)).values_list(
        "pk", "name", "trial_names", "created_raw", "archive__mrn", "archive_id", "archive__name")
    frame = _index_frame(rows, ARCHIVED_PLAN_COLUMNS, mrn_field="archive__mrn", mrns=mrns, created=created)
    return frame.drop_duplicates("plan_pk", ignore_index=True)


def unsafe_archived_plan_frame(*, institution: Institution, mrns: Collection[str] | None = None,
                               created: tuple[dt.datetime, dt.datetime] | None = None) -> pd.DataFrame:
    """Plans of archives that were verified once but have no verified copy left
    (``UNSAFE_ARCHIVED_PLAN_COLUMNS``), each with ``where`` naming the archive and the state of each copy,
    and ``in_quarantine``: whether the originals still wait in the quarantine (docs/keeping.md)."""
    unsafe = Archive.objects.filter(institution=institution).without_verified_copy()
    plans = ArchivedPlan.objects.filter(archive__in=unsafe)
    rows = plans.annotate(created_raw=_created_raw(plans)).values_list(
        "pk", "name", "trial_names", "created_raw", "archive__mrn", "archive_id", "archive__name")
    frame = _index_frame(rows, ARCHIVED_PLAN_COLUMNS, mrn_field="archive__mrn", mrns=mrns, created=created)
    where, in_quarantine = {}, {}
    archives = Archive.objects.filter(pk__in=set(frame["archive_pk"].tolist())).prefetch_related("copies__target")
    for archive in archives:
        states = ", ".join(f"{copy.status} on {copy.target.name}" for copy in
                           sorted(archive.copies.all(), key=lambda c: c.target.name)) or "no copy"
        waiting = (archive.quarantined.filter(moved_at__isnull=False, purged_at__isnull=True)
                   .order_by("-moved_at").first())
        where[archive.pk] = f"archive {archive.name}: {states}" + (
            f"; originals in the quarantine: {waiting.quarantine_path} (kept while no copy is verified; move the "
            f"folder back into the pending group to archive it again)" if waiting else "")
        in_quarantine[archive.pk] = waiting is not None
    frame["where"] = frame["archive_pk"].map(where).astype(object)
    frame["in_quarantine"] = frame["archive_pk"].map(in_quarantine).astype(bool)
    return frame


def alias_graph(*, institution: Institution) -> MrnAliasGraph:
    """The institution's MRN aliases as one graph (one query): which MRNs are one patient."""
    return MrnAliasGraph(MrnAlias.objects.filter(institution=institution).order_by().values_list("old_mrn", "mrn"))


def mrn_aliases() -> QuerySet[MrnAlias]:
    return MrnAlias.objects.select_related("institution").order_by("institution__code", "mrn", "old_mrn")


def scan_list() -> QuerySet[LossScan]:
    return LossScan.objects.select_related("institution").order_by("-created_at")


def scan_findings(*, scan: LossScan, category: str | None = None) -> QuerySet[LossFinding]:
    findings = scan.findings.all()
    if category:
        findings = findings.filter(category=category)
    return findings.order_by("first_delivery", "mrn")


def scan_other_tps_records(*, scan: LossScan) -> QuerySet[OtherTpsRecord]:
    return scan.other_tps_records.order_by("first_delivery", "mrn")


def pending_plans() -> QuerySet[PendingPlan]:
    return PendingPlan.objects.select_related("institution", "released_archive", "first_seen_scan").order_by(
        "first_delivery"
    )
