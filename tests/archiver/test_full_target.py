"""A storage target that runs out of space is one patient's ×, never a crashed command (issue #19, defect 3).

On a real, tiny tmpfs: every write failure of the folder target, on close and flush too, is a storage
error; ``manage.py archive`` then reports the patient as ``error`` with the reason, exits 1 with its JSON,
keeps the originals, and leaves no temporary file behind."""
from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from connectors.storage import StorageError
from connectors.storage.local import FileStorage
from demo_site import GroupSpec, ImageSetSpec, PlanSpec, write_institution_file, write_patient
from tests.tmpfs import mounted_tmpfs
from tests.factories import InstitutionFactory, StorageTargetFactory


@pytest.fixture
def full_disk(tmp_path):
    """A 256 KiB tmpfs (root only); skipped, with the reason, where mounting is not allowed."""
    with mounted_tmpfs(tmp_path / "tiny-array", "256k") as mount:
        yield mount


def _fill(folder, *, leave: int = 0) -> None:
    """Fill the disk up to ``leave`` bytes free (tmpfs counts whole pages)."""
    with open(folder / "filler", "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError:
            pass
    if leave:
        (folder / "filler").write_bytes((folder / "filler").read_bytes()[:-leave])


@pytest.mark.parametrize("size", [100, 600_000])
def test_every_write_failure_of_a_full_folder_target_is_a_storage_error(full_disk, size):
    _fill(full_disk)
    with FileStorage(full_disk) as backend:
        with pytest.raises(StorageError, match="target is full"):
            backend.write_bytes("A_0001_20240101000000.tar.gz.sha256", b"x" * size)
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"], "the half-written temporary is removed"


@pytest.mark.django_db
def test_a_full_target_is_one_patients_error_and_the_command_reports_it(tmp_path, full_disk):
    root = tmp_path / "Patients"
    big = write_patient(root, patient_id=1, mrn="0001", plans=[PlanSpec(0, "A")],
                        image_sets=[ImageSetSpec(0, x_dim=256, y_dim=256, z_dim=4, noise_only=True)], seed=1)
    write_institution_file(root, [GroupSpec(1, "ToArchive", [big])], form="bare")
    inst = InstitutionFactory(code="FULL", tps_url=f"file://{root}")
    StorageTargetFactory(institution=inst, name="tiny", url=f"file://{full_disk}")

    out = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("archive", "--institution", "FULL", "--json", stdout=out)
    assert exited.value.code == 1
    [result] = json.loads(out.getvalue())["results"]
    assert result["status"] == "error" and "target is full" in result["reason"]
    assert (root / big.tps_path / "Patient").is_file(), "the originals stay"
    assert not [p.name for p in full_disk.iterdir() if p.name.startswith(".")], "no temporary left on the target"
