"""Anonymising one patient's rendition for research or teaching (never the archive itself).

PS3.15 Annex E Basic Application Level Confidentiality Profile with the options "Retain Longitudinal
Temporal Information with Modified Dates" and "Retain Patient Characteristics" (pinnacle.dicom.annex_e
holds the table and says how the options read). For one patient, over all of its objects together:

* every UID the table marks U is replaced, the same original UID by the same new one everywhere (so the
  structure set still names its CT images and the dose its frame and plan); new UIDs are ``2.25.``
  random UUIDs, nothing of the original can be read from them;
* every date is moved by one offset of whole days per patient (``date_offset_days``), times kept;
* Patient ID and Patient's Name become the pseudonym; private attributes are removed;
* what the caller must keep secret to go back is returned: the pseudonym map, the UID map, the offset.
"""
from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from pinnacle.dicom.annex_e import (
    CONFORMANT, METHOD_CODES, NOT_SHIFTED, PATIENT_CHARACTERISTICS, TABLE_EDITION, basic_profile_code,
)

PATIENT_ID, PATIENT_NAME = 0x00100020, 0x00100010
DUMMY_TEXT = "ANONYMISED"
_DUMMY_BY_VR = {"DA": "19000101", "DT": "19000101000000", "TM": "000000", "AS": "000D"}
_NUMERIC_VRS = frozenset({"IS", "DS", "US", "SS", "UL", "SL", "FL", "FD", "UV", "SV"})
_BINARY_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN"})


@dataclass
class AnonymisationResult:
    paths: list[Path]
    pseudonym: str
    pseudonym_map: dict[str, dict[str, str]]  # {"PatientID": {original: pseudonym}, "PatientName": {...}}
    uid_map: dict[str, str]  # original UID -> new UID
    date_offset_days: int
    method: str  # what De-identification Method (0012,0063) says
    problems: list[str] = field(default_factory=list)  # files that could not be read


class _Anonymiser:
    def __init__(self, pseudonym: str, offset_days: int, uid_map: dict[str, str]):
        self.pseudonym = pseudonym
        self.offset = dt.timedelta(days=offset_days)
        self.uid_map = uid_map
        self.ids: dict[str, str] = {}
        self.names: dict[str, str] = {}

    def uid(self, original: str) -> str:
        if original not in self.uid_map:
            self.uid_map[original] = generate_uid(prefix=None)  # 2.25.<random UUID>
        return self.uid_map[original]

    def dataset(self, ds: Dataset) -> None:
        for tag in list(ds.keys()):
            element = ds[tag]
            if element.tag.is_private:
                del ds[tag]
                continue
            self.element(ds, element)

    def element(self, ds: Dataset, element) -> None:
        tag = int(element.tag)
        code = basic_profile_code(tag)
        if tag == PATIENT_ID or tag == PATIENT_NAME:
            self._pseudonymise(element)
            return
        if code is None or tag in PATIENT_CHARACTERISTICS:
            if element.VR == "SQ":
                for item in element.value:
                    self.dataset(item)
            return
        if element.VR in ("DA", "DT") and tag not in NOT_SHIFTED:
            element.value = self._shift(element.value, element.VR)
            return
        if element.VR == "TM":
            return  # kept: the shift is whole days
        action = CONFORMANT[code]
        if element.VR == "SQ" and "X" in code and action != "U":
            action = "X"  # an emptied Type 3 sequence breaks its IOD ("1-n items"); a removed one does not
        if action == "X":
            del ds[element.tag]
        elif action == "U":
            if element.VR == "UI":
                element.value = self._uids(element.value)
            elif element.VR == "SQ":
                for item in element.value:
                    self.dataset(item)
            else:
                element.value = _empty(element.VR)
        elif action == "Z":
            element.value = _empty(element.VR)
        else:  # D
            element.value = _dummy(element.VR)

    def _uids(self, value):
        if isinstance(value, (list, pydicom.multival.MultiValue)):
            return [self.uid(str(v)) for v in value]
        return self.uid(str(value)) if value else value

    def _pseudonymise(self, element) -> None:
        original = str(element.value or "")
        table = self.ids if int(element.tag) == PATIENT_ID else self.names
        table[original] = self.pseudonym
        element.value = self.pseudonym

    def _shift(self, value, vr: str):
        values = list(value) if isinstance(value, (list, pydicom.multival.MultiValue)) else [value]
        shifted = [self._shift_one(str(v), vr) for v in values]
        return shifted if len(shifted) > 1 else shifted[0]

    def _shift_one(self, text: str, vr: str) -> str:
        text = text.strip()
        try:
            day = dt.datetime.strptime(text[:8], "%Y%m%d").date()
        except ValueError:
            return ""  # an unreadable date cannot be shifted: emptied, never kept
        moved = (day + self.offset).strftime("%Y%m%d")
        return moved if vr == "DA" else moved + text[8:]


def _empty(vr: str):
    return Sequence() if vr == "SQ" else (None if vr in _NUMERIC_VRS or vr in _BINARY_VRS else "")


def _dummy(vr: str):
    if vr == "SQ":
        return Sequence()
    if vr in _NUMERIC_VRS:
        return 0
    if vr in _BINARY_VRS:
        return b""
    if vr == "UI":
        return generate_uid(prefix=None)
    return _DUMMY_BY_VR.get(vr, DUMMY_TEXT)


def random_date_offset_days() -> int:
    """A per-patient offset: 1 to 1095 days into the past (never 0, so every date changes)."""
    return -(secrets.randbelow(1095) + 1)


def anonymise_rendition(paths: Iterable[Path], output_dir: Path, *, pseudonym: str | None = None,
                        date_offset_days: int | None = None, uid_map: dict[str, str] | None = None
                        ) -> AnonymisationResult:
    """Write anonymised copies of one patient's DICOM files into ``output_dir`` (the inputs are untouched).

    ``uid_map`` and ``date_offset_days`` from an earlier run of the same patient keep a later rendition
    consistent with it; by default both start afresh (a random offset, new UIDs).
    """
    pseudonym = pseudonym or f"ANON-{secrets.token_hex(4).upper()}"
    offset = random_date_offset_days() if date_offset_days is None else date_offset_days
    if offset == 0:
        raise ValueError("date_offset_days must not be 0: the modified-dates option moves every date")
    anonymiser = _Anonymiser(pseudonym, offset, {} if uid_map is None else uid_map)
    method = (f"PS3.15 Annex E Basic Application Level Confidentiality Profile ({TABLE_EDITION}), Retain "
              "Longitudinal Temporal Information with Modified Dates, Retain Patient Characteristics; PDAS")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written, problems = [], []
    for path in sorted(Path(p) for p in paths):
        try:
            ds = pydicom.dcmread(path)
        except Exception as error:  # a file we cannot read is reported, not raised
            problems.append(f"{path.name}: not readable as DICOM ({type(error).__name__}: {error})")
            continue
        anonymiser.dataset(ds)
        _mark(ds, method)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        target = output_dir / f"{ds.Modality}.{ds.SOPInstanceUID}.dcm"
        ds.save_as(target, enforce_file_format=True)
        written.append(target)
    return AnonymisationResult(
        paths=written, pseudonym=pseudonym,
        pseudonym_map={"PatientID": anonymiser.ids, "PatientName": anonymiser.names},
        uid_map=anonymiser.uid_map, date_offset_days=offset, method=method, problems=problems,
    )


def _mark(ds: Dataset, method: str) -> None:
    """The attributes PS3.15 E.1.1 asks a de-identifier to add."""
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = method[:64]  # LO
    codes = Sequence()
    for value, meaning in METHOD_CODES:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
        codes.append(item)
    ds.DeidentificationMethodCodeSequence = codes
    ds.LongitudinalTemporalInformationModified = "MODIFIED"
