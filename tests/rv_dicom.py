"""One set of R&V DICOM objects for the ``dicom-qr://`` tests, and the DICOM nodes that hold it.

``rv_dicom_files`` writes the objects once per session: RT Plans and RT Beams Treatment Records made
with ``demo_site.rv`` (as the ``dicom-dir:`` tests make theirs), plus the cases a node must survive:
a Chinese name (UTF-8), a plan from another planning system, a verification ("QA") plan delivered
like any other, a plan never delivered, a record with its own UTC offset, records in a study of
their own, a treatment summary record, a record naming a plan nobody holds, a record without a
time, plans first delivered long ago and one whose course began just before the history window.
``rv_node`` is each of the three test nodes (Orthanc, dcmqrscp, pynetdicom's qrscp) with those
objects stored in it by C-STORE, once per session; ``rv_files.folder`` holds the same objects for
``dicom-dir:``.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, RTTreatmentSummaryRecordStorage

from demo_site.rv import rt_plan_dataset, rt_record_dataset, rv_plan, save_dicom, write_dicom
from tests.servers.dicom import DicomNode

HISTORY_START = dt.date(2020, 1, 1)  # the tests' history window starts here (history_days counts back to it)
NODES = ("orthanc", "dcmqrscp", "qrscp")

CHINESE = rv_plan("000123", "左乳 IMRT", dt.datetime(2024, 3, 4, 9, 30, 5), last_name="张", first_name="三",
                  machine="TrueBeam2", fractions=3)
MONACO = rv_plan("000456", "PROSTATE", dt.datetime(2024, 3, 5, 10), tps="Monaco", machine="VersaHD")
QA = rv_plan("000123", "BREAST QA", dt.datetime(2024, 3, 3, 18), last_name="张", first_name="三", fractions=1)
NEVER = rv_plan("000789", "NEVER TREATED", None, created=dt.datetime(2024, 3, 1, 9))
OFFSET = rv_plan("000790", "ABROAD", dt.datetime(2024, 3, 6, 9), fractions=1)  # record at +01:00
OWN_STUDY = rv_plan("000791", "RECORDS APART", dt.datetime(2024, 3, 7, 8, 15))
SUMMARY = rv_plan("000792", "SUMMARY ONLY", None, created=dt.datetime(2024, 3, 1, 9))
SUMMARY_DAY = dt.date(2024, 3, 8)
NO_TIME = rv_plan("000793", "NO TIME", dt.datetime(2024, 3, 8, 14))
ORPHAN = rv_plan("000794", "NOT HELD", dt.datetime(2024, 3, 9, 9), uid="1.2.826.0.1.3680043.10.1138.0.404")
OLD = rv_plan("000100", "OLD", dt.datetime(2001, 5, 2, 9))
LONG = rv_plan("000101", "LONG COURSE", dt.datetime(2019, 12, 30, 9), fractions=4)  # runs into the window
PLANS = [CHINESE, MONACO, QA, NEVER, OFFSET, OWN_STUDY, NO_TIME, OLD, LONG]


@dataclass
class RvFiles:
    folder: Path  # the objects as files, for dicom-dir:
    node_only: list[Path]  # stored on the nodes but not in the folder (a CT image a PACS also holds)

    def all_paths(self) -> list[Path]:
        return sorted(self.folder.rglob("*.dcm")) + self.node_only


def _summary_record(plan, first_day: dt.date) -> Dataset:
    """An RT Treatment Summary Record of ``plan``: its course began on ``first_day``."""
    ds = rt_record_dataset(plan, 1, dt.datetime.combine(first_day + dt.timedelta(days=4), dt.time(16)))
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = RTTreatmentSummaryRecordStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"{plan.uid}.8.1"
    ds.SeriesInstanceUID = f"{plan.uid}.8"
    del ds.TreatmentSessionBeamSequence
    ds.CurrentTreatmentStatus = "ON_TREATMENT"
    ds.FirstTreatmentDate = first_day.strftime("%Y%m%d")
    ds.MostRecentTreatmentDate = ds.TreatmentDate
    return ds


def _ct_image(plan) -> Dataset:
    ds = rt_plan_dataset(plan)
    for keyword in ("RTPlanLabel", "RTPlanName", "RTPlanDate", "RTPlanTime", "RTPlanGeometry", "BeamSequence"):
        delattr(ds, keyword)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"{plan.uid}.5.1"
    ds.Modality = "CT"
    ds.SeriesInstanceUID = f"{plan.uid}.5"
    return ds


def write_rv_files(root: Path) -> RvFiles:
    folder = root / "rv"
    write_dicom(folder, PLANS)
    offset = rt_record_dataset(OFFSET, 1, OFFSET.first_delivery)
    offset.TimezoneOffsetFromUTC = "+0100"
    save_dicom(offset, folder / "000790" / f"RT.{OFFSET.uid}.1.dcm")  # replaces the site-time record
    for path in (folder / "000791").glob("RT.*.dcm"):
        path.unlink()
    for number, start in enumerate(OWN_STUDY.fractions, start=1):  # the R&V system's own study and series
        record = rt_record_dataset(OWN_STUDY, number, start)
        record.StudyInstanceUID, record.SeriesInstanceUID = f"{OWN_STUDY.uid}.77", f"{OWN_STUDY.uid}.77.1"
        save_dicom(record, folder / "000791" / "rv-study" / f"RT.{number}.dcm")
    save_dicom(rt_plan_dataset(SUMMARY), folder / "000792" / "RP.dcm")
    save_dicom(_summary_record(SUMMARY, SUMMARY_DAY), folder / "000792" / "RS.dcm")
    untimed = rt_record_dataset(NO_TIME, 3, NO_TIME.first_delivery + dt.timedelta(days=2))
    untimed.TreatmentTime = ""
    save_dicom(untimed, folder / "000793" / "RT.untimed.dcm")
    save_dicom(rt_record_dataset(ORPHAN, 1, ORPHAN.first_delivery), folder / "000794" / "RT.dcm")
    ct = save_dicom(_ct_image(CHINESE), root / "node-only" / "CT.dcm")
    return RvFiles(folder=folder, node_only=[ct])


def history_days(start: dt.date = HISTORY_START, *, zone) -> int:
    """``history_days`` whose window starts on ``start`` (site time)."""
    return (dt.datetime.now(zone).date() - start).days


@pytest.fixture(scope="session")
def rv_files(tmp_path_factory) -> RvFiles:
    return write_rv_files(tmp_path_factory.mktemp("rv-dicom"))


@pytest.fixture(scope="session", params=NODES)
def rv_node(request, rv_files) -> DicomNode:
    """Each test node in turn, holding ``rv_files`` (stored once per session and node)."""
    node = request.getfixturevalue(f"{request.param}_node")
    if not node.holds_rv_files:
        node.store(rv_files.all_paths())
        node.holds_rv_files = True
    return node

