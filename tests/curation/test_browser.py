"""Headless Chromium opens the curation page, switches tabs and sees each category's colour."""
from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client

from inventory.models import TpsPatient
from sites.models import Institution
from curation.services.curate import run_curation
from sites.roles import PHYSICIST
from demo_site import PlanSpec
from tests.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.servers]

# Bootstrap 5.3's table variants, as the browser computes a cell's background.
COLOURS = {
    "naming": "rgb(248, 215, 218)",  # table-danger: red
    "restored": "rgb(209, 231, 221)",  # table-success: green
    "transitional": "rgb(255, 243, 205)",  # table-warning: amber
    "duplicate": "rgb(207, 226, 255)",  # table-primary: blue
    "image_only": "rgb(226, 227, 229)",  # table-secondary: grey
    "unreadable": "rgb(33, 37, 41)",  # table-dark
}


@pytest.fixture
def curated(site, transactional_db):
    site.add(1, last_name="张", first_name="三", encoding="gb18030")
    site.add(2, first_name="")
    site.add(3, plans=[PlanSpec(0, "A"), PlanSpec(1, "CopyOf_1_A")])
    site.add(4, plans=[])
    site.add(5, plans=[PlanSpec(0, "A"), PlanSpec(1, "B", directory=False)])
    restored = site.add(6)
    duplicate = site.add(7)
    run_curation(institution=site.inst, actor="tester")
    row = site.row(restored)
    archive = site.verified_archive_of(restored, name="R.tar.gz")
    TpsPatient.objects.filter(pk=row.pk).update(restored_from=archive, restored_fingerprint=row.fingerprint)
    site.verified_archive_of(duplicate, name="D.tar.gz", source_fingerprint=site.row(duplicate).fingerprint)
    run_curation(institution=site.inst, actor="tester")
    return site


def _log_in(browser, live_server) -> None:
    client = Client()
    client.force_login(make_user("physicist", roles=[PHYSICIST], institutions=Institution.objects.all()))
    browser.get(f"{live_server.url}/accounts/login/")
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    browser.add_cookie({"name": settings.SESSION_COOKIE_NAME, "value": session, "path": "/"})


def _row_colours(browser) -> set[tuple[str, str]]:
    return {tuple(pair) for pair in browser.execute_script(
        "return [...document.querySelectorAll('#curation-table tbody tr')].map("
        "tr => [tr.dataset.category, getComputedStyle(tr.cells[0]).backgroundColor]);")}


def test_switching_tabs_shows_each_categorys_colour(browser, live_server, curated):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    _log_in(browser, live_server)
    browser.get(f"{live_server.url}/curation/")
    assert browser.find_element(By.CSS_SELECTOR, "#curation-tabs a.active").get_attribute("data-category") == "naming"
    assert _row_colours(browser) == {("naming", COLOURS["naming"])}

    for category, colour in COLOURS.items():
        tab = browser.find_element(By.CSS_SELECTOR, f'#curation-tabs a[data-category="{category}"]')
        tab.click()
        WebDriverWait(browser, 10).until(EC.element_to_be_clickable(
            (By.CSS_SELECTOR, f'#curation-tabs a.active[data-category="{category}"]')))
        assert _row_colours(browser) == {(category, colour)}, category
        legend = browser.find_element(By.CSS_SELECTOR, f'#curation-legend [data-category="{category}"]')
        assert legend.value_of_css_property("background-color") != "rgba(0, 0, 0, 0)"

    browser.find_element(By.CSS_SELECTOR, '#curation-tabs a[data-category="ready"]').click()
    WebDriverWait(browser, 10).until(EC.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-category="ready"]')))
    assert "张, 三" in browser.find_element(By.ID, "curation-table").text
