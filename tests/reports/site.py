"""Rows with known answers for the reports tests (site time Asia/Shanghai, UTC+8)."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from archiver.models import PatientArchiveTask
from lossdetect.models import Category
from reports.periods import Period
from tests.factories import ArchivedPlanFactory, ArchiveFactory
from tests.reports.factories import (
    ArchiveRunFactory, DoneScanFactory, LossFindingFactory, PatientArchiveTaskFactory, PendingPlanFactory,
    QuarantinedPatientFactory, RestoreRecordFactory,
)

ZONE = ZoneInfo("Asia/Shanghai")
MARCH = Period.month(2024, 3, ZONE)
MARCH_QUERY = {"institution": "PUMCH", "period": "month", "year": "2024", "month": "3"}
Result = PatientArchiveTask.Result


def at(month: int, day: int, hour: int = 12, minute: int = 0, year: int = 2024) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=ZONE)


def archive(inst, mrn: str, raw: int, size: int, plans: int, **kwargs):
    """A verified archive with ``plans`` plans."""
    made = ArchiveFactory(institution=inst, mrn=mrn, name=f"X_{mrn}_{raw}.tar.gz", raw_bytes=raw, size=size, **kwargs)
    for plan_id in range(plans):
        ArchivedPlanFactory(archive=made, plan_id=plan_id)
    return made


def add_day_of_work(inst, day: int) -> None:
    """One archive (2 plans, 3 MB raw, 1 MB stored), one 100 s run archiving 2 MB, one restore, one scan."""
    made = archive(inst, f"D{day:02d}", 3_000_000, 1_000_000, plans=2, verified_at=at(3, day))
    run = ArchiveRunFactory(institution=inst, started_at=at(3, day), finished_at=at(3, day) + dt.timedelta(seconds=100))
    PatientArchiveTaskFactory(run=run, bytes_total=2_000_000, archive=made)
    PatientArchiveTaskFactory(run=run, result=Result.ERROR, reason=f"unreadable: Patient_{day}: bad")
    RestoreRecordFactory(institution=inst, archive=made, started_at=at(3, day))
    QuarantinedPatientFactory(institution=inst, archive=made, total_bytes=500_000_000)
    scan = DoneScanFactory(institution=inst, finished_at=at(3, day), summary={"pending": day})
    LossFindingFactory(scan=scan, first_delivery=at(3, day), category=Category.FIRST_COURSE_ARCHIVED)
    LossFindingFactory(scan=scan, first_delivery=at(3, day), category=Category.RECOURSE_LOST)
    PendingPlanFactory(institution=inst, first_delivery=at(3, day))
