"""Headless Chromium renders the report charts from the vendored Chart.js, with no script error."""
from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from tests.factories import ArchiveFactory
from tests.reports.factories import ArchiveRunFactory, PatientArchiveTaskFactory
from tests.reports.site import MARCH_QUERY, add_day_of_work, at

pytestmark = [pytest.mark.browser, pytest.mark.servers]

# Installed before any page script runs: keeps every uncaught error, rejected promise and console.error.
CATCH_ERRORS = """
window.__pdasErrors = [];
window.addEventListener('error', e => window.__pdasErrors.push(
    'error: ' + (e.message || (e.target && (e.target.src || e.target.href)) || 'unknown')), true);
window.addEventListener('unhandledrejection', e => window.__pdasErrors.push('rejection: ' + e.reason));
const consoleError = console.error.bind(console);
console.error = (...args) => { window.__pdasErrors.push('console: ' + args.join(' ')); consoleError(...args); };
"""


def _log_in(browser, live_server) -> None:
    client = Client()
    client.force_login(User.objects.create_superuser("head", password="not-used-here-123"))
    browser.get(f"{live_server.url}/accounts/login/")
    browser.add_cookie({"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                        "path": "/"})


@pytest.fixture
def catch_errors(browser):
    script = browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CATCH_ERRORS})
    yield
    browser.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": script["identifier"]})


def _charts(browser) -> dict:
    return browser.execute_script("""
        return Object.fromEntries([...document.querySelectorAll('#report-charts canvas')].map(canvas => {
            const chart = Chart.getChart(canvas);
            return [canvas.id, chart ? {width: canvas.width, height: canvas.height, type: chart.config.type,
                    labels: chart.data.labels, data: chart.data.datasets.map(d => [d.label, d.data])} : null];
        }));""")


@pytest.mark.parametrize("page", ["index", "print"])
def test_report_charts_render_with_the_vendored_library(browser, live_server, transactional_db, catch_errors, page):
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.factories import InstitutionFactory

    inst = InstitutionFactory(code="PUMCH", time_zone="Asia/Shanghai")
    for day in (4, 5, 6):
        add_day_of_work(inst, day)
    february = ArchiveRunFactory(institution=inst, started_at=at(2, 10))
    PatientArchiveTaskFactory(run=february, archive=ArchiveFactory(institution=inst, verified_at=at(2, 10)))
    _log_in(browser, live_server)
    query = "&".join(f"{k}={v}" for k, v in MARCH_QUERY.items())
    path = "/reports/" if page == "index" else "/reports/print/"
    browser.get(f"{live_server.url}{path}?{query}")
    WebDriverWait(browser, 15).until(lambda b: b.execute_script("return (window.pdasCharts || []).length") == 4)

    assert browser.execute_script("return window.__pdasErrors") == []
    assert browser.execute_script("return Chart.version").startswith("4.")
    scripts = browser.execute_script("return [...document.scripts].map(s => s.src).filter(Boolean)")
    assert all(src.startswith(live_server.url) for src in scripts)  # nothing from the internet
    charts = _charts(browser)
    assert set(charts) == {"chart-volume", "chart-runs", "chart-loss", "chart-pending"}
    assert all(chart and chart["width"] > 100 and chart["height"] > 100 for chart in charts.values())
    volume = dict(charts["chart-volume"]["data"])
    assert charts["chart-volume"]["labels"][-2:] == ["2024-02", "2024-03"]
    assert volume["Patients"][-2:] == [1, 3]
    loss = dict(charts["chart-loss"]["data"])
    assert loss["Loss rate %"][-1] == 50 and loss["Delivered"][-1] == 6
    runs = dict(charts["chart-runs"]["data"])
    assert runs["✓"][-1] == 3 and runs["×"][-1] == 3 and runs["MB/s"][-1] == 0.02
    if page == "index":  # the period form shows only the fields of the chosen period
        visible = browser.execute_script(
            "return [...document.querySelectorAll('#report-form [data-field]')].filter(e => !e.hidden)"
            ".map(e => e.dataset.field)")
        assert visible == ["institution", "period", "year", "month"]

