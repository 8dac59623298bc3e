"""Validating a rendition: dciodvfy (dicom3tools) on every object, then the references between them.

dciodvfy checks one file against the IOD of its SOP class: each line it prints starting with ``Error``
is a failure of that object, each starting with ``Warning`` is kept apart (say, a ``Retired Person Name
form`` for Pinnacle's "TEST, MD"). pinnacle.dicom.references checks what no single-file validator can.
"""
from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from pinnacle.dicom.references import check_references
from pinnacle.dicom.results import Failure

DCIODVFY = "dciodvfy"  # Debian package dicom3tools (deploy/apt-packages.txt)
REFERENCES = "references"  # the Failure.kind of a reference that does not resolve


@dataclass
class ValidationReport:
    failures: list[Failure] = field(default_factory=list)  # kind: the object's modality, or REFERENCES
    warnings: dict[str, list[str]] = field(default_factory=dict)  # file name -> dciodvfy's Warning lines
    notes: list[str] = field(default_factory=list)  # references that cannot resolve by design

    @property
    def passed(self) -> bool:
        return not self.failures


def dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    """(Error lines, Warning lines) of dciodvfy for one file."""
    binary = shutil.which(DCIODVFY)
    if binary is None:
        return [f"Error - {DCIODVFY} is not installed (Debian package dicom3tools)"], []
    run = subprocess.run([binary, str(path)], capture_output=True, text=True, errors="replace", timeout=300)
    lines = (run.stdout + run.stderr).splitlines()
    return [line for line in lines if line.startswith("Error")], [line for line in lines if line.startswith("Warning")]


def validate_rendition(paths: Iterable[Path]) -> ValidationReport:
    """Validate the DICOM files of one patient's rendition (all of them together, for the references)."""
    report = ValidationReport()
    datasets = []
    for path in sorted(Path(p) for p in paths):
        try:
            ds = pydicom.dcmread(path)
        except (InvalidDicomError, OSError, ValueError) as error:
            report.failures.append(Failure("?", path.name, f"not readable as DICOM: {error}"))
            continue
        datasets.append((path.name, ds))
        errors, warnings = dciodvfy(path)
        report.failures += [Failure(str(ds.Modality), path.name, line) for line in errors]
        if warnings:
            report.warnings[path.name] = warnings
    references = check_references(datasets)
    report.failures += [Failure(REFERENCES, line.split(":", 1)[0], line) for line in references.problems]
    report.notes = references.notes
    return report
