"""A loss scan in a real department (docs/contracts.md §2.6, §2.7): two planning systems, a renumbered patient,
a merged one. The six categories must come out exactly, other planning systems apart, and no plan falsely lost."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from audit.models import AuditEvent
from demo_site.rv import rv_plan, write_csv
from lossdetect.models import LossScan, MrnAlias, PendingPlan
from lossdetect.services.scan import run_loss_scan
from tests.factories import (
    ArchiveCopyFactory, ArchivedPlanFactory, ArchiveFactory, InstitutionFactory, TpsPatientFactory, TpsPlanFactory,
)

ZONE = ZoneInfo("Asia/Shanghai")
WEEK = (dt.date(2024, 3, 4), dt.date(2024, 3, 10))
SIX = ["first_course_lost", "first_course_unarchived", "first_course_archived", "recourse_lost",
       "recourse_unarchived", "recourse_archived"]


def local(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=ZONE)


@pytest.fixture
def institution(db, tmp_path):
    return InstitutionFactory(code="PUMCH", rv_url=f"csv:{tmp_path / 'rv.csv'}")


def in_tps(institution, mrn, name, created, *, group="Clinical"):
    return TpsPlanFactory(patient=TpsPatientFactory(institution=institution, mrn=mrn, group=group), name=name,
                          created=created)


def archived(institution, mrn, name, created):
    archive = ArchiveFactory(institution=institution, mrn=mrn)
    ArchivedPlanFactory(archive=archive, name=name, created=created)
    ArchiveCopyFactory(archive=archive)
    return archive


def scan(institution) -> LossScan:
    result = run_loss_scan(institution=institution, window_from=WEEK[0], window_to=WEEK[1], trigger="manual",
                           actor="tester", refresh_tps=False)
    assert result.status == "done", result.error
    return result


def department(institution, tmp_path, *, aliases: bool):
    """Plans in the TPS and the archives, the R&V history (CSV with a tps column) and, if asked, the aliases."""
    created = local(2024, 2, 20, 10)
    archived(institution, "A1", "LT BREAST", created)
    in_tps(institution, "B1", "PROSTATE", created, group="ToArchive")
    in_tps(institution, "F1", "BRAIN", created, group="Research")
    in_tps(institution, "G1", "RT BREAST", created)
    # Renumbered: the TPS still has the old MRN, the R&V system the new one.
    in_tps(institution, "R-OLD", "LUNG", created)
    # Merged twice (M1 -> M2 -> M3): archived under M1, treated now under M3, its first course under M1.
    archived(institution, "M1", "RT CHEST WALL", created)
    if aliases:
        for old, new in [("R-OLD", "R-NEW"), ("M1", "M2"), ("M2", "M3")]:
            MrnAlias.objects.create(institution=institution, old_mrn=old, mrn=new, reason="test")
    plans = [
        rv_plan("A1", "LT BREAST", dt.datetime(2024, 3, 4, 9), course=1, tps="Pinnacle3"),
        rv_plan("B1", "PROSTATE", dt.datetime(2024, 3, 5, 9), course=1, tps=""),  # names no planning system
        rv_plan("C1", "LIVER", dt.datetime(2024, 3, 5, 10), course=1, tps="Philips Pinnacle3"),
        rv_plan("F1", "BRAIN", dt.datetime(2024, 3, 6, 9), course=2),
        rv_plan("R-NEW", "LUNG", dt.datetime(2024, 3, 6, 10), course=2),
        rv_plan("M1", "CHEST WALL", dt.datetime(2023, 6, 1, 9)),  # first course, outside the window
        rv_plan("M3", "RT CHEST WALL", dt.datetime(2024, 3, 7, 9)),  # re-course by the gap rule, across the merge
        # G1 had a Monaco plan 120 days before: left out of the gap rule, the Pinnacle plan stays first course.
        rv_plan("G1", "HEAD NECK", dt.datetime(2023, 11, 7, 9), tps="Monaco"),
        rv_plan("G1", "RT BREAST", dt.datetime(2024, 3, 7, 10)),
        # Planned elsewhere: in the window (counted), and before it (not counted).
        rv_plan("O1", "LT BREAST", dt.datetime(2024, 3, 8, 9), course=1, tps="Monaco"),
        rv_plan("O2", "PELVIS", dt.datetime(2024, 3, 9, 9), tps="Eclipse"),
        rv_plan("O3", "SPINE", dt.datetime(2024, 2, 9, 9), tps="RayStation"),
    ]
    write_csv(tmp_path / "rv.csv", plans)


def test_two_planning_systems_a_merged_and_a_renumbered_patient(institution, tmp_path):
    department(institution, tmp_path, aliases=True)
    result = scan(institution)
    found = {f.mrn: f for f in result.findings.all()}
    assert {mrn: f.category for mrn, f in found.items()} == {
        "A1": "first_course_archived", "B1": "first_course_unarchived", "C1": "first_course_lost",
        "G1": "first_course_unarchived", "F1": "recourse_lost", "R-NEW": "recourse_unarchived",
        "M3": "recourse_archived"}
    assert {k: result.summary[k] for k in ["total", "other_tps", "lost", *SIX]} == {
        "total": 7, "other_tps": 2, "lost": 2, "first_course_lost": 1, "first_course_unarchived": 2,
        "first_course_archived": 1, "recourse_lost": 1, "recourse_unarchived": 1, "recourse_archived": 1}
    # No false lost: the only lost plans are the one gone and the one moved to Research.
    assert sorted(f.mrn for f in found.values() if f.category.endswith("_lost")) == ["C1", "F1"]
    # A finding keeps the R&V record's MRN and names the others.
    assert (found["R-NEW"].also_known_as, found["M3"].also_known_as, found["A1"].also_known_as) == (
        ["R-OLD"], ["M1", "M2"], [])
    assert found["R-NEW"].match.startswith("Institution_1/Mount_0/Patient_")
    assert found["M3"].match.startswith("LAST-FIRST_M1_")
    other = {r.mrn: r for r in result.other_tps_records.all()}
    assert {mrn: r.planning_system for mrn, r in other.items()} == {"O1": "Monaco", "O2": "Eclipse"}
    assert other["O1"].course == 1 and other["O1"].first_delivery == local(2024, 3, 8, 9)
    assert not PendingPlan.objects.filter(mrn__in=["O1", "O2"]).exists()
    assert sorted(PendingPlan.objects.values_list("mrn", flat=True)) == ["B1", "G1", "R-NEW"]
    assert AuditEvent.objects.get(event="lossscan.run").mrns == ["C1", "F1"]


def test_without_the_aliases_and_the_tps_rule_the_same_department_shows_false_losses(institution, tmp_path):
    """The counter-test: every answer above depends on the aliases and the planning systems."""
    department(institution, tmp_path, aliases=False)
    institution.planning_systems = ["Pinnacle", "Monaco", "Eclipse", "RayStation"]  # everything "ours"
    institution.save()
    result = scan(institution)
    found = {f.mrn: f.category for f in result.findings.all()}
    assert found["R-NEW"] == "recourse_lost" and found["M3"] == "first_course_lost"
    assert found["G1"] == "recourse_unarchived"  # the Monaco plan opened the earlier course
    assert found["O1"] == found["O2"] == "first_course_lost"
    assert result.summary["other_tps"] == 0 and result.summary["lost"] == 6


def test_a_pending_plan_under_an_old_mrn_is_found_under_the_new_one(institution, tmp_path):
    """A plan pending under its R&V MRN stays pending when the TPS patient is renumbered and an alias says so."""
    plan = in_tps(institution, "000123", "LUNG", local(2024, 2, 20, 10))
    write_csv(tmp_path / "rv.csv", [rv_plan("000123", "LUNG", dt.datetime(2024, 3, 5, 9), course=1)])
    scan(institution)
    plan.patient.mrn = "000999"  # renumbered in the TPS after the scan
    plan.patient.save()
    MrnAlias.objects.create(institution=institution, old_mrn="000123", mrn="000999")
    later = run_loss_scan(institution=institution, window_from=dt.date(2024, 3, 11), window_to=dt.date(2024, 3, 17),
                          trigger="manual", actor="tester", refresh_tps=False)
    assert later.summary["pending_lost"] == 0 and later.summary["pending"] == 1
    assert PendingPlan.objects.get().status == "pending"
