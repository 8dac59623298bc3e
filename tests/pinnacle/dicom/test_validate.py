"""dciodvfy on every object, and the references between the objects of one rendition."""
from __future__ import annotations

import shutil

import pydicom
import pytest

from pinnacle.dicom.references import check_references, contour_image_uids
from pinnacle.dicom.results import RTDOSE, RTSTRUCT
from pinnacle.dicom.validate import REFERENCES, dciodvfy, validate_rendition
from tests.pinnacle.dicom.pinnacle_files import read_header

pytestmark = pytest.mark.skipif(shutil.which("dciodvfy") is None,
                                reason="dciodvfy is absent: install the Debian package dicom3tools "
                                       "(deploy/apt-packages.txt)")


def test_generated_rendition_passes(generated_rendition):
    result = generated_rendition.result
    report = validate_rendition(o.path for o in result.objects)
    assert report.failures == [] and report.passed
    # Without RT Plans each dose names the plan UID pymedphys gives its trial: a note, not a failure.
    doses = result.of_kind(RTDOSE)
    assert len(report.notes) == len(doses) == 2
    for dose in doses:
        assert any(note.startswith(dose.path.name) for note in report.notes)
    structure = pydicom.dcmread(result.of_kind(RTSTRUCT)[0].path)
    cts = {o.sop_instance_uid for o in result.of_kind("CT")}
    assert contour_image_uids(structure) and set(contour_image_uids(structure)) <= cts


def test_sample_objects_pass_dciodvfy_but_miss_their_ct(sample_rendition):
    """The sample has no pixel data, so no CT: dciodvfy finds no Error in any object made, and the only
    failures are the references to CT images the rendition lacks; they do name the sample's slices."""
    result = sample_rendition.result
    for obj in result.objects:
        assert dciodvfy(obj.path)[0] == [], obj.path.name
    report = validate_rendition(o.path for o in result.objects)
    assert {f.kind for f in report.failures} == {REFERENCES}
    frame = "1.2.840.113619.2.55.3.3535481354.111.3513513585.2"
    structure = result.of_kind(RTSTRUCT)[0]
    expected = sorted([f"{d.path.name}: Frame of Reference {frame} is no CT frame of the rendition"
                       for d in result.of_kind(RTDOSE)]
                      + [f"{structure.path.name}: Frame of Reference {frame} is no CT frame of the rendition"])
    problems = [f.reason for f in report.failures]
    assert sorted(p for p in problems if "Frame of Reference" in p) == expected
    contour_problems = [p for p in problems if "Contour Image" in p]
    assert len(contour_problems) == 1 and contour_problems[0].startswith(structure.path.name)
    slices = read_header(sample_rendition.patient / "ImageSet_0.header")  # (just proves the header is there)
    assert slices["z_dim"] == "101"
    listed = (sample_rendition.patient / "ImageSet_0.ImageInfo").read_text()
    for uid in contour_image_uids(pydicom.dcmread(structure.path)):
        assert f'InstanceUID = "{uid}";' in listed
    # The plans name the one structure set the rendition holds.
    assert not any("Structure Set" in p for p in problems)


def test_dciodvfy_error_lines_become_failures(generated_rendition, tmp_path):
    ct = generated_rendition.result.of_kind("CT")[0]
    ds = pydicom.dcmread(ct.path)
    del ds.Rows  # Type 1 in the Image Pixel module
    broken = tmp_path / ct.path.name
    ds.save_as(broken)
    report = validate_rendition([broken])
    assert any(f.kind == "CT" and "Rows" in f.reason and f.reason.startswith("Error") for f in report.failures)


def test_a_dangling_reference_is_found(generated_rendition):
    result = generated_rendition.result
    named = [(o.path.name, pydicom.dcmread(o.path)) for o in result.objects]
    structure = next(ds for _, ds in named if ds.Modality == "RTSTRUCT")
    item = structure.ROIContourSequence[0].ContourSequence[0].ContourImageSequence[0]
    item.ReferencedSOPInstanceUID = "1.2.3.4"
    check = check_references(named)
    assert len(check.problems) == 1 and "1 Contour Image references name no CT image" in check.problems[0]
    assert "(1.2.3.4)" in check.problems[0]
