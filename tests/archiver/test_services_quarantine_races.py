"""Removal races: Pinnacle writes into a patient folder between the last check and the move, and a run's
recovery meets another worker's removal in progress. Nothing archived may be lost, nothing unarchived
may be quarantined as if it were."""
from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from archiver.services import archiving
from archiver.services.quarantine import recover_interrupted_moves
from archiver.tasks import start_archive_run
from connectors.tps.local import LocalTpsSource
from inventory.models import Archive, QuarantinedPatient, TpsPatient
from inventory.services.tps_sync import sync_institution
from demo_site import GroupSpec, PlanSpec, write_institution_file, write_patient
from tests.factories import ArchiveFactory, InstitutionFactory, StorageTargetFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def pending(tmp_path):
    from curation.services.curate import run_curation

    root = tmp_path / "Patients"
    records = [write_patient(root, patient_id=n, mrn=f"00{n}", plans=[PlanSpec(0, "PLAN")]) for n in (1, 2)]
    write_institution_file(root, [GroupSpec(1, "ToArchive", records)], form="bare")
    inst = InstitutionFactory(code="Q", tps_url=f"file://{root}")
    (tmp_path / "array").mkdir()
    StorageTargetFactory(institution=inst, name="array", url=f"file://{tmp_path / 'array'}")
    sync_institution(institution=inst, actor="t")
    run_curation(institution=inst, actor="t", refresh_tps=False)
    return inst, root, [r.tps_path for r in records]


def test_a_plan_saved_between_the_last_check_and_the_move_goes_back_with_its_folder(pending, monkeypatch):
    inst, root, (first, second) = pending
    real_rename = LocalTpsSource.rename

    def save_then_rename(self, src, dst):
        if src == first and ".pdas-quarantine" in dst:
            (root / first / "Plan_0" / "plan.Trial.new").write_text("saved by a physicist just now")
        return real_rename(self, src, dst)

    monkeypatch.setattr(LocalTpsSource, "rename", save_then_rename)
    run = start_archive_run(archiving.create_archive_run(institution=inst, actor="t"))
    results = {t.patient.tps_path: (t.result, t.reason) for t in run.tasks.select_related("patient")}
    assert results[second][0] == "pass"
    assert results[first] == ("warning", f"archived, but {first} changed while it was being removed; originals "
                                         "kept (the next run archives the new state)")
    assert (root / first / "Plan_0" / "plan.Trial.new").read_text() == "saved by a physicist just now"
    assert not QuarantinedPatient.objects.filter(tps_path=first).exists()  # nothing to purge
    assert TpsPatient.objects.get(tps_path=first).present
    assert QuarantinedPatient.objects.get(tps_path=second).moved_at is not None


def test_recovery_leaves_a_removal_in_progress_alone(pending):
    inst, root, (first, _second) = pending
    patient = TpsPatient.objects.get(tps_path=first)
    archive = ArchiveFactory(institution=inst, patient=patient, mrn=patient.mrn, status=Archive.Status.VERIFIED)
    # Another worker claimed the patient and created its row; its move has not happened yet.
    row = QuarantinedPatient.objects.create(institution=inst, archive=archive, tps_path=first,
                                            quarantine_path=f".pdas-quarantine/x/{first}", total_bytes=1,
                                            purge_after=timezone.now() + dt.timedelta(days=30))
    TpsPatient.objects.filter(pk=patient.pk).update(claimed_by="worker-2",
                                                    claim_expires=timezone.now() + dt.timedelta(minutes=5))
    source = LocalTpsSource(root)
    assert recover_interrupted_moves(institution=inst, source=source, actor="t") == 0
    assert QuarantinedPatient.objects.filter(pk=row.pk).exists()

    # The worker died: its claim ran out, the move never happened, so the row goes.
    TpsPatient.objects.filter(pk=patient.pk).update(claim_expires=timezone.now() - dt.timedelta(seconds=1))
    assert recover_interrupted_moves(institution=inst, source=source, actor="t") == 1
    assert not QuarantinedPatient.objects.filter(pk=row.pk).exists()


def test_a_group_renamed_while_it_was_archived_keeps_its_originals(pending, monkeypatch):
    """Pinnacle's group of the folder is renamed (no longer the pending group) after the archive was
    verified: the folder is no longer PDAS's to remove."""
    from archiver.services.archiving import patient as patient_module

    inst, root, paths = pending
    real_checkpoint = patient_module.checkpoint

    def rename_group(name):
        if name == "before_removal":
            from demo_site import PatientRecord  # noqa: F401 - the records stay as they were written
            text = (root / "Institution").read_text(encoding="utf-8", errors="surrogateescape")
            (root / "Institution").write_text(text.replace('"ToArchive"', '"Clinical"'), encoding="utf-8",
                                             errors="surrogateescape")
        return real_checkpoint(name)

    monkeypatch.setattr(patient_module, "checkpoint", rename_group)
    run = start_archive_run(archiving.create_archive_run(institution=inst, actor="t"))
    for task in run.tasks.select_related("patient"):
        assert (task.result, task.reason) == (
            "warning", "archived, but its group is now 'Clinical', not the pending group 'ToArchive'; originals kept")
        assert (root / task.patient.tps_path).is_dir()
    assert not QuarantinedPatient.objects.exists()
