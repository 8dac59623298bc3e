"""CT images, one per slice, from ``ImageSet_<n>.img`` and its ``.header`` and ``.ImageInfo``.

Ours, not pymedphys's: pymedphys 0.41.0's CT writer (``pymedphys._pinnacle.image.create_image_files``)
logs "Creating image files: The output of these are not correct!" itself, and cannot run here at all:
it calls ``ndarray.tostring()``, which NumPy 2.3 removed, it needs an ``ImageSet_<n>.ImageSet`` file that
not every Pinnacle writes (the 16.2 sample has none), and it swaps Rows and Columns. This writer reads
the same files through pymedphys's readers and keeps pymedphys's geometry (docs/rendition.md, "CT"), so
the structure set and the dose, which pymedphys places in that geometry, still line up with the images.

Pixel values are the ``.img`` voxels unchanged (16-bit unsigned, byte order from the header's
``byte_order``: 0 little-endian, 1 big-endian); Hounsfield units = stored value + RESCALE_INTERCEPT.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian
from pydicom.valuerep import format_number_as_ds

from pinnacle.dicom.results import CT, DicomObject

# Pinnacle keeps CT numbers + 1000 (air 0, water about 1000), as demo_site/images.py models it.
# pymedphys's writer says -1024; neither is checked against Pinnacle's own DICOM export (docs/rendition.md).
RESCALE_INTERCEPT = -1000
RESCALE_SLOPE = 1

_ORIENTATION = {"HFS": [1, 0, 0, 0, 1, 0], "FFS": [1, 0, 0, 0, 1, 0],
                "HFP": [-1, 0, 0, 0, -1, 0], "FFP": [-1, 0, 0, 0, -1, 0]}


class CtError(ValueError):
    """The image set cannot become CT images; the message names the file and the reason."""


def _number(header: dict[str, str], key: str, name: str) -> float:
    try:
        return float(header[key])
    except (KeyError, ValueError):
        raise CtError(f"{name}: no usable '{key}'") from None


def read_voxels(img: Path, header: dict[str, str], header_name: str) -> np.ndarray:
    """The ``.img`` voxels as an array (z, y, x) of uint16, checked against the header's size."""
    nx, ny, nz = (int(_number(header, key, header_name)) for key in ("x_dim", "y_dim", "z_dim"))
    if header.get("bytes_pix", "2").strip() != "2":
        raise CtError(f"{header_name}: bytes_pix = {header.get('bytes_pix')}, only 16-bit voxels are handled")
    if not img.is_file():
        raise CtError(f"{img.name} is missing: no pixel data (the image set has only its header and slice list)")
    expected = nx * ny * nz * 2
    size = img.stat().st_size
    if size != expected:
        raise CtError(f"{img.name} holds {size} bytes, {header_name} says {nx}x{ny}x{nz} voxels = {expected} bytes")
    order = ">" if header.get("byte_order", "0").strip() == "1" else "<"
    return np.fromfile(img, dtype=f"{order}u2").reshape(nz, ny, nx)


def write_ct_series(image: Any, patient_dir: Path, out_dir: Path) -> list[DicomObject]:
    """Write one CT file per slice of a pymedphys ``PinnacleImage``; raise CtError naming the file at fault."""
    set_id = image.image["ImageSetID"]
    base = f"ImageSet_{set_id}"
    header = image.image_header
    if not header:
        raise CtError(f"{base}.header is missing")
    slices = image.image_info
    if isinstance(slices, dict):  # pymedphys gives a dict, not a list, for a one-slice image set
        slices = [slices["ImageInfo"]]
    voxels = read_voxels(patient_dir / f"{base}.img", header, f"{base}.header")
    if len(slices) != voxels.shape[0]:
        raise CtError(f"{base}.ImageInfo lists {len(slices)} slices, {base}.header says z_dim = {voxels.shape[0]}")
    position = header.get("patient_position", "").strip()
    if position not in _ORIENTATION:
        raise CtError(f"{base}.header: patient_position {position!r} is not one of {sorted(_ORIENTATION)}")
    patient = image.pinnacle.patient_info
    pixdim = [_number(header, f"{axis}_pixdim", f"{base}.header") * 10 for axis in "xyz"]  # cm -> mm
    scan = str(image.image.get("ScanTimeFromScanner") or "").split(" ")
    scan_date = scan[0].replace("-", "") if len(scan) == 2 else ""
    scan_time = scan[1].replace(":", "") if len(scan) == 2 else ""
    made = []
    for index, info in enumerate(slices):
        ds = _slice_dataset(info, header, patient, image.image, pixdim, voxels.shape, position, scan_date, scan_time)
        ds.PixelData = voxels[index].astype("<u2").tobytes()
        path = out_dir / f"CT.{info['InstanceUID']}.dcm"
        ds.save_as(path, enforce_file_format=True)
        made.append(DicomObject(path, CT, str(info["ClassUID"]), str(info["InstanceUID"]), base))
    return made


def _slice_dataset(info: dict, header: dict[str, str], patient: dict, entry: dict, pixdim: list[float],
                   shape: tuple[int, ...], position: str, scan_date: str, scan_time: str) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = info["ClassUID"]
    meta.MediaStorageSOPInstanceUID = info["InstanceUID"]
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\x00" * 128)
    ds.SpecificCharacterSet = "ISO_IR 192"  # Pinnacle names may be Chinese (UTF-8 in the dataset)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = info["ClassUID"]
    ds.SOPInstanceUID = info["InstanceUID"]
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = scan_date
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = scan_time
    ds.AccessionNumber = ""
    ds.Modality = "CT"
    ds.Manufacturer = header.get("manufacturer", "").strip()
    ds.ManufacturerModelName = header.get("model", "").strip()
    ds.StationName = header.get("Station_Name", "").strip()
    ds.ReferringPhysicianName = patient.get("ReferringPhysician") or ""
    ds.SeriesDescription = str(entry.get("SeriesDescription") or "")
    ds.PatientName = patient["FullName"]
    ds.PatientID = str(patient["MedicalRecordNumber"])
    ds.PatientBirthDate = patient.get("DOB", "")
    ds.PatientSex = {"Male": "M", "Female": "F"}.get(str(patient.get("Gender")), "")
    ds.KVP = header.get("KVP", "").strip()
    ds.PatientPosition = position
    ds.SliceThickness = _ds(pixdim[2])
    ds.StudyInstanceUID = info["StudyInstanceUID"]
    ds.SeriesInstanceUID = info["SeriesUID"]
    ds.FrameOfReferenceUID = info["FrameUID"]
    ds.PositionReferenceIndicator = ""
    ds.StudyID = str(entry.get("StudyID") or "")
    ds.SeriesNumber = header.get("SeriesNumber", "").strip() or 1
    ds.Laterality = ""  # Type 2C; dciodvfy asks for it, Pinnacle does not know it
    ds.AcquisitionNumber = ""  # Type 2 in the CT Image module
    ds.InstanceNumber = int(info["SliceNumber"])
    nz, ny, nx = shape
    # pymedphys's geometry: x and y centred on the image, z = -TablePosition (cm -> mm).
    slice_location = -float(info["TablePosition"]) * 10
    ds.ImagePositionPatient = [_ds(-pixdim[0] * nx / 2), _ds(-pixdim[1] * ny / 2), _ds(slice_location)]
    ds.ImageOrientationPatient = _ORIENTATION[position]
    ds.SliceLocation = _ds(slice_location)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = ny, nx
    ds.PixelSpacing = [_ds(pixdim[1]), _ds(pixdim[0])]  # row spacing (y), column spacing (x)
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = RESCALE_INTERCEPT
    ds.RescaleSlope = RESCALE_SLOPE
    ds.RescaleType = "HU"
    return ds


def _ds(value: float) -> str:
    """A Decimal String of at most 16 characters (the VR's limit)."""
    return format_number_as_ds(float(value))
