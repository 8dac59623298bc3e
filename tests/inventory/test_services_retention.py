"""retain_until moves later with the deliveries a loss scan learns, never earlier (docs/keeping.md)."""
from __future__ import annotations

import datetime as dt

import pytest

from audit.models import AuditEvent
from demo_site.rv import rv_plan
from inventory.models import Archive
from inventory.services.retention import extend_retention
from tests.factories import ArchiveFactory, InstitutionFactory
from tests.lossdetect.test_services_scan import archived, institution, local, rv_csv, scan  # noqa: F401

pytestmark = pytest.mark.django_db
UTC = dt.timezone.utc


def test_a_later_delivery_moves_retain_until_later_and_an_earlier_one_never_moves_it_back():
    inst = InstitutionFactory(code="RET", retention_years=30)
    packed = dt.datetime(2024, 3, 1, 8, tzinfo=UTC)
    kept = ArchiveFactory(institution=inst, mrn="R1", retain_until=Archive.retention_end(packed, 30))
    other = ArchiveFactory(institution=inst, mrn="R2", retain_until=Archive.retention_end(packed, 30))
    later = dt.datetime(2025, 6, 2, 9, tzinfo=UTC)

    moved = extend_retention(institution=inst, actor="t",
                             latest_delivery={"R1": later, "R2": dt.datetime(2024, 2, 1, tzinfo=UTC)})
    assert moved == 1
    kept.refresh_from_db(), other.refresh_from_db()
    assert kept.retain_until == dt.datetime(2055, 6, 2, 9, tzinfo=UTC)
    assert other.retain_until == dt.datetime(2054, 3, 1, 8, tzinfo=UTC), "never moved earlier"
    event = AuditEvent.objects.get(event="archive.retention")
    assert event.mrns == ["R1"] and event.detail["archives"][0]["to"].startswith("2055-06-02")

    assert extend_retention(institution=inst, actor="t", latest_delivery={"R1": later}) == 0, "idempotent"
    assert AuditEvent.objects.filter(event="archive.retention").count() == 1


def test_all_mrns_of_one_patient_share_the_latest_delivery():
    inst = InstitutionFactory(code="RET2", retention_years=10)
    old = ArchiveFactory(institution=inst, mrn="OLD-7", retain_until=None)
    patient = {"OLD-7": "NEW-7", "NEW-7": "NEW-7"}
    extend_retention(institution=inst, actor="t", latest_delivery={"NEW-7": dt.datetime(2026, 1, 5, tzinfo=UTC)},
                     patient_of=lambda mrn: patient.get(mrn, mrn))
    old.refresh_from_db()
    assert old.retain_until == dt.datetime(2036, 1, 5, tzinfo=UTC)


def test_a_loss_scan_moves_an_archived_patients_retention_to_its_recourse(institution):  # noqa: F811
    institution.retention_years = 30
    institution.save()
    archive = archived(institution, "A1", "LT BREAST", local(2024, 2, 20, 10))
    Archive.objects.filter(pk=archive.pk).update(retain_until=Archive.retention_end(local(2024, 2, 25), 30))
    rv_csv(institution, [rv_plan("A1", "LT BREAST", dt.datetime(2024, 3, 4, 9), course=1),
                         rv_plan("A1", "RT RIB", dt.datetime(2024, 9, 9, 9), course=2)])  # outside the window too
    assert scan(institution).status == "done"
    archive.refresh_from_db()
    assert archive.retain_until.astimezone(institution.zone).date() == dt.date(2054, 9, 9)
