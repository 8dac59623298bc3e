"""The department of tests/lossdetect/test_services_scan_department.py, read from a DICOM node: two planning
systems, a renumbered and a merged patient, and no course numbers (DICOM has none: the gap rule decides).
Orthanc, dcmqrscp and pynetdicom's qrscp must give exactly the same six categories and ``other_tps``."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from demo_site.rv import rv_plan, write_dicom
from lossdetect.models import MrnAlias
from lossdetect.services.scan import run_loss_scan
from tests.factories import (
    ArchiveCopyFactory, ArchivedPlanFactory, ArchiveFactory, InstitutionFactory, TpsPatientFactory, TpsPlanFactory,
)
from tests.servers.dcmqrscp import start_dcmqrscp
from tests.servers.orthanc import start_orthanc
from tests.servers.qrscp import start_qrscp

pytestmark = pytest.mark.servers

ZONE = ZoneInfo("Asia/Shanghai")
START = {"orthanc": start_orthanc, "dcmqrscp": start_dcmqrscp, "qrscp": start_qrscp}
CREATED = dt.datetime(2024, 2, 20, 10, tzinfo=ZONE)

PLANS = [
    rv_plan("A1", "LT BREAST", dt.datetime(2024, 3, 4, 9)),
    rv_plan("B1", "PROSTATE", dt.datetime(2024, 3, 5, 9), tps=""),  # the RT Plan names no planning system
    rv_plan("C1", "LIVER", dt.datetime(2024, 3, 5, 10)),
    rv_plan("F1", "WHOLE BRAIN", dt.datetime(2023, 6, 1, 9)),  # F1's first course, long before
    rv_plan("F1", "BRAIN", dt.datetime(2024, 3, 6, 9)),  # re-course, moved to Research in the TPS
    rv_plan("R-NEW", "LUNG 1", dt.datetime(2023, 9, 1, 9)),
    rv_plan("R-NEW", "LUNG", dt.datetime(2024, 3, 6, 10)),  # re-course; the TPS has it under R-OLD
    rv_plan("M1", "CHEST WALL", dt.datetime(2023, 6, 1, 9)),  # merged M1 -> M2 -> M3
    rv_plan("M3", "RT CHEST WALL", dt.datetime(2024, 3, 7, 9)),  # re-course across the merge, archived under M1
    rv_plan("G1", "HEAD NECK", dt.datetime(2023, 11, 7, 9), tps="Monaco"),  # left out of the gap rule
    rv_plan("G1", "RT BREAST", dt.datetime(2024, 3, 7, 10)),  # so this stays a first course
    rv_plan("O1", "LT BREAST", dt.datetime(2024, 3, 8, 9), tps="Monaco"),
    rv_plan("O2", "PELVIS", dt.datetime(2024, 3, 9, 9), tps="Eclipse"),
    rv_plan("O3", "SPINE", dt.datetime(2024, 2, 9, 9), tps="RayStation"),  # before the window: not counted
]
EXPECTED = {
    "A1": "first_course_archived", "B1": "first_course_unarchived", "C1": "first_course_lost",
    "G1": "first_course_unarchived", "F1": "recourse_lost", "R-NEW": "recourse_unarchived",
    "M3": "recourse_archived",
}


def _department(institution) -> None:
    def in_tps(mrn, name, group="Clinical"):
        TpsPlanFactory(patient=TpsPatientFactory(institution=institution, mrn=mrn, group=group), name=name,
                       created=CREATED)

    def archived(mrn, name):
        archive = ArchiveFactory(institution=institution, mrn=mrn)
        ArchivedPlanFactory(archive=archive, name=name, created=CREATED)
        ArchiveCopyFactory(archive=archive)

    archived("A1", "LT BREAST")
    in_tps("B1", "PROSTATE", group="ToArchive")
    in_tps("F1", "BRAIN", group="Research")
    in_tps("G1", "RT BREAST")
    in_tps("R-OLD", "LUNG")
    archived("M1", "RT CHEST WALL")
    for old, new in [("R-OLD", "R-NEW"), ("M1", "M2"), ("M2", "M3")]:
        MrnAlias.objects.create(institution=institution, old_mrn=old, mrn=new, reason="test")


@pytest.mark.parametrize("server", sorted(START))
def test_the_department_gives_the_same_findings_from_every_dicom_node(db, tmp_path, server):
    node = START[server](tmp_path / server)
    try:
        node.store(write_dicom(tmp_path / "objects", PLANS))
        institution = InstitutionFactory(code="PUMCH", rv_url=node.url())
        _department(institution)
        result = run_loss_scan(institution=institution, window_from=dt.date(2024, 3, 4),
                               window_to=dt.date(2024, 3, 10), trigger="manual", actor="tester", refresh_tps=False)
    finally:
        node.process.stop()
    assert result.status == "done", result.error
    found = {f.mrn: f for f in result.findings.all()}
    assert {mrn: f.category for mrn, f in found.items()} == EXPECTED
    assert (result.summary["total"], result.summary["other_tps"], result.summary["lost"]) == (7, 2, 2)
    assert sorted(f.mrn for f in found.values() if f.category.endswith("_lost")) == ["C1", "F1"]  # no false lost
    assert found["F1"].found_in.startswith("Research")
    assert (found["R-NEW"].also_known_as, found["M3"].also_known_as) == (["R-OLD"], ["M1", "M2"])
    assert {r.mrn: r.planning_system for r in result.other_tps_records.all()} == {
        "O1": "Elekta Monaco", "O2": "Varian Medical Systems Eclipse"}
