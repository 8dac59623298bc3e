"""Writing Pinnacle ``$PATIENTS`` trees: patients, plans, image sets and the ``Institution`` file.

The files have the keys and the syntax of real Pinnacle 16 output (the sample tree of docs/testing.md), written
with ``pinnacle.syntax.dumps`` (``Bare`` for unquoted numbers). The test suite builds its small
trees with these functions too; every argument but the root has a default, so ``write_patient(root)``
alone writes a readable patient (``LAST^FIRST``, MRN ``000123``, plan ``PLAN A``, a 4x4x3 CT)::

    record = write_patient(root, "Institution_1", 7, last_name="张", first_name="三", mrn="000123",
                           plans=[PlanSpec(0, "LT BREAST", trials=["sMLC"])],
                           image_sets=[ImageSetSpec(0)], encoding="gb18030")
    write_institution_file(root, [GroupSpec(1, "ToArchive", [record])])

Times are naive site-local datetimes, as Pinnacle writes them. A timestamp field given as a
``str`` is written as it is (``""`` for an empty one); a datetime is written ``YYYY-MM-DD HH:MM:SS``
or, with ``stamp_sep="."``, ``YYYY-MM-DD.HH:MM:SS``; a spec that gives no time has ``DEFAULT_TIME``.
Every file and folder gets a fixed mtime, so the same input gives the same tree, byte for byte and
stamp for stamp. ``demo_site.edits`` changes a written tree afterwards (a later save, a crash).
"""
from __future__ import annotations

import datetime as dt
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from demo_site.images import Volume, write_ct_volume, write_noise_volume
from pinnacle.syntax import Bare, Node, dumps

Stamp = dt.datetime | str
SITE_UTC_OFFSET = dt.timezone(dt.timedelta(hours=8))  # mtimes: the demo site's clock (Asia/Shanghai)
DEFAULT_TIME = dt.datetime(2019, 3, 1, 10, 0, 0)  # of a spec that gives no time (the demo site gives them all)
DOSE_GRID = (16, 16, 10)  # voxels of each beam's dose volume (float32, big-endian XDR)
PLANNERS = (("MAX WELLDOSE PHD", "DOSEY CALC CMD"), ("LI WEI PHD", "ZHOU MIN CMD"), ("A. PHYSICIST", "B. DOSIMETRIST"))
_MACHINES = (("TrueBeam1", "6X"), ("TrueBeam1", "10X"), ("Synergy2", "6X"))


def stamp(value: Stamp, sep: str = " ") -> str:
    """A Pinnacle timestamp: a datetime as ``YYYY-MM-DD<sep>HH:MM:SS``, a str as it is."""
    if isinstance(value, str):
        return value
    return value.strftime(f"%Y-%m-%d{sep}%H:%M:%S")


def epoch(value: dt.datetime) -> float:
    """Seconds since the epoch of a naive site-local time (fixed offset: the result never depends on TZ)."""
    return value.replace(tzinfo=SITE_UTC_OFFSET).timestamp()


def set_mtime(path: Path, when: dt.datetime) -> None:
    seconds = epoch(when)
    os.utime(path, (seconds, seconds), follow_symlinks=False)


def _seed_of(*parts: object) -> int:
    """A stable seed from values (``hash()`` of a str changes between runs)."""
    return zlib.crc32("\x1f".join(map(str, parts)).encode("utf-8"))


def _latest(*values: Stamp) -> dt.datetime:
    times = [v for v in values if isinstance(v, dt.datetime)]
    return max(times) if times else DEFAULT_TIME


# --- specs ---------------------------------------------------------------------------------------


@dataclass
class PlanSpec:
    """One plan: an entry of the Patient file's PlanList and (unless ``directory=False``) its Plan_N folder."""

    plan_id: int
    name: str
    trials: list[str] = field(default_factory=lambda: ["Trial_1"])
    created: Stamp = DEFAULT_TIME
    written: Stamp = DEFAULT_TIME
    modified: Stamp = DEFAULT_TIME
    stamp_sep: str = " "
    directory: bool = True  # write Plan_<plan_id>/ (False: a plan the PlanList names but the disk lacks)
    in_plan_list: bool = True  # False: a Plan_N folder the Patient file does not name
    junk: bool = False  # autosave and log files Pinnacle leaves behind (never archived)
    beams: int = 2
    image_set_id: int = 0

    @property
    def last_write(self) -> dt.datetime:
        return _latest(self.created, self.written, self.modified)


@dataclass
class ImageSetSpec:
    """One image set: ``ImageSet_<n>.header|.ImageInfo|.ImageSet|.img`` (``.img`` of the header's size).

    Tiny by default (4x4x3, 96 bytes of voxels), for tests; the demo site sizes its own to the
    ``--size`` budget. ``noise_only`` fills ``.img`` with random bytes instead of a CT-like body:
    gzip cannot shrink them (an archive that spans several upload chunks, a disk that fills up).
    """

    image_set_id: int
    modality: str = "CT"
    x_dim: int = 4
    y_dim: int = 4
    z_dim: int = 3
    region: Literal["head", "chest", "pelvis"] = "chest"
    series_description: str = "CHEST"
    scanned: dt.datetime = DEFAULT_TIME
    write_img: bool = True
    noise_only: bool = False

    @property
    def img_bytes(self) -> int:
        return Volume(self.x_dim, self.y_dim, self.z_dim).nbytes if self.write_img else 0


@dataclass
class PatientRecord:
    """What ``write_patient`` wrote, for the Institution file and for expectations."""

    path: Path  # the Patient_<P> folder
    tps_path: str  # relative to the root: Institution_<I>/Mount_0/Patient_<P>
    institution_dir: str
    patient_id: int
    last_name: str
    first_name: str
    middle_name: str
    mrn: str
    encoding: str
    oncologist: str
    last_modified: dt.datetime
    image_bytes: int
    files: list[Path] = field(default_factory=list)


@dataclass
class GroupSpec:
    """One Pinnacle institution (= one patient group) of the root ``Institution`` file."""

    institution_id: int
    name: str
    patients: list[PatientRecord] = field(default_factory=list)

    @property
    def dir_name(self) -> str:
        return f"Institution_{self.institution_id}"


# --- one patient ---------------------------------------------------------------------------------


class _Writer:
    """Writes a patient's files in one encoding and remembers each file's mtime, set at the end."""

    def __init__(self, encoding: str):
        self.encoding = encoding
        self.stamps: list[tuple[Path, dt.datetime]] = []

    def text(self, path: Path, text: str, when: dt.datetime) -> None:
        path.write_bytes(text.encode(self.encoding))
        self.stamps.append((path, when))

    def binary(self, path: Path, data: bytes, when: dt.datetime) -> None:
        path.write_bytes(data)
        self.stamps.append((path, when))

    def touched(self, path: Path, when: dt.datetime) -> None:
        self.stamps.append((path, when))


def _object_version(created: Stamp, written: Stamp, modified: Stamp, *, sep: str = " ",
                    tool: str = "Launch Pad") -> Node:
    return Node([
        ("WriteVersion", f"{tool}: 16.2"),
        ("CreateVersion", f"{tool}: 16.0"),
        ("LoginName", "pinnacle"),
        ("CreateTimeStamp", stamp(created, sep)),
        ("WriteTimeStamp", stamp(written, sep)),
        ("LastModifiedTimeStamp", stamp(modified, sep)),
    ])


def _volume_name(last: str, first: str, middle: str) -> str:
    return f"{last}^{first}^{middle}"


def patient_node(*, patient_id: int, tps_path: str, last_name: str, first_name: str, middle_name: str, mrn: str,
                 oncologist: str, plans: Sequence[PlanSpec], image_sets: Sequence[ImageSetSpec],
                 header_times: tuple[Stamp, Stamp, Stamp], gender: str = "Unknown",
                 date_of_birth: str = "", mrn_unquoted: bool = False) -> Node:
    """The ``Patient`` file's content (the fields of docs/contracts.md §1.2 plus the usual companions)."""
    listed = [p for p in plans if p.in_plan_list]
    return Node([
        ("PatientID", Bare(str(patient_id))),
        ("PatientPath", tps_path),
        ("LastName", last_name),
        ("FirstName", first_name),
        ("MiddleName", middle_name),
        ("MedicalRecordNumber", Bare(mrn) if mrn_unquoted else mrn),
        ("EncounterNumber", ""),
        ("PrimaryPhysician", ""),
        ("AttendingPhysician", ""),
        ("ReferringPhysician", ""),
        ("RadiationOncologist", oncologist),
        ("Oncologist", ""),
        ("Radiologist", ""),
        ("Prescription", ""),
        ("Disease", ""),
        ("Diagnosis", ""),
        ("Comment", "CT TREATMENT PLANNING"),
        ("NextUniquePlanID", Bare(str(max([p.plan_id for p in plans], default=-1) + 1))),
        ("NextUniqueImageSetID", Bare(str(max([i.image_set_id for i in image_sets], default=-1) + 1))),
        ("Gender", gender),
        ("DateOfBirth", date_of_birth),
        ("ImageSetList", Node([("ImageSet", _image_set_entry(i, patient_id=patient_id, mrn=mrn)) for i in image_sets])),
        ("PulmoWaveCaptureList", Node()),
        ("PlanList", Node([("Plan", _plan_entry(p, patient_id)) for p in listed])),
        ("ObjectVersion", _object_version(*header_times)),
        ("DirSize", Bare("0.000")),
    ])


def _image_set_entry(spec: ImageSetSpec, *, patient_id: int, mrn: str) -> Node:
    return Node([
        ("ImageSetID", Bare(str(spec.image_set_id))),
        ("PatientID", Bare(str(patient_id))),
        ("ImageName", f"ImageSet_{spec.image_set_id}"),
        ("NameFromScanner", ""),
        ("ExamID", str(100000 + patient_id * 10 + spec.image_set_id)),
        ("StudyID", str(patient_id)),
        ("Modality", spec.modality),
        ("NumberOfImages", Bare(str(spec.z_dim))),
        ("ScanTimeFromScanner", stamp(spec.scanned)),
        ("FileName", ""),
        ("SeriesDescription", spec.series_description),
        ("MRN", mrn),
        ("DOB", ""),
        ("GatingUId", ""),
        ("SeriesUID", _uid(patient_id, spec.image_set_id, 1)),
    ])


def _plan_entry(spec: PlanSpec, patient_id: int) -> Node:
    physicist, dosimetrist = PLANNERS[(patient_id + spec.plan_id) % len(PLANNERS)]
    return Node([
        ("PlanID", Bare(str(spec.plan_id))),
        ("ToolType", "Pinnacle^3"),
        ("PlanName", spec.name),
        ("Physicist", physicist),
        ("Comment", ""),
        ("Dosimetrist", dosimetrist),
        ("PrimaryCTImageSetID", Bare(str(spec.image_set_id))),
        ("FusionIDArray", Node()),
        ("PrimaryImageType", "Images"),
        ("PinnacleVersionDescription", "Pinnacle 16.2"),
        ("IsNewPlanPrefix", Bare("1")),
        ("PlanIsLocked", Bare("0")),
        ("OKForSyntegraInLaunchpad", Bare("0")),
        ("ObjectVersion", _object_version(spec.created, spec.written, spec.modified, sep=spec.stamp_sep)),
    ])


def _uid(patient_id: int, *parts: int) -> str:
    return "1.2.826.0.1.3680043.10.1138." + ".".join(str(p) for p in (patient_id, *parts))


def write_patient(
    root: Path,
    institution_dir: str = "Institution_1",
    patient_id: int = 1,
    *,
    last_name: str = "LAST",
    first_name: str = "FIRST",
    mrn: str = "000123",
    middle_name: str = "",
    plans: Sequence[PlanSpec] | None = None,
    image_sets: Sequence[ImageSetSpec] | None = None,
    encoding: str = "utf-8",
    mount: str = "Mount_0",
    oncologist: str = "TEST, MD",
    header_times: tuple[Stamp, Stamp, Stamp] | None = None,
    truncate_patient_file: bool = False,
    mrn_unquoted: bool = False,
    seed: int = 0,
) -> PatientRecord:
    """Write ``<root>/<institution_dir>/<mount>/Patient_<patient_id>/`` and return what was written.

    ``plans`` and ``image_sets`` left out give one plan ``PLAN A`` and one tiny CT; ``[]`` gives
    none. All text files of the patient are written in ``encoding`` (``"gb18030"`` for a Chinese
    site's files, ``"utf-8"`` for newer ones, ``"latin-1"`` for old European ones).
    ``header_times`` (create, write, last modified) default to the first scan and the last edit.
    ``truncate_patient_file`` cuts the Patient file inside its PlanList, as a full disk or a killed
    save leaves it. ``mrn_unquoted`` writes the Patient file's ``MedicalRecordNumber = 000123;`` as
    a bare word (a reader must keep it a string, leading zeros and all). ``seed`` varies the voxel noise.
    """
    plans = [PlanSpec(0, "PLAN A")] if plans is None else plans
    image_sets = [ImageSetSpec(0)] if image_sets is None else image_sets
    tps_path = f"{institution_dir}/{mount}/Patient_{patient_id}"
    folder = root / tps_path
    folder.mkdir(parents=True, exist_ok=True)
    writer = _Writer(encoding)
    last_edit = max([p.last_write for p in plans] + [i.scanned for i in image_sets],
                    default=DEFAULT_TIME)
    if header_times is None:
        first_scan = min([i.scanned for i in image_sets], default=last_edit)
        header_times = (first_scan, last_edit, last_edit)
    header_time = _latest(*header_times)
    volume_name = _volume_name(last_name, first_name, middle_name)

    image_bytes = 0
    for spec in image_sets:
        image_bytes += _write_image_set(writer, folder, spec, patient_id=patient_id, mrn=mrn,
                                        volume_name=volume_name, seed=_seed_of(seed, patient_id, spec.image_set_id))
    for spec in plans:
        if spec.directory:
            _write_plan(writer, folder / f"Plan_{spec.plan_id}", spec, patient_id=patient_id,
                        volume_name=volume_name, mrn=mrn, last_name=last_name, first_name=first_name)

    text = dumps(patient_node(
        patient_id=patient_id, tps_path=tps_path, last_name=last_name, first_name=first_name,
        middle_name=middle_name, mrn=mrn, oncologist=oncologist, plans=plans, image_sets=image_sets,
        header_times=header_times, mrn_unquoted=mrn_unquoted,
    ))
    if truncate_patient_file:
        cut = text.index("PlanList ={")
        inside = text.find("PlanName", cut)
        text = text[: inside if inside > 0 else cut + len("PlanList ={")]  # ends mid-block, braces unclosed
    writer.text(folder / "Patient", text, header_time)
    writer.touched(folder, header_time)
    for path, when in writer.stamps:
        set_mtime(path, when)
    return PatientRecord(
        path=folder, tps_path=tps_path, institution_dir=institution_dir, patient_id=patient_id,
        last_name=last_name, first_name=first_name, middle_name=middle_name, mrn=mrn, encoding=encoding,
        oncologist=oncologist, last_modified=header_time, image_bytes=image_bytes,
        files=[p for p, _ in writer.stamps if p != folder],
    )


# --- image sets ----------------------------------------------------------------------------------


def _header_text(spec: ImageSetSpec, *, patient_id: int, mrn: str, volume_name: str) -> str:
    """``ImageSet_<n>.header``: Pinnacle's tab-indented ``key = number;`` and ``key : text`` lines."""
    pixdim = 50.0 / spec.x_dim  # a 50 cm field of view
    z_pixdim = 0.3
    when = stamp(spec.scanned)
    numbers = {
        "byte_order": "0", "read_conversion": None, "write_conversion": None, "t_dim": "0",
        "x_dim": str(spec.x_dim), "y_dim": str(spec.y_dim), "z_dim": str(spec.z_dim), "datatype": "1",
        "bitpix": "16", "bytes_pix": "2", "vol_max": "0.000000", "vol_min": "0.000000",
        "t_pixdim": "0.000000", "x_pixdim": f"{pixdim:.6f}", "y_pixdim": f"{pixdim:.6f}",
        "z_pixdim": f"{z_pixdim:.6f}", "t_start": "0.000000", "x_start": f"{-25.0:.6f}",
        "y_start": f"{-25.0:.6f}", "z_start": f"{-z_pixdim * spec.z_dim / 2:.6f}", "z_time": "0.000000",
    }
    lines = []
    for key, value in numbers.items():
        lines.append(f'\t{key} = "";' if value is None else f"\t{key} = {value};")
    labels = [
        ("dim_units", ""), ("voxel_type", ""), ("id", None), ("vis_only", None), ("data_type", ""),
        ("vol_type", ""), ("db_name", volume_name), ("medical_record", ""), ("originator", ""), ("date", ""),
        ("scanner_id", ""), ("patient_position", "HFS"), ("orientation", None), ("scan_acquisition", None),
        ("comment", ""), ("fname_format", ""), ("manufacturer", "GE MEDICAL SYSTEMS"),
        ("model", "LightSpeed RT16"), ("study_id", str(patient_id)), ("exam_id", str(100000 + patient_id)),
        ("patient_id", mrn), ("modality", spec.modality), ("series_UID", _uid(patient_id, spec.image_set_id, 1)),
        ("Series_Description", spec.series_description), ("Station_Name", "ctrt"), ("KVP", "120"),
        ("SeriesDateTime", when), ("Version", "16.2"),
    ]
    for key, value in labels:
        if value is None:
            lines.append(f"\t{key} = 0;")
        else:
            lines.append(f"\t{key} : {_header_word(value)}")
    lines += ["\tcouch_pos = 0.000000;", "\tcouch_height = 28.100000;", f"\tSeriesNumber = {spec.image_set_id + 1};",
              "\timage_diameter = 500.000000;"]
    return "\n".join(lines) + "\n"


def _header_word(value: str) -> str:
    """A ``key : text`` value must not hold what ends a Pinnacle statement or opens a comment."""
    for bad in ("/*", "//", "=", ";", ",", '"', "{", "}", "\\"):
        value = value.replace(bad, " ")
    return value


def _image_info_text(spec: ImageSetSpec, *, patient_id: int) -> str:
    z0 = -0.3 * spec.z_dim / 2
    series = _uid(patient_id, spec.image_set_id, 1)
    blocks = []
    for index in range(spec.z_dim):
        position = z0 + 0.3 * index
        instance = _uid(patient_id, spec.image_set_id, 3, index + 1)
        blocks.append(("ImageInfo", Node([
            ("TablePosition", Bare(f"{position:.6f}")),
            ("CouchPos", Bare(f"{-position:g}")),
            ("SliceNumber", Bare(str(index + 1))),
            ("SeriesUID", series),
            ("StudyInstanceUID", _uid(patient_id, spec.image_set_id, 0)),
            ("FrameUID", _uid(patient_id, spec.image_set_id, 2)),
            ("ClassUID", "1.2.840.10008.5.1.4.1.1.2" if spec.modality == "CT" else "1.2.840.10008.5.1.4.1.1.4"),
            ("InstanceUID", instance),
            ("SUVScale", Bare("1")),
            ("ColorLUTScale", Bare("1")),
            ("DICOMFileName", f"{spec.modality}_{instance}.dcm"),
            ("AcquisitionTime", spec.scanned.strftime("%H%M%S")),
            ("ImageTime", spec.scanned.strftime("%H%M%S")),
        ])))
    return dumps(blocks)


def _write_image_set(writer: _Writer, folder: Path, spec: ImageSetSpec, *, patient_id: int, mrn: str,
                     volume_name: str, seed: int) -> int:
    base = folder / f"ImageSet_{spec.image_set_id}"
    when = spec.scanned
    writer.text(base.with_suffix(".header"), _header_text(spec, patient_id=patient_id, mrn=mrn,
                                                         volume_name=volume_name), when)
    writer.text(base.with_suffix(".ImageInfo"), _image_info_text(spec, patient_id=patient_id), when)
    writer.text(base.with_suffix(".ImageSet"), dumps(_image_set_entry(spec, patient_id=patient_id, mrn=mrn)), when)
    if not spec.write_img:
        return 0
    img = base.with_suffix(".img")
    volume = Volume(spec.x_dim, spec.y_dim, spec.z_dim)
    if spec.noise_only:
        written = write_noise_volume(img, volume, seed=seed)
    else:
        written = write_ct_volume(img, volume, seed=seed, region=spec.region)
    writer.touched(img, when)
    return written


# --- plans ---------------------------------------------------------------------------------------


def _write_plan(writer: _Writer, folder: Path, spec: PlanSpec, *, patient_id: int, volume_name: str, mrn: str,
                last_name: str, first_name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    when = spec.last_write
    versions = _object_version(spec.created, spec.written, spec.modified, sep=spec.stamp_sep, tool="Pinnacle")
    physicist, dosimetrist = PLANNERS[(patient_id + spec.plan_id) % len(PLANNERS)]
    writer.text(folder / "plan.PlanInfo", dumps(Node([
        ("PatientName", f"{last_name}^{first_name}"),
        ("MedicalRecordNumber", mrn),
        ("PlanName", spec.name),
        ("Physicist", physicist),
        ("Dosimetrist", dosimetrist),
        ("Attending", ""),
        ("Comment", ""),
        ("PrimaryImageSetID", Bare(str(spec.image_set_id))),
        ("PlanID", Bare(str(spec.plan_id))),
        ("ObjectVersion", versions),
    ])), when)
    writer.text(folder / "plan.PatientSetup", dumps(Node([
        ("Position", "On back (supine)"),
        ("Orientation", "Head First Into Scanner"),
        ("TableMotion", "Table Moves Into Scanner"),
        ("ProductionLevel", Bare("1")),
        ("ObjectVersion", versions),
    ])), when)
    trials, binaries = _trials(spec, patient_id=patient_id, volume_name=volume_name, versions=versions)
    writer.text(folder / "plan.Trial", dumps(trials), when)
    for number, data in binaries:
        writer.binary(folder / f"plan.Trial.binary.{number:03d}", data, when)
    writer.text(folder / "plan.Points", dumps(Node([("Poi", _poi("iso", volume_name, versions))])), when)
    writer.text(folder / "plan.roi", _roi_text(spec, volume_name=volume_name), when)
    if spec.junk:
        writer.binary(folder / ".auto.plan.Trial.binary.001", binaries[0][1], when)
        writer.text(folder / "plan.ErrorLog", "Dose computation: 0 errors\n", when)
        writer.text(folder / "plan.Transcript", f"Plan {spec.name} opened\nPlan saved\n", when)
    writer.touched(folder, when)


def _trials(spec: PlanSpec, *, patient_id: int, volume_name: str,
            versions: Node) -> tuple[Node, list[tuple[int, bytes]]]:
    """``plan.Trial`` (one ``Trial`` block per trial name) and its dose volumes, numbered across the file."""
    rng = np.random.default_rng(_seed_of("trial", patient_id, spec.plan_id))
    nx, ny, nz = DOSE_GRID
    binaries: list[tuple[int, bytes]] = []
    trials = []
    for trial_index, trial_name in enumerate(spec.trials):
        machine, energy = _MACHINES[(patient_id + trial_index) % len(_MACHINES)]
        beams = []
        for beam_index in range(spec.beams):
            number = len(binaries) + 1
            binaries.append((number, _dose_volume(rng)))
            gantry = (beam_index * 360 // spec.beams + 180) % 360
            beams.append(("Beam", Node([
                ("Name", f"{beam_index + 1:02d} G{gantry}"),
                ("IsocenterName", "iso"),
                ("PrescriptionName", trial_name),
                ("UsePoiForPrescriptionPoint", Bare("1")),
                ("PrescriptionPointName", "iso"),
                ("MachineNameAndVersion", f"{machine}: 2023-06-01 10:00:00"),
                ("Modality", "Photons"),
                ("MachineEnergyName", energy),
                ("SetBeamType", "Step & Shoot MLC" if trial_index % 2 == 0 else "Dynamic Arc"),
                ("ComputationVersion", "Pinnacle v16.2"),
                ("CPManager", Node([("CPManagerObject", Node([
                    ("NumberOfControlPoints", Bare("1")),
                    ("ControlPointList", Node([("#0", Node([
                        ("Gantry", Bare(str(gantry))),
                        ("Couch", Bare("0")),
                        ("Collimator", Bare("0")),
                        ("LeftJawPosition", Bare(f"{rng.uniform(3, 8):.1f}")),
                        ("RightJawPosition", Bare(f"{rng.uniform(3, 8):.1f}")),
                        ("TopJawPosition", Bare(f"{rng.uniform(3, 10):.1f}")),
                        ("BottomJawPosition", Bare(f"{rng.uniform(3, 10):.1f}")),
                    ]))])),
                ]))])),
                ("DoseVolume", Bare(f"\\XDR:{number}\\")),
                ("Weight", Bare(f"{100 / spec.beams:g}")),
                ("MonitorUnitsValid", Bare("1")),
                ("FieldID", f"{beam_index + 1:02d}"),
                ("DoseRate", Bare("600")),
            ])))
        fractions = int(rng.choice([5, 15, 25, 28, 30]))
        requested_mu = int(rng.integers(150, 600))
        prescription_dose = int(rng.choice([180, 200, 250, 300, 500]))
        for _, beam in beams:
            # Pinnacle 16 writes each beam's share of the prescription (cGy per fraction) and its dose per MU
            # at the prescription point; pymedphys scales the beam's dose volume by them.
            assert isinstance(beam, Node)
            beam.items.append(("MonitorUnitInfo", _monitor_unit_info(prescription_dose / spec.beams)))
        trials.append(("Trial", Node([
            ("Name", trial_name),
            ("PatientRepresentation", Node([
                ("PatientVolumeName", volume_name),
                ("CtToDensityName", "CT_DENSITY_01"),
                ("CtToDensityVersion", "2023-06-01 10:00:00"),
                ("OutsidePatientIsCtNumber", Bare("0")),
                ("OutsidePatientAirThreshold", Bare("0.6")),
            ])),
            ("DoseGrid .VoxelSize .X", Bare("0.4")),
            ("DoseGrid .VoxelSize .Y", Bare("0.4")),
            ("DoseGrid .VoxelSize .Z", Bare("0.4")),
            ("DoseGrid .Dimension .X", Bare(str(nx))),
            ("DoseGrid .Dimension .Y", Bare(str(ny))),
            ("DoseGrid .Dimension .Z", Bare(str(nz))),
            ("DoseGrid .Origin .X", Bare(f"{-nx * 0.2:g}")),
            ("DoseGrid .Origin .Y", Bare(f"{-ny * 0.2:g}")),
            ("DoseGrid .Origin .Z", Bare(f"{-nz * 0.2:g}")),
            ("RecordDoseData", Bare("\\XDR:0\\")),
            ("PrescriptionList", Node([("Prescription", Node([
                ("Name", trial_name),
                ("RequestedMonitorUnitsPerFraction", Bare(str(requested_mu))),
                ("PrescriptionDose", Bare(str(prescription_dose))),
                ("PrescriptionPercent", Bare("95")),
                ("NumberOfFractions", Bare(str(fractions))),
                ("PrescriptionPoint", "iso"),
                ("Method", "Prescribe"),
                ("NormalizationMethod", "Point Dose"),
                ("PrescriptionPeriod", "Per Fraction"),
            ]))])),
            ("BeamList", Node(beams)),
            ("ObjectVersion", versions),
            ("CourseID", Bare("1")),
            ("HasDose", Bare("1")),
        ])))
    return Node(trials), binaries


def _monitor_unit_info(beam_dose: float) -> Node:
    """A beam's ``MonitorUnitInfo`` as Pinnacle 16 writes it (its first keys and the output factors)."""
    return Node([
        ("PrescriptionDose", Bare(f"{beam_dose:g}")),
        ("SourceToPrescriptionPointDistance", Bare("100")),
        ("TotalTransmissionFraction", Bare("1")),
        ("TransmissionDescription", ""),
        ("NormalizedDose", Bare("1.1")),
        ("CollimatorOutputFactor", Bare("1")),
        ("PhantomOutputFactor", Bare("1")),
    ])


def _dose_volume(rng: np.random.Generator) -> bytes:
    """A smooth dose cloud (cGy per MU-ish), float32 big-endian as XDR stores it."""
    nx, ny, nz = DOSE_GRID
    z, y, x = np.ogrid[-1.0:1.0:complex(0, nz), -1.0:1.0:complex(0, ny), -1.0:1.0:complex(0, nx)]
    cx, cy = rng.uniform(-0.3, 0.3, size=2)
    dose = rng.uniform(0.5, 1.2) * np.exp(-(((x - cx) ** 2 + (y - cy) ** 2) / 0.25 + z ** 2 / 0.8))
    return dose.astype(">f4").tobytes()


def _poi(name: str, volume_name: str, versions: Node) -> Node:
    return Node([
        ("Name", name),
        ("XCoord", Bare("0.5")),
        ("YCoord", Bare("1.2")),
        ("ZCoord", Bare("0")),
        ("Radius", Bare("1")),
        ("Color", "red"),
        ("CoordSys", "CT"),
        ("ObjectVersion", versions),
        ("VolumeName", volume_name),
        ("PoiInterpretedType", "ISOCENTER"),
        ("IsLocked", Bare("0")),
    ])


def _roi_text(spec: PlanSpec, *, volume_name: str) -> str:
    """``plan.roi`` in Pinnacle's own layout (``key: text`` lines, ``points={ x y z ... };`` curves)."""
    written = stamp(spec.last_write)
    safe_volume = _header_word(volume_name)
    out = [
        "// Region of Interest file",
        f"// Data set: {safe_volume}",
        f"// File created: {written}",
        "",
        " file_stamp={",
        f"       write_date: {written}",
        "    write_program: Pinnacle Treatment Planning System",
        "    write_version: 16.2",
        "  }; // End of file_stamp",
    ]
    for roi_index, (name, color, radius) in enumerate((("BODY", "yellow", 12.0), ("PTV", "red", 3.0),
                                                        ("SPINALCORD", "green", 0.8))):
        out += [
            "//-----------------------------------------------------",
            f"//  Beginning of ROI: {name}",
            "//-----------------------------------------------------",
            "",
            " roi={",
            f"           name: {name}",
            f"    volume_name: {safe_volume}",
            f"           color:           {color}",
            "           flags =          135168;",
            "           num_curve = 3;",
        ]
        for curve in range(3):
            z = -0.3 + 0.3 * curve
            angles = np.linspace(0.0, 2 * np.pi, 12, endpoint=False)
            points = [f"{radius * np.cos(a) + 0.1 * roi_index:g} {radius * 0.7 * np.sin(a):g} {z:g}" for a in angles]
            out += [
                # Pinnacle's banner before each curve; readers such as pymedphys count curves by it.
                "//----------------------------------------------------",
                f"//  ROI: {name}",
                f"//  Curve {curve + 1} of 3",
                "//----------------------------------------------------",
                "               curve={",
                "                       flags =       131092;",
                "                       block_size =  32;",
                f"                       num_points =  {len(points)};",
                "points={",
                *points,
                f" }};  // End of points for curve {curve + 1}",
                f"}}; // End of curve {curve + 1}",
            ]
        out.append(f"        }}; // End of ROI {name}")
    return "\n".join(out) + "\n"


# --- the Institution file ------------------------------------------------------------------------


def _patient_lite(record: PatientRecord) -> Node:
    description = "&&".join([record.last_name, record.first_name, record.middle_name, record.mrn,
                             record.oncologist, stamp(record.last_modified)])
    return Node([
        ("PatientID", Bare(str(record.patient_id))),
        ("PatientPath", record.tps_path),
        ("MountPoint", record.tps_path.split("/")[1]),
        ("FormattedDescription", description),
        ("DirSize", Bare(f"{record.image_bytes / 1e6:.3f}")),
    ])


def _institution_items(group: GroupSpec, when: dt.datetime) -> list[tuple[str, object]]:
    return [
        ("InstitutionID", Bare(str(group.institution_id))),
        ("InstitutionPath", group.dir_name),
        ("PinnInstitutionPath", group.dir_name),
        ("Name", group.name),
        ("StreetAddress", ""),
        ("City", ""),
        ("Country", ""),
        ("PatientLiteList", Node([("PatientLite", _patient_lite(r)) for r in group.patients])),
        ("MountPointList", Node([("SimpleString", Node([("String", "Mount_0")]))])),
        ("DefaultMountPoint", "Mount_0"),
        ("ObjectVersion", _object_version(when, when, when)),
    ]


def write_institution_file(root: Path, groups: Sequence[GroupSpec], form: Literal["blocks", "bare"] = "blocks", *,
                           encoding: str = "utf-8", when: dt.datetime | None = None) -> Path:
    """Write ``<root>/Institution``: one ``Institution ={ };`` block per group, or (``form="bare"``,
    exactly one group) the keys at the top level as a single-institution Pinnacle writes them."""
    if form not in ("blocks", "bare"):
        raise ValueError(f"form must be 'blocks' or 'bare', not {form!r}")
    if form == "bare" and len(groups) != 1:
        raise ValueError(f"the bare Institution form holds exactly one institution, not {len(groups)}")
    if when is None:
        when = max((r.last_modified for g in groups for r in g.patients), default=DEFAULT_TIME)
    if form == "bare":
        content = Node(_institution_items(groups[0], when))
    else:
        content = Node([("Institution", Node(_institution_items(g, when))) for g in groups])
    path = Path(root) / "Institution"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(dumps(content).encode(encoding))
    set_mtime(path, when)
    return path
