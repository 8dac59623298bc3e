"""Real archives on real targets for the restore and rebuild_index tests.

The archive pipeline runs in-process (as in test_services_archiving) over a small Pinnacle tree, so
the archives, sidecars and index rows are exactly what production writes. The tasks are created
directly, not through the archiver's candidate selection, so these fixtures do not depend on
curation rules.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

from archiver.models import ArchiveRun, PatientArchiveTask
from inventory.models import Archive, TpsPatient
from archiver.tasks import start_archive_run
from inventory.services.tps_sync import sync_institution
from demo_site import GroupSpec, ImageSetSpec, PlanSpec, write_institution_file, write_patient
from tests.factories import InstitutionFactory, StorageTargetFactory


def tree(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` by relative path, with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def everything(folder: Path) -> set[str]:
    """Every path below ``folder`` (files, folders, links), to prove nothing was written."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def mtimes(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): int(p.stat().st_mtime) for p in folder.rglob("*") if p.is_file()}


def archive_patients(inst, tps_paths: list[str]) -> dict[str, Archive]:
    """Run the archive pipeline on these patients; their verified archives by TPS path."""
    sync_institution(institution=inst, actor="test")
    run = ArchiveRun.objects.create(institution=inst, requested_by="test")
    for path in tps_paths:
        PatientArchiveTask.objects.create(run=run, patient=TpsPatient.objects.get(institution=inst, tps_path=path))
    start_archive_run(run)
    archives = {}
    for task in run.tasks.select_related("patient", "archive"):
        assert task.result == "pass", task.reason
        archives[task.patient.tps_path] = task.archive
    return archives


def build_site(tmp_path: Path, *, targets: tuple[str, ...] = ("array-1", "array-2"), big: bool = False) -> dict:
    """A TPS with three patients in ToArchive (two share MRN 000123) and one in Clinical, on file targets.

    ``big`` gives patient 7 a 3 MiB incompressible image, for the full-disk test.
    """
    root = tmp_path / "Patients"
    images = [ImageSetSpec(0, x_dim=512, y_dim=512, z_dim=6, noise_only=True)] if big else None
    zhang = write_patient(root, "Institution_1", 7, mrn="000123", last_name="张", first_name="三",
                          plans=[PlanSpec(0, "LT BREAST", trials=["sMLC"]), PlanSpec(1, "RT BREAST")],
                          image_sets=images, encoding="gb18030")
    namesake = write_patient(root, "Institution_1", 8, mrn="000123", last_name="Li", first_name="Si",
                             plans=[PlanSpec(0, "PROSTATE")])
    smith = write_patient(root, "Institution_1", 9, mrn="000124", last_name="Smith", first_name="Ann")
    clinical = write_patient(root, "Institution_2", 10, mrn="000126")
    write_institution_file(root, [GroupSpec(1, "ToArchive", [zhang, namesake, smith]),
                                  GroupSpec(2, "Clinical", [clinical])])
    inst = InstitutionFactory(code="PUMCH", tps_url=f"file://{root}")
    arrays = []
    for priority, name in enumerate(targets):
        folder = tmp_path / name
        folder.mkdir()
        arrays.append(folder)
        StorageTargetFactory(institution=inst, name=name, url=f"file://{folder}", priority=priority)
    return {"root": root, "inst": inst, "arrays": arrays, "zhang": zhang.tps_path, "namesake": namesake.tps_path,
            "smith": smith.tps_path, "clinical": clinical.tps_path}


# --- hand-made archives ---------------------------------------------------------------------------------


def _info(name: str, *, size: int = 0, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.linkname, info.mtime, info.mode = size, kind, link, 1_600_000_000, 0o644
    return info


def handmade_archive(manifest: dict, members: list[tuple], *, header: bytes = b"Name = \"x\";\n") -> bytes:
    """A gzip tar: ``Institution``, ``PDAS-MANIFEST.json``, then ``members``.

    A member is ``(name, bytes)`` for a file, ``(name, None)`` for a folder, or
    ``(name, "symlink"|"hardlink", target)`` for a link.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        manifest_data = json.dumps(manifest, ensure_ascii=False).encode()
        tar.addfile(_info("Institution", size=len(header)), io.BytesIO(header))
        tar.addfile(_info("PDAS-MANIFEST.json", size=len(manifest_data)), io.BytesIO(manifest_data))
        for member in members:
            if len(member) == 3:
                name, kind, target = member
                tar.addfile(_info(name, kind=tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE, link=target))
            elif member[1] is None:
                tar.addfile(_info(member[0], kind=tarfile.DIRTYPE))
            else:
                tar.addfile(_info(member[0], size=len(member[1])), io.BytesIO(member[1]))
    return gzip.compress(buffer.getvalue(), mtime=0)


def replace_archive(archive: Archive, arrays: list[Path], data: bytes, manifest: dict) -> None:
    """Put ``data`` on every target under the archive's name with matching sidecars and record.

    This is the worst case: the digest checks all agree, so only the member checks stand between
    the archive and the TPS.
    """
    digest = hashlib.sha256(data).hexdigest()
    for array in arrays:
        (array / archive.name).write_bytes(data)
        (array / f"{archive.name}.sha256").write_text(f"{digest} *{archive.name}\n")
        (array / f"{archive.name}.manifest.json").write_text(json.dumps(manifest, ensure_ascii=False))
    Archive.objects.filter(pk=archive.pk).update(checksum=digest, size=len(data), manifest=manifest)
    archive.refresh_from_db()
