"""Headless Chromium: the storage pages and a standing alert on the home page, in both languages; a bad
target is red and its bad copies come first; the copies table fits a 1400 px screen.

Set PDAS_SCREENSHOT_DIR to keep a PNG of each page (to look at them)."""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from django.utils import timezone

from alerts.services import settle_alerts
from archiver.models import RestoreDrill
from tests.factories import ArchiveCopyFactory, ArchiveFactory, InstitutionFactory, StorageTargetFactory
from tests.reports.test_browser import _log_in

pytestmark = [pytest.mark.browser, pytest.mark.servers]


def _shot(browser, name: str) -> None:
    folder = os.environ.get("PDAS_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(Path(folder) / f"{name}.png"))


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_storage_pages_and_home_alerts_in_the_browser(browser, live_server, transactional_db, language):
    from selenium.webdriver.common.by import By

    inst = InstitutionFactory(code="PUMCH", fixity_cycle_days=90)
    array, nas = (StorageTargetFactory(institution=inst, name=n, url=f"file:///srv/{n}") for n in ("array-1", "nas"))
    now = timezone.now()
    for n in range(6):
        archive = ArchiveFactory(institution=inst, mrn=f"10{n}", last_name="ZHANG", first_name=f"SAN{n}",
                                 status="verified", name=f"ZHANG-SAN{n}_10{n}_20260301090000.tar.gz")
        status = "missing" if n == 2 else "corrupt" if n == 4 else "verified"
        ArchiveCopyFactory(archive=archive, target=array, status=status, last_checked_at=now - dt.timedelta(days=n))
        ArchiveCopyFactory(archive=archive, target=nas, last_checked_at=now - dt.timedelta(days=1))
    RestoreDrill.objects.create(institution=inst, target=nas, archive=archive, requested_by="scheduler",
                                outcome="pass", files=12, reason="12 files match the manifest")
    settle_alerts(institution=inst, kind="target_unreachable", standing={"array-1": {"days": 4, "last": "x"}},
                  actor="t")

    browser.set_window_size(1400, 1000)
    _log_in(browser, live_server)
    browser.add_cookie({"name": "django_language", "value": language, "path": "/"})

    browser.get(f"{live_server.url}/")
    alert = browser.find_element(By.CSS_SELECTOR, ".pdas-alert")
    assert "array-1" in alert.text and "alert-danger" in alert.get_attribute("class")
    _shot(browser, f"home-alert-{language}")

    browser.get(f"{live_server.url}/archive/storage/")
    rows = browser.find_elements(By.CSS_SELECTOR, "table tbody tr")
    assert len(rows) == 2 and "table-danger" in rows[0].get_attribute("class")
    assert "table-danger" not in rows[1].get_attribute("class")
    _shot(browser, f"storage-{language}")

    rows[0].find_element(By.TAG_NAME, "a").click()
    first = browser.find_elements(By.CSS_SELECTOR, "table tbody tr")[0]
    assert "table-danger" in first.get_attribute("class")
    table = browser.find_element(By.CSS_SELECTOR, "table")
    assert table.size["width"] <= 1400, "the copies table fits the screen"
    _shot(browser, f"storage-target-{language}")
