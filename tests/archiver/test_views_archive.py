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


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "Patients"
    records = [write_patient(root, patient_id=n, mrn=f"00{n}", plans=[PlanSpec(0, "PLAN")]) for n in (1, 2, 3)]
    write_institution_file(root, [GroupSpec(1, "ToArchive", records)], form="bare")
    inst = InstitutionFactory(code="DEMO", tps_url=f"file://{root}")
    (tmp_path / "array").mkdir()
    StorageTargetFactory(institution=inst, name="array", url=f"file://{tmp_path / 'array'}")
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
    body = response.content.decode("utf-8-sig")
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
    with django_assert_max_num_queries(16):  # fixed (one reads the user's time zone)
        admin_client.get(reverse("archiver:run-detail", args=[run.pk]))


def test_pages_need_a_login(client):
    for name in ("archiver:run-list",):
        response = client.get(reverse(name))
        assert response.status_code == 302 and "/accounts/login/" in response.url


def test_starting_a_run_returns_at_once(admin_client, site, settings, django_capture_on_commit_callbacks):
    """Outside tests the run is prepared (recovery, TPS re-read, curation) and archived in the background."""
    settings.PDAS_DISPATCH_INLINE = False
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin_client.post(reverse("archiver:run-start"), {"institution": site.pk})
    run = ArchiveRun.objects.get()
    assert response.url == reverse("archiver:run-detail", args=[run.pk]) and len(callbacks) == 1
    assert (run.status, run.tasks.count()) == ("queued", 0)
    progress = admin_client.get(reverse("archiver:run-progress", args=[run.pk])).json()
    assert (progress["status"], progress["finished"]) == ("queued", False)


def test_a_run_whose_tps_cannot_be_read_fails_with_the_reason_on_its_page(admin_client, site):
    site.tps_url = "file:///nonexistent/Patients"
    site.save()
    response = admin_client.post(reverse("archiver:run-start"), {"institution": site.pk})
    run = ArchiveRun.objects.get()
    assert run.status == "failed" and "the TPS cannot be read" in run.error
    html = admin_client.get(response.url).content.decode()
    assert 'id="run-error"' in html and "the TPS cannot be read" in html
    event = AuditEvent.objects.get(event="archive.run")
    assert event.outcome == "failed" and event.object_id == str(run.pk)


def test_a_run_with_a_failed_patient_reads_done_with_errors_everywhere(admin_client, site, tmp_path):
    squatter = tmp_path / "array" / "LAST-FIRST_001_20190301100000.tar.gz"
    squatter.write_bytes(b"someone else's file")  # never overwritten: that patient ends ×
    admin_client.post(reverse("archiver:run-start"), {"institution": site.pk})
    run = ArchiveRun.objects.get()
    assert run.status == "done" and run.tasks.filter(result="error").exists()

    detail = admin_client.get(reverse("archiver:run-detail", args=[run.pk])).content.decode()
    assert '<span class="badge pdas-status-error" data-field="status">Done with errors</span>' in detail
    assert '<span class="badge text-bg-danger" data-field="error-box">' in detail
    assert 'data-field="status">Done<' not in detail
    listing = admin_client.get(reverse("archiver:run-list")).content.decode()
    assert '<span class="badge pdas-status-error">Done with errors</span>' in listing
    progress = admin_client.get(reverse("archiver:run-progress", args=[run.pk])).json()
    assert (progress["outcome"], progress["outcome_display"]) == ("error", "Done with errors")
    assert any("already exists" in task["reason"] for task in progress["tasks"] if task["result"] == "error")

    from sites.models import Membership
    from django.contrib.auth.models import User

    Membership.objects.create(user=User.objects.get(username="admin"), institution=site)
    home = admin_client.get(reverse("home")).content.decode()
    assert "pdas-status-error" in home and "Done with errors" in home
