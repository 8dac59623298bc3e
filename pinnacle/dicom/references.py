"""The references inside a rendition: does every UID one object names belong to an object of the rendition?

* RT Structure Set: its Referenced Frame of Reference (and each ROI's) is the CT's Frame of Reference
  UID; every Contour Image Sequence item (the series list and each contour's) names a CT SOP Instance
  UID of the rendition.
* RT Dose: its Frame of Reference is the CT's; its Referenced RT Plan is an RT Plan of the rendition.
  Without RT Plans (``include_plan=False``) it still names the RT Plan UID pymedphys gives that trial:
  that is a note ("made only with include_plan"), not a problem (docs/rendition.md).
* RT Plan: its Referenced Structure Set, when given, is an RT Structure Set of the rendition.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pydicom.dataset import Dataset


@dataclass
class ReferenceCheck:
    problems: list[str] = field(default_factory=list)  # "<file>: <what does not resolve>"
    notes: list[str] = field(default_factory=list)  # references that cannot resolve by design


def check_references(datasets: Iterable[tuple[str, Dataset]]) -> ReferenceCheck:
    """Check ``(name, dataset)`` pairs (the whole rendition of one patient) against one another."""
    named = list(datasets)
    by_modality: dict[str, dict[str, Dataset]] = {}
    for _, ds in named:
        by_modality.setdefault(str(ds.Modality), {})[str(ds.SOPInstanceUID)] = ds
    images = {**by_modality.get("CT", {}), **by_modality.get("MR", {})}
    frames = {str(ds.FrameOfReferenceUID) for ds in images.values()}
    plans, structures = by_modality.get("RTPLAN", {}), by_modality.get("RTSTRUCT", {})
    check = ReferenceCheck()
    for name, ds in named:
        if ds.Modality == "RTSTRUCT":
            _structure_set(name, ds, frames, images, check)
        elif ds.Modality == "RTDOSE":
            _dose(name, ds, frames, plans, check)
        elif ds.Modality == "RTPLAN":
            for item in ds.get("ReferencedStructureSetSequence", []):
                if str(item.ReferencedSOPInstanceUID) not in structures:
                    check.problems.append(f"{name}: Referenced Structure Set {item.ReferencedSOPInstanceUID} "
                                          "is no RT Structure Set of the rendition")
    return check


def contour_image_uids(ds: Dataset) -> list[str]:
    """Every ReferencedSOPInstanceUID of the structure set's Contour Image Sequences (series list and contours)."""
    uids = []
    for frame in ds.get("ReferencedFrameOfReferenceSequence", []):
        for study in frame.get("RTReferencedStudySequence", []):
            for series in study.get("RTReferencedSeriesSequence", []):
                uids += [str(i.get("ReferencedSOPInstanceUID", "")) for i in series.get("ContourImageSequence", [])]
    for roi in ds.get("ROIContourSequence", []):
        for contour in roi.get("ContourSequence", []):
            uids += [str(i.get("ReferencedSOPInstanceUID", "")) for i in contour.get("ContourImageSequence", [])]
    return uids


def _structure_set(name: str, ds: Dataset, frames: set[str], images: dict[str, Dataset],
                   check: ReferenceCheck) -> None:
    named_frames = [str(f.FrameOfReferenceUID) for f in ds.get("ReferencedFrameOfReferenceSequence", [])]
    named_frames += [str(r.ReferencedFrameOfReferenceUID) for r in ds.get("StructureSetROISequence", [])]
    for uid in sorted(set(named_frames) - frames):
        check.problems.append(f"{name}: Frame of Reference {uid} is no CT frame of the rendition")
    missing = [uid for uid in contour_image_uids(ds) if uid not in images]
    if missing:
        shown = ", ".join(sorted(set(missing))[:3])
        check.problems.append(f"{name}: {len(missing)} Contour Image references name no CT image of the "
                              f"rendition ({shown}{', ...' if len(set(missing)) > 3 else ''})")


def _dose(name: str, ds: Dataset, frames: set[str], plans: dict[str, Dataset], check: ReferenceCheck) -> None:
    if str(ds.get("FrameOfReferenceUID", "")) not in frames:
        check.problems.append(f"{name}: Frame of Reference {ds.get('FrameOfReferenceUID')} is no CT frame "
                              "of the rendition")
    for item in ds.get("ReferencedRTPlanSequence", []):
        uid = str(item.ReferencedSOPInstanceUID)
        if uid in plans:
            continue
        if plans:
            check.problems.append(f"{name}: Referenced RT Plan {uid} is no RT Plan of the rendition")
        else:
            check.notes.append(f"{name}: refers to RT Plan {uid}, the UID pymedphys gives the trial's plan, "
                               "which is not in the rendition (RT Plans are made only with include_plan=True)")
