"""Starting a rendition from the restore page, and the anonymised research export with its pseudonym map
(docs/rendition.md, "Pages" and "Research export")."""
from __future__ import annotations

import io
import zipfile

import pydicom
import pytest
from django.test import Client
from django.urls import reverse

from archiver.services.rendition import make_rendition, request_rendition
from audit.models import AuditEvent
from inventory.models import Archive, DicomRendition, PseudonymMap
from pinnacle.dicom.annex_e import PATIENT_CHARACTERISTICS, basic_profile_code
from pinnacle.dicom.references import check_references
from sites.roles import ARCHIVE_ADMIN, AUDITOR, PHYSICIST, VIEWER
from tests.archiver.test_services_fixity import _archive_site
from tests.factories import InstitutionFactory, make_user
from tests.pinnacle.dicom.test_anonymise import _by_path, _elements

pytestmark = pytest.mark.django_db


@pytest.fixture
def site(tmp_path, settings):
    settings.DATA_DIR = tmp_path / "data"
    settings.PDAS_DISPATCH_INLINE = True
    inst, folders = _archive_site(tmp_path, patients=(1, 2))
    made = Archive.objects.get(mrn="001")
    request_rendition(archive=made, actor="t")
    assert make_rendition(archive_id=made.pk).status == "made"
    return {"inst": inst, "folders": folders, "made": made, "other": Archive.objects.get(mrn="002")}


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _search(client, inst, mrn) -> str:
    return client.get(reverse("archiver:restore"), {"institution": inst.pk, "mrn": mrn}).content.decode()


# --- Make DICOM ------------------------------------------------------------------------------------------


def test_a_physicist_starts_a_rendition_from_the_restore_page(site):
    client = _client(make_user("p", roles=[PHYSICIST], institutions=[site["inst"]]))
    url = reverse("archiver:rendition-make", args=[site["other"].pk])
    html = _search(client, site["inst"], "002")
    assert url in html and "Make DICOM" in html
    assert "Make again" in _search(client, site["inst"], "001")
    assert client.get(url).status_code == 405, "a POST only"
    response = client.post(url)
    assert response.status_code == 302 and "mrn=002" in response["Location"]
    rendition = DicomRendition.objects.get(archive=site["other"])
    assert rendition.status == "made" and rendition.requested_by == "p"
    request = AuditEvent.objects.get(event="rendition.request")
    assert (request.actor, request.mrns, request.detail["again"]) == ("p", ["002"], False)
    assert AuditEvent.objects.filter(event="rendition.make", actor="p").count() == 1


def test_a_rendition_running_is_not_started_twice_and_the_status_shows(site):
    DicomRendition.objects.filter(archive=site["made"]).update(status="running")
    client = _client(make_user("a", roles=[ARCHIVE_ADMIN], institutions=[site["inst"]]))
    html = _search(client, site["inst"], "001")
    assert "Running" in html and reverse("archiver:rendition-make", args=[site["made"].pk]) not in html
    response = client.post(reverse("archiver:rendition-make", args=[site["made"].pk]), follow=True)
    assert "already Running" in response.content.decode()
    assert not AuditEvent.objects.filter(event="rendition.request").exists()


def test_making_a_rendition_needs_the_permission_and_the_institution(site):
    url = reverse("archiver:rendition-make", args=[site["other"].pk])
    viewer = _client(make_user("v", roles=[VIEWER], institutions=[site["inst"]]))
    assert url not in _search(viewer, site["inst"], "002")
    assert viewer.post(url).status_code == 403
    other = _client(make_user("o", roles=[PHYSICIST], institutions=[InstitutionFactory(code="OTHER")]))
    assert other.post(url).status_code == 404
    assert not DicomRendition.objects.filter(archive=site["other"]).exists()


# --- the research export ---------------------------------------------------------------------------------


def _export(client, archive):
    response = client.get(reverse("archiver:research-export", args=[archive.pk]))
    assert response.status_code == 200, response
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))), response


def _originals(site) -> dict[str, pydicom.Dataset]:
    rendition = DicomRendition.objects.get(archive=site["made"])
    with zipfile.ZipFile(site["folders"]["array-1"] / rendition.name) as bundle:
        return {str(ds.SOPInstanceUID): ds for ds in (pydicom.dcmread(io.BytesIO(bundle.read(n)))
                                                      for n in bundle.namelist() if n != "rendition.json")}


def _datasets(bundle) -> list[tuple[str, pydicom.Dataset]]:
    return [(n, pydicom.dcmread(io.BytesIO(bundle.read(n)))) for n in bundle.namelist() if n.endswith(".dcm")]


def test_the_anonymised_export_keeps_no_identifying_value_and_reuses_the_pseudonym(site):
    admin = make_user("a", roles=[ARCHIVE_ADMIN], institutions=[site["inst"]])
    client = _client(admin)
    assert reverse("archiver:research-export", args=[site["made"].pk]) in _search(client, site["inst"], "001")
    bundle, response = _export(client, site["made"])
    mapping = PseudonymMap.objects.get()
    assert (mapping.mrn, mapping.institution, mapping.created_by, mapping.exports) == ("001", site["inst"], "a", 1)
    assert f'filename="{mapping.pseudonym}.dicom.zip"' in response["Content-Disposition"]
    assert "001" not in response["Content-Disposition"] and site["made"].last_name not in response["Content-Disposition"]
    anonymous = _datasets(bundle)
    originals = _originals(site)
    assert len(anonymous) == len(originals) and "rendition.json" not in bundle.namelist()
    by_uid = {str(ds.SOPInstanceUID): ds for _, ds in anonymous}
    checked = 0
    for uid, original in originals.items():
        after = _by_path(by_uid[mapping.uid_map[uid]])
        for path, element in _elements(original):
            tag = path[-1]
            if basic_profile_code(tag) is None or element.value in (None, "", b"") or element.VR == "SQ":
                continue
            kept = after.get(path)
            if kept is None or tag in PATIENT_CHARACTERISTICS or element.VR == "TM":
                continue
            assert kept.value != element.value, (path, element.keyword)
            checked += 1
    assert checked > 50
    assert check_references(anonymous).problems == []
    assert {(str(ds.PatientID), str(ds.PatientName)) for _, ds in anonymous} == {(mapping.pseudonym,) * 2}
    event = AuditEvent.objects.get(event="research.export")
    assert (event.actor, event.mrns, event.outcome, event.detail["new_map"]) == ("a", ["001"], "ok", True)
    assert "uid_map" not in event.detail and event.detail["pseudonym"] == mapping.pseudonym

    again, _ = _export(client, site["made"])
    mapping.refresh_from_db()
    assert PseudonymMap.objects.count() == 1 and mapping.exports == 2
    assert {str(ds.SOPInstanceUID) for _, ds in _datasets(again)} == set(by_uid), "the same UID map"
    assert {str(ds.PatientID) for _, ds in _datasets(again)} == {mapping.pseudonym}
    assert {str(ds.StudyDate) for _, ds in _datasets(again)} == {str(ds.StudyDate) for _, ds in anonymous}
    assert AuditEvent.objects.filter(event="research.export").latest("pk").detail["new_map"] is False


def test_the_export_needs_its_permission(site):
    url = reverse("archiver:research-export", args=[site["made"].pk])
    physicist = _client(make_user("p", roles=[PHYSICIST], institutions=[site["inst"]]))
    assert url not in _search(physicist, site["inst"], "001")
    assert physicist.get(url).status_code == 403
    other = _client(make_user("o", roles=[ARCHIVE_ADMIN], institutions=[InstitutionFactory(code="OTHER")]))
    assert other.get(url).status_code == 404
    assert not PseudonymMap.objects.exists() and not AuditEvent.objects.filter(event="research.export").exists()


def test_an_unreadable_rendition_is_a_named_failure(site):
    rendition = DicomRendition.objects.get(archive=site["made"])
    for folder in site["folders"].values():
        (folder / rendition.name).write_bytes(b"damaged")
    client = _client(make_user("a", roles=[ARCHIVE_ADMIN], institutions=[site["inst"]]))
    response = client.get(reverse("archiver:research-export", args=[site["made"].pk]), follow=True)
    assert "could not be read whole from any target" in response.content.decode()
    assert AuditEvent.objects.get(event="research.export").outcome == "failed"


def test_only_the_auditor_sees_the_pseudonym_map(site):
    admin = _client(make_user("a", roles=[ARCHIVE_ADMIN], institutions=[site["inst"]]))
    _export(admin, site["made"])
    mapping = PseudonymMap.objects.get()
    url = reverse("audit:pseudonym-maps")
    auditor = _client(make_user("au", roles=[AUDITOR], institutions=[site["inst"]]))
    html = auditor.get(url).content.decode()
    assert mapping.pseudonym in html and "001" in html
    assert AuditEvent.objects.get(event="pseudonym.view").mrns == ["001"]
    exported = auditor.get(url, {"_export": "csv"})
    csv = (b"".join(exported.streaming_content) if exported.streaming else exported.content).decode()
    assert next(iter(mapping.uid_map.values())) in csv
    for user in ("a", "p", "v"):
        role = {"a": ARCHIVE_ADMIN, "p": PHYSICIST, "v": VIEWER}[user]
        client = admin if user == "a" else _client(make_user(user, roles=[role], institutions=[site["inst"]]))
        response = client.get(url)
        assert response.status_code == 403, user
        assert mapping.pseudonym not in client.get("/").content.decode()
    stranger = _client(make_user("x", roles=[AUDITOR], institutions=[InstitutionFactory(code="OTHER")]))
    assert mapping.pseudonym not in stranger.get(url).content.decode()
