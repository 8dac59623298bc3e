"""Reading a Pinnacle ``$PATIENTS`` tree through a TpsSource: groups, patients, plans, files.

Pure functions, no database. ``read_patient`` never raises for what is in the files: every problem
becomes a one-line entry of ``PatientInfo.errors`` naming the file (and line), and a patient with
errors is not archived automatically. Only a failure of the source itself (network, mount) raises
``TpsError``, because then nothing is known about the patient.

Times in Pinnacle files are naive local times of the site; they stay naive here and the caller
makes them aware with the institution's zone.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field

from pinnacle.syntax import Node, ParseError, decode, parse
from connectors.tps.base import TpsError, TpsSource, clean_relpath

INSTITUTION_FILE = "Institution"
PATIENT_FILE = "Patient"
TRIAL_FILE = "plan.Trial"

_GROUP_DIR = re.compile(r"Institution_\d+")
_MOUNT_DIR = re.compile(r"Mount_\d+")
_PATIENT_DIR = re.compile(r"Patient_\d+")
_PLAN_DIR = re.compile(r"Plan_(\d+)")
_TIMESTAMP = re.compile(r"(\d{4})-(\d{2})-(\d{2})[ .](\d{2}):(\d{2}):(\d{2})")


class InstitutionFileError(TpsError):
    """The root ``Institution`` file exists but cannot be parsed.

    Raised rather than falling back to directory names: a half-written header would otherwise
    rename every group at once and move patients out of their clinical groups.
    """


# --- data ----------------------------------------------------------------------------------------


@dataclass
class PlanInfo:
    plan_id: int
    name: str
    trial_names: list[str]
    created: dt.datetime | None  # naive, site-local
    edited: dt.datetime | None
    has_directory: bool


@dataclass
class ImageSetInfo:
    image_set_id: int
    modality: str
    images: int | None


@dataclass
class FileInfo:
    path: str  # relative to the TPS root, POSIX
    size: int
    mtime: float


@dataclass
class PatientLite:
    patient_id: int | None
    patient_path: str
    formatted_description: str


@dataclass
class InstitutionHeader:
    dir_name: str
    institution_id: int | None
    name: str
    patient_lites: list[PatientLite]


@dataclass
class GroupInfo:
    dir_name: str
    name: str
    patient_paths: list[str]
    skipped_links: list[str] = field(default_factory=list)  # linked Mount_/Patient_ folders, not entered


@dataclass
class PatientScan:
    """One walk of a patient folder: what would be archived, what is junk, what is not followed."""

    files: list[FileInfo]
    junk_files: list[str]
    skipped_links: list[str]  # links and special files: never read, never archived
    dirs: list[str]  # sub-folders, root-relative

    @property
    def fingerprint(self) -> str:
        return fingerprint_files(self.files)


@dataclass
class PatientInfo:
    tps_path: str
    institution_dir: str
    group: str
    tps_patient_id: int | None
    mrn: str
    last_name: str
    first_name: str
    middle_name: str
    plans: list[PlanInfo]
    image_sets: list[ImageSetInfo]
    files: list[FileInfo]
    junk_files: list[str]
    skipped_links: list[str]
    fingerprint: str
    encoding: str
    header_time: dt.datetime | None
    errors: list[str]
    warnings: list[str] = field(default_factory=list)  # worth showing, not a reason to refuse archiving
    header_read: bool = False  # the Patient file itself was parsed (names, MRN, plans are real)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def latest_edit(self) -> dt.datetime | None:
        edits = [p.edited for p in self.plans if p.edited is not None]
        return max(edits) if edits else self.header_time

    @property
    def is_readable(self) -> bool:
        return not self.errors


# --- small pieces --------------------------------------------------------------------------------


def parse_timestamp(text: str) -> dt.datetime | None:
    """``YYYY-MM-DD HH:MM:SS`` or ``YYYY-MM-DD.HH:MM:SS`` as a naive datetime; None for "" or garbage."""
    match = _TIMESTAMP.fullmatch(text.strip()) if isinstance(text, str) else None
    if not match:
        return None
    try:
        year, month, day, hour, minute, second = (int(part) for part in match.groups())
        return dt.datetime(year, month, day, hour, minute, second)
    except ValueError:  # 2020-13-45 and the like
        return None


def is_junk(name: str) -> bool:
    """Pinnacle's autosave and log files, never archived (docs/contracts.md §1.4)."""
    return name.startswith(".auto.plan.Trial.binary.") or name.endswith((".ErrorLog", ".Transcript"))


def fingerprint_files(files: list[FileInfo]) -> str:
    """sha256 over the sorted (path, size, mtime in ns) of the files: changes when any file does."""
    digest = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.path):
        digest.update(f"{f.path}\0{f.size}\0{round(f.mtime * 1_000_000_000)}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _object_times(node: Node) -> tuple[dt.datetime | None, dt.datetime | None, dt.datetime | None, list[str]]:
    """(CreateTimeStamp, WriteTimeStamp, LastModifiedTimeStamp) of an ObjectVersion and the garbage seen."""
    version = node.get_node("ObjectVersion")
    times, garbage = [], []
    for key in ("CreateTimeStamp", "WriteTimeStamp", "LastModifiedTimeStamp"):
        text = version.get_str(key).strip()
        value = parse_timestamp(text)
        if value is None and text:
            garbage.append(f"{key} {text!r}")
        times.append(value)
    return times[0], times[1], times[2], garbage


def _first(*values):
    return next((v for v in values if v is not None), None)


def _read_text(source: TpsSource, rel: str) -> tuple[str, str]:
    return decode(source.read_bytes(rel))


# --- the Institution file and the groups ---------------------------------------------------------


def read_institution_headers(source: TpsSource) -> dict[str, InstitutionHeader]:
    """The root ``Institution`` file's institutions keyed by folder name; {} when the file is missing.

    Both forms are read: one bare institution, or one ``Institution ={ };`` block per institution.
    Raises ``InstitutionFileError`` when the file exists but is not valid Pinnacle syntax.
    """
    entry = source.stat(INSTITUTION_FILE)
    if entry is None:
        return {}
    if entry.kind != "file":
        raise InstitutionFileError(f"{INSTITUTION_FILE}: is a {entry.kind}, not a file (not followed)")
    text, _ = _read_text(source, INSTITUTION_FILE)
    try:
        root = parse(text)
    except ParseError as exc:
        raise InstitutionFileError(f"{INSTITUTION_FILE}: {exc}") from None
    blocks = [b for b in root.get_all("Institution") if isinstance(b, Node)] or [root]
    headers: dict[str, InstitutionHeader] = {}
    for block in blocks:
        institution_id = block.get_int("InstitutionID")
        dir_name = (block.get_str("InstitutionPath") or block.get_str("PinnInstitutionPath")).strip().strip("/")
        if not dir_name and institution_id is not None:
            dir_name = f"Institution_{institution_id}"
        if not dir_name:
            continue  # a block naming no folder describes nothing PDAS can find
        lites = [
            PatientLite(patient_id=lite.get_int("PatientID"), patient_path=str(lite.get_str("PatientPath")),
                        formatted_description=str(lite.get_str("FormattedDescription")))
            for lite in block.get_node("PatientLiteList").get_all("PatientLite") if isinstance(lite, Node)
        ]
        headers[dir_name] = InstitutionHeader(dir_name=dir_name, institution_id=institution_id,
                                              name=str(block.get_str("Name")).strip(), patient_lites=lites)
    return headers


def list_groups(source: TpsSource, headers: dict[str, InstitutionHeader] | None = None) -> list[GroupInfo]:
    """Every ``Institution_*/Mount_*/Patient_*`` folder, grouped by institution folder.

    The folders are the truth; the header only gives each group its name (else the folder name).
    A listing that fails raises ``TpsError``: a partial answer would make patients look gone.
    """
    if headers is None:
        headers = read_institution_headers(source)
    groups = []
    for top in source.list_dir(""):
        if not _GROUP_DIR.fullmatch(top.name):
            continue
        header = headers.get(top.name)
        group = GroupInfo(dir_name=top.name, name=(header.name if header and header.name else top.name),
                          patient_paths=[])
        if top.kind == "symlink":
            group.skipped_links.append(top.path)
        if top.kind != "dir":
            groups.append(group)
            continue
        for mount in source.list_dir(top.path):
            if not _MOUNT_DIR.fullmatch(mount.name):
                continue
            if mount.kind != "dir":
                if mount.kind == "symlink":
                    group.skipped_links.append(mount.path)
                continue
            for patient in source.list_dir(mount.path):
                if not _PATIENT_DIR.fullmatch(patient.name):
                    continue
                if patient.kind == "dir":
                    group.patient_paths.append(patient.path)
                elif patient.kind == "symlink":
                    group.skipped_links.append(patient.path)
        groups.append(group)
    return groups


# --- one patient ---------------------------------------------------------------------------------


def scan_patient(source: TpsSource, tps_path: str) -> PatientScan:
    """Walk the patient folder once (lstat only, links not entered). Raises ``TpsError`` if a listing fails."""
    root = clean_relpath(tps_path)
    scan = PatientScan(files=[], junk_files=[], skipped_links=[], dirs=[])
    stack = [root]
    while stack:
        current = stack.pop()
        for entry in source.list_dir(current):
            if entry.kind == "dir":
                scan.dirs.append(entry.path)
                stack.append(entry.path)
            elif entry.kind != "file":
                scan.skipped_links.append(entry.path)
            elif is_junk(entry.name):
                scan.junk_files.append(entry.path)
            else:
                scan.files.append(FileInfo(path=entry.path, size=entry.size, mtime=entry.mtime))
    scan.files.sort(key=lambda f: f.path)
    scan.junk_files.sort()
    scan.skipped_links.sort()
    scan.dirs.sort()
    return scan


def scan_patient_files(source: TpsSource, tps_path: str) -> tuple[list[FileInfo], list[str], list[str]]:
    """(files to archive, junk files, links and special files) of one patient folder, in one walk."""
    scan = scan_patient(source, tps_path)
    return scan.files, scan.junk_files, scan.skipped_links


def _patient_dir_id(tps_path: str) -> int | None:
    match = _PATIENT_DIR.fullmatch(tps_path.rsplit("/", 1)[-1])
    return int(match.group().split("_")[1]) if match else None


def read_patient(source: TpsSource, tps_path: str, *, group: str, scan: PatientScan | None = None) -> PatientInfo:
    """Everything PDAS needs about one patient folder.

    ``scan`` reuses a walk the caller already made (its fingerprint is then the one recorded).
    Content problems land in ``errors``; only a retryable source failure raises ``TpsError``.
    """
    tps_path = clean_relpath(tps_path)
    info = PatientInfo(
        tps_path=tps_path, institution_dir=tps_path.split("/", 1)[0], group=group, tps_patient_id=None, mrn="",
        last_name="", first_name="", middle_name="", plans=[], image_sets=[], files=[], junk_files=[],
        skipped_links=[], fingerprint="", encoding="", header_time=None, errors=[],
    )
    try:
        if scan is None:
            scan = scan_patient(source, tps_path)
        info.files, info.junk_files, info.skipped_links = scan.files, scan.junk_files, scan.skipped_links
        info.fingerprint = scan.fingerprint
        header = _read_patient_file(source, info)
        if header is not None:
            _read_plans(source, info, header, scan)
        if scan.skipped_links:
            # Never read, so never archived: archiving the folder would silently leave them out.
            shown = ", ".join(_rel(info, path) for path in scan.skipped_links[:5])
            more = f" and {len(scan.skipped_links) - 5} more" if len(scan.skipped_links) > 5 else ""
            info.errors.append(f"holds links or special files that PDAS does not follow and would leave out of "
                               f"the archive: {shown}{more} (replace each by the files it points to)")
    except TpsError as exc:
        if exc.retryable:
            raise
        info.errors.append(str(exc))
    return info


def _rel(info: PatientInfo, path: str) -> str:
    """A path as a person reads it in a message: relative to the patient folder."""
    return path[len(info.tps_path) + 1:] if path.startswith(info.tps_path + "/") else path


def _read_patient_file(source: TpsSource, info: PatientInfo) -> Node | None:
    rel = f"{info.tps_path}/{PATIENT_FILE}"
    entry = source.stat(rel)
    if entry is None:
        info.errors.append(f"{PATIENT_FILE}: file is missing")
        return None
    if entry.kind != "file":
        info.errors.append(f"{PATIENT_FILE}: is a {entry.kind}, not a file (not followed)")
        return None
    text, info.encoding = _read_text(source, rel)
    try:
        header = parse(text)
    except ParseError as exc:
        info.errors.append(f"{PATIENT_FILE}: {exc}")
        return None
    info.header_read = True
    info.tps_patient_id = _first(header.get_int("PatientID"), _patient_dir_id(info.tps_path))
    info.mrn = str(header.get_str("MedicalRecordNumber")).strip()
    info.last_name = str(header.get_str("LastName")).strip()
    info.first_name = str(header.get_str("FirstName")).strip()
    info.middle_name = str(header.get_str("MiddleName")).strip()
    created, written, modified, garbage = _object_times(header)
    info.header_time = _first(modified, written, created)
    info.warnings += [f"{PATIENT_FILE}: ObjectVersion {g} is not a timestamp; ignored" for g in garbage]
    for index, image_set in enumerate(header.get_node("ImageSetList").get_all("ImageSet"), start=1):
        if not isinstance(image_set, Node):
            continue
        image_set_id = image_set.get_int("ImageSetID")
        if image_set_id is None:
            info.warnings.append(f"{PATIENT_FILE}: ImageSetList entry {index} has no ImageSetID; not listed")
            continue
        info.image_sets.append(ImageSetInfo(image_set_id=image_set_id, modality=str(image_set.get_str("Modality")),
                                            images=image_set.get_int("NumberOfImages")))
    return header


def _read_plans(source: TpsSource, info: PatientInfo, header: Node, scan: PatientScan) -> None:
    plan_dirs: dict[int, str] = {}
    kinds = {path: "dir" for path in scan.dirs} | {path: "link" for path in scan.skipped_links}
    for path, entry_kind in kinds.items():
        if path.count("/") != info.tps_path.count("/") + 1:
            continue
        match = _PLAN_DIR.fullmatch(path.rsplit("/", 1)[-1])
        if match:
            plan_dirs[int(match.group(1))] = entry_kind
    seen: set[int] = set()
    for index, plan in enumerate(header.get_node("PlanList").get_all("Plan"), start=1):
        if not isinstance(plan, Node):
            continue
        plan_id = plan.get_int("PlanID")
        name = str(plan.get_str("PlanName")).strip()
        if plan_id is None:
            info.errors.append(f"{PATIENT_FILE}: PlanList entry {index} ({name!r}) has no PlanID")
            continue
        if plan_id in seen:
            info.errors.append(f"{PATIENT_FILE}: PlanList names PlanID {plan_id} twice")
            continue
        seen.add(plan_id)
        created, written, modified, garbage = _object_times(plan)
        info.warnings += [f"{PATIENT_FILE}: plan Plan_{plan_id} {g} is not a timestamp; ignored" for g in garbage]
        kind = plan_dirs.get(plan_id)
        trial_names: list[str] = []
        if kind == "dir":
            trial_names = _read_trial_names(source, info, plan_id)
        elif kind == "link":
            info.errors.append(f"plan Plan_{plan_id} {name!r}: Plan_{plan_id} is a symbolic link (not followed)")
        else:
            info.errors.append(f"plan Plan_{plan_id} {name!r} is in PlanList but has no Plan_{plan_id} directory")
        info.plans.append(PlanInfo(
            plan_id=plan_id, name=name, trial_names=trial_names,
            created=_first(created, written), edited=_first(modified, written, created),
            has_directory=kind == "dir",
        ))
    for plan_id in sorted(set(plan_dirs) - seen):
        info.errors.append(f"Plan_{plan_id}/ is a plan directory but PlanList has no PlanID {plan_id}")


def _read_trial_names(source: TpsSource, info: PatientInfo, plan_id: int) -> list[str]:
    rel = f"{info.tps_path}/Plan_{plan_id}/{TRIAL_FILE}"
    shown = _rel(info, rel)
    entry = source.stat(rel)
    if entry is None:
        info.errors.append(f"{shown}: file is missing")
        return []
    if entry.kind != "file":
        info.errors.append(f"{shown}: is a {entry.kind}, not a file (not followed)")
        return []
    text, _ = _read_text(source, rel)
    try:
        trials = parse(text)
    except ParseError as exc:
        info.errors.append(f"{shown}: {exc}")
        return []
    return [str(trial.get_str("Name")).strip() for trial in trials.get_all("Trial") if isinstance(trial, Node)]
