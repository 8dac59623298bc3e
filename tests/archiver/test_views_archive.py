"""Archive jobs pages: start a run, follow it, read and export its results."""
from __future__ import annotations

import pytest
from django.urls import reverse

from archiver.models import ArchiveRun
from inventory.services.tps_sync import sync_institution
from audit.models import AuditEvent
from demo_site import GroupSpec, PlanSpec, write_institution_file, write_patient
from tests.factories import InstitutionFactory, StorageTargetFactory

pytestmark = pytest.mark.django_db


class _InlineThread:
    """Runs the embedded-mode background job at once, inside the test's transaction."""

    def __init__(self, target, args=(), daemon=None):
        self._target, self._args = target, args

    def start(self):
        self._target(*self._args)


@pytest.fixture
def site(tmp_path, monkeypatch):
    root = tmp_path / "Patients"
    records = [write_patient(root, patient_id=n, mrn=f"00{n}", plans=[PlanSpec(0, "PLAN")]) for n in (1, 2, 3)]
    write_institution_file(root, [GroupSpec(1, "ToArchive", records)], form="bare")
    inst = InstitutionFactory(code="DEMO", tps_url=f"file://{root}")
    (tmp_path / "array").mkdir()
    StorageTargetFactory(institution=inst, name="array", url=f"file://{tmp_path / 'array'}")
    monkeypatch.setattr("archiver.views.threading.Thread", _InlineThread)
    monkeypatch.setattr("archiver.views.connection.close", lambda: None)
    return inst


def test_start_a_run_from_the_page_and_read_its_results(admin_client, site):
    response = admin_client.post(reverse("archiver:run-start"), {"institution": site.pk})
    run = ArchiveRun.objects.get()
    assert response.status_code == 302 and response.url == reverse("archiver:run-detail", args=[run.pk])
    page = admin_client.get(response.url)
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count("table-success") == 3 and "✓" in html
    progress = admin_client.get(reverse("archiver:run-progress", args=[run.pk])).json()
    assert progress["finished"] and progress["counts"]["pass"] == 3
    assert progress["bytes_done"] >= progress["bytes_total"] > 0
    listing = admin_client.get(reverse("archiver:run-list")).content.decode()
    assert f'href="{reverse("archiver:run-detail", args=[run.pk])}"' in listing


def test_export_csv_is_audited_with_the_patients(admin_client, site):
    sync_institution(institution=site, actor="t")
    admin_client.post(reverse("archiver:run-start"), {"institution": site.pk})
    run = ArchiveRun.objects.get()
    response = admin_client.get(reverse("archiver:run-detail", args=[run.pk]), {"_export": "csv"})
    assert response.status_code == 200
    body = response.content.decode()
    assert body.splitlines()[0].startswith("Result,MRN")
    assert "pass" in body and "001" in body
    event = AuditEvent.objects.filter(event="export").latest("id")
    assert sorted(event.mrns) == ["001", "002", "003"] and event.institution == "DEMO"


def test_result_filter_narrows_rows(admin_client, site):
    admin_client.post(reverse("archiver:run-start"), {"institution": site.pk})
    run = ArchiveRun.objects.get()
    html = admin_client.get(reverse("archiver:run-detail", args=[run.pk]), {"result": "error"}).content.decode()
    assert "table-success" not in html


def test_detail_page_queries_do_not_grow_with_patients(admin_client, site, django_assert_max_num_queries):
    admin_client.post(reverse("archiver:run-start"), {"institution": site.pk})
    run = ArchiveRun.objects.get()
    with django_assert_max_num_queries(15):
        admin_client.get(reverse("archiver:run-detail", args=[run.pk]))


def test_pages_need_a_login(client):
    for name in ("archiver:run-list",):
        response = client.get(reverse(name))
        assert response.status_code == 302 and "/accounts/login/" in response.url
