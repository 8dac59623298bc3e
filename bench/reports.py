"""Benchmark of the Reports page at 100,000 archived patients.

    .venv/bin/python bench/reports.py [--scale 1.0] [--repeat 5] [--keep DIR]

Builds a throw-away SQLite database (bulk inserts) holding five years (2020-2024) of one
institution: 100,000 verified archives with 3 plans each and two copies each, one archive run a day
with its patient tasks, restores, quarantine rows, weekly loss scans with 150,000 findings and a pending-archive
table. Then times, for a month and for a year, the report's figures (``build_report``) and the
whole page as a logged-in browser gets it (Django test client), against a naive baseline that
computes the same figures with Python loops over the rows (ORM objects, per-row related counts),
and prints the times and their ratio; then the same with the index docs/reports.md proposes for
another app's table. Asserts nothing: the numbers are for people.
"""
from __future__ import annotations

import argparse
import datetime as dt
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common import setup_django  # noqa: E402  (bench/common.py, beside this script)
FULL = {"archives": 100_000, "findings": 150_000}
PLANS_PER_ARCHIVE = 3
BATCH = 10_000
ZONE = ZoneInfo("Asia/Shanghai")
FIRST, LAST = dt.datetime(2020, 1, 1, tzinfo=ZONE), dt.datetime(2025, 1, 1, tzinfo=ZONE)
# Not in any migration yet (another app's table): proposed in docs/reports.md, timed here on its own.
PROPOSED_INDEXES = [
    "CREATE INDEX bench_quarantine_not_purged ON archiver_quarantinedpatient (institution_id, purged_at)",
]




def spread(i: int, n: int) -> dt.datetime:
    """The i-th of n instants spread evenly over the five years."""
    return FIRST + (LAST - FIRST) * (i + 0.5) / n


def build_site(scale: float, rng: random.Random):
    from django.db import transaction

    from archiver.models import ArchiveRun, PatientArchiveTask, RestoreRecord
    from inventory.models import Archive, ArchiveCopy, ArchivedPlan, QuarantinedPatient, TpsPatient
    from sites.models import Institution, StorageTarget
    from lossdetect.models import Category, LossFinding, LossScan, PendingPlan

    n_archives, n_findings = int(FULL["archives"] * scale), int(FULL["findings"] * scale)
    inst = Institution.objects.create(code="BENCH", name="Bench", tps_url="file:///none", pending_group="ToArchive",
                                      time_zone="Asia/Shanghai")
    with transaction.atomic():
        TpsPatient.objects.bulk_create(
            [TpsPatient(institution=inst, group="ToArchive", tps_path=f"Institution_1/Mount_0/Patient_{i}",
                        mrn=f"{i:08d}", present=False) for i in range(n_archives)], batch_size=BATCH)
        patients = list(TpsPatient.objects.filter(institution=inst).order_by("id").values_list("id", flat=True))
        Archive.objects.bulk_create(
            [Archive(institution=inst, patient_id=patients[i], name=f"P-{i}_{i:08d}_20200101000000.tar.gz",
                     mrn=f"{i:08d}", status=Archive.Status.VERIFIED, raw_bytes=rng.randint(50, 900) * 10**6,
                     size=rng.randint(20, 300) * 10**6, packed_at=spread(i, n_archives),
                     verified_at=spread(i, n_archives) + dt.timedelta(minutes=3)) for i in range(n_archives)],
            batch_size=BATCH)
        archives = list(Archive.objects.filter(institution=inst).order_by("id").values_list("id", flat=True))
        # Two copies each, as min_copies asks; checked within the fixity cycle but for one in fifty, and one
        # copy in a thousand found corrupt by its last check.
        checked = dt.datetime.now(ZONE)
        for target in (StorageTarget.objects.create(institution=inst, name=f"bench-{n}", url=f"file:///var/empty/{n}")
                       for n in ("array", "offsite")):
            ArchiveCopy.objects.bulk_create(
                [ArchiveCopy(archive_id=a, target=target, path=f"P-{i}.tar.gz", size=10**8, checksum="0" * 64,
                             status=ArchiveCopy.Status.CORRUPT if rng.random() < 0.001 else ArchiveCopy.Status.VERIFIED,
                             stored_at=spread(i, n_archives),
                             last_checked_at=checked - dt.timedelta(days=rng.choice([400] + [3] * 49)))
                 for i, a in enumerate(archives)], batch_size=BATCH)
        ArchivedPlan.objects.bulk_create(
            [ArchivedPlan(archive_id=a, plan_id=p, name="PLAN") for a in archives for p in range(PLANS_PER_ARCHIVE)],
            batch_size=BATCH)
        days = (LAST - FIRST).days
        ArchiveRun.objects.bulk_create(
            [ArchiveRun(institution=inst, requested_by="scheduler", status=ArchiveRun.Status.DONE,
                        created_at=FIRST + dt.timedelta(days=d, hours=2),
                        started_at=FIRST + dt.timedelta(days=d, hours=2),
                        finished_at=FIRST + dt.timedelta(days=d, hours=2, seconds=rng.randint(600, 7200)))
             for d in range(days)], batch_size=BATCH)
        runs = list(ArchiveRun.objects.filter(institution=inst).order_by("started_at").values_list("id", flat=True))
        results = ["pass"] * 95 + ["error"] * 3 + ["warning"] * 2
        PatientArchiveTask.objects.bulk_create(
            [PatientArchiveTask(run_id=runs[min(i * len(runs) // n_archives, len(runs) - 1)], patient_id=patients[i],
                                archive_id=archives[i], result=rng.choice(results), step="done",
                                reason=rng.choice(["", "unreadable: Patient: line 3", "array-1: timed out"]),
                                bytes_total=rng.randint(50, 900) * 10**6) for i in range(n_archives)],
            batch_size=BATCH)
        RestoreRecord.objects.bulk_create(
            [RestoreRecord(institution=inst, archive_id=rng.choice(archives), requested_by="physicist",
                           destination="tps", status="done", bytes=10**8, created_at=spread(i, 2000),
                           started_at=spread(i, 2000))
             for i in range(int(2000 * scale))], batch_size=BATCH)
        QuarantinedPatient.objects.bulk_create(
            [QuarantinedPatient(institution=inst, archive_id=archives[i], tps_path=f"P{i}", quarantine_path=f"Q{i}",
                                total_bytes=10**8, moved_at=spread(i, n_archives),
                                purge_after=spread(i, n_archives) + dt.timedelta(days=30),
                                purged_at=None if i > n_archives * 0.98 else spread(i, n_archives) + dt.timedelta(days=30))
             for i in range(n_archives)], batch_size=BATCH)
        weeks = days // 7
        LossScan.objects.bulk_create(
            [LossScan(institution=inst, window_from=(FIRST + dt.timedelta(weeks=w)).date(),
                      window_to=(FIRST + dt.timedelta(weeks=w, days=6)).date(), requested_by="scheduler",
                      status="done", created_at=FIRST + dt.timedelta(weeks=w + 1),
                      started_at=FIRST + dt.timedelta(weeks=w + 1),
                      finished_at=FIRST + dt.timedelta(weeks=w + 1, minutes=5), summary={"pending": rng.randint(0, 900)})
             for w in range(weeks)], batch_size=BATCH)
        scans = list(LossScan.objects.filter(institution=inst).order_by("started_at").values_list("id", flat=True))
        categories = [Category.FIRST_COURSE_ARCHIVED] * 80 + [Category.RECOURSE_ARCHIVED] * 15 + \
            [Category.FIRST_COURSE_UNARCHIVED] * 3 + [Category.FIRST_COURSE_LOST, Category.RECOURSE_LOST]
        LossFinding.objects.bulk_create(
            [LossFinding(scan_id=scans[min(i * len(scans) // n_findings, len(scans) - 1)], mrn=f"{i % n_archives:08d}",
                         plan_label=f"PLAN {i}", first_delivery=spread(i, n_findings), category=rng.choice(categories))
             for i in range(n_findings)], batch_size=BATCH)
        PendingPlan.objects.bulk_create(
            [PendingPlan(institution=inst, mrn=f"{i:08d}", plan_label="PLAN", first_delivery=spread(i, 800),
                         first_seen_scan_id=scans[0], last_checked_scan_id=scans[-1]) for i in range(800)],
            batch_size=BATCH)
    return inst


def naive_report(inst, period) -> dict:
    """What a first implementation would do: load the rows and count in Python, one query per related count."""
    from django.utils import timezone

    from archiver.models import ArchiveRun, RestoreRecord
    from inventory.models import Archive, QuarantinedPatient
    from lossdetect.models import LossFinding, PendingPlan

    def inside(value) -> bool:
        return value is not None and period.first_day <= timezone.localtime(value, period.zone).date() <= period.last_day

    figures = {"patients": set(), "plans": 0, "raw": 0, "size": 0, "runs": 0, "seconds": 0.0, "bytes": 0,
               "restores": 0}
    for archive in Archive.objects.filter(institution=inst, status="verified"):
        if inside(archive.verified_at):
            figures["patients"].add(archive.mrn)
            figures["plans"] += archive.plans.count()
            figures["raw"] += archive.raw_bytes or 0
            figures["size"] += archive.size or 0
    for run in ArchiveRun.objects.filter(institution=inst):
        if inside(run.started_at):
            figures["runs"] += 1
            figures["seconds"] += run.duration.total_seconds() if run.duration else 0
            figures["bytes"] += sum(t.bytes_total for t in run.tasks.all() if t.result in ("pass", "warning"))
    figures["restores"] = sum(1 for r in RestoreRecord.objects.filter(institution=inst) if inside(r.started_at))
    figures["quarantine"] = sum(q.total_bytes for q in QuarantinedPatient.objects.filter(institution=inst)
                                if q.moved_at and not q.purged_at)
    latest: dict[tuple, tuple[int, str]] = {}
    for finding in LossFinding.objects.filter(scan__institution=inst, scan__status="done"):
        if inside(finding.first_delivery):
            key = (finding.mrn, finding.plan_label, finding.plan_uid, finding.first_delivery)
            if key not in latest or latest[key][0] < finding.scan_id:
                latest[key] = (finding.scan_id, finding.category)
    figures["lost"] = sum(1 for _, category in latest.values() if category.endswith("_lost"))
    ages = sorted(p.age_days() for p in PendingPlan.objects.filter(institution=inst, status="pending"))
    figures["pending_median"] = statistics.median(ages) if ages else None
    return figures


def timed(work, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full size (default 1.0)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each page (the median is printed)")
    parser.add_argument("--keep", type=Path, help="build the database in DIR and keep it")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="pdas-bench-reports-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        setup_django(work, fast=True, test_client=True)
        from django.contrib.auth.models import User
        from django.db import connection
        from django.test import Client
        from django.test.utils import CaptureQueriesContext

        from reports.periods import Period
        from reports.selectors import build_report

        started = time.perf_counter()
        inst = build_site(args.scale, random.Random(8))
        print(f"built {int(FULL['archives'] * args.scale):,} archived patients, "
              f"{int(FULL['findings'] * args.scale):,} loss findings in {time.perf_counter() - started:.1f} s "
              f"(SQLite, {work})")
        client = Client()
        client.force_login(User.objects.create_superuser("bench", password="not-used-here-123"))
        print(f"{'indexes':<9} {'period':<8} {'figures ms':>10} {'page ms':>8} {'queries':>7} {'naive ms':>9} "
              f"{'naive/page':>10}  under 300 ms")
        naive_times: dict[str, float] = {}
        for indexes in ("migrated", "proposed"):
            if indexes == "proposed":
                with connection.cursor() as cursor:
                    for statement in PROPOSED_INDEXES:
                        cursor.execute(statement)
            for period in (Period.month(2024, 6, ZONE), Period.year(2024, ZONE)):
                query = {"institution": "BENCH", "period": period.kind, "year": period.first_day.year,
                         "month": period.first_day.month}
                figures, _ = timed(lambda: build_report(institution=inst, period=period), args.repeat)
                page, response = timed(lambda: client.get("/reports/", query), args.repeat)
                assert response.status_code == 200, response.status_code
                with CaptureQueriesContext(connection) as queries:
                    client.get("/reports/", query)
                if period.label not in naive_times:
                    naive_times[period.label], _ = timed(lambda: naive_report(inst, period), 1)
                naive = naive_times[period.label]
                print(f"{indexes:<9} {period.label:<8} {figures * 1000:>10.0f} {page * 1000:>8.0f} {len(queries):>7} "
                      f"{naive * 1000:>9.0f} {naive / page:>9.1f}x  {'yes' if page < 0.3 else 'NO'}")
        print("proposed: " + "; ".join(PROPOSED_INDEXES))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
