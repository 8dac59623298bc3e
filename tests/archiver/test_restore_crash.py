"""A restore killed while staging, and after the patient moved into place but before its record was written.

The restore runs as ``restore_archive_task`` on the real Celery worker, parked at the step
(archiver/faults.py) and SIGKILLed; the same steps are also hit by an exception. Then the restore is
run again, as the broker would redeliver it (the same record) or as a user would ask for it again (a new
record, after the stale-job sweep closed the dead one). What users expect, and what must hold:
- no half patient folder in a TPS group, ever: the group holds the whole patient or nothing;
- the rerun ends with the patient in place, listed in the ``Institution`` file and marked restored,
  and every staging folder and download of the dead attempt gone;
- a further restore of the same archive is refused ("already exists") only once one really finished.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from django.utils import timezone

from archiver.models import RestoreRecord
from archiver.services.restore import RestoreError, RestoreRefused, create_restore, execute_restore, run_restore
from archiver.tasks import restore_archive_task
from audit.models import AuditEvent
from audit.services import verify_chain
from connectors.tps.local import LocalTpsSource
from core.dispatch import dispatch
from inventory.models import TpsPatient
from pdas.services.jobs import sweep_stale_jobs
from pinnacle.reader import read_institution_headers
from tests.archiver.crash_tools import park_task_and_kill
from tests.archiver.restore_site import archive_patients, build_site, tree

RERUNS = ["the task redelivered", "a new restore after the sweep"]


@pytest.fixture
def site(tmp_path, settings, transactional_db):
    settings.DATA_DIR = tmp_path / "data"  # the downloads; the worker gets the same folder
    site = build_site(tmp_path)
    path = site["zhang"]
    site["original"] = tree(site["root"] / path)
    site["archive"] = archive_patients(site["inst"], [path])[path]
    assert not (site["root"] / path).exists()  # archived and moved to the quarantine
    site["path"] = path
    return site


def _listed(site) -> bool:
    headers = read_institution_headers(LocalTpsSource(site["root"]))
    return site["path"] in [lite.patient_path for lite in headers["Institution_1"].patient_lites]


def _leftovers(site, tmp_path) -> list[str]:
    work = site["root"] / ".pdas-work"
    staged = [p.name for p in work.iterdir()] if work.exists() else []
    downloads = tmp_path / "data" / "restore"
    return staged + ([p.name for p in downloads.iterdir()] if downloads.exists() else [])


def _kill_at(step: str, celery_worker, site, tmp_path) -> RestoreRecord:
    record = create_restore(archive=site["archive"], institution=site["inst"], actor="physicist")
    park_task_and_kill(celery_worker, tmp_path, step, lambda: dispatch(restore_archive_task, site["archive"].pk,
                                                                       record.pk),
                       PDAS_DATA_DIR=str(tmp_path / "data"))
    record.refresh_from_db()
    assert record.status == RestoreRecord.Status.RUNNING
    assert (site["root"] / ".pdas-work" / f"restore-{record.pk}").is_dir()
    return record


def _rerun(site, first: RestoreRecord, how: str) -> RestoreRecord:
    if how == "the task redelivered":
        return execute_restore(record_id=first.pk)
    assert [job.pk for job in sweep_stale_jobs(now=timezone.now() + dt.timedelta(hours=3))] == [first.pk]
    return run_restore(archive=site["archive"], institution=site["inst"], actor="physicist")


def _assert_restored(site, tmp_path, record: RestoreRecord) -> None:
    assert record.status == RestoreRecord.Status.DONE, record.reason
    assert tree(site["root"] / site["path"]) == site["original"]
    assert _listed(site)
    row = TpsPatient.objects.get(institution=site["inst"], tps_path=site["path"])
    assert row.present and row.restored_from == site["archive"] and row.is_unchanged_restore
    assert _leftovers(site, tmp_path) == []
    done = AuditEvent.objects.filter(event="restore", outcome="ok")
    assert [e.object_id for e in done] == [str(record.pk)]
    assert verify_chain().broken_id is None


def _assert_a_further_restore_is_refused(site, tmp_path) -> None:
    with pytest.raises(RestoreRefused, match="already exists"):
        run_restore(archive=site["archive"], institution=site["inst"], actor="physicist")
    assert _leftovers(site, tmp_path) == []


@pytest.mark.servers
@pytest.mark.parametrize("how", RERUNS)
def test_killed_while_staging_the_group_has_nothing_and_the_rerun_restores(site, celery_worker, tmp_path, how):
    first = _kill_at("restore_staging", celery_worker, site, tmp_path)
    assert not (site["root"] / site["path"]).exists(), "nothing of the patient in the group"
    assert not _listed(site)
    staged = tree(site["root"] / ".pdas-work" / f"restore-{first.pk}")
    assert 0 < len(staged) < len(site["original"]), "killed with some files extracted"

    record = _rerun(site, first, how)
    _assert_restored(site, tmp_path, record)
    _assert_a_further_restore_is_refused(site, tmp_path)


@pytest.mark.servers
@pytest.mark.parametrize("how", RERUNS)
def test_killed_after_the_move_the_rerun_finishes_it_and_a_third_is_refused(site, celery_worker, tmp_path, how):
    first = _kill_at("restore_moved", celery_worker, site, tmp_path)
    assert tree(site["root"] / site["path"]) == site["original"], "one rename: the whole patient"
    assert not _listed(site)
    assert not TpsPatient.objects.filter(restored_from__isnull=False).exists()

    record = _rerun(site, first, how)
    _assert_restored(site, tmp_path, record)
    assert f"by restore #{first.pk}" in record.reason and record.files == len(site["original"])
    _assert_a_further_restore_is_refused(site, tmp_path)


@pytest.mark.parametrize("step", ["restore_staging", "restore_moved"])
def test_an_exception_at_the_step_then_a_new_restore_converges(site, tmp_path, monkeypatch, step):
    monkeypatch.setenv("PDAS_FAULT_RAISE", step)
    with pytest.raises(RestoreError):
        run_restore(archive=site["archive"], institution=site["inst"], actor="physicist")
    monkeypatch.delenv("PDAS_FAULT_RAISE")
    first = RestoreRecord.objects.get()
    assert first.status == RestoreRecord.Status.FAILED and "InjectedFault" in first.reason
    if step == "restore_staging":
        assert not (site["root"] / site["path"]).exists() and _leftovers(site, tmp_path) == []
    else:  # the patient is whole in place; its staging folder is kept to say so
        assert tree(site["root"] / site["path"]) == site["original"] and not _listed(site)

    record = run_restore(archive=site["archive"], institution=site["inst"], actor="physicist")
    _assert_restored(site, tmp_path, record)
    _assert_a_further_restore_is_refused(site, tmp_path)


def test_a_restore_still_running_elsewhere_is_left_alone(site, tmp_path):
    """Its staging folder is not touched by another restore of the same archive (it may be alive)."""
    alive = create_restore(archive=site["archive"], institution=site["inst"], actor="physicist")
    alive.mark_running()
    RestoreRecord.objects.filter(pk=alive.pk).update(tps_path=site["path"])
    staging: Path = site["root"] / ".pdas-work" / f"restore-{alive.pk}"
    (staging / site["path"]).mkdir(parents=True)
    (staging / site["path"] / "Patient").write_bytes(b"half")

    record = run_restore(archive=site["archive"], institution=site["inst"], actor="physicist")
    assert record.status == RestoreRecord.Status.DONE
    assert (staging / site["path"] / "Patient").read_bytes() == b"half"


def test_an_archive_run_before_the_restore_is_asked_again_leaves_the_restored_patient_alone(site, tmp_path,
                                                                                           monkeypatch):
    """A restore stopped after the patient moved into place, not yet marked restored, and an archive run
    comes first (the nightly one): the folder is the archive's content put back, not a run that stopped
    before moving its originals. Curation holds it back as a duplicate, so the archiver does not move the
    physicist's patient back into the quarantine; the restore asked again then finishes. (Found by the soak
    test, tests/soak.)"""
    from archiver.services import archiving
    from archiver.tasks import start_archive_run
    from curation.models import CurationFinding

    path = site["smith"]  # an MRN of its own: nothing else holds it back
    original = tree(site["root"] / path)
    archive = archive_patients(site["inst"], [path])[path]
    monkeypatch.setenv("PDAS_FAULT_RAISE", "restore_moved")
    with pytest.raises(RestoreError):
        run_restore(archive=archive, institution=site["inst"], actor="physicist")
    monkeypatch.delenv("PDAS_FAULT_RAISE")
    assert tree(site["root"] / path) == original

    run = start_archive_run(archiving.prepare_archive_run(institution=site["inst"], actor="nightly"))
    assert not run.tasks.filter(patient__tps_path=path).exists(), [
        (t.patient.tps_path, t.result, t.reason) for t in run.tasks.select_related("patient")]
    latest = CurationFinding.objects.filter(tps_path=path).latest("run_id").run_id
    categories = set(CurationFinding.objects.filter(tps_path=path, run_id=latest).values_list("category", flat=True))
    assert categories == {"duplicate"}, categories
    assert tree(site["root"] / path) == original

    record = run_restore(archive=archive, institution=site["inst"], actor="physicist")
    assert record.status == RestoreRecord.Status.DONE, record.reason
    assert tree(site["root"] / path) == original
    row = TpsPatient.objects.get(institution=site["inst"], tps_path=path)
    assert row.present and row.restored_from == archive and row.is_unchanged_restore
    assert _leftovers(site, tmp_path) == []
