"""Reading what a test compares the rendition with, straight from the Pinnacle files (not through pymedphys),
and making a generated patient hold what real Pinnacle 16 writes but the demo generator leaves out."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pinnacle.syntax import parse


@dataclass
class Roi:
    name: str
    curves: list[list[tuple[float, float, float]]]  # Pinnacle coordinates, cm


def read_roi_points(plan_roi: Path) -> list[Roi]:
    """Each ROI of ``plan.roi`` with its curves' points (the ``points={ x y z ... };`` blocks)."""
    rois: list[Roi] = []
    inside_points = False
    for line in plan_roi.read_text(encoding="latin-1").splitlines():
        if "Beginning of ROI:" in line:
            rois.append(Roi(line.split("Beginning of ROI:", 1)[1].strip(), []))
        elif line.strip().startswith("points={"):
            inside_points = True
            rois[-1].curves.append([])
        elif inside_points and "End of points" in line:
            inside_points = False
        elif inside_points and line.strip():
            x, y, z = (float(v) for v in line.split())
            rois[-1].curves[-1].append((x, y, z))
    return rois


def read_header(header: Path) -> dict[str, str]:
    """``ImageSet_<n>.header``: ``key = value;`` and ``key : text`` lines."""
    values = {}
    for line in header.read_text(encoding="latin-1").splitlines():
        match = re.match(r"\s*(\w+)\s*(?:=|:)\s*(.*?);?\s*$", line)
        if match:
            values[match.group(1)] = match.group(2).strip('"')
    return values


def read_voxels(image_set: Path) -> np.ndarray:
    """``ImageSet_<n>.img`` as (z, y, x) uint16 in the header's byte order."""
    header = read_header(image_set.with_suffix(".header"))
    order = ">" if header["byte_order"] == "1" else "<"
    shape = (int(header["z_dim"]), int(header["y_dim"]), int(header["x_dim"]))
    return np.fromfile(image_set.with_suffix(".img"), dtype=f"{order}u2").reshape(shape)


def read_dose_grids(plan_trial: Path) -> dict[str, dict[str, float]]:
    """Each trial's DoseGrid values (``VoxelSize.X``, ``Dimension.Z``, ``Origin.Y``, ...) by trial name."""
    grids = {}
    for _, trial in parse(plan_trial.read_text(encoding="latin-1")):
        grids[trial.get_str("Name")] = {key.removeprefix("DoseGrid."): float(value) for key, value in trial
                                         if key.startswith("DoseGrid.") and isinstance(value, str)}
    return grids


def complete_generated_plan(plan_dir: Path, *, voxel_size: tuple[float, float, float] = (0.4, 0.5, 0.3)) -> None:
    """Add to a demo_site plan what Pinnacle 16 writes and pymedphys reads, but the generator leaves out:
    the ``//  Curve n of m`` comment before each curve of ``plan.roi`` (pymedphys counts curves by it),
    each beam's ``PrescriptionPointName`` and ``MonitorUnitInfo`` in ``plan.Trial``; and make the dose grid's
    voxels anisotropic (X, Y, Z in cm), so a converter that mixes up the axes shows it."""
    roi = plan_dir / "plan.roi"
    lines, curve = [], 0
    for line in roi.read_text().splitlines():
        if "Beginning of ROI" in line:
            curve = 0
        if line.strip() == "curve={":
            curve += 1
            lines.append(f"//  Curve {curve} of 3")
        lines.append(line)
    roi.write_text("\n".join(lines) + "\n")
    trial = plan_dir / "plan.Trial"
    text = trial.read_text()
    text = re.sub(r'^(\s*)IsocenterName = "iso";$',
                  lambda m: (f'{m.group(0)}\n{m.group(1)}PrescriptionPointName = "iso";\n'
                             f"{m.group(1)}MonitorUnitInfo ={{\n{m.group(1)}  PrescriptionDose = 180;\n"
                             f"{m.group(1)}}};"), text, flags=re.M)
    for axis, size in zip("XYZ", voxel_size):
        text = re.sub(rf"DoseGrid \.VoxelSize \.{axis} = [\d.]+;", f"DoseGrid .VoxelSize .{axis} = {size};", text)
    trial.write_text(text)
