"""``build_demo_site``: a whole synthetic site in one folder (TPS tree, R&V sources, site.toml, expectations).

Layout of ``target``::

    tps/              Pinnacle $PATIENTS root: Institution file + Institution_<I>/Mount_0/Patient_<P>/
    rv/               first_deliveries.csv, mosaiq.sqlite, dicom/<MRN>/RP.*.dcm and RT.*.dcm
    storage/          an empty file:// storage target
    outside/          a folder outside the TPS tree that one patient's symbolic link points at
    site.toml         docs/contracts.md §6, for load_site_config
    expected.json     what curate and scan_losses should answer (nothing archived yet)

The same arguments give byte-identical files with identical mtimes (paths inside site.toml and
expected.json name ``target``, so compare two builds made in the same place).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from demo_site import rv as rv_files
from demo_site.config import SiteConfig, write_site_toml
from demo_site.scenario import (
    CLINICAL,
    GROUP_IDS,
    NON_CLINICAL,
    OTHER_TPS,
    PENDING,
    RECOURSE_GAP_DAYS,
    CastPatient,
    ExpectedDelivery,
    Scenario,
    make_scenario,
)
from demo_site.tree import (
    GroupSpec,
    ImageSetSpec,
    PatientRecord,
    PlanSpec,
    set_mtime,
    write_institution_file,
    write_patient,
)

FORMAT = "pdas-demo-site/1"
ARTEFACTS = ("tps", "rv", "storage", "outside", "site.toml", "expected.json")  # what --force replaces
RV_ENCODINGS = ("utf-8-sig", "utf-8", "gb18030")
CATEGORIES = ("first_course_lost", "first_course_unarchived", "first_course_archived", "recourse_lost",
              "recourse_unarchived", "recourse_archived")
_CODE = re.compile(r"[-A-Za-z0-9_]{1,32}\Z")
_SIZE = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[KMGT]?)(?P<binary>i?)B?\Z", re.IGNORECASE)
MAX_IMAGE_BYTES = 10 ** 12
IN_PLANE_DIMS = (512, 256, 128, 64, 32, 16)
MIN_MEAN_SLICES = 12


class DemoSiteError(ValueError):
    """Bad arguments or an unusable target folder; the message is one line naming what is wrong."""


@dataclass
class DemoSite:
    root: Path
    tps_root: Path
    institution_file: Path
    csv_path: Path
    mosaiq_path: Path
    dicom_dir: Path
    storage_dir: Path
    site_toml: Path
    expected_path: Path
    expected: dict
    image_bytes: int
    artefacts: list[tuple[str, Path, str]] = field(default_factory=list)  # (what, path, detail)


def parse_size(text: str) -> int:
    """``30M``, ``200MB``, ``2G``, ``1.5GiB`` or plain bytes; K/M/G/T are powers of 1000, KiB... of 1024."""
    match = _SIZE.match(str(text).strip())
    if not match:
        raise DemoSiteError(f"--size {text!r}: write a number with an optional unit, as in 200M or 2G")
    power = "KMGT".find(match["unit"].upper()) + 1 if match["unit"] else 0
    base = 1024 if match["binary"] else 1000
    value = int(float(match["number"]) * base ** power)
    if not 0 < value <= MAX_IMAGE_BYTES:
        raise DemoSiteError(f"--size {text!r}: must be more than 0 and at most 1T")
    return value


# --- sizing the images ---------------------------------------------------------------------------


def size_image_sets(image_sets: list[ImageSetSpec], total_bytes: int, *, seed: int) -> None:
    """Set the dimensions of ``image_sets`` so their ``.img`` files add up to ``total_bytes`` (within a slice).

    The in-plane size is the largest of 512, 256, ... that still leaves about a dozen slices per
    image set; slices are spread unevenly over the sets, as scans differ in length.
    """
    if not image_sets:
        return
    rng = random.Random(seed)
    count = len(image_sets)
    dim = next((d for d in IN_PLANE_DIMS if total_bytes / (d * d * 2) >= MIN_MEAN_SLICES * count), IN_PLANE_DIMS[-1])
    slice_bytes = dim * dim * 2
    total_slices = max(count, round(total_bytes / slice_bytes))
    weights = [rng.uniform(0.6, 1.4) for _ in image_sets]
    scale = total_slices / sum(weights)
    slices = [max(1, int(w * scale)) for w in weights]
    index = 0
    while sum(slices) != total_slices:  # hand out (or take back) what rounding left over
        step = 1 if sum(slices) < total_slices else -1
        if slices[index % count] + step >= 1:
            slices[index % count] += step
        index += 1
    for spec, z_dim in zip(image_sets, slices):
        spec.x_dim = spec.y_dim = dim
        spec.z_dim = z_dim


# --- the build -----------------------------------------------------------------------------------


def _check_arguments(*, patients: int, image_bytes: int, institution: str, rv_encoding: str) -> None:
    if not isinstance(patients, int) or patients < 0:
        raise DemoSiteError(f"--patients {patients!r}: must be a whole number, 0 or more")
    if not isinstance(image_bytes, int) or not 0 < image_bytes <= MAX_IMAGE_BYTES:
        raise DemoSiteError(f"image size {image_bytes!r}: must be more than 0 bytes and at most 1T")
    if not _CODE.match(institution or ""):
        raise DemoSiteError(f"--institution {institution!r}: use 1-32 letters, digits, '-' or '_'")
    if rv_encoding not in RV_ENCODINGS:
        raise DemoSiteError(f"--rv-encoding {rv_encoding!r}: use one of {', '.join(RV_ENCODINGS)}")


def _prepare(target: Path, *, force: bool) -> None:
    if target.exists() and not target.is_dir():
        raise DemoSiteError(f"{target}: exists and is not a folder")
    if target.is_dir() and any(target.iterdir()):
        if not force:
            raise DemoSiteError(f"{target}: folder exists and is not empty (use --force to replace a demo site there)")
        for name in ARTEFACTS:
            path = target / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
    target.mkdir(parents=True, exist_ok=True)


def build_demo_site(
    target: Path,
    *,
    patients: int = 40,
    seed: int = 1,
    image_bytes: int = 30_000_000,
    institution: str = "DEMO",
    rv_encoding: str = "utf-8-sig",
    force: bool = False,
) -> DemoSite:
    """Write the demo site into ``target`` (which must be empty or absent unless ``force``).

    ``patients``: size of the pending-archive group (the fixed cast of curation and loss cases is
    always included, the rest are ready patients). ``image_bytes``: the total size of the
    ``.img`` files. Raises ``DemoSiteError`` for bad arguments or a non-empty target.
    """
    _check_arguments(patients=patients, image_bytes=image_bytes, institution=institution, rv_encoding=rv_encoding)
    target = Path(target).absolute()
    _prepare(target, force=force)
    scenario = make_scenario(seed=seed, patients=patients)
    size_image_sets([s for p in scenario.patients for s in p.image_sets], image_bytes, seed=seed)

    tps_root, rv_dir, storage_dir, outside = (target / n for n in ("tps", "rv", "storage", "outside"))
    for folder in (tps_root, rv_dir, storage_dir, outside):
        folder.mkdir()
    (outside / "secret.txt").write_text("Not patient data. A link in the TPS tree points here; "
                                        "PDAS must never follow it.\n", encoding="utf-8")
    records = _write_tps(tps_root, scenario, seed=seed)
    groups = [GroupSpec(gid, name, [records[p.patient_id] for p in scenario.patients
                                    if p.group == name and p.in_institution_file])
              for name, gid in sorted(GROUP_IDS.items(), key=lambda item: item[1])]
    institution_file = write_institution_file(tps_root, groups, "blocks", when=scenario.today)

    csv_path = rv_files.write_csv(rv_dir / "first_deliveries.csv", scenario.rv_plans, encoding=rv_encoding)
    # MOSAIQ's tables (docs/contracts.md §2.2) cannot say which planning system made a plan: the plans of
    # other planning systems are left out of the database, so that all three sources give the same answers.
    mosaiq_path = rv_files.write_mosaiq(rv_dir / "mosaiq.sqlite",
                                        [p for p in scenario.rv_plans if p.tps == rv_files.PINNACLE])
    dicom_dir = rv_dir / "dicom"
    dicom_files = rv_files.write_dicom(dicom_dir, scenario.rv_plans)
    config = SiteConfig(
        code=institution, tps_root=tps_root, pending_group=PENDING, clinical_groups=(CLINICAL,),
        non_clinical_groups=NON_CLINICAL, csv_path=csv_path, mosaiq_path=mosaiq_path, dicom_dir=dicom_dir,
        storage_dir=storage_dir, recourse_gap_days=RECOURSE_GAP_DAYS,
    )
    site_toml = write_site_toml(target / "site.toml", config, seed=seed)

    image_total = sum(r.image_bytes for r in records.values())
    expected = expected_dict(scenario, records, config=config, root=target, institution=institution,
                             image_bytes=image_total, image_bytes_requested=image_bytes,
                             missing=[g for g in scenario.patients if not g.in_institution_file])
    expected_path = target / "expected.json"
    expected_path.write_text(json.dumps(expected, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    _settle_mtimes(target, tps_root, scenario.today)

    deliveries = len(expected["deliveries"])
    site = DemoSite(
        root=target, tps_root=tps_root, institution_file=institution_file, csv_path=csv_path,
        mosaiq_path=mosaiq_path, dicom_dir=dicom_dir, storage_dir=storage_dir, site_toml=site_toml,
        expected_path=expected_path, expected=expected, image_bytes=image_total,
    )
    site.artefacts = [
        ("tps", tps_root, f"{len(records)} patients in {len(groups)} groups, {image_total / 1e6:.1f} MB of images"),
        ("institution-file", institution_file, f"{len(groups)} Institution blocks"),
        ("rv-csv", csv_path, f"{deliveries} first deliveries, {rv_encoding}"),
        ("rv-mosaiq", mosaiq_path, "MOSAIQ tables (SQLite)"),
        ("rv-dicom", dicom_dir, f"{len(dicom_files)} RT Plan and treatment record files"),
        ("storage", storage_dir, "empty file:// storage target"),
        ("site-toml", site_toml, f"institution {institution}"),
        ("expected", expected_path, f"{len(expected['curation'])} curation rows, {deliveries} deliveries"),
    ]
    return site


def _write_tps(tps_root: Path, scenario: Scenario, *, seed: int) -> dict[int, PatientRecord]:
    records = {}
    for patient in scenario.patients:
        record = write_patient(
            tps_root, f"Institution_{GROUP_IDS[patient.group]}", patient.patient_id,
            last_name=patient.last_name, first_name=patient.first_name, mrn=patient.mrn,
            plans=patient.plans, image_sets=patient.image_sets, encoding=patient.encoding,
            truncate_patient_file=patient.truncate_patient_file, seed=seed,
        )
        if patient.outside_link:
            # Relative, so the tree may move: Patient_P -> Mount_0 -> Institution_I -> tps -> target/outside.
            link = record.path / "Scans"
            os.symlink("../../../../outside", link, target_is_directory=True)
            set_mtime(link, record.last_modified)
            set_mtime(record.path, record.last_modified)
        records[patient.patient_id] = record
    return records


def _settle_mtimes(target: Path, tps_root: Path, when: dt.datetime) -> None:
    """Fixed mtimes for everything not inside a patient folder (those were set as they were written)."""
    institution_file = tps_root / "Institution"
    for folder, dirs, files in os.walk(target, topdown=False):
        here = Path(folder)
        if any(part.startswith("Patient_") for part in here.relative_to(target).parts):
            continue
        for name in files:
            if here / name != institution_file:
                set_mtime(here / name, when)
        for name in dirs:
            if not name.startswith("Patient_"):
                set_mtime(here / name, when)
    set_mtime(target, when)


# --- expectations --------------------------------------------------------------------------------


def _iso(value) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S") if isinstance(value, dt.datetime) else None


def _plan_entry(plan: PlanSpec) -> dict:
    created = plan.created if isinstance(plan.created, dt.datetime) else plan.written
    edited = next((v for v in (plan.modified, plan.written, plan.created) if isinstance(v, dt.datetime)), None)
    return {
        "plan_id": plan.plan_id, "name": plan.name, "trials": list(plan.trials),
        "created": _iso(created), "edited": _iso(edited),
        "has_directory": plan.directory, "in_plan_list": plan.in_plan_list, "junk_files": plan.junk,
    }


def _patient_entry(patient: CastPatient, record: PatientRecord) -> dict:
    return {
        "situation": patient.situation, "group": patient.group, "tps_path": patient.tps_path,
        "patient_id": patient.patient_id, "mrn": patient.mrn, "last_name": patient.last_name,
        "first_name": patient.first_name, "encoding": patient.encoding,
        "curation": [category for category, _ in patient.curation],
        "plans": [_plan_entry(p) for p in patient.plans],
        "image_sets": [{"image_set_id": s.image_set_id, "modality": s.modality, "images": s.z_dim,
                        "dims": [s.x_dim, s.y_dim, s.z_dim], "img_bytes": s.img_bytes} for s in patient.image_sets],
        "image_bytes": record.image_bytes,
        "truncated_patient_file": patient.truncate_patient_file,
        "in_institution_file": patient.in_institution_file,
    }


def _in_window(when: dt.datetime, window: tuple[dt.date, dt.date]) -> bool:
    return window[0] <= when.date() <= window[1]


def _delivery_entry(delivery: ExpectedDelivery, window: tuple[dt.date, dt.date]) -> dict:
    plan = delivery.rv
    recourse = delivery.category.startswith("recourse_")
    return {
        "mrn": plan.mrn, "patient_name": plan.patient_name, "plan_label": plan.label, "plan_uid": plan.uid,
        "course": plan.course, "first_delivery": _iso(plan.first_delivery), "machine": plan.machine,
        "recourse": recourse, "course_kind": "re" if recourse else "first",
        "category": delivery.category, "found_in": delivery.found_in, "tps_path": delivery.tps_path,
        "plan_id": delivery.plan_id, "case": delivery.case, "in_window": _in_window(plan.first_delivery, window),
        "tps": plan.tps, "in_mosaiq": plan.tps == rv_files.PINNACLE,
    }


def _summary(entries: list[dict]) -> dict:
    counts = {category: 0 for category in CATEGORIES}
    other_tps = 0
    for entry in entries:
        if entry["category"] == OTHER_TPS:
            other_tps += 1  # never a finding: not in the total
        else:
            counts[entry["category"]] += 1
    pending = counts["first_course_unarchived"] + counts["recourse_unarchived"]
    return {"total": sum(counts.values()), "pending": pending, **counts, "other_tps": other_tps}


def expected_dict(scenario: Scenario, records: dict[int, PatientRecord], *, config: SiteConfig, root: Path,
                  institution: str, image_bytes: int, image_bytes_requested: int,
                  missing: list[CastPatient]) -> dict:
    deliveries = sorted((_delivery_entry(d, scenario.window) for d in scenario.deliveries),
                        key=lambda e: (e["first_delivery"], e["mrn"], e["plan_uid"]))
    in_window = [d for d in deliveries if d["in_window"]]
    curation = [
        {"mrn": p.mrn, "tps_path": p.tps_path, "category": category, "reason": reason, "situation": p.situation}
        for p in scenario.patients if p.group == PENDING for category, reason in p.curation
    ]
    junk = sorted(
        f"{p.tps_path}/Plan_{plan.plan_id}/{name}"
        for p in scenario.patients for plan in p.plans if plan.junk and plan.directory
        for name in (".auto.plan.Trial.binary.001", "plan.ErrorLog", "plan.Transcript")
    )
    return {
        "format": FORMAT,
        "seed": scenario.seed,
        "institution": institution,
        "time_zone": config.time_zone,
        "today": _iso(scenario.today),
        "paths": {
            "root": str(root), "tps_root": str(config.tps_root), "site_toml": str(root / "site.toml"),
            "csv": str(config.csv_path), "mosaiq": str(config.mosaiq_path), "dicom_dir": str(config.dicom_dir),
            "storage": str(config.storage_dir), "outside": str(root / "outside"),
        },
        "rv_urls": {
            "csv": f"csv:{config.csv_path}", "mosaiq": f"mosaiq+sqlite://{config.mosaiq_path}",
            "dicom": f"dicom-dir:{config.dicom_dir}",
        },
        "pending_group": PENDING,
        "clinical_groups": [CLINICAL],
        "non_clinical_groups": list(NON_CLINICAL),
        "recourse_gap_days": RECOURSE_GAP_DAYS,
        "groups": [{"name": name, "dir": f"Institution_{gid}",
                    "patients": sum(1 for p in scenario.patients if p.group == name)}
                   for name, gid in sorted(GROUP_IDS.items(), key=lambda item: item[1])],
        "institution_file": {"form": "blocks", "missing_patient_lites": [p.tps_path for p in missing]},
        "image_bytes": image_bytes,
        "image_bytes_requested": image_bytes_requested,
        "broken_files": [f"{p.tps_path}/Patient" for p in scenario.patients if p.truncate_patient_file],
        "skipped_links": [f"{p.tps_path}/Scans" for p in scenario.patients if p.outside_link],
        "junk_files": junk,
        "patients": [_patient_entry(p, records[p.patient_id]) for p in scenario.patients],
        "curation": curation,
        "scan_window": {"from": scenario.window[0].isoformat(), "to": scenario.window[1].isoformat()},
        "deliveries": deliveries,
        "summary": _summary(in_window),
        "summary_all": _summary(deliveries),
        "rv_never_delivered": [{"mrn": p.mrn, "plan_label": p.label, "plan_uid": p.uid}
                               for p in scenario.rv_plans if not p.fractions],
    }
