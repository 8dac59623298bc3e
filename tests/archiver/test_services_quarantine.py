"""The quarantine: removed originals wait out their retention, then the nightly purge deletes them."""
from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from inventory.models import Archive, QuarantinedPatient
from archiver.services import archiving
from inventory.services.tps_sync import sync_institution
from archiver.tasks import purge_quarantine_task, start_archive_run
from audit.models import AuditEvent
from demo_site import GroupSpec, PlanSpec, write_institution_file, write_patient
from tests.factories import InstitutionFactory, StorageTargetFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def quarantined(tmp_path):
    from curation.services.curate import run_curation

    root = tmp_path / "Patients"
    records = [write_patient(root, patient_id=n, mrn=f"00{n}", plans=[PlanSpec(0, "PLAN")]) for n in (1, 2)]
    write_institution_file(root, [GroupSpec(1, "ToArchive", records)], form="bare")
    inst = InstitutionFactory(code="Q", tps_url=f"file://{root}", quarantine_days=30)
    (tmp_path / "array").mkdir()
    StorageTargetFactory(institution=inst, name="array", url=f"file://{tmp_path / 'array'}")
    sync_institution(institution=inst, actor="t")
    run_curation(institution=inst, actor="t", refresh_tps=False)
    run = start_archive_run(archiving.create_archive_run(institution=inst, actor="t"))
    assert {t.result for t in run.tasks.all()} == {"pass"}
    return inst, root


def test_the_nightly_task_purges_every_institution_and_skips_an_unreachable_tps(quarantined):
    inst, root = quarantined
    InstitutionFactory(code="GONE", tps_url="file:///nonexistent/Patients")  # its TPS cannot be opened
    QuarantinedPatient.objects.update(purge_after=timezone.now() - dt.timedelta(minutes=1))
    assert purge_quarantine_task.apply().get() == 2
    assert sorted(m for e in AuditEvent.objects.filter(event="quarantine.purge") for m in e.mrns) == ["001", "002"]
    assert Archive.objects.filter(status=Archive.Status.VERIFIED).count() == 2  # the archives stay


def test_both_periodic_tasks_are_scheduled_after_migrate():
    tasks = set(PeriodicTask.objects.values_list("task", flat=True))
    assert {"archiver.tasks.purge_quarantine_task", "archiver.tasks.check_archives_task",
            "lossdetect.tasks.run_scheduled_scans"} <= tasks


def test_a_configured_quarantine_inside_the_root_is_used(tmp_path):
    from archiver.services.quarantine import quarantine_root

    inst = InstitutionFactory(code="QD", tps_url=f"file://{tmp_path}/Patients",
                              quarantine_dir=f"{tmp_path}/Patients/.held")
    assert quarantine_root(inst) == ".held"
    inst.quarantine_dir = "/elsewhere"
    from connectors.tps.base import TpsError

    with pytest.raises(TpsError, match="not inside the TPS root"):
        quarantine_root(inst)
