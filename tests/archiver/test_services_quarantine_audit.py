"""A removal and its ``originals.remove`` row commit together: neither is ever stored without the other."""
from __future__ import annotations

import pytest
from django.db import DatabaseError

from archiver.services.quarantine import quarantine_patient, recover_interrupted_moves
from audit.models import AuditEvent
from connectors.tps.local import LocalTpsSource
from demo_site import GroupSpec, PlanSpec, write_institution_file, write_patient
from inventory.models import QuarantinedPatient, TpsPatient
from inventory.services.tps_sync import sync_institution
from tests.factories import ArchiveFactory, InstitutionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def verified_patient(tmp_path):
    root = tmp_path / "Patients"
    record = write_patient(root, patient_id=1, mrn="001", plans=[PlanSpec(0, "PLAN")])
    write_institution_file(root, [GroupSpec(1, "ToArchive", [record])], form="bare")
    path = record.tps_path
    inst = InstitutionFactory(code="QT", tps_url=f"file://{root}", quarantine_days=30)
    sync_institution(institution=inst, actor="t")
    patient = TpsPatient.objects.get(institution=inst, tps_path=path)
    # Archived as it is now: the removal proves the moved folder is what was archived.
    return inst, root, patient, ArchiveFactory(institution=inst, patient=patient, mrn=patient.mrn,
                                               source_fingerprint=patient.fingerprint)


def _remove(inst, root, patient, archive) -> None:
    with LocalTpsSource(root) as source:
        quarantine_patient(institution=inst, source=source, patient=patient, archive=archive,
                           institution_dir=patient.tps_path.split("/", 1)[0], actor="worker")


def _refuse(**kwargs):
    raise DatabaseError("the audit log could not be written")


def test_a_removal_whose_audit_row_fails_is_not_recorded_and_recovery_completes_it(verified_patient, monkeypatch):
    inst, root, patient, archive = verified_patient
    with monkeypatch.context() as patched:
        patched.setattr("archiver.services.quarantine.record_event", _refuse)
        with pytest.raises(DatabaseError):
            _remove(inst, root, patient, archive)

    row = QuarantinedPatient.objects.get()
    assert row.moved_at is None and TpsPatient.objects.get(pk=patient.pk).present  # rolled back with the audit row
    assert not AuditEvent.objects.filter(event="originals.remove").exists()
    assert (root / row.quarantine_path).is_dir() and not (root / patient.tps_path).exists()  # the move happened

    with LocalTpsSource(root) as source:
        assert recover_interrupted_moves(institution=inst, source=source, actor="scheduler") == 1
    row.refresh_from_db()
    assert row.moved_at is not None and not TpsPatient.objects.get(pk=patient.pk).present
    assert AuditEvent.objects.get(event="originals.remove").mrns == ["001"]


def test_an_audit_row_never_outlives_the_removal_it_records(verified_patient, monkeypatch):
    from audit.services import record_event

    def written_then_failed(**kwargs):
        record_event(**kwargs)
        raise DatabaseError("the connection was lost before the commit")

    inst, root, patient, archive = verified_patient
    monkeypatch.setattr("archiver.services.quarantine.record_event", written_then_failed)
    with pytest.raises(DatabaseError):
        _remove(inst, root, patient, archive)

    assert not AuditEvent.objects.filter(event="originals.remove").exists()
    assert QuarantinedPatient.objects.get().moved_at is None and TpsPatient.objects.get(pk=patient.pk).present
