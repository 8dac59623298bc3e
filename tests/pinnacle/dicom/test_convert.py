"""Converting Pinnacle patients: the 16.2 sample, a demo_site patient as generated (as Pinnacle 16 writes it),
and one with an anisotropic dose grid. Geometry expectations are docs/rendition.md's mapping (HFS: DICOM = 10 * (x, -y, -z))."""
from __future__ import annotations

import importlib.metadata

import numpy as np
import pydicom
import pytest

from pinnacle.dicom.ct import RESCALE_INTERCEPT, RESCALE_SLOPE
from pinnacle.dicom.convert import ConversionError, convert_patient
from pinnacle.dicom.results import CT, RTDOSE, RTPLAN, RTPLAN_CAVEAT, RTSTRUCT, Failure
from tests.pinnacle.dicom.conftest import generated_patient
from pinnacle.dicom.validate import validate_rendition
from tests.pinnacle.dicom.pinnacle_files import (
    read_dose_grids,
    read_roi_points,
    read_voxels,
    strip_curve_comments,
)

PLAN_1_MISSING = "Plan_1/plan.Trial is missing (the Patient file lists the plan, the disk lacks it)"


# --- the real 16.2 sample -------------------------------------------------------------------------


def test_sample_objects_and_failures(sample_rendition):
    result = sample_rendition.result
    assert (result.converter, result.converter_version) == ("pymedphys", importlib.metadata.version("pymedphys"))
    made = sorted((o.modality, o.source) for o in result.objects)
    assert made == [(RTDOSE, "Plan_0/Trial_1"), (RTDOSE, "Plan_0/Trial_2"), (RTPLAN, "Plan_0/Trial_1"),
                    (RTPLAN, "Plan_0/Trial_2"), (RTSTRUCT, "Plan_0")]
    # The sample has no ImageSet_0.img, and its Patient file lists a Plan_1 the tree does not hold.
    assert result.failures == [
        Failure(CT, "ImageSet_0", "ImageSet_0.img is missing: no pixel data (the image set has only its header "
                                  "and slice list)"),
        Failure(RTSTRUCT, "Plan_1", PLAN_1_MISSING), Failure(RTDOSE, "Plan_1", PLAN_1_MISSING),
        Failure(RTPLAN, "Plan_1", PLAN_1_MISSING),
    ]
    for obj in result.objects:
        ds = pydicom.dcmread(obj.path)
        assert (ds.Modality, ds.SOPClassUID, ds.SOPInstanceUID) == (obj.modality, obj.sop_class_uid,
                                                                    obj.sop_instance_uid)
        assert obj.caveat == (RTPLAN_CAVEAT if obj.modality == RTPLAN else "")


def test_rt_plan_is_off_by_default(tmp_path, pinnacle_sample):
    patient = pinnacle_sample / "Institution_1/Mount_0/Patient_1"
    (patient / "Plan_0/plan.Trial.binary.008").unlink()  # quicker: Trial_1's first beam has no dose volume
    result = convert_patient(patient, tmp_path / "dicom")
    assert not result.of_kind(RTPLAN) and not result.failures_of(RTPLAN)
    assert result.failures_of(RTDOSE)[0] == Failure(
        RTDOSE, "Plan_0/Trial_1", "pymedphys wrote 0 files from Plan_0/plan.Trial (Trial_1) and its dose volumes "
                                  "(Dose file not found; Skipping generating RTDOSE)")


def test_sample_contours_equal_plan_roi(sample_rendition):
    ds = pydicom.dcmread(sample_rendition.result.of_kind(RTSTRUCT)[0].path)
    names = {int(r.ROINumber): str(r.ROIName) for r in ds.StructureSetROISequence}
    contours = {names[int(r.ReferencedROINumber)]: r for r in ds.ROIContourSequence}
    rois = read_roi_points(sample_rendition.patient / "Plan_0/plan.roi")
    assert rois and all(roi.name in contours for roi in rois)
    compared = 0
    for roi in rois:
        written = contours[roi.name].ContourSequence
        assert len(written) == len(roi.curves), roi.name
        for curve, item in zip(roi.curves, written):
            # pymedphys leaves out points equal to the curve's first one (the closing point Pinnacle repeats).
            expected = [curve[0]] + [p for p in curve[1:] if p != curve[0]]
            hfs = np.array([(10 * x, -10 * y, -10 * z) for x, y, z in expected])
            got = np.array([float(v) for v in item.ContourData]).reshape(-1, 3)
            assert got.shape == hfs.shape, roi.name
            assert np.abs(got - hfs).max() < 0.01, roi.name  # mm
            assert int(item.NumberOfContourPoints) == len(hfs)
            compared += len(hfs)
    assert compared > 1000


def _expected_dose_geometry(grid: dict[str, float]) -> dict:
    """docs/rendition.md: Pinnacle's dose grid (cm, origin at the first voxel) in DICOM (mm) for HFS."""
    nx, ny, nz = (int(grid[f"Dimension.{a}"]) for a in "XYZ")
    vx, vy, vz = (grid[f"VoxelSize.{a}"] * 10 for a in "XYZ")
    ox, oy, oz = (grid[f"Origin.{a}"] * 10 for a in "XYZ")
    return {"size": (nz, ny, nx), "spacing": (vy, vx), "frames": [k * vz for k in range(nz)],
            "origin": (ox, -(oy + (ny - 1) * vy), -(oz + (nz - 1) * vz))}


def _assert_dose_matches(path, grid):
    ds = pydicom.dcmread(path)
    expected = _expected_dose_geometry(grid)
    assert (int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns)) == expected["size"]
    assert ds.pixel_array.shape == expected["size"]
    assert [float(v) for v in ds.PixelSpacing] == pytest.approx(expected["spacing"])
    assert [float(v) for v in ds.GridFrameOffsetVector] == pytest.approx(expected["frames"])
    assert [float(v) for v in ds.ImagePositionPatient] == pytest.approx(expected["origin"], abs=1e-3)
    assert ds.pixel_array.max() > 0


def test_sample_dose_grid_matches_trial(sample_rendition):
    grids = read_dose_grids(sample_rendition.patient / "Plan_0/plan.Trial")
    doses = {o.source: o for o in sample_rendition.result.of_kind(RTDOSE)}
    for trial in ("Trial_1", "Trial_2"):
        _assert_dose_matches(doses[f"Plan_0/{trial}"].path, grids[trial])
    assert doses["Plan_0/Trial_1"].sop_instance_uid != doses["Plan_0/Trial_2"].sop_instance_uid


# --- a generated patient ----------------------------------------------------------------------------


def test_generated_ct_equals_image_set_voxel_for_voxel(generated_rendition):
    cts = [pydicom.dcmread(o.path) for o in generated_rendition.result.of_kind(CT)]
    voxels = read_voxels(generated_rendition.patient / "ImageSet_0.img")
    assert len(cts) == voxels.shape[0] == 5
    for ds in sorted(cts, key=lambda d: int(d.InstanceNumber)):
        index = int(ds.InstanceNumber) - 1
        assert (int(ds.Rows), int(ds.Columns)) == voxels.shape[1:]
        assert np.array_equal(ds.pixel_array, voxels[index])
        # docs/rendition.md: HU = stored + (-1000), the stored value being Pinnacle's voxel unchanged.
        assert (float(ds.RescaleIntercept), float(ds.RescaleSlope)) == (RESCALE_INTERCEPT, RESCALE_SLOPE) == (-1000, 1)


def test_generated_dose_grid_matches_anisotropic_trial(generated_rendition):
    grids = read_dose_grids(generated_rendition.patient / "Plan_0/plan.Trial")
    assert grids["Trial_1"]["VoxelSize.Z"] != grids["Trial_1"]["VoxelSize.X"] != grids["Trial_1"]["VoxelSize.Y"]
    doses = {o.source: o for o in generated_rendition.result.of_kind(RTDOSE)}
    for trial in ("Trial_1", "Trial_2"):
        _assert_dose_matches(doses[f"Plan_0/{trial}"].path, grids[trial])
    # Both axis slips of pymedphys were mended, and said so.
    assert any("GridFrameOffsetVector" in line for line in generated_rendition.result.repairs)
    assert any("PixelSpacing ordered" in line for line in generated_rendition.result.repairs)


def test_generated_contours_equal_plan_roi(generated_rendition):
    ds = pydicom.dcmread(generated_rendition.result.of_kind(RTSTRUCT)[0].path)
    contours = {str(s.ROIName): c for s, c in zip(ds.StructureSetROISequence, ds.ROIContourSequence)}
    for roi in read_roi_points(generated_rendition.patient / "Plan_0/plan.roi"):
        for curve, item in zip(roi.curves, contours[roi.name].ContourSequence, strict=True):
            hfs = np.array([(10 * x, -10 * y, -10 * z) for x, y, z in curve])
            assert np.abs(np.array([float(v) for v in item.ContourData]).reshape(-1, 3) - hfs).max() < 0.01


def test_demo_generator_patient_as_written(tmp_path):
    """The demo generator writes what Pinnacle 16 writes and pymedphys reads: a generated patient, untouched,
    converts to CT, a structure set and a dose per trial. It has no machine file, so its RT Plans fail,
    naming the file."""
    patient = generated_patient(tmp_path / "tree", anisotropic=False)
    result = convert_patient(patient, tmp_path / "dicom", include_plan=True)
    assert len(result.of_kind(CT)) == 5
    assert [o.source for o in result.of_kind(RTSTRUCT)] == ["Plan_0"]
    assert sorted(o.source for o in result.of_kind(RTDOSE)) == ["Plan_0/Trial_1", "Plan_0/Trial_2"]
    machines = patient / "Plan_0/plan.Pinnacle.Machines"
    assert result.failures == [
        Failure(RTPLAN, f"Plan_0/{trial}", f"pymedphys failed on Plan_0/plan.Trial ({trial}), "
                                           f"Plan_0/plan.Pinnacle.Machines: FileNotFoundError: [Errno 2] No such "
                                           f"file or directory: '{machines}'")
        for trial in ("Trial_1", "Trial_2")]
    report = validate_rendition([o.path for o in result.objects])
    assert report.failures == []


def test_a_chinese_site_s_gb18030_patient_converts_and_is_left_as_it_was(tmp_path):
    """Pinnacle on a Chinese workstation writes GB18030; pymedphys reads UTF-8 only. The converter reads a UTF-8
    view (pinnacle.dicom.utf8_view), says so among its repairs, and the patient's own files stay unchanged."""
    from demo_site.tree import PlanSpec, write_patient
    from tests.pinnacle.dicom.conftest import GENERATED_IMAGE_SET

    record = write_patient(tmp_path / "tree", last_name="张", first_name="三", encoding="gb18030",
                           plans=[PlanSpec(0, "左乳 PLAN", trials=["Trial_1"])], image_sets=[GENERATED_IMAGE_SET])
    before = {p: p.read_bytes() for p in record.path.rglob("*") if p.is_file()}
    assert "张".encode("gb18030") in before[record.path / "Patient"]
    result = convert_patient(record.path, tmp_path / "dicom")
    assert result.failures == []
    assert [o.modality for o in result.objects].count(CT) == 5 and len(result.of_kind(RTDOSE)) == 1
    (structure,) = result.of_kind(RTSTRUCT)
    ds = pydicom.dcmread(structure.path)
    assert (ds.PatientName.family_name, ds.PatientName.given_name) == ("张", "三")
    assert ds.SpecificCharacterSet == "ISO_IR 192" and "~U" not in str(ds)
    assert any(line.startswith("read through an ASCII view") and "Patient (gb18030)" in line for line in result.repairs)
    assert {p: p.read_bytes() for p in record.path.rglob("*") if p.is_file()} == before
    assert validate_rendition([o.path for o in result.objects]).failures == []


def test_plan_roi_without_curve_comments_is_a_named_failure(tmp_path):
    """pymedphys counts curves by Pinnacle's "//  Curve n of m" comments: without them the structure set is a
    failure naming plan.roi, and the rest is still made."""
    patient = generated_patient(tmp_path / "tree", anisotropic=False)
    strip_curve_comments(patient / "Plan_0")
    result = convert_patient(patient, tmp_path / "dicom")
    assert result.failures == [Failure(RTSTRUCT, "Plan_0", "pymedphys failed on Plan_0/plan.roi, Plan_0/plan.Points: "
                                       "UnboundLocalError: cannot access local variable 'curvenum' where it is not "
                                       "associated with a value")]
    assert len(result.of_kind(RTDOSE)) == 2


@pytest.mark.parametrize("damage", ["no folder", "no Patient file", "Patient file garbage"])
def test_bad_input_is_one_clear_error(tmp_path, damage):
    patient = tmp_path / "Patient_9"
    if damage != "no folder":
        patient.mkdir()
    if damage == "Patient file garbage":
        (patient / "Patient").write_bytes(b"\x00\xff{{{ not pinnacle ;;;\n")
    with pytest.raises(ConversionError) as caught:
        convert_patient(patient, tmp_path / "dicom")
    assert str(patient / "Patient") in str(caught.value)
