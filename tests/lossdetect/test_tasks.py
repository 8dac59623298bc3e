"""The weekly automatic scan: previous-week windows in site time, idempotence.

Its beat entry is tested with the other periodic tasks in tests/pdas/test_schedules.py.
"""
from __future__ import annotations

import datetime as dt

import pytest

from lossdetect.models import LossScan
from lossdetect.services.schedule import previous_week, start_scheduled_scans
from lossdetect.tasks import run_loss_scan_task, run_scheduled_scans
from demo_site.rv import rv_plan, write_csv
from tests.factories import InstitutionFactory, LossScanFactory

UTC = dt.timezone.utc


@pytest.mark.parametrize("today, expected", [
    (dt.date(2024, 3, 11), (dt.date(2024, 3, 4), dt.date(2024, 3, 10))),  # Monday
    (dt.date(2024, 3, 17), (dt.date(2024, 3, 4), dt.date(2024, 3, 10))),  # Sunday
    (dt.date(2024, 3, 18), (dt.date(2024, 3, 11), dt.date(2024, 3, 17))),
])
def test_previous_week(today, expected):
    assert previous_week(today) == expected


@pytest.mark.django_db
def test_scheduled_scans_cover_last_week_in_site_time_and_run_once(tmp_path):
    rv = write_csv(tmp_path / "rv.csv", [rv_plan("1", "P", dt.datetime(2024, 3, 6, 9))])
    shanghai = InstitutionFactory(code="SH", rv_url=f"csv:{rv}", time_zone="Asia/Shanghai")
    InstitutionFactory(code="NORV", rv_url="")
    # Sunday 23:00 UTC is already Monday 07:00 in Shanghai: its previous week is 4..10 March.
    now = dt.datetime(2024, 3, 10, 23, 0, tzinfo=UTC)
    [scan] = start_scheduled_scans(now=now)
    assert scan.status == "queued"  # the task hands it to a worker
    run_loss_scan_task(scan.pk)
    scan.refresh_from_db()
    assert (scan.institution, scan.window_from, scan.window_to, scan.trigger, scan.requested_by) == (
        shanghai, dt.date(2024, 3, 4), dt.date(2024, 3, 10), "scheduled", "scheduler")
    assert scan.status == "failed" and "TPS" in scan.error  # the factory's TPS does not exist: unknown
    assert [s.pk for s in start_scheduled_scans(now=now)] != []  # a failed window is tried again
    done = LossScan.objects.filter(status="queued").get()
    done.status = "done"
    done.save()
    assert start_scheduled_scans(now=now) == []  # beat fired twice: nothing new
    assert LossScan.objects.count() == 2


@pytest.mark.django_db
def test_a_stale_scan_does_not_hold_its_window():
    institution = InstitutionFactory(code="SH", rv_url="csv:/nonexistent.csv")
    now = dt.datetime(2024, 3, 11, 6, 0, tzinfo=UTC)
    stale = LossScanFactory(institution=institution, trigger="scheduled", window_from=dt.date(2024, 3, 4),
                            window_to=dt.date(2024, 3, 10), status="running", started_at=now - dt.timedelta(days=2))
    fresh = LossScanFactory(institution=institution, trigger="scheduled", window_from=dt.date(2024, 3, 4),
                            window_to=dt.date(2024, 3, 10), status="failed", started_at=now)
    [new] = start_scheduled_scans(now=now)
    assert new.pk not in (stale.pk, fresh.pk)
    stale.refresh_from_db()
    assert stale.status == "running"  # the stale-job sweep closes it (tests/pdas/test_services_jobs.py)


@pytest.mark.django_db
def test_tasks_take_ids_and_leave_finished_scans_alone(tmp_path):
    assert run_loss_scan_task(987654) == "skipped"
    finished = LossScanFactory(status="done")
    assert run_loss_scan_task(finished.pk) == "skipped"
    rv = write_csv(tmp_path / "rv.csv", [rv_plan("1", "P", dt.datetime(2024, 3, 6, 9))])
    running = LossScanFactory(institution=InstitutionFactory(rv_url=f"csv:{rv}"), status="running")
    assert run_loss_scan_task(running.pk) == "failed"  # the TPS refresh fails: unknown, not "0 lost"
    assert run_scheduled_scans() == [s.pk for s in LossScan.objects.filter(trigger="scheduled")]
