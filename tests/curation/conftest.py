"""A small pending group on disk for curation tests: one patient per situation, built per test."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from inventory.models import Archive, TpsPatient
from demo_site import GroupSpec, PatientRecord, write_institution_file, write_patient
from sites.models import Institution
from tests.factories import ArchiveCopyFactory, ArchiveFactory, InstitutionFactory


@dataclass
class Site:
    root: Path
    inst: Institution
    pending: list[PatientRecord] = field(default_factory=list)
    clinical: list[PatientRecord] = field(default_factory=list)

    def add(self, patient_id: int, *, group: str = "ToArchive", **kwargs) -> str:
        """Write a patient (``demo_site.write_patient`` arguments) into the pending (Institution_1) or
        clinical (Institution_2) group; returns its TPS path."""
        number = 1 if group == "ToArchive" else 2
        kwargs.setdefault("mrn", f"{patient_id:06d}")  # distinct MRNs unless a test wants twins
        record = write_patient(self.root, f"Institution_{number}", patient_id, **kwargs)
        (self.pending if number == 1 else self.clinical).append(record)
        write_institution_file(self.root, [GroupSpec(1, "ToArchive", self.pending),
                                           GroupSpec(2, "Clinical", self.clinical)])
        return record.tps_path

    def row(self, path: str) -> TpsPatient:
        return TpsPatient.objects.get(institution=self.inst, tps_path=path)

    def verified_archive_of(self, path: str, *, copy_status: str = "verified", **overrides) -> Archive:
        """A verified archive whose manifest lists the patient's files as they are on disk now, with one
        copy on a target (verified now, unless ``copy_status`` says otherwise)."""
        folder = self.root / path
        files = [{"path": p.relative_to(self.root).as_posix(), "size": p.stat().st_size,
                  "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
                 for p in sorted(folder.rglob("*")) if p.is_file()]
        row = self.row(path)
        values = {"institution": self.inst, "mrn": row.mrn, "tps_path": path, "source_fingerprint": "0" * 64,
                  "raw_bytes": sum(f["size"] for f in files), "manifest": {"format": "pdas-archive/1", "files": files},
                  "status": Archive.Status.VERIFIED, **overrides}
        archive = ArchiveFactory(**values)
        ArchiveCopyFactory(archive=archive, status=copy_status)
        return archive


@pytest.fixture
def site(db, tmp_path) -> Site:
    root = tmp_path / "Patients"
    root.mkdir()
    inst = InstitutionFactory(code="PUMCH", tps_url=f"file://{root}", notify_emails=["physics@example.org"])
    return Site(root=root, inst=inst)
