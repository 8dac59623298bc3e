"""Headless Chromium on a running archive run's page: a patient's step, archive, bytes and failure reason
appear without a reload, and the run's badge turns to "Done with errors" when it ends with a ×."""
from __future__ import annotations

import pytest
from django.utils import timezone

from archiver.models import ArchiveRun, PatientArchiveTask
from tests.archiver.test_browser_storage import _shot
from tests.factories import InstitutionFactory, TpsPatientFactory
from tests.reports.test_browser import _log_in

pytestmark = [pytest.mark.browser, pytest.mark.servers]


def test_the_live_page_shows_a_failure_and_its_reason_without_reload(browser, live_server, transactional_db):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    inst = InstitutionFactory(code="LIVE")
    run = ArchiveRun.objects.create(institution=inst, requested_by="physicist", status=ArchiveRun.Status.RUNNING,
                                    started_at=timezone.now())
    tasks = [PatientArchiveTask.objects.create(run=run, patient=TpsPatientFactory(institution=inst, mrn=f"L{n}"),
                                               bytes_total=10_000_000) for n in (1, 2)]
    browser.set_window_size(1400, 900)
    _log_in(browser, live_server)
    browser.get(f"{live_server.url}/archive/runs/{run.pk}/")
    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-task="{tasks[0].pk}"]')
    assert row.find_element(By.CSS_SELECTOR, "td.reason").text in ("", "—")
    marker = browser.find_element(By.ID, "run-bytes")  # the page is never reloaded: this element stays

    PatientArchiveTask.objects.filter(pk=tasks[0].pk).update(step="uploading", bytes_done=4_000_000)
    wait = WebDriverWait(browser, 15)
    wait.until(lambda b: row.find_element(By.CSS_SELECTOR, "td.step").text == "Uploading")
    assert row.find_element(By.CSS_SELECTOR, "td.bytes-done").text.startswith("3.8")

    PatientArchiveTask.objects.filter(pk=tasks[0].pk).update(
        result="error", step="verifying", reason="copy on array-1 is not verified; originals kept")
    wait.until(lambda b: "not verified" in row.find_element(By.CSS_SELECTOR, "td.reason").text)
    assert "table-danger" in row.get_attribute("class") and row.find_element(By.CSS_SELECTOR, "td.result").text == "×"

    PatientArchiveTask.objects.filter(pk=tasks[1].pk).update(result="pass", step="done", bytes_done=10_000_000)
    ArchiveRun.objects.filter(pk=run.pk).update(status="done", finished_at=timezone.now())
    badge = browser.find_element(By.CSS_SELECTOR, '#run-status [data-field="status"]')
    wait.until(lambda b: badge.text == "Done with errors")
    assert "pdas-status-error" in badge.get_attribute("class") and marker.is_displayed() is False
    _shot(browser, "run-done-with-errors")
