"""Renditions shared by the tests of a module: converting the 16.2 sample takes seconds (pymedphys sums
each beam's dose voxel by voxel in Python), so each module converts once and the tests only read."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from demo_site.tree import ImageSetSpec, PlanSpec, write_patient
from pinnacle.dicom.convert import convert_patient
from pinnacle.dicom.results import ConversionResult
from tests.conftest import SAMPLES
from tests.pinnacle.dicom.pinnacle_files import make_dose_grid_anisotropic

SAMPLE_PATIENT = "Institution_1/Mount_0/Patient_1"
# Not square, several slices: a Rows/Columns or slice-order slip shows.
GENERATED_IMAGE_SET = ImageSetSpec(0, x_dim=12, y_dim=8, z_dim=5)


@dataclass
class Rendition:
    patient: Path  # the scratch copy of the Patient_<n> folder
    result: ConversionResult


def _copy_sample(target: Path) -> Path:
    source = SAMPLES / "pinnacle-16.2"
    if not source.is_dir():
        pytest.skip(f"sample tree {source} is absent (it is not in the repository: docs/testing.md)")
    shutil.copytree(source / SAMPLE_PATIENT, target)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # the shared copy is read-only
    return target


def generated_patient(root: Path, *, anisotropic: bool) -> Path:
    record = write_patient(root, plans=[PlanSpec(0, "PLAN A", trials=["Trial_1", "Trial_2"])],
                           image_sets=[GENERATED_IMAGE_SET])
    if anisotropic:
        make_dose_grid_anisotropic(record.path / "Plan_0")
    return record.path


@pytest.fixture(scope="module")
def sample_rendition(tmp_path_factory) -> Rendition:
    """The 16.2 sample converted with RT Plans (include_plan=True)."""
    root = tmp_path_factory.mktemp("sample")
    patient = _copy_sample(root / "Patient_1")
    return Rendition(patient, convert_patient(patient, root / "dicom", include_plan=True))


@pytest.fixture(scope="module")
def generated_rendition(tmp_path_factory) -> Rendition:
    """A demo_site patient with an anisotropic dose grid (pinnacle_files.make_dose_grid_anisotropic)."""
    root = tmp_path_factory.mktemp("generated")
    patient = generated_patient(root / "tree", anisotropic=True)
    return Rendition(patient, convert_patient(patient, root / "dicom"))
