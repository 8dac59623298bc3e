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


def make_dose_grid_anisotropic(plan_dir: Path, *, voxel_size: tuple[float, float, float] = (0.4, 0.5, 0.3)) -> None:
    """Make the dose grid's voxels of a demo_site plan anisotropic (X, Y, Z in cm), so a converter that mixes up
    the axes shows it. (The generator itself writes what Pinnacle 16 writes and pymedphys reads: the
    ``//  Curve n of m`` comments of ``plan.roi``, each beam's ``PrescriptionPointName`` and ``MonitorUnitInfo``.)"""
    trial = plan_dir / "plan.Trial"
    text = trial.read_text()
    for axis, size in zip("XYZ", voxel_size):
        text = re.sub(rf"DoseGrid \.VoxelSize \.{axis} = [\d.]+;", f"DoseGrid .VoxelSize .{axis} = {size};", text)
    trial.write_text(text)


def strip_curve_comments(plan_dir: Path) -> None:
    """Take the ``//  Curve n of m`` lines out of ``plan.roi``, as some non-Pinnacle writers leave them out."""
    roi = plan_dir / "plan.roi"
    roi.write_text("".join(line for line in roi.read_text().splitlines(keepends=True)
                           if not line.startswith("//  Curve ")))
