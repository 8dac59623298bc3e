"""The archive's manifest (``PDAS-MANIFEST.json``) and its single-patient ``Institution`` header."""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

from pinnacle.syntax import Bare, Node, dumps

FORMAT = "pdas-archive/1"


def _local_iso(value: dt.datetime | None) -> str:
    return value.replace(tzinfo=None).isoformat(timespec="seconds") if value else ""


def plan_entries(plans) -> list[dict[str, Any]]:
    return [
        {"plan_id": p.plan_id, "name": p.name, "trials": list(p.trial_names),
         "created": _local_iso(p.created), "edited": _local_iso(p.edited)}
        for p in sorted(plans, key=lambda p: p.plan_id)
    ]


def build_manifest(*, institution_code: str, patient, files: list[dict[str, Any]], packed_at: dt.datetime,
                   codec: str) -> dict[str, Any]:
    """The manifest of docs/contracts.md §4.2. ``files`` are ``{"path", "size", "sha256"}`` of the patient tree."""
    return {
        "format": FORMAT,
        "institution": institution_code,
        "group": patient.group,
        "patient": {
            "mrn": patient.mrn,
            "last_name": patient.last_name,
            "first_name": patient.first_name,
            "middle_name": patient.middle_name,
            "tps_patient_id": patient.tps_patient_id,
            "tps_path": patient.tps_path,
        },
        "plans": plan_entries(patient.plans),
        "image_sets": [
            {"image_set_id": s.image_set_id, "modality": s.modality, "images": s.images}
            for s in patient.image_sets
        ],
        "files": files,
        "packed_at": packed_at.isoformat(timespec="seconds"),
        "codec": codec,
        "checksum_algorithm": "sha256",
    }


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


def formatted_description(patient, oncologist: str = "") -> str:
    """Pinnacle's PatientLite description: ``Last&&First&&Middle&&MRN&&Oncologist&&LastModified``."""
    edited = patient.latest_edit
    stamp = edited.strftime("%Y-%m-%d %H:%M:%S") if edited else ""
    return "&&".join([patient.last_name, patient.first_name, patient.middle_name, patient.mrn, oncologist, stamp])


def patient_lite(patient, *, dir_size_mb: float | None = None) -> Node:
    parts = patient.tps_path.split("/")
    mount = parts[1] if len(parts) > 2 else "Mount_0"
    size_mb = dir_size_mb if dir_size_mb is not None else patient.total_bytes / 1_000_000
    return Node([
        ("PatientID", Bare(str(patient.tps_patient_id if patient.tps_patient_id is not None else 0))),
        ("PatientPath", patient.tps_path),
        ("MountPoint", mount),
        ("FormattedDescription", formatted_description(patient)),
        ("DirSize", Bare(f"{size_mb:.3f}")),
    ])


def institution_header(*, institution_dir: str, institution_id: int | None, name: str, patient) -> bytes:
    """A bare-form Pinnacle ``Institution`` file listing only this patient (Pinnacle restore reads it)."""
    institution_id = institution_id if institution_id is not None else _id_from_dir(institution_dir)
    node = Node([
        ("InstitutionID", Bare(str(institution_id))),
        ("InstitutionPath", institution_dir),
        ("PinnInstitutionPath", institution_dir),
        ("Name", name or institution_dir),
        ("PatientLiteList", Node([("PatientLite", patient_lite(patient))])),
        ("MountPointList", Node([("SimpleString", Node([("String", patient.tps_path.split("/")[1])]))])),
        ("DefaultMountPoint", patient.tps_path.split("/")[1]),
        ("IsPatientBackup", Bare("1")),
    ])
    return dumps(node).encode("utf-8")


def _id_from_dir(institution_dir: str) -> int:
    try:
        return int(institution_dir.rsplit("_", 1)[1])
    except (IndexError, ValueError):
        return 0
