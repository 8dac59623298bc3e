"""The loss scan trusts an archive only while it has a verified copy (docs/keeping.md).

An archive verified once whose only copy went missing or corrupt no longer makes its plans
"archived": with the originals gone the plan is lost, with them still in the quarantine it is
unarchived, and ``found_in`` names the archive and the state of each copy."""
from __future__ import annotations

import datetime as dt

import pytest

from demo_site.rv import rv_plan
from inventory.models import ArchiveCopy, QuarantinedPatient
from tests.lossdetect.test_services_scan import archived, by_mrn, institution, local, rv_csv, scan  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("copy_status", ["missing", "corrupt"])
def test_a_plan_whose_only_copy_is_gone_is_lost_and_says_where(institution, copy_status):  # noqa: F811
    archive = archived(institution, "A1", "LT BREAST", local(2024, 2, 20, 10), copy_status=copy_status)
    rv_csv(institution, [rv_plan("A1", "LT BREAST", dt.datetime(2024, 3, 4, 9), course=1)])

    finding = by_mrn(scan(institution))["A1"]
    target = archive.copies.get().target.name
    assert finding.category == "first_course_lost"
    assert finding.found_in == f"archive {archive.name}: {copy_status} on {target}"


def test_with_its_originals_in_the_quarantine_the_plan_is_unarchived_and_says_both(institution):  # noqa: F811
    archive = archived(institution, "A1", "LT BREAST", local(2024, 2, 20, 10), copy_status="missing")
    row = QuarantinedPatient.objects.create(institution=institution, archive=archive, tps_path="Institution_1/P_1",
                                            quarantine_path=".pdas-quarantine/20240301/x/Institution_1/P_1",
                                            moved_at=local(2024, 3, 1, 2), purge_after=local(2024, 3, 31, 2))
    rv_csv(institution, [rv_plan("A1", "LT BREAST", dt.datetime(2024, 3, 4, 9), course=1)])

    finding = by_mrn(scan(institution))["A1"]
    assert finding.category == "first_course_unarchived"
    assert f"archive {archive.name}: missing on" in finding.found_in
    assert row.quarantine_path in finding.found_in
    assert "move the folder back into the pending group" in finding.found_in, "the way back"


def test_a_copy_on_a_disabled_target_does_not_count(institution):  # noqa: F811
    archive = archived(institution, "A1", "LT BREAST", local(2024, 2, 20, 10))
    ArchiveCopy.objects.filter(archive=archive).update(status="verified")
    archive.copies.get().target.__class__.objects.update(enabled=False)
    rv_csv(institution, [rv_plan("A1", "LT BREAST", dt.datetime(2024, 3, 4, 9), course=1)])

    assert by_mrn(scan(institution))["A1"].category == "first_course_lost"
