"""DICOM PS3.15 Annex E, Table E.1-1: the Basic Application Level Confidentiality Profile's attributes
and action codes, with the two options PDAS applies (docs/rendition.md, "Anonymisation").

The table itself is data kept by a maintained package, dicom-anonymizer (BSD-3-Clause, KitwareMedical),
which transcribes each edition of the standard (``TABLE_EDITION``); its own anonymiser is not used: it
writes every date as 00010101 (no "modified dates" option), keeps one process-wide UID map and has no
"retain patient characteristics" option. This module turns its lists into action codes by tag.

Action codes (PS3.15 E.1.1): D dummy value, Z zero length (or dummy), X remove, K keep, C clean,
U consistent UID replacement; combined codes (X/Z, X/D, Z/D, X/Z/D, X/Z/U*) let the de-identifier keep
the IOD conformant. We do not know each attribute's Type in each IOD here, so a combined code takes its
most conformant choice (``CONFORMANT``): never worse for confidentiality than the code's first choice
in what it leaves of the original value (an empty or dummy value holds none of it). Sequences are
the exception: one a combined code may remove is removed (zero items break a Type 3 sequence's "1-n").
"""
from __future__ import annotations

from functools import cache

TABLE_EDITION = "dicomfields_2026c"  # dicom-anonymizer's transcription of PS3.15 2026c

_CODE_OF_LIST = {
    "D_TAGS": "D", "Z_TAGS": "Z", "X_TAGS": "X", "U_TAGS": "U", "Z_D_TAGS": "Z/D", "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D", "X_Z_D_TAGS": "X/Z/D", "X_Z_U_STAR_TAGS": "X/Z/U*",
}
CONFORMANT = {"D": "D", "Z": "Z", "X": "X", "U": "U", "Z/D": "D", "X/Z": "Z", "X/D": "D", "X/Z/D": "D",
              "X/Z/U*": "U"}

# Retain Patient Characteristics Option: the attributes its column marks K. Those it marks C (Allergies,
# Medical Alerts, Special Needs, Patient State, Pre-Medication, Additional Patient History, Occupation)
# are free text we cannot clean safely: they get the basic profile's action.
PATIENT_CHARACTERISTICS = frozenset({
    0x00101010,  # Patient's Age
    0x00100040,  # Patient's Sex
    0x00101020,  # Patient's Size
    0x00101030,  # Patient's Weight
    0x00102160,  # Ethnic Group
    0x001021A0,  # Smoking Status
    0x001021C0,  # Pregnancy Status
    0x00102203,  # Patient's Sex Neutered
})

# Retain Longitudinal Temporal Information with Modified Dates Option: dates (DA, DT) of the table are
# shifted by the patient's offset, times (TM) kept (a whole-day shift leaves the time of day as it was).
# Patient's Birth Date is the exception we make: the basic profile's Z, as it identifies on its own;
# Patient's Age (kept above) carries what research needs of it.
NOT_SHIFTED = frozenset({0x00100030})  # Patient's Birth Date

# De-identification Method Code Sequence (0012,0064) codes, DICOM Coding Scheme (CID 7050).
METHOD_CODES = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    ("113108", "Retain Patient Characteristics Option"),
)


@cache
def _table() -> tuple[dict[int, str], list[tuple[int, int, str]]]:
    from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector

    exact: dict[int, str] = {}
    masked: list[tuple[int, int, str]] = []  # (value, mask, code): repeating groups such as 60xx,3000
    for name, entries in dicom_anonymization_database_selector(TABLE_EDITION).items():
        code = _CODE_OF_LIST.get(name)
        if code is None:  # ALL_TAGS: the union
            continue
        for entry in entries:
            if len(entry) == 2:
                exact[(entry[0] << 16) | entry[1]] = code
            else:
                group, element, group_mask, element_mask = entry
                masked.append((((group & group_mask) << 16) | (element & element_mask),
                               (group_mask << 16) | element_mask, code))
    return exact, masked


def basic_profile_code(tag: int) -> str | None:
    """The table's action code for a tag (``None``: not in the table, so kept)."""
    exact, masked = _table()
    if tag in exact:
        return exact[tag]
    return next((code for value, mask, code in masked if tag & mask == value), None)


def table_tags() -> frozenset[int]:
    """Every tag listed exactly (the repeating groups aside), for tests and reports."""
    return frozenset(_table()[0])
