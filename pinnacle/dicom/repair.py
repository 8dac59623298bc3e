"""Mending pymedphys 0.41.0's RT objects where they break the standard in small, obvious ways.

Each repair fixes one defect dciodvfy reports (or a geometry slip the tests catch) and says so in
``ConversionResult.repairs``; nothing here changes a contour point, a dose value or a UID that another
object refers to. The defects, all in ``pymedphys/_pinnacle/rtstruct.py``, ``rtdose.py`` and ``rtplan.py``:

* Decimal Strings longer than the VR's 16 characters (``-52.734899999999996``): re-formatted with
  pydicom's ``format_number_as_ds`` (at least 10 significant digits, far below 0.01 mm).
* The File Meta Information without its group length and version: written with ``enforce_file_format``.
* Misspelt keywords pydicom does not write (``ReferringPhysiciansName``, ``ManufacturersModelName``):
  the standard ones are set from the same Pinnacle value.
* Patient's Sex ``U`` (from Pinnacle's "Unknown"), outside the enumerated M/F/O: left empty (Type 2).
* RT Dose and RT Plan whose Series Instance UID is their SOP Instance UID: a series UID derived from it.
* No Series Number (Type 2 in the RT Series module): 1.
* RT Structure Set without the Frame of Reference module and the Operators' Name: the CT's frame,
  an empty position reference indicator and an empty operator.
* RT Structure Set ROI items that are the very same datasets as the ROI Contour items (pymedphys
  appends one object to both sequences, so each carries the other's attributes): split apart.
* RT Plan of a trial but the first naming a structure set UID hashed from that trial, while pymedphys
  makes one structure set per plan (with the first trial's UID): the plan's structure set.
* RT Dose's Grid Frame Offset Vector stepped by the X voxel size and Pixel Spacing given as (x, y):
  the trial's Z voxel size, and (row = y, column = x) as the standard orders it.
"""
from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid
from pydicom.valuerep import format_number_as_ds

# What each split item of an RT Structure Set keeps (the rest belongs to the other sequence).
_ROI_CONTOUR_KEYS = ("ReferencedROINumber", "ROIDisplayColor", "ContourSequence")
_STRUCTURE_SET_ROI_KEYS = ("ROINumber", "ReferencedFrameOfReferenceUID", "ROIName", "ROIVolume",
                           "ROIGenerationAlgorithm")


def repair(ds: Dataset, *, patient_info: dict, frame_of_reference_uid: str,
           trial_info: dict | None = None, structure_set_uid: str | None = None) -> list[str]:
    """Mend ``ds`` (an RTSTRUCT, RTDOSE or RTPLAN of pymedphys) in place; return what was mended."""
    done: list[str] = []
    if _shorten_decimal_strings(ds):
        done.append("Decimal Strings longer than 16 characters re-formatted")
    for wrong, right, source in (("ReferringPhysiciansName", "ReferringPhysicianName", "ReferringPhysician"),
                                 ("ManufacturersModelName", "ManufacturerModelName", None)):
        if wrong in ds.__dict__:
            value = ds.__dict__.pop(wrong)
            setattr(ds, right, (patient_info.get(source) or "") if source else value)
            done.append(f"{right} set (pymedphys wrote the misspelt {wrong}, which is not a DICOM keyword)")
    if "ReferringPhysicianName" not in ds:
        ds.ReferringPhysicianName = patient_info.get("ReferringPhysician") or ""
        done.append("ReferringPhysicianName (Type 2) added")
    if ds.get("PatientSex") not in (None, "", "M", "F", "O"):
        done.append(f"PatientSex {ds.PatientSex!r} (not M/F/O) emptied")
        ds.PatientSex = ""
    if ds.get("SeriesInstanceUID") == ds.SOPInstanceUID:
        ds.SeriesInstanceUID = generate_uid(entropy_srcs=["series", ds.SOPInstanceUID])
        done.append("SeriesInstanceUID was the SOPInstanceUID: a series UID derived from it")
    if "SeriesNumber" not in ds:
        ds.SeriesNumber = 1
        done.append("SeriesNumber (Type 2) added")
    if ds.Modality == "RTSTRUCT":
        done += _repair_structure_set(ds, frame_of_reference_uid)
    if ds.Modality == "RTDOSE" and trial_info is not None:
        done += _repair_dose_geometry(ds, trial_info)
    if ds.Modality == "RTPLAN" and structure_set_uid:
        for item in ds.get("ReferencedStructureSetSequence", []):
            if item.ReferencedSOPInstanceUID != structure_set_uid:
                item.ReferencedSOPInstanceUID = structure_set_uid
                done.append("ReferencedStructureSetSequence names the plan's one structure set (pymedphys "
                            "named a structure set UID hashed from the trial, made for no other trial than the first)")
    return done


def _shorten_decimal_strings(ds: Dataset) -> bool:
    changed = False
    for element in list(ds.iterall()):
        if element.VR != "DS" or element.value is None or element.value == "":
            continue
        values = element.value if element.VM > 1 else [element.value]
        if any(len(str(v)) > 16 for v in values):
            formatted = [format_number_as_ds(float(v)) for v in values]
            element.value = formatted if element.VM > 1 else formatted[0]
            changed = True
    return changed


def _repair_structure_set(ds: Dataset, frame_uid: str) -> list[str]:
    done = []
    if "FrameOfReferenceUID" not in ds:
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        done.append("Frame of Reference module (the CT's frame) added to the RT Structure Set")
    if "OperatorsName" not in ds:
        ds.OperatorsName = ""
        done.append("OperatorsName (Type 2) added")
    contours, rois = ds.get("ROIContourSequence", []), ds.get("StructureSetROISequence", [])
    # pymedphys appended one dataset to both sequences, so once written each item carries both halves.
    if any("ContourSequence" in item for item in rois) or any("ROIName" in item for item in contours):
        ds.ROIContourSequence = Sequence([_keep(item, _ROI_CONTOUR_KEYS) for item in contours])
        ds.StructureSetROISequence = Sequence([_keep(item, _STRUCTURE_SET_ROI_KEYS) for item in rois])
        done.append("ROI Contour and Structure Set ROI items (one shared dataset each) split apart")
    return done


def _keep(item: Dataset, keywords: tuple[str, ...]) -> Dataset:
    copy = Dataset()
    for keyword in keywords:
        if keyword in item:
            copy[keyword] = item[keyword]
    return copy


def _repair_dose_geometry(ds: Dataset, trial: dict) -> list[str]:
    done = []
    size = {axis: float(trial[f"DoseGrid .VoxelSize .{axis}"]) * 10 for axis in "XYZ"}  # cm -> mm
    frames = int(trial["DoseGrid .Dimension .Z"])
    offsets = [format_number_as_ds(k * size["Z"]) for k in range(frames)]
    if [float(v) for v in ds.GridFrameOffsetVector] != [float(v) for v in offsets]:
        ds.GridFrameOffsetVector = offsets
        done.append("GridFrameOffsetVector stepped by the dose grid's Z voxel size (pymedphys used X)")
    spacing = [format_number_as_ds(size["Y"]), format_number_as_ds(size["X"])]
    if [float(v) for v in ds.PixelSpacing] != [float(v) for v in spacing]:
        ds.PixelSpacing = spacing
        done.append("PixelSpacing ordered (row = Y, column = X) (pymedphys wrote X, Y)")
    return done
