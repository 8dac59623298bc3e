"""The report as rows: the page, the charts and the exports read the same values."""
from __future__ import annotations

import datetime as dt

import pytest

from reports import rows, selectors
from tests.reports.factories import ArchiveRunFactory, PatientArchiveTaskFactory
from tests.reports.site import MARCH, at

pytestmark = pytest.mark.django_db


def test_chart_series_are_the_month_rows_by_column(archived, losses):
    report = selectors.build_report(institution=archived, period=MARCH, now=at(3, 31))
    months = rows.month_rows(report)
    chart = rows.chart_data(report)
    assert chart["labels"] == [row["month"] for row in months] and chart["labels"][-1] == "2024-03"
    assert chart["patients"][-2:] == [1, 3] and chart["loss_rate"][-2:] == [25.0, 33.33]
    assert chart["mb_per_s"][0] is None  # no run that month: a gap in the line, not a zero
    assert set(chart) == {"labels", *months[0]} - {"month"}


def test_figure_rows_keep_unknown_as_none(inst):
    report = selectors.build_report(institution=inst, period=MARCH, now=at(3, 31))
    figures = {row["figure"]: (row["value"], row["unit"]) for row in rows.figure_rows(report)}
    assert figures["Throughput"] == (None, "MB/s") and figures["Loss rate (lost / delivered)"] == (None, "%")
    assert figures["Patients archived"] == (0, "") and figures["Pending-archive table: oldest"] == (None, "days")


def test_run_rows_in_site_time_and_the_latest_only(inst):
    for day in range(1, 6):
        run = ArchiveRunFactory(institution=inst, started_at=at(3, day, 2), finished_at=at(3, day, 2, 10))
        PatientArchiveTaskFactory(run=run, bytes_total=60_000_000 * day)
    report = selectors.build_report(institution=inst, period=MARCH, now=at(3, 31))
    every = rows.run_rows(report)
    assert [r["mb_per_s"] for r in every] == [0.1, 0.2, 0.3, 0.4, 0.5] and every[0]["minutes"] == 10.0
    assert every[0]["started_at"].utcoffset() == dt.timedelta(hours=8) and every[0]["started_at"].hour == 2
    latest = rows.run_rows(report, latest=2)
    assert [r["id"] for r in latest] == [r["id"] for r in every[-2:]]
    assert latest[0]["id_url"] == f"/archive/runs/{latest[0]['id']}/"
