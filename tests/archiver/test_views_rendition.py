"""The rendition on the restore page (made / failed with the reason / not attempted) and "Download DICOM"."""
from __future__ import annotations

import hashlib

import pytest
from django.test import Client
from django.urls import reverse

from archiver.services.rendition import make_rendition, request_rendition
from audit.models import AuditEvent
from inventory.models import Archive, DicomRendition
from sites.roles import AUDITOR, VIEWER
from tests.archiver.test_services_fixity import _archive_site
from tests.factories import InstitutionFactory, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def site(tmp_path, settings):
    settings.DATA_DIR = tmp_path / "data"
    inst, folders = _archive_site(tmp_path, patients=(1, 2, 3))
    made = Archive.objects.get(mrn="001")
    request_rendition(archive=made, actor="t")
    make_rendition(archive_id=made.pk)
    failed = Archive.objects.get(mrn="002")
    DicomRendition.objects.create(archive=failed, institution=inst, status="failed", name=f"{failed.name}.dicom.zip",
                                  reason=f"{failed.name}: no DICOM object could be made: ImageSet_0.img is missing")
    return {"inst": inst, "folders": folders, "made": made, "failed": failed}


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _search(client, inst, mrn):
    return client.get(reverse("archiver:restore"), {"institution": inst.pk, "mrn": mrn}).content.decode()


def test_the_restore_page_shows_each_archives_rendition(site):
    client = _client(make_user("v", roles=[VIEWER], institutions=[site["inst"]]))
    html = _search(client, site["inst"], "001")
    assert "made" in html and reverse("archiver:rendition-download", args=[site["made"].pk]) in html
    assert "not for treatment" in html
    html = _search(client, site["inst"], "002")
    assert "failed" in html and "ImageSet_0.img is missing" in html
    assert "rendition-download" not in html and reverse("archiver:rendition-download", args=[site["failed"].pk]) \
        not in html
    assert "not attempted" in _search(client, site["inst"], "003")


def test_download_is_the_stored_zip_and_is_audited(site):
    user = make_user("v", roles=[VIEWER], institutions=[site["inst"]])
    response = _client(user).get(reverse("archiver:rendition-download", args=[site["made"].pk]))
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert response["X-PDAS-Notice"] == "Reference copy, not for treatment"
    data = b"".join(response.streaming_content)
    rendition = DicomRendition.objects.get(archive=site["made"])
    assert hashlib.sha256(data).hexdigest() == rendition.sha256
    assert f'filename="{rendition.name}"' in response["Content-Disposition"]
    event = AuditEvent.objects.get(event="rendition.download")
    assert (event.actor, event.mrns, event.outcome, event.detail["target"]) == ("v", ["001"], "ok", "array-1")


def test_a_damaged_stored_zip_is_never_served_the_next_target_is(site):
    rendition = DicomRendition.objects.get(archive=site["made"])
    (site["folders"]["array-1"] / rendition.name).write_bytes(b"damaged")
    client = _client(make_user("v", roles=[VIEWER], institutions=[site["inst"]]))
    response = client.get(reverse("archiver:rendition-download", args=[site["made"].pk]))
    assert hashlib.sha256(b"".join(response.streaming_content)).hexdigest() == rendition.sha256
    assert AuditEvent.objects.get(event="rendition.download").detail["target"] == "array-2"
    (site["folders"]["array-2"] / rendition.name).unlink()
    response = client.get(reverse("archiver:rendition-download", args=[site["made"].pk]), follow=True)
    html = response.content.decode()
    assert "could not be read whole from any target" in html and "array-1:" in html and "array-2:" in html
    assert AuditEvent.objects.filter(event="rendition.download", outcome="failed").count() == 1


def test_download_needs_the_institution_and_the_role(site):
    url = reverse("archiver:rendition-download", args=[site["made"].pk])
    other = make_user("o", roles=[VIEWER], institutions=[InstitutionFactory(code="OTHER")])
    assert _client(other).get(url).status_code == 404
    auditor = make_user("a", roles=[AUDITOR], institutions=[site["inst"]])
    assert _client(auditor).get(url).status_code == 403
    assert not AuditEvent.objects.filter(event="rendition.download").exists()
    response = _client(make_user("v", roles=[VIEWER], institutions=[site["inst"]])).get(
        reverse("archiver:rendition-download", args=[site["failed"].pk]))
    assert response.status_code == 302
