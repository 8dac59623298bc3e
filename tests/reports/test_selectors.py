"""Each report figure on generated rows with answers worked out by hand (site time Asia/Shanghai, UTC+8)."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from archiver.models import Archive, PatientArchiveTask, RestoreRecord
from lossdetect.models import Category, LossScan
from reports import selectors
from reports.periods import Period
from tests.factories import ArchivedPlanFactory, ArchiveFactory, InstitutionFactory
from tests.reports.factories import (
    ArchiveRunFactory, DoneScanFactory, LossFindingFactory, PatientArchiveTaskFactory, PendingPlanFactory,
    QuarantinedPatientFactory, RestoreRecordFactory,
)

pytestmark = pytest.mark.django_db

ZONE = ZoneInfo("Asia/Shanghai")
MARCH = Period.month(2024, 3, ZONE)
Result = PatientArchiveTask.Result


def at(month: int, day: int, hour: int = 12, minute: int = 0, year: int = 2024) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=ZONE)


@pytest.fixture
def inst():
    return InstitutionFactory(code="PUMCH", time_zone="Asia/Shanghai")


def whole(period: Period) -> list[dt.datetime]:
    return [period.start, period.end]


# --- archived volume --------------------------------------------------------------------------------------


@pytest.fixture
def archives(inst):
    # Half an hour into March site time is still February in UTC: it counts in March.
    first = ArchiveFactory(institution=inst, mrn="001", verified_at=at(3, 1, 0, 30), raw_bytes=3000, size=1000)
    ArchivedPlanFactory(archive=first, plan_id=0)
    ArchivedPlanFactory(archive=first, plan_id=1)
    last = ArchiveFactory(institution=inst, mrn="002", verified_at=at(3, 31, 23, 30), raw_bytes=6000, size=1500)
    ArchivedPlanFactory(archive=last, plan_id=0)
    ArchiveFactory(institution=inst, mrn="001", name="LAST-FIRST_001_20240315000000.tar.gz", verified_at=at(3, 15),
                   raw_bytes=1000, size=500)  # re-archived
    april = ArchiveFactory(institution=inst, mrn="003", verified_at=at(4, 1, 0, 10), raw_bytes=9, size=9)
    ArchivedPlanFactory(archive=april, plan_id=0)
    ArchiveFactory(institution=inst, mrn="004", verified_at=None, status=Archive.Status.FAILED, packed_at=at(3, 2))
    ArchiveFactory(institution=inst, mrn="005", verified_at=at(2, 29, 23, 59), raw_bytes=400, size=100)
    ArchiveFactory(institution=InstitutionFactory(code="OTHER"), verified_at=at(3, 3))  # another institution
    return inst


def test_volume_counts_verified_archives_of_the_period_in_site_time(archives):
    volume = selectors.archive_volume(institution=archives, bounds=whole(MARCH))[0]
    assert (volume.archives, volume.patients, volume.plans) == (3, 2, 3)
    assert (volume.raw_bytes, volume.compressed_bytes) == (10_000, 3000)
    assert volume.compression_ratio == pytest.approx(10_000 / 3000)


def test_volume_per_month_of_the_trend(archives):
    months = selectors.archive_volume(institution=archives, bounds=MARCH.month_bounds())
    assert len(months) == 12  # April 2023 .. March 2024
    assert [v.archives for v in months] == [0] * 10 + [1, 3]
    assert months[10].raw_bytes == 400 and months[10].compression_ratio == 4.0
    assert months[0].compression_ratio is None  # nothing archived: no ratio, not zero


# --- runs and results -----------------------------------------------------------------------------------------


@pytest.fixture
def runs(inst):
    first = ArchiveRunFactory(institution=inst, started_at=at(3, 2, 10), finished_at=at(3, 2, 10, 10))  # 600 s
    for _ in range(3):
        PatientArchiveTaskFactory(run=first, bytes_total=100_000_000)
    PatientArchiveTaskFactory(run=first, result=Result.ERROR, bytes_total=50_000_000,
                              reason="unreadable: Patient: line 3: missing ';'")
    PatientArchiveTaskFactory(run=first, result=Result.ERROR, bytes_total=50_000_000,
                              reason="unreadable: Plan_0/plan.Trial: truncated")
    second = ArchiveRunFactory(institution=inst, started_at=at(3, 10, 2), finished_at=at(3, 10, 2) + dt.timedelta(seconds=200))
    PatientArchiveTaskFactory(run=second, result=Result.WARNING, bytes_total=100_000_000,
                              reason="archived, but the patient left the pending group before removal")
    PatientArchiveTaskFactory(run=second, bytes_total=100_000_000)
    running = ArchiveRunFactory(institution=inst, started_at=at(3, 20), finished_at=None)
    PatientArchiveTaskFactory(run=running, result=Result.PENDING, bytes_total=10_000_000)
    PatientArchiveTaskFactory(run=running, bytes_total=10_000_000)  # done, but its run has no time yet
    april = ArchiveRunFactory(institution=inst, started_at=at(4, 1, 0, 5), finished_at=at(4, 1, 1, 5))
    PatientArchiveTaskFactory(run=april, bytes_total=7)
    return inst


def test_throughput_of_the_period(runs):
    throughput = selectors.run_throughput(institution=runs, bounds=whole(MARCH))[0]
    assert (throughput.runs, throughput.finished_runs, throughput.seconds) == (3, 2, 800.0)
    assert throughput.archived_bytes == 500_000_000  # ✓ and ! of the finished runs; × never
    assert throughput.mb_per_s == pytest.approx(0.625)
    assert throughput.results == {"pass": 5, "error": 2, "warning": 1, "pending": 1}
    assert throughput.patients == 9


def test_each_runs_own_rate(runs):
    rows = list(selectors.archive_runs(institution=runs, bounds=whole(MARCH)))
    assert [r.patients for r in rows] == [5, 2, 2]
    assert [(r.passed, r.errors, r.warnings) for r in rows] == [(3, 2, 0), (1, 0, 1), (1, 0, 0)]
    rates = [selectors.megabytes_per_second(r.archived_bytes, r.duration and r.duration.total_seconds())
             for r in rows]
    assert rates == [pytest.approx(0.5), pytest.approx(1.0), None]  # the running run has no rate yet


def test_throughput_per_month(runs):
    months = selectors.run_throughput(institution=runs, bounds=MARCH.month_bounds())
    assert months[-1].mb_per_s == pytest.approx(0.625)
    assert all(m.runs == 0 and m.mb_per_s is None for m in months[:-1])


def test_reasons_are_grouped_by_their_head(runs):
    reasons = selectors.result_reasons(institution=runs, bounds=whole(MARCH))
    assert [(r["mark"], r["head"], r["count"]) for r in reasons] == [
        ("×", "unreadable", 2), ("!", "archived, but the patient left the pending group before removal", 1)]
    assert reasons[0]["example"] == "unreadable: Patient: line 3: missing ';'"


def test_reason_groups_beyond_the_limit_are_summed(inst, monkeypatch):
    monkeypatch.setattr(selectors, "REASON_GROUPS", 3)
    run = ArchiveRunFactory(institution=inst, started_at=at(3, 5))
    for n in range(5):
        PatientArchiveTaskFactory(run=run, result=Result.ERROR, reason=f"failure {n}: detail")
    reasons = selectors.result_reasons(institution=inst, bounds=whole(MARCH))
    assert [r["count"] for r in reasons] == [1, 1, 3] and reasons[-1]["head"] == "3 other reasons"


# --- restores, quarantine, pending ----------------------------------------------------------------------------


def test_restores_of_the_period(inst):
    RestoreRecordFactory(institution=inst, started_at=at(3, 3), bytes=5000)
    RestoreRecordFactory(institution=inst, started_at=at(3, 4), bytes=7000)
    RestoreRecordFactory(institution=inst, started_at=at(3, 5), status=RestoreRecord.Status.FAILED, bytes=10)
    RestoreRecordFactory(institution=inst, started_at=at(3, 6), status=RestoreRecord.Status.REFUSED)
    RestoreRecordFactory(institution=inst, started_at=at(4, 1, 0, 1), bytes=1)
    restores = selectors.restore_counts(institution=inst, bounds=whole(MARCH))[0]
    assert (restores.restores, restores.done, restores.failed, restores.bytes) == (4, 2, 2, 12_000)


def test_quarantine_counts_moved_and_not_purged(inst):
    QuarantinedPatientFactory(institution=inst, total_bytes=100, moved_at=at(3, 1))
    QuarantinedPatientFactory(institution=inst, total_bytes=200, moved_at=at(3, 9), purge_after=at(4, 8))
    QuarantinedPatientFactory(institution=inst, total_bytes=400, purged_at=at(3, 20))
    QuarantinedPatientFactory(institution=inst, total_bytes=800, moved_at=None)  # the move is under way
    quarantine = selectors.quarantine_now(institution=inst)
    assert (quarantine.patients, quarantine.bytes, quarantine.oldest_moved_at) == (2, 300, at(3, 1))


@pytest.mark.parametrize(("ages", "oldest", "median"), [
    ([10, 40, 20], 40, 20), ([10, 40, 20, 30], 40, 25), ([7], 7, 7), ([], None, None)])
def test_pending_table_size_and_age(inst, ages, oldest, median):
    now = at(3, 31)
    for age in ages:
        PendingPlanFactory(institution=inst, first_delivery=now - dt.timedelta(days=age))
    PendingPlanFactory(institution=inst, first_delivery=now - dt.timedelta(days=400), status="released")
    pending = selectors.pending_now(institution=inst, now=now)
    assert (pending.plans, pending.oldest_days, pending.median_days) == (len(ages), oldest, median)


def test_pending_trend_takes_the_last_scan_of_each_month(inst):
    DoneScanFactory(institution=inst, finished_at=at(3, 7), summary={"pending": 5})
    DoneScanFactory(institution=inst, finished_at=at(3, 14), summary={"pending": 3})
    DoneScanFactory(institution=inst, finished_at=at(3, 21), status=LossScan.Status.FAILED, summary={})
    DoneScanFactory(institution=inst, finished_at=at(2, 7), summary={"pending": 0})
    assert selectors.pending_trend(institution=inst, bounds=MARCH.month_bounds())[-2:] == [0, 3]
    assert selectors.pending_trend(institution=inst, bounds=MARCH.month_bounds())[0] is None  # no scan: unknown


# --- loss rate ------------------------------------------------------------------------------------------------


@pytest.fixture
def losses(inst):
    first = DoneScanFactory(institution=inst, window_from=dt.date(2024, 3, 1), window_to=dt.date(2024, 3, 7))
    finding = LossFindingFactory
    finding(scan=first, mrn="P1", first_delivery=at(3, 1, 0, 30), category=Category.FIRST_COURSE_ARCHIVED)
    finding(scan=first, mrn="P2", first_delivery=at(3, 3), category=Category.FIRST_COURSE_UNARCHIVED)
    finding(scan=first, mrn="P3", first_delivery=at(3, 5), category=Category.FIRST_COURSE_LOST)
    finding(scan=first, mrn="P4", first_delivery=at(3, 6), category=Category.RECOURSE_LOST)
    second = DoneScanFactory(institution=inst, window_from=dt.date(2024, 3, 8), window_to=dt.date(2024, 3, 14))
    finding(scan=second, mrn="P5", first_delivery=at(3, 9), category=Category.FIRST_COURSE_ARCHIVED)
    finding(scan=second, mrn="P6", first_delivery=at(3, 10), category=Category.RECOURSE_ARCHIVED)
    # The pending plan P2 vanished from the TPS: the later scan reports it lost.
    finding(scan=second, mrn="P2", first_delivery=at(3, 3), category=Category.FIRST_COURSE_LOST)
    rerun = DoneScanFactory(institution=inst, window_from=dt.date(2024, 3, 1), window_to=dt.date(2024, 3, 7))
    finding(scan=rerun, mrn="P1", first_delivery=at(3, 1, 0, 30), category=Category.FIRST_COURSE_ARCHIVED)
    finding(scan=rerun, mrn="P3", first_delivery=at(3, 5), category=Category.FIRST_COURSE_LOST)
    finding(scan=rerun, mrn="P4", first_delivery=at(3, 6), category=Category.RECOURSE_ARCHIVED)  # restored, archived
    failed = DoneScanFactory(institution=inst, status=LossScan.Status.FAILED)
    finding(scan=failed, mrn="P7", first_delivery=at(3, 12), category=Category.FIRST_COURSE_LOST)
    finding(scan=rerun, mrn="P8", first_delivery=at(4, 1, 0, 30), category=Category.RECOURSE_LOST)
    february = DoneScanFactory(institution=inst)
    for n, category in enumerate([Category.FIRST_COURSE_ARCHIVED] * 3 + [Category.RECOURSE_LOST]):
        finding(scan=february, mrn=f"F{n}", first_delivery=at(2, 10 + n), category=category)
    other = DoneScanFactory(institution=InstitutionFactory(code="OTHER"))
    finding(scan=other, mrn="X", first_delivery=at(3, 3), category=Category.FIRST_COURSE_LOST)
    return inst


def test_loss_rate_of_the_period_counts_each_plan_once_with_its_latest_category(losses):
    march = selectors.loss_rates(institution=losses, bounds=whole(MARCH))[0]
    assert march.delivered == 6  # P1..P6; P7 only in a failed scan, P8 in April site time
    assert (march.first_course_lost, march.recourse_lost, march.lost) == (2, 0, 2)  # P2 and P3
    assert march.loss_rate == pytest.approx(1 / 3)


def test_loss_rate_per_month(losses):
    months = selectors.loss_rates(institution=losses, bounds=MARCH.month_bounds())
    assert [(m.delivered, m.lost) for m in months[-2:]] == [(4, 1), (6, 2)]
    assert months[-2].loss_rate == 0.25
    assert months[0].loss_rate is None  # no delivered plan checked: unknown, not zero


# --- the whole report -----------------------------------------------------------------------------------------


def test_build_report_puts_the_figures_together(archives, runs, losses):
    report = selectors.build_report(institution=archives, period=MARCH, now=at(3, 31))
    assert report.volume.patients == 2 and report.throughput.mb_per_s == pytest.approx(0.625)
    assert report.losses.loss_rate == pytest.approx(1 / 3)
    assert [row.month for row in report.months][-1] == dt.date(2024, 3, 1)
    chart = report.chart_data()
    assert chart["labels"][-2:] == ["2024-02", "2024-03"]
    assert chart["loss_rate_percent"][-2:] == [25.0, pytest.approx(33.333)]
    assert chart["mb_per_s"][-1] == round(0.625, 2)
    assert chart["raw_gb"][-1] == 0.0 and chart["patients"][-1] == 2


def test_report_query_count_does_not_grow_with_the_rows(inst, django_assert_max_num_queries):
    def count_queries() -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as queries:
            selectors.build_report(institution=inst, period=MARCH, now=at(3, 31))
        return len(queries)

    def add_month_of_rows(days: range) -> None:
        for day in days:
            archive = ArchiveFactory(institution=inst, verified_at=at(3, day))
            ArchivedPlanFactory(archive=archive)
            run = ArchiveRunFactory(institution=inst, started_at=at(3, day))
            PatientArchiveTaskFactory(run=run)
            RestoreRecordFactory(institution=inst, archive=archive, started_at=at(3, day))
            QuarantinedPatientFactory(institution=inst, archive=archive)
            LossFindingFactory(scan=DoneScanFactory(institution=inst, finished_at=at(3, day), summary={"pending": day}),
                               first_delivery=at(3, day))
            PendingPlanFactory(institution=inst, first_delivery=at(3, day))

    add_month_of_rows(range(1, 2))
    few = count_queries()
    add_month_of_rows(range(2, 29))
    assert count_queries() == few
    with django_assert_max_num_queries(20):
        selectors.build_report(institution=inst, period=MARCH, now=at(3, 31))
