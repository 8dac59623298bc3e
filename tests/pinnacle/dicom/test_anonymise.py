"""Anonymising a rendition: PS3.15 Annex E basic profile, retaining modified dates and patient characteristics."""
from __future__ import annotations

import datetime as dt
import shutil

import pydicom
import pytest

from pinnacle.dicom.anonymise import anonymise_rendition
from pinnacle.dicom.annex_e import NOT_SHIFTED, PATIENT_CHARACTERISTICS, basic_profile_code
from pinnacle.dicom.references import check_references
from pinnacle.dicom.validate import dciodvfy

OFFSET = -123


def _elements(ds, path=()):
    """(path of tags, element) of every element at any depth; sequence items by index."""
    for element in ds:
        here = (*path, int(element.tag))
        yield here, element
        if element.VR == "SQ":
            for index, item in enumerate(element.value):
                yield from _elements(item, (*here, index))


def _by_path(ds):
    return {path: element for path, element in _elements(ds)}


def _shifted(value: str) -> str:
    return (dt.datetime.strptime(value[:8], "%Y%m%d") + dt.timedelta(days=OFFSET)).strftime("%Y%m%d") + value[8:]


@pytest.fixture(scope="module")
def anonymised(generated_rendition, tmp_path_factory):
    paths = [o.path for o in generated_rendition.result.objects]
    return paths, anonymise_rendition(paths, tmp_path_factory.mktemp("anon"), pseudonym="PDAS-0001",
                                      date_offset_days=OFFSET)


def _pairs(paths, result):
    """(original, anonymised) datasets, matched by the UID map."""
    originals = {str(ds.SOPInstanceUID): ds for ds in (pydicom.dcmread(p) for p in paths)}
    anonymous = {str(ds.SOPInstanceUID): ds for ds in (pydicom.dcmread(p) for p in result.paths)}
    assert len(anonymous) == len(originals)
    return [(ds, anonymous[result.uid_map[uid]]) for uid, ds in originals.items()]


def test_no_annex_e_attribute_keeps_its_value(anonymised):
    paths, result = anonymised
    checked = 0
    for original, anonymous in _pairs(paths, result):
        after = _by_path(anonymous)
        for path, element in _elements(original):
            tag = path[-1]
            code = basic_profile_code(tag)
            if code is None or element.value in (None, "", b"") or element.VR == "SQ":
                continue
            kept = after.get(path)
            if kept is None:
                continue  # removed (X) or inside a sequence that was emptied or removed
            if tag in PATIENT_CHARACTERISTICS or element.VR == "TM":
                assert kept.value == element.value  # retained by the options
                continue
            if element.VR in ("DA", "DT") and tag not in NOT_SHIFTED:
                assert kept.value == _shifted(str(element.value)), (path, element)
            assert kept.value != element.value, (path, element.keyword, code)
            checked += 1
    assert checked > 50


def test_uids_are_replaced_consistently_and_references_resolve(anonymised):
    paths, result = anonymised
    assert result.uid_map and all(new.startswith("2.25.") for new in result.uid_map.values())
    assert len(set(result.uid_map.values())) == len(result.uid_map)
    originals = [(p.name, pydicom.dcmread(p)) for p in paths]
    anonymous = [(p.name, pydicom.dcmread(p)) for p in result.paths]
    assert check_references(anonymous).problems == check_references(originals).problems == []
    frames = {str(ds.FrameOfReferenceUID) for _, ds in anonymous}
    assert len(frames) == 1 and frames <= set(result.uid_map.values())
    for _, ds in anonymous:
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert not any(element.tag.is_private for element in ds.iterall())


def test_pseudonym_map_and_markers(anonymised, generated_rendition):
    paths, result = anonymised
    assert result.pseudonym_map == {"PatientID": {"000123": "PDAS-0001"},
                                    "PatientName": {"LAST^FIRST^^": "PDAS-0001"}}
    assert result.date_offset_days == OFFSET and result.problems == []
    for path in result.paths:
        ds = pydicom.dcmread(path)
        assert (ds.PatientID, str(ds.PatientName), ds.PatientIdentityRemoved) == ("PDAS-0001", "PDAS-0001", "YES")
        assert [c.CodeValue for c in ds.DeidentificationMethodCodeSequence] == ["113100", "113107", "113108"]
        assert ds.LongitudinalTemporalInformationModified == "MODIFIED"


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy is absent: install dicom3tools")
def test_anonymised_objects_still_pass_dciodvfy(anonymised):
    _, result = anonymised
    for path in result.paths:
        assert dciodvfy(path)[0] == [], path.name


def test_an_earlier_uid_map_is_reused(anonymised, tmp_path):
    paths, first = anonymised
    again = anonymise_rendition(paths[:1], tmp_path, pseudonym="PDAS-0001", date_offset_days=OFFSET,
                                uid_map=dict(first.uid_map))
    assert again.paths[0].name in {p.name for p in first.paths}


def test_a_zero_offset_is_refused(tmp_path):
    with pytest.raises(ValueError, match="must not be 0"):
        anonymise_rendition([], tmp_path, date_offset_days=0)
