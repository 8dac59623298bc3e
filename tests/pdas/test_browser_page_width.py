"""Every page fits a 1400 px screen, in English and 简体中文, with the long text real sites have: long
reasons, deep TPS paths, long archive names, Chinese names. Nothing scrolls sideways; a table's reason
column wraps instead of pushing the table off the screen.

Set PDAS_SCREENSHOT_DIR to keep a PNG of each page (to look at them)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from tests.access_world import MRN, world  # noqa: F401 - the fixture
from tests.pdas.test_access import TABLE, _path_kwargs, all_url_patterns

pytestmark = [pytest.mark.browser, pytest.mark.servers]

WIDTH = 1400
LONG_PATH = "Institution_11/Mount_0/Patient_1048576_ZHANG_SANFENG_RESEARCH_COPY_FROM_OLD_SERVER_2019_DO_NOT_DELETE"
LONG_REASON = ("upload to array-1 failed after 5 attempts: sftp://pdas@storage-array-1.hospital.example:22/"
               "archive/2026/11/ZHANG-SANFENG_A00001_20261124093015.tar.zst: [Errno 110] Connection timed out; "
               "originals kept in the TPS; the next run tries again")
# Elements that overflow the screen, by tag and class: what to fix when the check fails.
OVERFLOW = """
const limit = window.innerWidth;
const out = [];
for (const el of document.querySelectorAll('body *')) {
  const box = el.getBoundingClientRect();
  if (box.right > limit + 1 && box.width > 0) out.push(el.tagName + '.' + el.className + ' ' + Math.round(box.right));
}
return [document.documentElement.scrollWidth, out.slice(0, 5)];
"""


def _lengthen(world) -> None:  # noqa: F811
    objects = world["objects"]
    patient = objects["tpspatient"]
    patient.tps_path, patient.last_name, patient.first_name = LONG_PATH, "张", "三丰"
    patient.save()
    archive = objects["archive"]
    archive.name, archive.tps_path = "ZHANG-SANFENG-LONGNAME-FOR-TESTING_A00001_20261124093015.tar.zst", LONG_PATH
    archive.save()
    task = objects["patientarchivetask"]
    task.reason, task.result = LONG_REASON, "error"
    task.save()
    finding = objects["curationfinding"]
    finding.reasons, finding.tps_path = [LONG_REASON, "MRN 'A00001' does not match the site's pattern ^[0-9]{8}$"], \
        LONG_PATH
    finding.save()
    check = objects["fixitycheck"]
    check.reason = LONG_REASON
    check.save()
    loss = objects["lossfinding"]
    loss.found_in = f"Research group: {LONG_PATH}"
    loss.save()


def _log_in(browser, live_server, user) -> None:
    client = Client()
    client.force_login(user)
    browser.get(f"{live_server.url}/accounts/login/")
    browser.add_cookie({"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                        "path": "/"})


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_every_page_fits_1400_px(browser, live_server, transactional_db, world, language):  # noqa: F811
    _lengthen(world)
    browser.set_window_size(WIDTH, 900)
    _log_in(browser, live_server, world["users"]["superuser"])
    browser.add_cookie({"name": "django_language", "value": language, "path": "/"})
    folder = os.environ.get("PDAS_SCREENSHOT_DIR")
    wide, seen = {}, 0
    for name, route, _pattern in all_url_patterns():
        if not name or name not in TABLE or TABLE[name][0] != "get" or route.endswith(".json"):
            continue
        path = reverse(name, kwargs=_path_kwargs(name, route, world))
        browser.get(f"{live_server.url}{path}")
        if "export" in path or browser.title == "":
            continue  # a download, not a page
        seen += 1
        page_width, culprits = browser.execute_script(OVERFLOW)
        if page_width > browser.execute_script("return window.innerWidth"):
            wide[path] = (page_width, culprits)
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(Path(folder) / f"{name.replace(':', '-')}-{language}.png"))
    assert seen >= 15, "the pages were visited"
    assert wide == {}, wide
    assert MRN  # the world's patient is on the pages checked above
