"""The record-and-verify side of the demo site: the same first deliveries in three sources (docs/contracts.md §2).

- ``first_deliveries.csv``: one row per delivered plan;
- ``mosaiq.sqlite``: the MOSAIQ tables, with the traps a real database holds (QA-mode beams
  before the first real one, a prescription edited after the first fraction that leaves those
  fractions on an old ``Site`` row with ``Version = 32000``, a plan whose label only the
  ``Site_Name`` carries, ``OriginalPlanUID`` padded with spaces, a plan only ever run in QA mode);
- ``dicom/``: an RT Plan per plan and an RT Beams Treatment Record per fraction.

Each source, read by the rules of docs/contracts.md §2, yields exactly the same records (mrn, label, plan UID,
first delivery; the course where the source has one). Every plan names the planning system it was made in
(``RvPlan.tps``, Pinnacle3 unless said otherwise): the CSV in its ``tps`` column, an RT Plan in its
``Manufacturer``/``ManufacturerModelName`` (a treatment record names the R&V system instead, the trap
docs/contracts.md §2.6 warns of). The MOSAIQ tables have no place for it.

The test suite writes its R&V data with the same functions. ``rv_plan`` describes one plan with
short defaults; ``write_mosaiq_tables`` fills any DB-API connection (SQLite, PostgreSQL), and
``rt_plan_dataset``/``rt_record_dataset`` with ``save_dicom`` write single DICOM files::

    plans = [rv_plan("000123", "LT BREAST", dt.datetime(2024, 3, 4, 9), course=1)]
    write_csv(folder / "rv.csv", plans)
    write_mosaiq(folder / "mosaiq.sqlite", plans)
    write_dicom(folder / "dicom", plans)
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RTBeamsTreatmentRecordStorage,
    RTPlanStorage,
)

CSV_COLUMNS = ("mrn", "patient_name", "plan_label", "course", "first_delivery", "plan_uid", "machine", "tps")
PINNACLE = "Pinnacle3"
# (Manufacturer, ManufacturerModelName) an RT Plan of each planning system carries.
TPS_MANUFACTURERS = {PINNACLE: ("Philips", "Pinnacle3"), "Monaco": ("Elekta", "Monaco"),
                     "Eclipse": ("Varian Medical Systems", "Eclipse"), "RayStation": ("RaySearch Laboratories", "RayStation")}
# What the treatment records carry: the R&V system that wrote them, never the planning system.
RV_MANUFACTURER = ("Elekta", "MOSAIQ")
OLD_SITE_VERSION = 32000  # MOSAIQ keeps the pre-edit Site row under this Version; the current row has 0
UID_PADDING = 64  # MOSAIQ stores OriginalPlanUID in a fixed-width column
IMPLEMENTATION_UID = UID("1.2.826.0.1.3680043.10.1138.0.1")
RV_PLAN_UID_ROOT = "1.2.826.0.1.3680043.10.1138.0.2."  # rv_plan's derived plan UIDs (at most 52 characters)
BEAM_MINUTES = 2  # minutes between the beams of one fraction


@dataclass
class RvPlan:
    """One plan as the R&V system knows it. ``fractions`` empty: never delivered (QA runs only, if any)."""

    mrn: str
    last_name: str
    first_name: str
    label: str
    uid: str
    course: int | None
    site_name: str
    machine: str
    created: dt.datetime
    fractions: list[dt.datetime] = field(default_factory=list)
    qa_runs: list[dt.datetime] = field(default_factory=list)  # WasQAMode = 1, before the first fraction
    beams: int = 2
    label_in_rtplan: bool = True  # False: no RtPlan row, the label is the current Site_Name
    old_site_course: int | None = None  # edited prescription: the first fractions sit on an old Site row
    tps: str = PINNACLE  # the planning system the plan was made in (a key of TPS_MANUFACTURERS)

    @property
    def first_delivery(self) -> dt.datetime | None:
        return min(self.fractions) if self.fractions else None

    @property
    def patient_name(self) -> str:
        return ", ".join(part for part in (self.last_name, self.first_name) if part)


def rv_plan(mrn: str, label: str, first_delivery: dt.datetime | None, *, course: int | None = None,
            fractions: int = 2, last_name: str = "LAST", first_name: str = "FIRST", uid: str | None = None,
            site_name: str | None = None, machine: str = "TrueBeam1", created: dt.datetime | None = None,
            **extra: Any) -> RvPlan:
    """One R&V plan with short defaults: ``fractions`` daily fractions from ``first_delivery``.

    ``first_delivery=None`` is a plan never delivered (give ``qa_runs=[...]`` for one only run in
    QA mode). ``uid`` defaults to a UID derived from the other values (same values, same UID);
    ``site_name`` to the label; ``created`` to a week before the first delivery or QA run. ``extra`` are
    further ``RvPlan`` fields (``qa_runs``, ``beams``, ``label_in_rtplan``, ``old_site_course``, ``tps``).
    """
    days = [first_delivery + dt.timedelta(days=k) for k in range(fractions)] if first_delivery else []
    if uid is None:
        values = "\x1f".join(map(str, (mrn, label, first_delivery, course, last_name, first_name)))
        uid = RV_PLAN_UID_ROOT + str(int.from_bytes(hashlib.sha256(values.encode()).digest()[:8], "big"))
    if created is None:
        first_use = first_delivery or min(extra.get("qa_runs") or [], default=None)
        if first_use is None:
            raise ValueError("a plan neither delivered nor run in QA mode needs created=")
        created = first_use - dt.timedelta(days=7)
    return RvPlan(mrn=mrn, last_name=last_name, first_name=first_name, label=label, uid=uid, course=course,
                  site_name=label if site_name is None else site_name, machine=machine, created=created,
                  fractions=days, **extra)


def iso(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S")


def delivered(plans: list[RvPlan]) -> list[RvPlan]:
    """The delivered plans in first-delivery order (the order every writer uses)."""
    return sorted((p for p in plans if p.fractions), key=lambda p: (p.first_delivery, p.mrn, p.uid))


# --- CSV -----------------------------------------------------------------------------------------


def write_csv(path: Path, plans: list[RvPlan], *, encoding: str = "utf-8-sig") -> Path:
    """``mrn,patient_name,plan_label,course,first_delivery,plan_uid,machine,tps`` (docs/contracts.md §2.4)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for plan in delivered(plans):
        writer.writerow([plan.mrn, plan.patient_name, plan.label, "" if plan.course is None else plan.course,
                         iso(plan.first_delivery), plan.uid, plan.machine, plan.tps])
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


# --- MOSAIQ --------------------------------------------------------------------------------------

# MOSAIQ's own column types, except Tx_DtTm: DATETIME on SQL Server, TIMESTAMP here so that the same
# statements build the tables in SQLite and in PostgreSQL.
MOSAIQ_SCHEMA = (
    "CREATE TABLE Ident (Pat_Id1 INTEGER NOT NULL, IDA VARCHAR(20))",
    "CREATE TABLE Patient (Pat_ID1 INTEGER PRIMARY KEY, Last_Name VARCHAR(40), First_Name VARCHAR(40))",
    "CREATE TABLE PatCPlan (PCP_ID INTEGER PRIMARY KEY, Pat_ID1 INTEGER NOT NULL, Course INTEGER)",
    ("CREATE TABLE Site (SIT_ID INTEGER PRIMARY KEY, SIT_SET_ID INTEGER NOT NULL, Version INTEGER NOT NULL,"
     " Pat_ID1 INTEGER NOT NULL, PCP_ID INTEGER, Site_Name VARCHAR(64))"),
    ("CREATE TABLE TxField (FLD_ID INTEGER PRIMARY KEY, Pat_ID1 INTEGER NOT NULL, SIT_Set_ID INTEGER NOT NULL,"
     " Version INTEGER NOT NULL, OriginalPlanUID CHAR(64))"),
    ("CREATE TABLE Dose_Hst (DHS_ID INTEGER PRIMARY KEY, Pat_ID1 INTEGER NOT NULL, FLD_ID INTEGER NOT NULL,"
     " SIT_ID INTEGER NOT NULL, Tx_DtTm TIMESTAMP, WasQAMode INTEGER NOT NULL)"),
    "CREATE TABLE DCMInstance (DCMInstance_ID INTEGER PRIMARY KEY, SOPInstanceUID VARCHAR(64))",
    "CREATE TABLE RtPlan (DCMInstance_ID INTEGER NOT NULL, Pat_ID1 INTEGER NOT NULL, Label VARCHAR(16))",
)
MOSAIQ_TABLES = ("Ident", "Patient", "PatCPlan", "Site", "TxField", "Dose_Hst", "DCMInstance", "RtPlan")


class _Ids:
    def __init__(self, start: int):
        self.value = start

    def next(self) -> int:
        self.value += 1
        return self.value


def mosaiq_rows(plans: list[RvPlan]) -> dict[str, list[tuple]]:
    """The rows of each MOSAIQ table (in ``MOSAIQ_SCHEMA`` column order) that hold ``plans``.

    One patient per MRN (``Pat_ID1`` from 10001 in first-delivery order); a plan with an empty MRN
    is a patient of its own (by name) without an ``Ident`` row, as MOSAIQ holds a patient nobody
    registered. ``old_site_course``: the first two fractions sit on an old ``Site`` row
    (``Version = 32000``) of that course. QA runs are beams with ``WasQAMode = 1``.
    """
    rows: dict[str, list[tuple]] = {table: [] for table in MOSAIQ_TABLES}
    patients: dict[str, int] = {}
    courses: dict[tuple[int, int], int] = {}
    pcp_ids, sit_ids, fld_ids, dhs_ids, dcm_ids = _Ids(100), _Ids(5000), _Ids(20000), _Ids(700000), _Ids(90000)
    set_ids = _Ids(3000)

    def course_pcp(pat_id: int, course: int) -> int:
        if (pat_id, course) not in courses:
            courses[pat_id, course] = pcp_ids.next()
            rows["PatCPlan"].append((courses[pat_id, course], pat_id, course))
        return courses[pat_id, course]

    ordered = sorted(plans, key=lambda p: (p.first_delivery or min(p.qa_runs, default=p.created), p.mrn, p.uid))
    for plan in ordered:
        key = plan.mrn or f"\0{plan.last_name}^{plan.first_name}"
        if key not in patients:
            patients[key] = 10000 + len(patients) + 1
            if plan.mrn:
                rows["Ident"].append((patients[key], plan.mrn))
            rows["Patient"].append((patients[key], plan.last_name, plan.first_name))
        pat_id = patients[key]
        set_id = set_ids.next()
        old_site = None
        if plan.old_site_course is not None:
            old_site = sit_ids.next()
            rows["Site"].append((old_site, set_id, OLD_SITE_VERSION, pat_id, course_pcp(pat_id, plan.old_site_course),
                                 plan.site_name))
        current_site = sit_ids.next()
        pcp = course_pcp(pat_id, plan.course) if plan.course is not None else None
        rows["Site"].append((current_site, set_id, 0, pat_id, pcp, plan.label if not plan.label_in_rtplan
                             else plan.site_name))
        fields = []
        for _ in range(plan.beams):
            fields.append(fld_ids.next())
            rows["TxField"].append((fields[-1], pat_id, set_id, 0, plan.uid.ljust(UID_PADDING)))
        for run in sorted(plan.qa_runs):
            for beam, fld in enumerate(fields):
                rows["Dose_Hst"].append((dhs_ids.next(), pat_id, fld, current_site,
                                         _db_time(run + dt.timedelta(minutes=BEAM_MINUTES * beam)), 1))
        for number, start in enumerate(sorted(plan.fractions)):
            # The prescription was edited after the first two fractions: those stay on the old row.
            site = old_site if old_site is not None and number < 2 else current_site
            for beam, fld in enumerate(fields):
                rows["Dose_Hst"].append((dhs_ids.next(), pat_id, fld, site,
                                         _db_time(start + dt.timedelta(minutes=BEAM_MINUTES * beam)), 0))
        if plan.label_in_rtplan:
            instance = dcm_ids.next()
            rows["DCMInstance"].append((instance, plan.uid))
            rows["RtPlan"].append((instance, pat_id, plan.label))
    return rows


def write_mosaiq_tables(connection: Any, plans: list[RvPlan], *, placeholder: str = "?") -> dict[str, list[tuple]]:
    """Create the MOSAIQ tables through a DB-API ``connection`` and fill them with ``plans``; commit.

    ``placeholder`` is the driver's parameter mark (``"?"`` for sqlite3, ``"%s"`` for psycopg).
    Returns the rows written (``mosaiq_rows``), so a test can name the ids it expects.
    """
    rows = mosaiq_rows(plans)
    cursor = connection.cursor()
    for statement in MOSAIQ_SCHEMA:
        cursor.execute(statement)
    for table, values in rows.items():
        if values:
            marks = ", ".join([placeholder] * len(values[0]))
            cursor.executemany(f"INSERT INTO {table} VALUES ({marks})", values)
    connection.commit()
    return rows


def write_mosaiq(path: Path, plans: list[RvPlan]) -> Path:
    """A MOSAIQ-compatible SQLite database holding ``plans`` (docs/contracts.md §2.2); replaces ``path``."""
    if path.exists():
        path.unlink()
    connection = sqlite3.connect(path)
    try:
        write_mosaiq_tables(connection, plans)
    finally:
        connection.close()
    return path


def _db_time(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S")


# --- DICOM ---------------------------------------------------------------------------------------


def _file_meta(sop_class: str, sop_instance: str, transfer_syntax: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = IMPLEMENTATION_UID
    meta.ImplementationVersionName = "PDAS_DEMO"
    return meta


def _patient_module(ds: Dataset, plan: RvPlan) -> None:
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: Chinese names as they are
    ds.PatientName = f"{plan.last_name}^{plan.first_name}"
    ds.PatientID = plan.mrn
    ds.PatientBirthDate = ""
    ds.PatientSex = ""


def _series(ds: Dataset, plan: RvPlan, modality: str, suffix: str, *, made_by: tuple[str, str]) -> None:
    ds.Modality = modality
    ds.StudyInstanceUID = f"{plan.uid}.1"
    ds.SeriesInstanceUID = f"{plan.uid}.{suffix}"
    ds.Manufacturer, ds.ManufacturerModelName = made_by
    ds.StationName = plan.machine


def save_dicom(ds: Dataset, path: Path) -> Path:
    """Write ``ds`` as a DICOM file (preamble, file meta) at ``path``, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def rt_plan_dataset(plan: RvPlan) -> Dataset:
    """The RT Plan of ``plan`` (implicit VR little endian, as an older TPS export writes it)."""
    ds = Dataset()
    ds.file_meta = _file_meta(RTPlanStorage, plan.uid, ImplicitVRLittleEndian)
    ds.SOPClassUID = RTPlanStorage
    ds.SOPInstanceUID = plan.uid
    _patient_module(ds, plan)
    _series(ds, plan, "RTPLAN", "2", made_by=TPS_MANUFACTURERS.get(plan.tps, ("", plan.tps)))
    ds.RTPlanLabel = plan.label
    ds.RTPlanName = plan.label
    ds.RTPlanDate = plan.created.strftime("%Y%m%d")
    ds.RTPlanTime = plan.created.strftime("%H%M%S")
    ds.RTPlanGeometry = "PATIENT"
    beams = []
    for number in range(1, plan.beams + 1):
        beam = Dataset()
        beam.BeamNumber = number
        beam.BeamName = f"{number:02d}"
        beam.BeamType = "STATIC"
        beam.RadiationType = "PHOTON"
        beam.TreatmentMachineName = plan.machine
        beam.TreatmentDeliveryType = "TREATMENT"
        beams.append(beam)
    ds.BeamSequence = Sequence(beams)
    return ds


def rt_record_dataset(plan: RvPlan, number: int, start: dt.datetime) -> Dataset:
    """The RT Beams Treatment Record of fraction ``number`` of ``plan``, begun at ``start``
    (explicit VR little endian; SOP instance ``<plan uid>.9.<number>``)."""
    uid = f"{plan.uid}.9.{number}"
    ds = Dataset()
    ds.file_meta = _file_meta(RTBeamsTreatmentRecordStorage, uid, ExplicitVRLittleEndian)
    ds.SOPClassUID = RTBeamsTreatmentRecordStorage
    ds.SOPInstanceUID = uid
    _patient_module(ds, plan)
    _series(ds, plan, "RTRECORD", "3", made_by=RV_MANUFACTURER)
    ds.TreatmentDate = start.strftime("%Y%m%d")
    ds.TreatmentTime = start.strftime("%H%M%S")
    referenced = Dataset()
    referenced.ReferencedSOPClassUID = RTPlanStorage
    referenced.ReferencedSOPInstanceUID = plan.uid
    ds.ReferencedRTPlanSequence = Sequence([referenced])
    sessions = []
    for beam in range(1, plan.beams + 1):
        session = Dataset()
        session.ReferencedBeamNumber = beam
        session.CurrentFractionNumber = number
        session.TreatmentDeliveryType = "TREATMENT"
        session.TreatmentTerminationStatus = "NORMAL"
        session.TreatmentMachineName = plan.machine
        sessions.append(session)
    ds.TreatmentSessionBeamSequence = Sequence(sessions)
    return ds


def write_rt_plan(folder: Path, plan: RvPlan) -> Path:
    """``<folder>/RP.<uid>.dcm``: the RT Plan of ``plan``."""
    return save_dicom(rt_plan_dataset(plan), folder / f"RP.{plan.uid}.dcm")


def write_rt_record(folder: Path, plan: RvPlan, number: int, start: dt.datetime) -> Path:
    """``<folder>/RT.<uid>.<number>.dcm``: the treatment record of fraction ``number`` of ``plan``."""
    return save_dicom(rt_record_dataset(plan, number, start), folder / f"RT.{plan.uid}.{number}.dcm")


def write_dicom(folder: Path, plans: Iterable[RvPlan]) -> list[Path]:
    """``<folder>/<MRN>/RP.<uid>.dcm`` for every plan, ``RT.<uid>.<n>.dcm`` for each fraction.

    QA-mode runs are not exported: a treatment record stands for a delivery to the patient.
    """
    written = []
    for plan in sorted(plans, key=lambda p: (p.mrn, p.uid)):
        patient_dir = folder / re.sub(r"[^A-Za-z0-9-]+", "-", plan.mrn)
        written.append(write_rt_plan(patient_dir, plan))
        for number, start in enumerate(sorted(plan.fractions), start=1):
            written.append(write_rt_record(patient_dir, plan, number, start))
    return written
