"""The DICOM R&V rules (docs/contracts.md §2.3) that ``dicom-dir:`` and ``dicom-qr://`` share.

Both sources hand every RT Plan and treatment record they find, one dataset at a time, to a
``FirstDeliveries``; it turns them into first-delivery records, so a folder and a DICOM node
holding the same objects give the same answer:

- a plan is an RT (Ion) Plan's ``SOPInstanceUID`` with its ``RTPlanLabel``, ``PatientID`` (the MRN),
  ``PatientName`` and first beam's ``TreatmentMachineName``; its planning system is the plan's
  ``Manufacturer`` and ``ManufacturerModelName``, never a treatment record's (that is the R&V system);
- its first delivery is the earliest ``TreatmentDate`` + ``TreatmentTime`` of the RT (Ion) Beams
  Treatment Records whose ``ReferencedRTPlanSequence`` names it, site time unless the record
  carries ``TimezoneOffsetFromUTC``;
- an RT Treatment Summary Record gives a date only (``FirstTreatmentDate``): it counts, as the start
  of that day, when no beams record of the plan was delivered on that day or earlier;
- a plan no record names was never delivered and gives nothing; a record naming a plan the source
  does not hold is reported, and so is a plan without an MRN or label.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from pydicom.valuerep import DA, TM

from connectors.rv.base import FirstDelivery, RowProblem, RvReadResult, clean_text

PLAN_CLASSES = {"1.2.840.10008.5.1.4.1.1.481.5", "1.2.840.10008.5.1.4.1.1.481.8"}  # RT Plan, RT Ion Plan
RECORD_CLASSES = {"1.2.840.10008.5.1.4.1.1.481.4", "1.2.840.10008.5.1.4.1.1.481.9"}  # RT (Ion) Beams Treatment Record
SUMMARY_CLASSES = {"1.2.840.10008.5.1.4.1.1.481.7"}  # RT Treatment Summary Record
NOT_STARTED = "NOT_STARTED"  # CurrentTreatmentStatus of a summary for a course nothing was delivered of


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


def _zone_of(ds, zone: ZoneInfo) -> dt.tzinfo:
    """The record's ``TimezoneOffsetFromUTC`` as a time zone, or the site's when it has none."""
    offset = clean_text(ds.get("TimezoneOffsetFromUTC"))
    if not offset:
        return zone
    try:
        sign = -1 if offset[0] == "-" else 1
        hours, minutes = int(offset.lstrip("+-")[:2]), int(offset.lstrip("+-")[2:4])
        return dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
    except (ValueError, IndexError):
        raise ValueError(f"TimezoneOffsetFromUTC {offset!r} is not +HHMM") from None


def treatment_time(ds, zone: ZoneInfo) -> dt.datetime:
    """The record's TreatmentDate + TreatmentTime, aware; ``ValueError`` when absent or malformed."""
    date_text, time_text = clean_text(ds.get("TreatmentDate")), clean_text(ds.get("TreatmentTime"))
    if not date_text or not time_text:
        raise ValueError("TreatmentDate or TreatmentTime is empty")
    try:
        when = dt.datetime.combine(DA(date_text), TM(time_text))
    except (ValueError, TypeError):
        raise ValueError(f"TreatmentDate/Time {date_text} {time_text} is not a DICOM date and time") from None
    return when.replace(tzinfo=_zone_of(ds, zone))


def first_treatment_day(ds, zone: ZoneInfo) -> dt.datetime | None:
    """A summary record's ``FirstTreatmentDate`` as the start of that day, aware; None for a course not
    started; ``ValueError`` when it is missing or malformed otherwise."""
    text = clean_text(ds.get("FirstTreatmentDate"))
    if not text:
        if clean_text(ds.get("CurrentTreatmentStatus")).upper() == NOT_STARTED:
            return None
        raise ValueError("RT Treatment Summary Record without FirstTreatmentDate")
    try:
        day = DA(text)
    except (ValueError, TypeError):
        day = None
    if not isinstance(day, dt.date):
        raise ValueError(f"FirstTreatmentDate {text} is not a DICOM date")
    return dt.datetime.combine(day, dt.time.min).replace(tzinfo=_zone_of(ds, zone))


def referenced_plans(ds) -> list[str]:
    """The RT Plan UIDs a record's ``ReferencedRTPlanSequence`` names; ``ValueError`` when it names none."""
    referenced = [clean_text(item.get("ReferencedSOPInstanceUID")) for item in ds.get("ReferencedRTPlanSequence") or []]
    if not any(referenced):
        raise ValueError("treatment record without ReferencedRTPlanSequence")
    return [uid for uid in referenced if uid]


def plan_machine(ds) -> str:
    beams = ds.get("BeamSequence") or ds.get("IonBeamSequence") or []
    return clean_text(beams[0].get("TreatmentMachineName")) if beams else ""


def sop_kind(sop_class: str) -> str:
    """"plan", "record", "summary", or "" for a class neither source reads."""
    if sop_class in PLAN_CLASSES:
        return "plan"
    if sop_class in RECORD_CLASSES:
        return "record"
    if sop_class in SUMMARY_CLASSES:
        return "summary"
    return ""


@dataclass
class _Plan:
    where: str
    mrn: str
    patient_name: str
    label: str
    machine: str
    planning_system: str


@dataclass
class FirstDeliveries:
    """Collects plans and records (``add``) and gives the first-delivery records (``result``).

    ``missing_plan``: how a record naming a plan the source lacks is reported ("not in the folder").
    """

    zone: ZoneInfo
    missing_plan: str
    plans: dict[str, _Plan] = field(default_factory=dict)
    _times: dict[str, tuple[dt.datetime, str]] = field(default_factory=dict)  # plan UID -> (beams record, where)
    _days: dict[str, tuple[dt.datetime, str]] = field(default_factory=dict)  # plan UID -> (summary day, where)

    def add(self, ds, where: str) -> None:
        """One dataset; ``ValueError`` (the reason) when it cannot be used."""
        sop_class = clean_text(ds.get("SOPClassUID"))
        kind = sop_kind(sop_class)
        if kind == "plan":
            uid = clean_text(ds.get("SOPInstanceUID"))
            if not uid:
                raise ValueError("RT Plan without SOPInstanceUID")
            self.plans[uid] = _Plan(where=where, mrn=clean_text(ds.get("PatientID")),
                                    patient_name=person_name(ds.get("PatientName")),
                                    label=clean_text(ds.get("RTPlanLabel")), machine=plan_machine(ds),
                                    planning_system=planning_system(ds))
        elif kind == "record":
            self._keep(self._times, treatment_time(ds, self.zone), referenced_plans(ds), where)
        elif kind == "summary":
            day = first_treatment_day(ds, self.zone)
            plans = referenced_plans(ds)
            if day is not None:
                self._keep(self._days, day, plans, where)
        else:
            raise ValueError(f"neither an RT Plan nor an RT Beams Treatment Record or RT Treatment Summary Record "
                             f"(SOP class {sop_class or '?'})")

    @staticmethod
    def _keep(earliest: dict[str, tuple[dt.datetime, str]], when: dt.datetime, plans: list[str], where: str) -> None:
        for uid in plans:
            if uid not in earliest or when < earliest[uid][0]:
                earliest[uid] = (when, where)

    def first_delivery(self, uid: str) -> tuple[dt.datetime, str] | None:
        """(time, where) of a plan's first delivery: its earliest beams record, unless a summary names an
        earlier day (a summary's day has no time: the start of the day would otherwise always win)."""
        record, summary = self._times.get(uid), self._days.get(uid)
        if record is None or summary is None:
            return record or summary
        return summary if summary[0] + dt.timedelta(days=1) <= record[0] else record

    def result(self, into: RvReadResult | None = None) -> RvReadResult:
        result = into or RvReadResult()
        for uid in sorted(self._times.keys() | self._days.keys()):
            first = self.first_delivery(uid)
            assert first is not None
            when, record_where = first
            plan = self.plans.get(uid)
            if plan is None:
                result.problems.append(RowProblem(record_where, f"names RT Plan {uid}, which is {self.missing_plan}"))
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
