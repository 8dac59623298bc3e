"""``dicom-dir:<path>``: RT Plan and RT Beams Treatment Record files in a folder (docs/contracts.md §2.3).

A plan is an RT Plan's ``SOPInstanceUID`` with its ``RTPlanLabel``, ``PatientID`` (the MRN) and
``PatientName``; its first delivery is the earliest ``TreatmentDate`` + ``TreatmentTime`` of the
treatment records whose ``ReferencedRTPlanSequence`` names it (site-local unless the record carries
``TimezoneOffsetFromUTC``). DICOM carries no course number. The planning system is the RT Plan's ``Manufacturer`` and
``ManufacturerModelName`` (the TPS that wrote it), never those of a treatment record, which name the
R&V system (docs/contracts.md §2.6). A plan without records was never
delivered and yields nothing; a record naming a plan that is not in the folder, and any file that
is neither, is reported. Subfolders are read; links and dot-files are not followed.
"""
from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.valuerep import DA, TM

from connectors.rv.base import FirstDelivery, RowProblem, RvError, RvReadResult, RvSource, clean_text

PLAN_CLASSES = {"1.2.840.10008.5.1.4.1.1.481.5", "1.2.840.10008.5.1.4.1.1.481.8"}  # RT Plan, RT Ion Plan
RECORD_CLASSES = {"1.2.840.10008.5.1.4.1.1.481.4", "1.2.840.10008.5.1.4.1.1.481.9"}  # RT (Ion) Beams Treatment Record


@dataclass
class _Plan:
    where: str
    mrn: str
    patient_name: str
    label: str
    machine: str
    planning_system: str


def planning_system(ds) -> str:
    """``Manufacturer ManufacturerModelName`` of an RT Plan ("Philips Pinnacle3"), "" when it names neither."""
    parts = [clean_text(ds.get("Manufacturer")), clean_text(ds.get("ManufacturerModelName"))]
    return " ".join(part for part in parts if part)


def person_name(value) -> str:
    """``Last^First`` (or its ideographic group when the alphabetic one is empty) as ``Last, First``."""
    groups = [g for g in str(value or "").split("=") if g.strip("^ ")]
    if not groups:
        return ""
    return ", ".join(part.strip() for part in groups[0].split("^")[:2] if part.strip())


def treatment_time(ds, zone: ZoneInfo) -> dt.datetime:
    """The record's TreatmentDate + TreatmentTime, aware; ``ValueError`` when absent or malformed."""
    date_text, time_text = clean_text(ds.get("TreatmentDate")), clean_text(ds.get("TreatmentTime"))
    if not date_text or not time_text:
        raise ValueError("TreatmentDate or TreatmentTime is empty")
    try:
        when = dt.datetime.combine(DA(date_text), TM(time_text))
    except (ValueError, TypeError):
        raise ValueError(f"TreatmentDate/Time {date_text} {time_text} is not a DICOM date and time") from None
    offset = clean_text(ds.get("TimezoneOffsetFromUTC"))
    if offset:
        try:
            sign = -1 if offset[0] == "-" else 1
            hours, minutes = int(offset.lstrip("+-")[:2]), int(offset.lstrip("+-")[2:4])
            return when.replace(tzinfo=dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes)))
        except (ValueError, IndexError):
            raise ValueError(f"TimezoneOffsetFromUTC {offset!r} is not +HHMM") from None
    return when.replace(tzinfo=zone)


class DicomDirSource(RvSource):
    def __init__(self, root: Path, *, url: str, zone: ZoneInfo):
        super().__init__(url=url, zone=zone)
        self.root = root

    def _files(self) -> list[Path]:
        if not self.root.is_dir():
            raise RvError(f"{self.root}: not a folder", retryable=True)
        found: list[Path] = []
        for folder, dirs, files in os.walk(self.root, onerror=self._walk_error):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found.extend(Path(folder) / f for f in sorted(files) if not f.startswith("."))
        return [p for p in found if not p.is_symlink()]

    def _walk_error(self, exc: OSError) -> None:
        raise RvError(f"{exc.filename}: cannot list ({exc.strerror})", retryable=True)

    def read(self) -> RvReadResult:
        result = RvReadResult()
        plans: dict[str, _Plan] = {}
        first_times: dict[str, tuple[dt.datetime, str]] = {}
        for path in self._files():
            where = str(path.relative_to(self.root))
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True, defer_size="256 KB")
                sop_class = clean_text(ds.get("SOPClassUID"))
                if sop_class in PLAN_CLASSES:
                    uid = clean_text(ds.get("SOPInstanceUID"))
                    if not uid:
                        raise ValueError("RT Plan without SOPInstanceUID")
                    beams = ds.get("BeamSequence") or ds.get("IonBeamSequence") or []
                    plans[uid] = _Plan(
                        where=where, mrn=clean_text(ds.get("PatientID")), patient_name=person_name(ds.get("PatientName")),
                        label=clean_text(ds.get("RTPlanLabel")),
                        machine=clean_text(beams[0].get("TreatmentMachineName")) if beams else "",
                        planning_system=planning_system(ds),
                    )
                elif sop_class in RECORD_CLASSES:
                    when = treatment_time(ds, self.zone)
                    referenced = [clean_text(item.get("ReferencedSOPInstanceUID"))
                                  for item in ds.get("ReferencedRTPlanSequence") or []]
                    if not any(referenced):
                        raise ValueError("treatment record without ReferencedRTPlanSequence")
                    for uid in filter(None, referenced):
                        if uid not in first_times or when < first_times[uid][0]:
                            first_times[uid] = (when, where)
                else:
                    raise ValueError(f"neither an RT Plan nor an RT Beams Treatment Record (SOP class {sop_class or '?'})")
            except InvalidDicomError:
                result.problems.append(RowProblem(where, "not a DICOM file"))
            except ValueError as exc:
                result.problems.append(RowProblem(where, str(exc)))
            except Exception as exc:  # a truncated or corrupt file: report it, read the rest
                result.problems.append(RowProblem(where, f"unreadable DICOM ({' '.join(str(exc).split())})"))
        for uid, (when, record_where) in sorted(first_times.items()):
            plan = plans.get(uid)
            if plan is None:
                result.problems.append(RowProblem(record_where, f"names RT Plan {uid}, which is not in the folder"))
            elif not plan.mrn:
                result.problems.append(RowProblem(plan.where, "RT Plan without PatientID (the MRN)"))
            elif not plan.label:
                result.problems.append(RowProblem(plan.where, "RT Plan without RTPlanLabel"))
            else:
                result.records.append(FirstDelivery(
                    mrn=plan.mrn, patient_name=plan.patient_name, plan_label=plan.label, plan_uid=uid,
                    course=None, first_delivery=when, machine=plan.machine, planning_system=plan.planning_system,
                ))
        return result
