"""Fixtures of the reports tests: an institution and months of runs, archives and loss scans."""
from __future__ import annotations

import datetime as dt

import pytest

from inventory.models import Archive
from lossdetect.models import Category, LossScan
from tests.factories import InstitutionFactory
from tests.reports.factories import ArchiveRunFactory, DoneScanFactory, LossFindingFactory, PatientArchiveTaskFactory
from tests.reports.site import Result, archive, at


@pytest.fixture
def inst():
    InstitutionFactory(code="ZZZ")  # a second institution: every figure must keep to its own
    return InstitutionFactory(code="PUMCH", time_zone="Asia/Shanghai")


@pytest.fixture
def archived(inst):
    # Half an hour into March site time is still February in UTC: the run counts in March.
    march = ArchiveRunFactory(institution=inst, started_at=at(3, 1, 0, 30))
    PatientArchiveTaskFactory(run=march, archive=archive(inst, "001", 3000, 1000, plans=2))
    PatientArchiveTaskFactory(run=march, archive=archive(inst, "002", 6000, 1500, plans=1))
    PatientArchiveTaskFactory(run=march, result=Result.WARNING, archive=archive(inst, "001", 1000, 500, plans=0))
    packed = archive(inst, "003", 5, 5, plans=1, status=Archive.Status.PACKED, verified_at=None)
    PatientArchiveTaskFactory(run=march, result=Result.ERROR, archive=packed)  # × : packed, never verified
    PatientArchiveTaskFactory(run=march, result=Result.ERROR)  # × before packing
    late = ArchiveRunFactory(institution=inst, started_at=at(3, 31, 23, 30))
    PatientArchiveTaskFactory(run=late, archive=archive(inst, "004", 7, 7, plans=1))
    april = ArchiveRunFactory(institution=inst, started_at=at(4, 1, 0, 10))
    PatientArchiveTaskFactory(run=april, archive=archive(inst, "005", 9, 9, plans=1))
    february = ArchiveRunFactory(institution=inst, started_at=at(2, 29, 23, 59))
    PatientArchiveTaskFactory(run=february, archive=archive(inst, "006", 400, 100, plans=3))
    other = ArchiveRunFactory(institution=InstitutionFactory(code="OTHER"), started_at=at(3, 3))
    PatientArchiveTaskFactory(run=other, archive=archive(other.institution, "007", 1, 1, plans=1))
    return inst


@pytest.fixture
def runs(inst):
    first = ArchiveRunFactory(institution=inst, started_at=at(3, 2, 10), finished_at=at(3, 2, 10, 10))  # 600 s
    for _ in range(3):
        PatientArchiveTaskFactory(run=first, bytes_total=100_000_000)
    PatientArchiveTaskFactory(run=first, result=Result.ERROR, bytes_total=50_000_000,
                              reason="unreadable: Patient: line 3: missing ';'")
    PatientArchiveTaskFactory(run=first, result=Result.ERROR, bytes_total=50_000_000,
                              reason="unreadable: Plan_0/plan.Trial: truncated")
    second = ArchiveRunFactory(institution=inst, started_at=at(3, 10, 2), finished_at=at(3, 10, 2) + dt.timedelta(seconds=200))
    PatientArchiveTaskFactory(run=second, result=Result.WARNING, bytes_total=100_000_000,
                              reason="archived, but the patient left the pending group before removal")
    PatientArchiveTaskFactory(run=second, bytes_total=100_000_000)
    running = ArchiveRunFactory(institution=inst, started_at=at(3, 20), finished_at=None)
    PatientArchiveTaskFactory(run=running, result=Result.PENDING, bytes_total=10_000_000)
    PatientArchiveTaskFactory(run=running, bytes_total=10_000_000)  # done, but its run has no time yet
    april = ArchiveRunFactory(institution=inst, started_at=at(4, 1, 0, 5), finished_at=at(4, 1, 1, 5))
    PatientArchiveTaskFactory(run=april, bytes_total=7)
    return inst


@pytest.fixture
def losses(inst):
    first = DoneScanFactory(institution=inst, window_from=dt.date(2024, 3, 1), window_to=dt.date(2024, 3, 7))
    finding = LossFindingFactory
    finding(scan=first, mrn="P1", first_delivery=at(3, 1, 0, 30), category=Category.FIRST_COURSE_ARCHIVED)
    finding(scan=first, mrn="P2", first_delivery=at(3, 3), category=Category.FIRST_COURSE_UNARCHIVED)
    finding(scan=first, mrn="P3", first_delivery=at(3, 5), category=Category.FIRST_COURSE_LOST)
    finding(scan=first, mrn="P4", first_delivery=at(3, 6), category=Category.RECOURSE_LOST)
    second = DoneScanFactory(institution=inst, window_from=dt.date(2024, 3, 8), window_to=dt.date(2024, 3, 14))
    finding(scan=second, mrn="P5", first_delivery=at(3, 9), category=Category.FIRST_COURSE_ARCHIVED)
    finding(scan=second, mrn="P6", first_delivery=at(3, 10), category=Category.RECOURSE_ARCHIVED)
    # The pending plan P2 vanished from the TPS: the later scan reports it lost.
    finding(scan=second, mrn="P2", first_delivery=at(3, 3), category=Category.FIRST_COURSE_LOST)
    rerun = DoneScanFactory(institution=inst, window_from=dt.date(2024, 3, 1), window_to=dt.date(2024, 3, 7))
    finding(scan=rerun, mrn="P1", first_delivery=at(3, 1, 0, 30), category=Category.FIRST_COURSE_ARCHIVED)
    finding(scan=rerun, mrn="P3", first_delivery=at(3, 5), category=Category.FIRST_COURSE_LOST)
    finding(scan=rerun, mrn="P4", first_delivery=at(3, 6), category=Category.RECOURSE_ARCHIVED)  # restored, archived
    failed = DoneScanFactory(institution=inst, status=LossScan.Status.FAILED)
    finding(scan=failed, mrn="P7", first_delivery=at(3, 12), category=Category.FIRST_COURSE_LOST)
    finding(scan=rerun, mrn="P8", first_delivery=at(4, 1, 0, 30), category=Category.RECOURSE_LOST)
    february = DoneScanFactory(institution=inst)
    for n, category in enumerate([Category.FIRST_COURSE_ARCHIVED] * 3 + [Category.RECOURSE_LOST]):
        finding(scan=february, mrn=f"F{n}", first_delivery=at(2, 10 + n), category=category)
    other = DoneScanFactory(institution=InstitutionFactory(code="OTHER"))
    finding(scan=other, mrn="X", first_delivery=at(3, 3), category=Category.FIRST_COURSE_LOST)
    return inst
