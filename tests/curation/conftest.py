"""A small pending group on disk for curation tests: one patient per situation, built per test."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from inventory.models import Archive, TpsPatient
from sites.models import Institution
from tests.archiver.pinnacle_builder import institution, write_institution_file, write_patient
from tests.factories import ArchiveFactory, InstitutionFactory


@dataclass
class Site:
    root: Path
    inst: Institution
    pending: list[str] = field(default_factory=list)
    clinical: list[str] = field(default_factory=list)

    def add(self, patient_id: int, *, group: str = "ToArchive", **kwargs) -> str:
        """Write a patient into the pending (Institution_1) or clinical (Institution_2) group."""
        number = 1 if group == "ToArchive" else 2
        kwargs.setdefault("mrn", f"{patient_id:06d}")  # distinct MRNs unless a test wants twins
        path = write_patient(self.root, institution=number, patient_id=patient_id, **kwargs)
        (self.pending if number == 1 else self.clinical).append(path)
        write_institution_file(self.root, [institution(1, "ToArchive", self.pending),
                                           institution(2, "Clinical", self.clinical)])
        return path

    def row(self, path: str) -> TpsPatient:
        return TpsPatient.objects.get(institution=self.inst, tps_path=path)

    def verified_archive_of(self, path: str, **overrides) -> Archive:
        """A verified archive whose manifest lists the patient's files as they are on disk now."""
        folder = self.root / path
        files = [{"path": p.relative_to(self.root).as_posix(), "size": p.stat().st_size,
                  "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
                 for p in sorted(folder.rglob("*")) if p.is_file()]
        row = self.row(path)
        values = {"institution": self.inst, "mrn": row.mrn, "tps_path": path, "source_fingerprint": "0" * 64,
                  "raw_bytes": sum(f["size"] for f in files), "manifest": {"format": "pdas-archive/1", "files": files},
                  "status": Archive.Status.VERIFIED, **overrides}
        return ArchiveFactory(**values)


@pytest.fixture
def site(db, tmp_path) -> Site:
    root = tmp_path / "Patients"
    root.mkdir()
    inst = InstitutionFactory(code="PUMCH", tps_url=f"file://{root}", notify_emails=["physics@example.org"])
    return Site(root=root, inst=inst)
