"""Mirroring the TPS tree into ``TpsPatient``/``TpsPlan`` rows, re-reading only what changed.

Each patient folder is walked (names, sizes, mtimes: cheap) and fingerprinted; only a patient
whose fingerprint differs from the stored one, or that was unreadable last time, is parsed again.
The rows describe what was last read successfully: when a patient's ``Patient`` file cannot be
parsed (Pinnacle half-way through writing it), the stored names and plans are kept and only
``read_error`` says so, because dropping the plans would make loss detection call them lost.

A listing that fails raises ``TpsError`` before anything is written: an unreachable TPS is
"unknown", never "every patient is gone".
"""
from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from inventory.models import TpsPatient, TpsPlan
from sites.models import Institution
from pinnacle.reader import (
    PatientInfo, PatientScan, list_groups, read_institution_headers, read_patient, scan_patient,
)
from connectors.tps.base import TpsError, TpsSource
from audit.models import AuditEvent
from audit.events import Event
from audit.services import record_event

# Patients parsed are written in batches: bounded queries per batch, bounded memory per sync.
WRITE_BATCH = 200
UPDATE_CHUNK = 500

_PATIENT_FIELDS = ["group", "tps_patient_id", "mrn", "last_name", "first_name", "middle_name", "image_sets",
                   "file_count", "total_bytes", "latest_mtime", "fingerprint", "read_error", "present",
                   "last_seen"]
_PLAN_FIELDS = ["name", "trial_names", "created", "edited", "has_directory"]


@dataclass
class SyncReport:
    institution: str
    groups: dict[str, int] = field(default_factory=dict)  # group name -> patient folders seen
    patients_seen: int = 0
    patients_parsed: int = 0  # re-read because new, changed or unreadable last time
    patients_unchanged: int = 0
    patients_vanished: int = 0  # present before, gone now
    unreadable: int = 0  # present and not readable after this sync
    seconds: float = 0.0
    parsed_mrns: list[str] = field(default_factory=list)
    skipped_links: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"groups": len(self.groups), "patients_seen": self.patients_seen,
                "patients_parsed": self.patients_parsed, "patients_unchanged": self.patients_unchanged,
                "patients_vanished": self.patients_vanished, "unreadable": self.unreadable}


@dataclass
class _Parsed:
    info: PatientInfo
    scan: PatientScan | None  # None: the folder could not be walked (the error is in info.errors)


def _aware(value: dt.datetime | None, zone) -> dt.datetime | None:
    # Pinnacle writes wall-clock time of the site; fold=0 picks the first of a repeated DST hour.
    return value.replace(tzinfo=zone) if value is not None else None


def sync_institution(*, institution: Institution, source: TpsSource | None = None, actor=None) -> SyncReport:
    """Read every group of the institution's TPS into the database; return what happened.

    Raises ``TpsError`` (and records a failed ``tps.sync`` event) when the TPS cannot be listed or
    lists no patient folders although patients were present before; nothing is marked absent then.
    """
    started = time.monotonic()
    owned = source is None
    try:
        if owned:
            from sites.connections import open_institution_tps

            source = open_institution_tps(institution)
        try:
            report, seen = _sync(institution, source)
        finally:
            if owned:
                source.close()
    except TpsError as exc:
        record_event(actor=actor, event=Event.TPS_SYNC, institution=institution.code, obj=institution,
                     outcome=AuditEvent.Outcome.FAILED, detail={"error": str(exc)[:1000]})
        raise
    report.seconds = round(time.monotonic() - started, 3)
    # The batches of re-read patients are committed as they go (a rerun reads again what a crash cut
    # short); the last writes, who is present and who vanished, commit with the sync's audit row.
    with transaction.atomic():
        seen.write()
        record_event(actor=actor, event=Event.TPS_SYNC, institution=institution.code, mrns=report.parsed_mrns,
                     obj=institution, detail={**report.counts(), "groups_seen": report.groups,
                                              "seconds": report.seconds, "warnings": report.warnings[:50],
                                              "skipped_links": report.skipped_links[:50]})
    return report


@dataclass
class _Seen:
    """Who the walk found unchanged (still present) and who vanished: the sync's last writes."""

    now: dt.datetime
    unchanged_ids: list[int]
    vanished_ids: list[int]

    def write(self) -> None:
        for start in range(0, len(self.unchanged_ids), UPDATE_CHUNK):
            TpsPatient.objects.filter(pk__in=self.unchanged_ids[start:start + UPDATE_CHUNK]).update(
                present=True, last_seen=self.now)
        for start in range(0, len(self.vanished_ids), UPDATE_CHUNK):
            TpsPatient.objects.filter(pk__in=self.vanished_ids[start:start + UPDATE_CHUNK]).update(present=False)


def _sync(institution: Institution, source: TpsSource) -> tuple[SyncReport, _Seen]:
    report = SyncReport(institution=institution.code)
    headers = read_institution_headers(source)
    if not headers:
        report.warnings.append("the TPS root has no Institution file: groups are named by folder")
    groups = list_groups(source, headers)
    existing = {p.tps_path: p for p in TpsPatient.objects.filter(institution=institution).only(
        "id", "tps_path", "group", "mrn", "fingerprint", "read_error", "present")}
    was_present = sum(1 for p in existing.values() if p.present)
    if was_present and not any(g.patient_paths for g in groups):
        raise TpsError(f"{source.url}: lists no patient folders although {was_present} were present at the "
                       "last sync; not marking them absent (is the share mounted?)", retryable=True)

    now = timezone.now()
    seen: set[str] = set()
    unchanged_ids: list[int] = []
    batch: list[_Parsed] = []
    for group in groups:
        report.skipped_links += group.skipped_links
        report.groups[group.name] = report.groups.get(group.name, 0) + len(group.patient_paths)
        for tps_path in group.patient_paths:
            try:
                scan = scan_patient(source, tps_path)
            except TpsError as exc:
                if source.stat(tps_path) is None:  # gone between the listing and the walk: not seen
                    continue
                if exc.retryable:
                    raise
                scan = None  # e.g. a sub-folder nobody may read: the patient is unreadable, not gone
            seen.add(tps_path)
            report.patients_seen += 1
            row = existing.get(tps_path)
            if scan is not None and row is not None and not row.read_error and row.fingerprint == scan.fingerprint:
                report.patients_unchanged += 1
                unchanged_ids.append(row.pk)
                if row.group != group.name:  # the header renamed the group; the files did not change
                    TpsPatient.objects.filter(pk=row.pk).update(group=group.name)
                continue
            batch.append(_Parsed(read_patient(source, tps_path, group=group.name, scan=scan), scan))
            if len(batch) >= WRITE_BATCH:
                _store(institution, batch, now, report)
                batch = []
    if batch:
        _store(institution, batch, now, report)

    vanished = [p.pk for path, p in existing.items() if p.present and path not in seen]
    report.patients_vanished = len(vanished)
    return report, _Seen(now, unchanged_ids, vanished)


def _store(institution: Institution, batch: list[_Parsed], now: dt.datetime, report: SyncReport) -> None:
    """Write one batch of parsed patients and their plans in one transaction, in a bounded number of queries."""
    zone = institution.zone
    with transaction.atomic():
        # Locking the institution row serialises concurrent syncs (beat and a command) of one site.
        Institution.objects.select_for_update().filter(pk=institution.pk).only("id").first()
        rows = {p.tps_path: p for p in TpsPatient.objects.filter(
            institution=institution, tps_path__in=[item.info.tps_path for item in batch])}
        new_rows, changed_rows, keep_plans = [], [], set()
        for item in batch:
            info, scan = item.info, item.scan
            row = rows.get(info.tps_path)
            if row is None:
                row = TpsPatient(institution=institution, tps_path=info.tps_path, first_seen=now)
                new_rows.append(row)
            else:
                changed_rows.append(row)
            row.group = info.group
            if scan is not None:
                row.file_count = len(scan.files)
                row.total_bytes = sum(f.size for f in scan.files)
                latest = max((f.mtime for f in scan.files), default=None)
                row.latest_mtime = dt.datetime.fromtimestamp(latest, tz=dt.timezone.utc) if latest else None
            row.fingerprint = scan.fingerprint if scan is not None else ""
            row.read_error = "; ".join(info.errors)[:10000]
            row.present = True
            row.last_seen = now
            if info.header_read or not row.pk:
                row.tps_patient_id = info.tps_patient_id
                row.mrn = info.mrn
                row.last_name, row.first_name, row.middle_name = info.last_name, info.first_name, info.middle_name
                row.image_sets = [{"image_set_id": s.image_set_id, "modality": s.modality, "images": s.images}
                                  for s in info.image_sets]
            else:
                keep_plans.add(info.tps_path)
            report.patients_parsed += 1
            report.unreadable += bool(info.errors)
            if row.mrn:
                report.parsed_mrns.append(row.mrn)
            report.warnings += [f"{info.tps_path}: {w}" for w in info.warnings]
        if new_rows:
            TpsPatient.objects.bulk_create(new_rows)
        if changed_rows:
            TpsPatient.objects.bulk_update(changed_rows, _PATIENT_FIELDS)
        if any(row.pk is None for row in new_rows):  # backends that do not return ids from bulk inserts
            ids = dict(TpsPatient.objects.filter(institution=institution, tps_path__in=[r.tps_path for r in new_rows])
                       .values_list("tps_path", "pk"))
            for row in new_rows:
                row.pk = ids[row.tps_path]
        patients = {row.tps_path: row for row in [*new_rows, *changed_rows]}
        _store_plans(batch, patients, keep_plans, zone)


def _store_plans(batch: list[_Parsed], patients: dict[str, TpsPatient], keep: set[str], zone) -> None:
    """Update plans in place by PlanID (links from loss findings survive), add new ones, drop gone ones."""
    ids = [patients[item.info.tps_path].pk for item in batch if item.info.tps_path not in keep]
    current = {(p.patient_id, p.plan_id): p for p in TpsPlan.objects.filter(patient_id__in=ids)}
    wanted: dict[tuple[int, int], TpsPlan] = {}
    for item in batch:
        if item.info.tps_path in keep:
            continue
        patient_id = patients[item.info.tps_path].pk
        for plan in item.info.plans:
            row = current.get((patient_id, plan.plan_id)) or TpsPlan(patient_id=patient_id, plan_id=plan.plan_id)
            row.name = plan.name
            row.trial_names = list(plan.trial_names)
            row.created = _aware(plan.created, zone)
            row.edited = _aware(plan.edited, zone)
            row.has_directory = plan.has_directory
            wanted[(patient_id, plan.plan_id)] = row
    gone = [p.pk for key, p in current.items() if key not in wanted]
    if gone:
        TpsPlan.objects.filter(pk__in=gone).delete()
    new = [p for p in wanted.values() if p.pk is None]
    updated = [p for p in wanted.values() if p.pk is not None]
    if new:
        TpsPlan.objects.bulk_create(new)
    if updated:
        TpsPlan.objects.bulk_update(updated, _PLAN_FIELDS)


def sync_patient(*, institution: Institution, source: TpsSource, tps_path: str, group: str) -> TpsPatient:
    """Read one patient folder into its row now (a restore just put it there); returns the row.

    The same writing as a full sync, for one folder, so a later sync finds it unchanged. Raises
    ``TpsError`` when the folder cannot be walked.
    """
    scan = scan_patient(source, tps_path)
    info = read_patient(source, tps_path, group=group, scan=scan)
    _store(institution, [_Parsed(info, scan)], timezone.now(), SyncReport(institution=institution.code))
    return TpsPatient.objects.get(institution=institution, tps_path=info.tps_path)
