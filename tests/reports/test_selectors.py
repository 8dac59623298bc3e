"""Each report figure on generated rows with answers worked out by hand (site time Asia/Shanghai, UTC+8)."""
from __future__ import annotations

import datetime as dt

import pytest

from archiver.models import RestoreRecord
from lossdetect.models import LossScan
from reports import selectors
from reports.periods import Period
from tests.factories import ArchivedPlanFactory, ArchiveFactory
from tests.reports.factories import (
    ArchiveRunFactory, DoneScanFactory, LossFindingFactory, PatientArchiveTaskFactory, PendingPlanFactory,
    QuarantinedPatientFactory, RestoreRecordFactory,
)
from tests.reports.site import MARCH, ZONE, Result, archive, at

pytestmark = pytest.mark.django_db


def whole(period: Period) -> list[dt.datetime]:
    return [period.start, period.end]


# --- what the runs archived ------------------------------------------------------------------------------------


def test_volume_counts_what_the_runs_of_the_period_archived_in_site_time(archived):
    volume, throughput = selectors.run_figures(institution=archived, bounds=whole(MARCH))[0]
    assert (volume.archives, volume.patients, volume.plans) == (4, 3, 4)  # 001 twice: one patient
    assert (volume.raw_bytes, volume.compressed_bytes) == (10_007, 3007)
    assert volume.compression_ratio == pytest.approx(10_007 / 3007)
    assert throughput.results == {"pass": 3, "error": 2, "warning": 1, "pending": 0}


def test_volume_per_month_of_the_trend(archived):
    months = selectors.run_figures(institution=archived, bounds=MARCH.month_bounds())
    assert len(months) == 12  # April 2023 .. March 2024
    assert [volume.archives for volume, _ in months] == [0] * 10 + [1, 4]
    assert months[10][0].plans == 3 and months[10][0].compression_ratio == 4.0
    assert months[0][0].compression_ratio is None  # nothing archived: no ratio, not zero


# --- runs and results -----------------------------------------------------------------------------------------


def test_throughput_of_the_period(runs):
    _, throughput = selectors.run_figures(institution=runs, bounds=whole(MARCH))[0]
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
    months = [throughput for _, throughput in selectors.run_figures(institution=runs, bounds=MARCH.month_bounds())]
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


def test_build_report_puts_the_figures_together(archived, losses):
    report = selectors.build_report(institution=archived, period=MARCH, now=at(3, 31))
    assert report.volume.patients == 3 and report.throughput.runs == 2
    assert report.losses.loss_rate == pytest.approx(1 / 3)
    assert [row.month for row in report.months][-1] == dt.date(2024, 3, 1)
    assert [row.volume.patients for row in report.months][-2:] == [1, 3]
    assert [row.losses.delivered for row in report.months][-2:] == [4, 6]


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
            PatientArchiveTaskFactory(run=run, archive=archive)
            PatientArchiveTaskFactory(run=run, result=Result.ERROR, reason=f"failure {day}: detail")
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


@pytest.mark.parametrize("period", [MARCH, Period.quarter(2024, 1, ZONE), Period.year(2024, ZONE)])
def test_whole_month_periods_sum_their_months_like_a_query_of_the_range(archived, runs, losses, period):
    summed = selectors.build_report(institution=archived, period=period, now=at(3, 31))
    queried_volume, queried_throughput = selectors.run_figures(institution=archived,
                                                               bounds=[period.start, period.end])[0]
    assert summed.volume == queried_volume and summed.throughput == queried_throughput
    assert summed.losses == selectors.loss_rates(institution=archived, bounds=[period.start, period.end])[0]
    assert summed.restores == selectors.restore_counts(institution=archived, bounds=[period.start, period.end])[0]


def test_a_patient_archived_in_two_months_of_a_quarter_counts_once(archived):
    again = ArchiveRunFactory(institution=archived, started_at=at(2, 3))
    PatientArchiveTaskFactory(run=again, archive=archive(archived, "001", 1, 1, plans=0))
    quarter = selectors.build_report(institution=archived, period=Period.quarter(2024, 1, ZONE), now=at(3, 31))
    assert [row.volume.patients for row in quarter.months][-2:] == [2, 3]
    assert quarter.volume.patients == 4  # 001, 002, 004, 006: not 2 + 3
