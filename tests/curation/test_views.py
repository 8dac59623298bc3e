"""The curation pages: tabs with counts, coloured rows, filters, audited exports and views, acknowledging
and re-running from the page, and a query count that does not grow with the group."""
from __future__ import annotations

import re

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from curation.models import Acknowledgement, CurationRun
from curation.services.curate import run_curation
from sites.roles import PHYSICIST
from demo_site import PlanSpec
from tests.factories import make_user

pytestmark = pytest.mark.django_db
INDEX = reverse("curation:index")


@pytest.fixture
def physicist(client, site):
    client.force_login(make_user("physicist", roles=[PHYSICIST], institutions=[site.inst]))
    return client


@pytest.fixture
def curated(site):
    """One patient per category that a tree alone can produce, curated."""
    paths = {
        "ready": site.add(1, last_name="张", first_name="三", encoding="gb18030"),
        "naming": site.add(2, first_name=""),
        "transitional": site.add(3, plans=[PlanSpec(0, "A"), PlanSpec(1, "CopyOf_1_A")]),
        "image_only": site.add(4, plans=[]),
        "unreadable": site.add(5, plans=[PlanSpec(0, "A"), PlanSpec(1, "B", directory=False)]),
    }
    run_curation(institution=site.inst, actor="tester")
    return paths


def rows(html: str) -> list[tuple[str, str]]:
    """(category, row class without django-tables2's odd/even) of each table row."""
    return [(m.group(2), m.group(1).removesuffix(" odd").removesuffix(" even"))
            for m in re.finditer(r'<tr class="([^"]*)" data-category="([^"]*)"', html)]


def test_tabs_show_counts_and_open_on_what_needs_a_look(physicist, curated):
    html = physicist.get(INDEX).content.decode()
    tab = r'data-category="(\w+)" title="[^"]*">\s*\S[^<]*<span class="badge text-bg-\w+ border">(\d+)'
    tabs = dict(re.findall(tab, html))
    assert tabs == {"ready": "1", "naming": "1", "restored": "0", "transitional": "1", "duplicate": "0",
                    "image_only": "1", "unreadable": "1"}
    assert rows(html) == [("naming", "table-danger curation-naming")]  # the first tab that needs a look
    assert "first name is empty" in html


@pytest.mark.parametrize(("tab", "css"), [("ready", "table-light"), ("naming", "table-danger"),
                                          ("transitional", "table-warning"), ("image_only", "table-secondary"),
                                          ("unreadable", "table-dark")])
def test_rows_carry_their_category_colour(physicist, curated, tab, css):
    html = physicist.get(INDEX, {"institution": "PUMCH", "tab": tab}).content.decode()
    assert rows(html) == [(tab, f"{css} curation-{tab}")]
    assert f'badge text-bg-{css.removeprefix("table-")}' in html  # the legend and the badge
    assert 'id="curation-legend"' in html


def test_patient_links_open_the_patient_and_the_view_is_audited(physicist, curated, site):
    html = physicist.get(INDEX, {"tab": "transitional"}).content.decode()
    row = site.row(curated["transitional"])
    url = reverse("curation:patient", args=[row.pk])
    assert f'href="{url}"' in html
    page = physicist.get(url).content.decode()
    assert "CopyOf_1_A" in page and "Plan_1" in page and "looks like an intermediate plan" in page
    assert 'id="image-sets"' in page and "Acknowledge (reviewed, archive anyway)" in page
    event = AuditEvent.objects.filter(event="patient.view").latest("id")
    assert event.mrns == [row.mrn] and event.actor == "physicist"
    listing = AuditEvent.objects.filter(event="curation.view").latest("id")
    assert listing.mrns == [row.mrn] and listing.detail["tab"] == "transitional"


def test_filters_narrow_by_mrn_name_and_date(physicist, site):
    site.add(1, mrn="000111", last_name="ALPHA")
    site.add(2, mrn="000222", last_name="BETA")
    run_curation(institution=site.inst, actor="tester")
    page = lambda **q: physicist.get(INDEX, {"tab": "ready", **q}).content.decode()  # noqa: E731
    assert "000111" in page(mrn="111") and "000222" not in page(mrn="111")
    assert '<input type="hidden" name="tab" value="ready">' in page(mrn="111")  # the filter keeps the tab
    assert "000222" in page(name="beta") and "000111" not in page(name="beta")
    assert "000111" not in page(edited_from="2030-01-01")  # the trees' plans were edited in 2019
    assert "000111" in page(edited_to="2019-03-01")


def test_sorting_by_mrn(physicist, site):
    site.add(1, mrn="000222")
    site.add(2, mrn="000111")
    run_curation(institution=site.inst, actor="tester")
    html = physicist.get(INDEX, {"tab": "ready", "sort": "-mrn"}).content.decode()
    assert html.index("000222") < html.index("000111")
    html = physicist.get(INDEX, {"tab": "ready", "sort": "mrn"}).content.decode()
    assert html.index("000111") < html.index("000222")


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_exports_are_audited_with_the_patients(physicist, curated, site, fmt):
    response = physicist.get(INDEX, {"tab": "naming", "_export": fmt})
    assert response.status_code == 200
    if fmt == "csv":
        assert response.content.startswith("\ufeff".encode())  # Excel reads the Chinese names right
        body = response.content.decode("utf-8-sig")
        assert body.splitlines()[0].startswith("MRN,Name,TPS path,Category,Reasons")
        assert "naming" in body and "first name is empty" in body
        assert "<" not in body, "cells are data, not HTML"
    else:
        assert response.content[:2] == b"PK"
    event = AuditEvent.objects.filter(event="export").latest("id")
    assert event.mrns == [site.row(curated["naming"]).mrn] and event.institution == "PUMCH"
    assert event.detail["format"] == fmt


def test_acknowledge_from_the_page(physicist, curated, site):
    row = site.row(curated["image_only"])
    finding = row.curation_findings.get()
    url = reverse("curation:acknowledge", args=[row.pk])
    response = physicist.post(url, {"finding": finding.pk, "note": ""}, follow=True)
    assert "Not acknowledged" in response.content.decode() and not Acknowledgement.objects.exists()
    response = physicist.post(url, {"finding": finding.pk, "note": "planning CT only, keep"}, follow=True)
    assert "Acknowledged for the patient" in response.content.decode()
    ack = Acknowledgement.objects.get()
    assert ack.username == "physicist" and ack.note == "planning CT only, keep" and ack.category == "image_only"
    html = physicist.get(INDEX, {"tab": "image_only"}).content.decode()
    assert '<span class="true">yes</span>' in html and '<span class="false">' not in html

    unreadable = site.row(curated["unreadable"]).curation_findings.get()
    response = physicist.post(reverse("curation:acknowledge", args=[unreadable.patient_id]),
                              {"finding": unreadable.pk, "note": "please"}, follow=True)
    assert "cannot be acknowledged" in response.content.decode()


def test_rerun_from_the_page(physicist, site, django_capture_on_commit_callbacks):
    site.add(1)
    with django_capture_on_commit_callbacks(execute=True):
        response = physicist.post(reverse("curation:rerun"), {"institution": "PUMCH"})
    assert response.status_code == 302 and response.url == f"{INDEX}?institution=PUMCH"
    run = CurationRun.objects.get()
    assert run.status == "done" and run.requested_by == "physicist"
    html = physicist.get(response.url).content.decode()
    assert f"Curation {run.pk} of" in html


def test_a_failed_run_is_shown_and_the_last_good_one_kept(physicist, curated, site, django_capture_on_commit_callbacks):
    site.inst.tps_url = f"file://{site.root}/unmounted"
    site.inst.save()
    with django_capture_on_commit_callbacks(execute=True):
        physicist.post(reverse("curation:rerun"), {"institution": "PUMCH"})
    html = physicist.get(INDEX).content.decode()
    assert 'id="run-error"' in html and "failed; what is shown is the last curation that finished" in html
    assert rows(html) == [("naming", "table-danger curation-naming")]


def test_query_count_does_not_grow_with_the_group(physicist, site, django_assert_max_num_queries):
    for n in range(1, 4):
        site.add(n)
    run_curation(institution=site.inst, actor="tester")
    with django_assert_max_num_queries(21) as small:
        physicist.get(INDEX, {"tab": "ready"})
    for n in range(4, 30):
        site.add(n)
    run_curation(institution=site.inst, actor="tester")
    with django_assert_max_num_queries(len(small.captured_queries)):
        html = physicist.get(INDEX, {"tab": "ready"}).content.decode()
    assert len(rows(html)) == 29


def test_pages_need_a_login(client, curated, site):
    for url in (INDEX, reverse("curation:patient", args=[site.row(curated["ready"]).pk])):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response.url
    assert client.post(reverse("curation:rerun"), {"institution": "PUMCH"}).status_code == 302
    assert not CurationRun.objects.exclude(requested_by="tester").exists()


def test_no_institution_and_unknown_institution(client, db):
    client.force_login(make_user("physicist", roles=[PHYSICIST]))
    assert "No institution is configured yet" in client.get(INDEX).content.decode()
    assert client.get(INDEX, {"institution": "NOPE"}).status_code == 404


def test_rerun_returns_at_once_and_the_page_follows_the_run(physicist, site, settings,
                                                            django_capture_on_commit_callbacks):
    """Outside tests the curation runs in the background (core.dispatch): the POST only queues it."""
    settings.PDAS_DISPATCH_INLINE = False
    site.add(1)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = physicist.post(reverse("curation:rerun"), {"institution": "PUMCH"})
    assert response.status_code == 302 and len(callbacks) == 1  # handed to the pool once the row is committed
    run = CurationRun.objects.get()
    assert (run.status, run.started_at, run.requested_by) == ("queued", None, "physicist")
    html = physicist.get(response.url).content.decode()
    status_url = reverse("curation:run-status", args=[run.pk])
    assert 'id="run-running"' in html and f'data-job-status-url="{status_url}"' in html and "job-status.js" in html
    assert physicist.get(status_url).json() == {"id": run.pk, "status": "queued", "status_display": "Queued",
                                                "finished": False, "error": ""}
