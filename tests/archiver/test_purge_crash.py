"""The quarantine purge killed between its re-check and the deletion, and in the middle of a deletion.

The nightly task runs on the real Celery worker, parked at the step (archiver/faults.py) and SIGKILLed;
the same steps are also hit by an exception. Then ``purge_quarantine`` runs again. Whatever happened
meanwhile to the archive's copies, each row ends purged exactly once (one ``quarantine.purge`` row, the
folder gone), or kept with its folder: whole, or reported as no longer whole. Nothing is deleted while
the archive is not safely stored, proven again by the rerun.
"""
from __future__ import annotations

import json
import shutil
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from archiver.faults import InjectedFault
from archiver.services.purge import purge_quarantine, purging_path
from archiver.tasks import purge_quarantine_task
from audit.models import AuditEvent
from audit.services import verify_chain
from connectors.tps.local import LocalTpsSource
from core.dispatch import dispatch
from inventory.models import Archive, QuarantinedPatient
from tests.archiver.crash_tools import park_task_and_kill
from tests.archiver.restore_site import tree
from tests.archiver.test_services_fixity import _archive_site


@pytest.fixture
def site(tmp_path, transactional_db):
    """Two patients archived on two file targets and quarantined, due for the purge (quarantine_days 0)."""
    inst, folders = _archive_site(tmp_path, quarantine_days=0)
    root = tmp_path / "Patients"
    rows = list(QuarantinedPatient.objects.order_by("purge_after", "pk"))  # the purge's own order
    assert len(rows) == 2 and all(row.moved_at for row in rows)
    return {"inst": inst, "root": root, "folders": folders, "rows": rows,
            "trees": {row.pk: tree(root / row.quarantine_path) for row in rows}}


def _damage_every_copy(site, archive: Archive) -> None:
    """Every copy flipped on its target after the crash: the database still says verified."""
    for folder in site["folders"].values():
        data = bytearray((folder / archive.name).read_bytes())
        data[len(data) // 2] ^= 0x01
        (folder / archive.name).write_bytes(bytes(data))


def _rerun(site) -> dict:
    out = StringIO()
    try:
        call_command("purge_quarantine", "--institution", site["inst"].code, "--json", stdout=out)
    except SystemExit as exc:
        assert exc.code == 1  # something was kept
    return json.loads(out.getvalue())


def _purges(row) -> int:
    return AuditEvent.objects.filter(event="quarantine.purge", object_id=str(row.pk)).count()


def _kill_at(step: str, celery_worker, site, tmp_path) -> QuarantinedPatient:
    park_task_and_kill(celery_worker, tmp_path, step, lambda: dispatch(purge_quarantine_task))
    parked = site["rows"][0]
    parked.refresh_from_db()
    assert parked.purged_at is None and not QuarantinedPatient.objects.filter(purged_at__isnull=False).exists()
    return parked


def _raise_at(step: str, site, monkeypatch) -> QuarantinedPatient:
    monkeypatch.setenv("PDAS_FAULT_RAISE", step)
    with LocalTpsSource(site["root"]) as source, pytest.raises(InjectedFault):
        purge_quarantine(institution=site["inst"], source=source, actor="t")
    monkeypatch.delenv("PDAS_FAULT_RAISE")
    parked = site["rows"][0]
    parked.refresh_from_db()
    assert parked.purged_at is None
    return parked


def _assert_converged(site, report: dict, *, kept: QuarantinedPatient | None) -> None:
    for row in site["rows"]:
        row.refresh_from_db()
        if kept is not None and row.pk == kept.pk:
            assert row.purged_at is None and _purges(row) == 0
            continue
        assert row.purged_at is not None and _purges(row) == 1, row.tps_path
        assert not (site["root"] / row.quarantine_path).exists()
        assert not (site["root"] / purging_path(row)).exists()
    assert sorted(p["tps_path"] for p in report["purged"]) == sorted(
        r.tps_path for r in site["rows"] if kept is None or r.pk != kept.pk)
    assert verify_chain().broken_id is None


@pytest.mark.servers
@pytest.mark.parametrize("meanwhile", ["nothing", "every copy damaged"])
def test_killed_after_the_recheck_the_rerun_proves_again_before_deleting(site, celery_worker, tmp_path, meanwhile):
    parked = _kill_at("purge_rechecked", celery_worker, site, tmp_path)
    assert parked.archive.copies.get(target__name="array-1").fixity_checks.count() >= 2  # it did re-check
    for row in site["rows"]:  # nothing deleted yet
        assert tree(site["root"] / row.quarantine_path) == site["trees"][row.pk]
    if meanwhile == "every copy damaged":
        _damage_every_copy(site, parked.archive)

    report = _rerun(site)
    if meanwhile == "nothing":
        _assert_converged(site, report, kept=None)
        return
    _assert_converged(site, report, kept=parked)
    assert [k["tps_path"] for k in report["kept"]] == [parked.tps_path]
    assert "failed its re-check before deletion" in report["kept"][0]["reason"]
    assert "no longer whole" not in report["kept"][0]["reason"]
    assert tree(site["root"] / parked.quarantine_path) == site["trees"][parked.pk], "kept whole"


def _half_deleted(site, parked: QuarantinedPatient) -> tuple[Path, dict[str, bytes]]:
    """The state a kill in the middle of ``rm -r`` leaves: the folder under its purging name, partly gone.
    Returns the folder and what is left in it."""
    assert not (site["root"] / parked.quarantine_path).exists()
    purging = site["root"] / purging_path(parked)
    assert tree(purging) == site["trees"][parked.pk], "renamed whole, its deletion not begun"
    shutil.rmtree(sorted(p for p in purging.iterdir() if p.is_dir())[0])  # what rm had deleted when it died
    (purging / "Patient").unlink()
    left = tree(purging)
    assert left and len(left) < len(site["trees"][parked.pk])
    return purging, left


@pytest.mark.servers
@pytest.mark.parametrize("meanwhile", ["nothing", "every copy damaged"])
def test_killed_while_deleting_the_rerun_finishes_or_reports_the_originals_not_whole(site, celery_worker, tmp_path,
                                                                                    meanwhile):
    parked = _kill_at("purge_deleting", celery_worker, site, tmp_path)
    purging, left = _half_deleted(site, parked)
    if meanwhile == "every copy damaged":
        _damage_every_copy(site, parked.archive)

    report = _rerun(site)
    if meanwhile == "nothing":
        _assert_converged(site, report, kept=None)
        return
    # Never deleted further while not safely stored, and never reported as kept whole.
    _assert_converged(site, report, kept=parked)
    [kept] = report["kept"]
    assert kept["tps_path"] == parked.tps_path and "failed its re-check" in kept["reason"]
    assert "no longer whole" in kept["reason"] and purging_path(parked) in kept["reason"]
    assert tree(purging) == left, "nothing more deleted"
    keep = AuditEvent.objects.get(event="quarantine.keep", object_id=str(parked.pk))
    assert "no longer whole" in keep.detail["reason"]


@pytest.mark.parametrize("step", ["purge_rechecked", "purge_deleting"])
def test_an_exception_at_the_step_then_a_rerun_purges_each_row_once(site, monkeypatch, step):
    parked = _raise_at(step, site, monkeypatch)
    if step == "purge_deleting":
        _half_deleted(site, parked)
    else:
        assert tree(site["root"] / parked.quarantine_path) == site["trees"][parked.pk]
    report = _rerun(site)
    _assert_converged(site, report, kept=None)
    assert not report["kept"]


def test_originals_gone_before_a_purge_was_recorded_are_not_reported_kept_whole(site, monkeypatch):
    """Killed after the deletion, before the purge was recorded; the archive lost its copies meanwhile."""
    parked = site["rows"][0]
    shutil.rmtree(site["root"] / parked.quarantine_path)
    _damage_every_copy(site, parked.archive)
    report = _rerun(site)
    _assert_converged(site, report, kept=parked)
    assert "the originals are gone" in report["kept"][0]["reason"]
