"""A worker SIGKILLed after its copies were verified but before the originals moved, and the stored copy
damaged before the rerun: the rerun measures the copy on its target again, never trusts the database's
"verified", and curation hands the patient back to the archiver instead of calling it a duplicate.
(Issue #19, defects 1 and 2.)"""
from __future__ import annotations

import hashlib
import time

import pytest

from archiver.models import PatientArchiveTask
from curation.models import CurationFinding
from inventory.models import Archive, ArchiveCopy, QuarantinedPatient
from tests.archiver.test_archive_crash import (  # noqa: F401 - site is a fixture
    _assert_nothing_lost, _run_to_the_end, _worker_env, park_and_kill, site,
)

pytestmark = pytest.mark.servers


@pytest.mark.parametrize("damage", ["bit flip", "truncated", "deleted"])
def test_a_copy_damaged_after_the_crash_is_measured_again_before_the_originals_move(celery_worker, site, tmp_path,
                                                                                   damage):  # noqa: F811
    park_and_kill(celery_worker, site, tmp_path, "before_removal")
    parked = Archive.objects.filter(status=Archive.Status.VERIFIED).first()  # a patient the worker had verified
    stored = site["array"] / parked.name
    assert (site["root"] / parked.tps_path).is_dir(), "killed before removal: the originals are in place"
    assert ArchiveCopy.objects.get(archive=parked).status == "verified"
    if damage == "bit flip":
        data = bytearray(stored.read_bytes())
        data[len(data) // 2] ^= 0x01
        stored.write_bytes(bytes(data))
    elif damage == "truncated":
        stored.write_bytes(stored.read_bytes()[:-4096])
    else:
        stored.unlink()

    celery_worker.restart(extra_env=_worker_env(site))
    time.sleep(2.5)  # the dead worker's claim runs out
    rerun = _run_to_the_end(site, celery_worker)

    # Curation did not call the unfinished patient a duplicate: the rerun took it.
    findings = CurationFinding.objects.filter(tps_path=parked.tps_path).order_by("-run_id", "category")
    assert findings.first().category == "ready", [(f.category, f.reasons) for f in findings]
    task = rerun.tasks.get(patient__tps_path=parked.tps_path)
    # The copy was measured again on the array and found damaged; the packed file replaced it, and only
    # then, measured whole, did the originals move.
    assert task.result == PatientArchiveTask.Result.PASS, task.reason
    copy = ArchiveCopy.objects.get(archive=task.archive)
    checks = list(copy.fixity_checks.order_by("checked_at", "pk").values_list("outcome", flat=True))
    assert checks[-2:] == ["fail", "pass"], checks
    assert hashlib.sha256((site["array"] / task.archive.name).read_bytes()).hexdigest() == task.archive.checksum
    assert QuarantinedPatient.objects.get(tps_path=parked.tps_path).moved_at is not None
    _assert_nothing_lost(site)
    names = sorted(p.name for p in site["array"].iterdir())
    assert not [n for n in names if "_2." in n or n.startswith(".")], names  # no second archive, no litter


def test_a_kill_after_packing_reuses_the_name_and_leaves_no_packed_litter(celery_worker, site, tmp_path):  # noqa: F811
    """Killed after the patient was packed but before its digest was recorded: the rerun packs again under
    the same name (no ``_2``: nothing of it reached a target) and the work folder ends empty."""
    park_and_kill(celery_worker, site, tmp_path, "packed")
    assert Archive.objects.filter(checksum="").count() >= 1

    celery_worker.restart(extra_env=_worker_env(site))
    time.sleep(2.5)
    rerun = _run_to_the_end(site, celery_worker)
    assert {t.result for t in rerun.tasks.all()} == {"pass"}, [t.reason for t in rerun.tasks.all()]
    names = sorted(p.name for p in site["array"].iterdir())
    assert len([n for n in names if n.endswith(".tar.gz")]) == 2 and not [n for n in names if "_2." in n], names
    work = site["root"] / ".pdas-work"
    assert not work.exists() or not list(work.iterdir()), list(work.iterdir())
    _assert_nothing_lost(site)


def test_a_half_upload_under_a_name_the_patient_no_longer_has_is_swept(celery_worker, site, tmp_path):  # noqa: F811
    """Killed mid-upload, then the patient is edited (its next archive has a new name): the rerun removes
    the old name's temporary from the target, and the old name's packed file from the work folder."""
    from demo_site import edit_file

    park_and_kill(celery_worker, site, tmp_path, "upload")
    assert [p.name for p in site["array"].iterdir() if p.name.endswith(".part")], "a half-upload is left"
    for path in site["paths"]:  # a later plan edit: a new time stamp in the name
        edit_file(site["root"] / path / "Patient", append=b"\n")
    for path in site["paths"]:
        site["plans"][path] = {p.relative_to(site["root"] / path).as_posix(): p.read_bytes()
                               for p in (site["root"] / path).rglob("*") if p.is_file()}

    celery_worker.restart(extra_env=_worker_env(site))
    time.sleep(2.5)
    rerun = _run_to_the_end(site, celery_worker)
    assert {t.result for t in rerun.tasks.all()} == {"pass"}, [t.reason for t in rerun.tasks.all()]
    names = sorted(p.name for p in site["array"].iterdir())
    assert not [n for n in names if n.startswith(".")], names
    work = site["root"] / ".pdas-work"
    assert not work.exists() or not list(work.iterdir()), (list(work.iterdir()), list(Archive.objects.values_list("name", "status", "checksum", "patient_id")), names)
