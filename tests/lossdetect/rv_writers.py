"""Writers of R&V test data: the same deliveries as CSV, as a MOSAIQ database, as DICOM files.

Tests describe deliveries once (``Delivery``) and write them in each source's own form, so the
three sources can be checked to give the same answers.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

RT_PLAN = "1.2.840.10008.5.1.4.1.1.481.5"
RT_RECORD = "1.2.840.10008.5.1.4.1.1.481.4"


@dataclass
class Delivery:
    """One delivered plan. ``when``: naive site-local time of its first non-QA beam."""

    mrn: str
    label: str
    when: dt.datetime
    course: int | None = None
    last_name: str = "LAST"
    first_name: str = "FIRST"
    uid: str = field(default_factory=generate_uid)
    machine: str = "TrueBeam1"
    qa_before: dt.datetime | None = None  # a QA-mode delivery earlier than ``when`` (MOSAIQ only)

    @property
    def patient_name(self) -> str:
        return f"{self.last_name}, {self.first_name}"


# --- CSV ---------------------------------------------------------------------------------------

def csv_text(deliveries: list[Delivery], *, with_course: bool = True) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["mrn", "patient_name", "plan_label", "course", "first_delivery", "plan_uid", "machine"])
    for d in deliveries:
        writer.writerow([d.mrn, d.patient_name, d.label, d.course if with_course and d.course else "",
                         d.when.isoformat(), d.uid, d.machine])
    return out.getvalue()


def write_csv(path: Path, deliveries: list[Delivery], *, encoding: str = "utf-8", with_course: bool = True) -> Path:
    path.write_bytes(csv_text(deliveries, with_course=with_course).encode(encoding))
    return path


# --- MOSAIQ ------------------------------------------------------------------------------------

MOSAIQ_SCHEMA = [
    "CREATE TABLE Ident (Pat_Id1 INTEGER, IDA VARCHAR(20))",
    "CREATE TABLE Patient (Pat_ID1 INTEGER, Last_Name VARCHAR(64), First_Name VARCHAR(64))",
    "CREATE TABLE PatCPlan (PCP_ID INTEGER, Pat_ID1 INTEGER, Course INTEGER)",
    "CREATE TABLE Site (SIT_ID INTEGER, SIT_SET_ID INTEGER, Version INTEGER, Pat_ID1 INTEGER, PCP_ID INTEGER,"
    " Site_Name VARCHAR(64))",
    "CREATE TABLE TxField (FLD_ID INTEGER, Pat_ID1 INTEGER, SIT_Set_ID INTEGER, Version INTEGER,"
    " OriginalPlanUID CHAR(80))",  # CHAR: padded with spaces, as on SQL Server
    "CREATE TABLE Dose_Hst (DHS_ID INTEGER, Pat_ID1 INTEGER, FLD_ID INTEGER, SIT_ID INTEGER, Tx_DtTm TIMESTAMP,"
    " WasQAMode INTEGER)",
    "CREATE TABLE DCMInstance (DCMInstance_ID INTEGER, SOPInstanceUID VARCHAR(80))",
    "CREATE TABLE RtPlan (DCMInstance_ID INTEGER, Pat_ID1 INTEGER, Label VARCHAR(16))",
]


class MosaiqWriter:
    """Rows in the MOSAIQ tables (docs/contracts.md §2.2) through any DB-API connection (``mark``: its placeholder)."""

    def __init__(self, connection, *, mark: str = "?"):
        self.connection = connection
        self.mark = mark
        self.patients: dict[str, int] = {}
        self._ids = 0

    def next_id(self) -> int:
        self._ids += 1
        return self._ids

    def insert(self, table: str, **values) -> None:
        marks = ", ".join([self.mark] * len(values))
        cursor = self.connection.cursor()
        cursor.execute(f"INSERT INTO {table} ({', '.join(values)}) VALUES ({marks})", list(values.values()))

    def create_schema(self) -> "MosaiqWriter":
        cursor = self.connection.cursor()
        for statement in MOSAIQ_SCHEMA:
            cursor.execute(statement)
        return self

    def patient(self, mrn: str, last: str, first: str) -> int:
        if mrn not in self.patients:
            pat = self.patients[mrn] = self.next_id()
            self.insert("Ident", Pat_Id1=pat, IDA=mrn)
            self.insert("Patient", Pat_ID1=pat, Last_Name=last, First_Name=first)
        return self.patients[mrn]

    def site(self, pat: int, *, course: int | None, name: str) -> int:
        """A current prescription (Version 0) in a new course row; returns its SIT_ID."""
        pcp = self.next_id()
        self.insert("PatCPlan", PCP_ID=pcp, Pat_ID1=pat, Course=course)
        sit = self.next_id()
        self.insert("Site", SIT_ID=sit, SIT_SET_ID=sit, Version=0, Pat_ID1=pat, PCP_ID=pcp, Site_Name=name)
        return sit

    def edited_site(self, pat: int, *, course: int | None, name: str) -> int:
        """A prescription edited after delivery: the delivered row is now history (Version 32000,
        no course of its own); the current row has the course. Returns the delivered SIT_ID."""
        current = self.site(pat, course=course, name=name)
        old = self.next_id()
        self.insert("Site", SIT_ID=old, SIT_SET_ID=current, Version=32000, Pat_ID1=pat, PCP_ID=None,
                    Site_Name=name + " OLD")
        return old

    def rt_plan(self, pat: int, uid: str, label: str) -> None:
        instance = self.next_id()
        self.insert("DCMInstance", DCMInstance_ID=instance, SOPInstanceUID=uid)
        self.insert("RtPlan", DCMInstance_ID=instance, Pat_ID1=pat, Label=label)

    def field(self, pat: int, sit: int, uid: str) -> int:
        fld = self.next_id()
        self.insert("TxField", FLD_ID=fld, Pat_ID1=pat, SIT_Set_ID=sit, Version=0, OriginalPlanUID=uid.ljust(64))
        return fld

    def dose(self, pat: int, fld: int, sit: int, when: dt.datetime, *, qa: bool = False) -> None:
        self.insert("Dose_Hst", DHS_ID=self.next_id(), Pat_ID1=pat, FLD_ID=fld, SIT_ID=sit,
                    Tx_DtTm=when.strftime("%Y-%m-%d %H:%M:%S"), WasQAMode=1 if qa else 0)

    def delivery(self, d: Delivery, *, edited: bool = False, label_in_rtplan: bool = True) -> None:
        """Two fields, each delivered at ``when`` and again a day later, plus any QA beam."""
        pat = self.patient(d.mrn, d.last_name, d.first_name)
        sit = (self.edited_site if edited else self.site)(pat, course=d.course, name=d.label)
        if label_in_rtplan:
            self.rt_plan(pat, d.uid, d.label)
        for _ in range(2):
            fld = self.field(pat, sit, d.uid)
            self.dose(pat, fld, sit, d.when + dt.timedelta(days=1))
            self.dose(pat, fld, sit, d.when)
            if d.qa_before:
                self.dose(pat, fld, sit, d.qa_before, qa=True)

    def commit(self) -> None:
        self.connection.commit()


# --- DICOM -------------------------------------------------------------------------------------

def _file_dataset(sop_class: str, sop_instance: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop_instance
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    return ds


def write_rt_plan(folder: Path, d: Delivery) -> Path:
    ds = _file_dataset(RT_PLAN, d.uid)
    ds.Modality = "RTPLAN"
    ds.PatientID = d.mrn
    ds.PatientName = f"{d.last_name}^{d.first_name}"
    ds.RTPlanLabel = d.label
    beam = Dataset()
    beam.BeamNumber = 1
    beam.TreatmentMachineName = d.machine
    ds.BeamSequence = Sequence([beam])
    path = folder / f"RP.{d.uid}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def write_treatment_record(folder: Path, plan_uid: str, when: dt.datetime, *, mrn: str = "") -> Path:
    uid = generate_uid()
    ds = _file_dataset(RT_RECORD, uid)
    ds.Modality = "RTRECORD"
    ds.PatientID = mrn
    ds.TreatmentDate = when.strftime("%Y%m%d")
    ds.TreatmentTime = when.strftime("%H%M%S")
    ref = Dataset()
    ref.ReferencedSOPClassUID = RT_PLAN
    ref.ReferencedSOPInstanceUID = plan_uid
    ds.ReferencedRTPlanSequence = Sequence([ref])
    path = folder / f"RT.{uid}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def write_dicom_dir(folder: Path, deliveries: list[Delivery]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for d in deliveries:
        write_rt_plan(folder, d)
        write_treatment_record(folder, d.uid, d.when + dt.timedelta(days=1), mrn=d.mrn)
        write_treatment_record(folder, d.uid, d.when, mrn=d.mrn)
    return folder
