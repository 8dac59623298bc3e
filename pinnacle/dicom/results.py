"""What a conversion made and what it could not make, object kind by object kind."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# Object kinds, as the results name them (the DICOM Modality of what each kind makes).
CT, RTSTRUCT, RTDOSE, RTPLAN = "CT", "RTSTRUCT", "RTDOSE", "RTPLAN"

# pymedphys's own RT Plan export logs "RTPLAN export functionality is currently not validated and not
# stable": every RT Plan made carries this label.
RTPLAN_CAVEAT = "not fully correct per its maintainers (pymedphys: RTPLAN export not validated and not stable)"


@dataclass(frozen=True)
class DicomObject:
    """One DICOM file written."""

    path: Path
    modality: str
    sop_class_uid: str
    sop_instance_uid: str
    source: str  # what it was made from, relative to the patient folder: "ImageSet_0", "Plan_0", "Plan_0/Trial_1"
    caveat: str = ""  # a known limitation of this object ("" for none)


@dataclass(frozen=True)
class Failure:
    """An object (or a whole kind of object for one source) that was not made, or made but invalid."""

    kind: str  # CT, RTSTRUCT, RTDOSE, RTPLAN
    source: str  # as DicomObject.source; a file name when the failure is about one file
    reason: str


@dataclass
class ConversionResult:
    patient_dir: Path
    output_dir: Path
    converter: str  # "pymedphys"
    converter_version: str  # importlib.metadata.version("pymedphys")
    objects: list[DicomObject] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    # Defects of the converter's output that our code mended, one line each (pinnacle.dicom.repair).
    repairs: list[str] = field(default_factory=list)
    converter_log: list[str] = field(default_factory=list)  # the converter's warnings and errors, as logged

    def of_kind(self, kind: str) -> list[DicomObject]:
        return [o for o in self.objects if o.modality == kind]

    def failures_of(self, kind: str) -> list[Failure]:
        return [f for f in self.failures if f.kind == kind]
