"""Build small Pinnacle ``$PATIENTS`` trees for tests, in any encoding, with the files real sites have.

    root = tmp_path / "Patients"
    path = write_patient(root, patient_id=7, mrn="000123", last_name="张", first_name="三",
                         plans=[plan(0, "LT BREAST", trials=["sMLC"])], encoding="gb18030")
    write_institution_file(root, [institution(1, "ToArchive", [path])])
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pinnacle.syntax import Bare, Node, dumps

STAMP = "2019-03-01 10:00:00"


@dataclass
class PlanSpec:
    plan_id: int
    name: str
    trials: list[str] = field(default_factory=lambda: ["Trial_1"])
    created: str = STAMP
    written: str = STAMP
    modified: str = STAMP
    directory: bool = True  # write the Plan_N folder
    in_plan_list: bool = True


def plan(plan_id: int, name: str, **kwargs) -> PlanSpec:
    return PlanSpec(plan_id, name, **kwargs)


def _times(created: str, written: str, modified: str) -> Node:
    return Node([("WriteVersion", "Launch Pad: 16.2"), ("CreateTimeStamp", created), ("WriteTimeStamp", written),
                 ("LastModifiedTimeStamp", modified)])


def patient_node(*, patient_id: int, tps_path: str, mrn: str, last_name: str, first_name: str, middle_name: str,
                 plans: list[PlanSpec], image_sets: list[tuple[int, str, int]], header_times: tuple[str, str, str],
                 mrn_bare: bool = False) -> Node:
    return Node([
        ("PatientID", Bare(str(patient_id))),
        ("PatientPath", tps_path),
        ("LastName", last_name),
        ("FirstName", first_name),
        ("MiddleName", middle_name),
        ("MedicalRecordNumber", Bare(mrn) if mrn_bare else mrn),
        ("RadiationOncologist", "TEST, MD"),
        ("ImageSetList", Node([
            ("ImageSet", Node([("ImageSetID", Bare(str(i))), ("PatientID", Bare(str(patient_id))),
                               ("ImageName", f"ImageSet_{i}"), ("Modality", modality),
                               ("NumberOfImages", Bare(str(count)))]))
            for i, modality, count in image_sets
        ])),
        ("PlanList", Node([
            ("Plan", Node([("PlanID", Bare(str(p.plan_id))), ("ToolType", "Pinnacle^3"), ("PlanName", p.name),
                           ("PrimaryCTImageSetID", Bare("0")), ("FusionIDArray", Node()),
                           ("ObjectVersion", _times(p.created, p.written, p.modified))]))
            for p in plans if p.in_plan_list
        ])),
        ("ObjectVersion", _times(*header_times)),
        ("DirSize", Bare("1.000")),
    ])


def trial_text(names: list[str]) -> str:
    return dumps([("Trial", Node([("Name", name), ("PatientRepresentation", Node([("PatientVolumeName", "x")])),
                                  ("RecordDoseData", Bare("\\XDR:0\\"))])) for name in names])


def write_patient(root: Path, *, institution: int = 1, mount: int = 0, patient_id: int = 1, mrn: str = "000123",
                  last_name: str = "LAST", first_name: str = "FIRST", middle_name: str = "",
                  plans: list[PlanSpec] | None = None, image_sets: list[tuple[int, str, int]] | None = None,
                  header_times: tuple[str, str, str] = (STAMP, STAMP, ""), encoding: str = "utf-8",
                  mrn_bare: bool = False) -> str:
    """Write one patient folder; return its root-relative path (``Institution_1/Mount_0/Patient_1``)."""
    plans = [plan(0, "PLAN A")] if plans is None else plans
    image_sets = [(0, "CT", 3)] if image_sets is None else image_sets
    tps_path = f"Institution_{institution}/Mount_{mount}/Patient_{patient_id}"
    folder = root / tps_path
    folder.mkdir(parents=True, exist_ok=True)
    node = patient_node(patient_id=patient_id, tps_path=tps_path, mrn=mrn, last_name=last_name,
                        first_name=first_name, middle_name=middle_name, plans=plans, image_sets=image_sets,
                        header_times=header_times, mrn_bare=mrn_bare)
    (folder / "Patient").write_bytes(dumps(node).encode(encoding))
    for image_set_id, _modality, count in image_sets:
        (folder / f"ImageSet_{image_set_id}.header").write_text(f"x_dim = 4;\ny_dim = 4;\nz_dim = {count};\n")
        (folder / f"ImageSet_{image_set_id}.img").write_bytes(b"\0" * (32 * count))
        (folder / f"ImageSet_{image_set_id}.ImageSet").write_text(dumps({"ImageSetID": Bare(str(image_set_id))}))
    for p in plans:
        if not p.directory:
            continue
        plan_dir = folder / f"Plan_{p.plan_id}"
        plan_dir.mkdir(exist_ok=True)
        (plan_dir / "plan.Trial").write_bytes(trial_text(p.trials).encode(encoding))
        (plan_dir / "plan.Trial.binary.001").write_bytes(b"\x01\x02" * 16)
        (plan_dir / "plan.roi").write_text("// Region of Interest file\n roi={ name: bb }; \n")
    return tps_path


@dataclass
class InstitutionSpec:
    institution_id: int
    name: str
    patient_paths: list[str]


def institution(institution_id: int, name: str, patient_paths: list[str] | None = None) -> InstitutionSpec:
    return InstitutionSpec(institution_id, name, list(patient_paths or []))


def _institution_block(spec: InstitutionSpec) -> Node:
    return Node([
        ("InstitutionID", Bare(str(spec.institution_id))),
        ("InstitutionPath", f"Institution_{spec.institution_id}"),
        ("PinnInstitutionPath", f"Institution_{spec.institution_id}"),
        ("Name", spec.name),
        ("PatientLiteList", Node([
            ("PatientLite", Node([
                ("PatientID", Bare(path.rsplit("_", 1)[1])),
                ("PatientPath", path),
                ("MountPoint", path.split("/")[1]),
                ("FormattedDescription", f"LAST&&FIRST&&&&{path.rsplit('_', 1)[1]}&&TEST,MD&&{STAMP}"),
            ]))
            for path in spec.patient_paths
        ])),
        ("ObjectVersion", _times(STAMP, STAMP, "")),
    ])


def write_institution_file(root: Path, specs: list[InstitutionSpec], *, form: str = "auto",
                           encoding: str = "utf-8") -> Path:
    """The root ``Institution`` file: ``bare`` (one institution), ``blocks`` (``Institution ={}`` each),
    or ``auto`` (bare for one, blocks for several)."""
    if form == "auto":
        form = "bare" if len(specs) == 1 else "blocks"
    if form == "bare":
        assert len(specs) == 1, "the bare form holds exactly one institution"
        node = _institution_block(specs[0])
    else:
        node = Node([("Institution", _institution_block(s)) for s in specs])
    root.mkdir(parents=True, exist_ok=True)
    path = root / "Institution"
    path.write_bytes(dumps(node).encode(encoding))
    return path


def truncate(path: Path, *, keep: int) -> None:
    """Cut a file after ``keep`` bytes, as a crash or a full disk leaves it."""
    path.write_bytes(path.read_bytes()[:keep])


def truncate_after(path: Path, marker: str) -> None:
    """Cut a file just after the first occurrence of ``marker``."""
    data = path.read_bytes()
    at = data.index(marker.encode())
    path.write_bytes(data[:at + len(marker)])


def touch(path: Path, *, append: bytes = b"", mtime_delta: float = 10.0) -> None:
    """Change a file the way Pinnacle does: new content and a later mtime."""
    if append:
        with path.open("ab") as handle:
            handle.write(append)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + int(mtime_delta * 1e9)))
