"""What curation lets the archiver take: ready patients, and flagged ones a physicist acknowledged
for their current files, never unreadable, restored or duplicate ones."""
from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from inventory.models import TpsPatient
from archiver.selectors import archive_candidates
from archiver.services import archiving
from archiver.tasks import start_archive_run
from audit.models import AuditEvent
from curation.models import Acknowledgement, CurationFinding
from curation.services.acknowledge import acknowledge_finding
from curation.services.curate import run_curation
from demo_site import ImageSetSpec, PlanSpec, edit_file
from tests.factories import StorageTargetFactory

pytestmark = pytest.mark.django_db


def curate(site):
    return run_curation(institution=site.inst, actor="tester")


def candidates(site) -> set[str]:
    return set(archive_candidates(institution=site.inst).values_list("tps_path", flat=True))


def finding(run, path, category) -> CurationFinding:
    return run.findings.select_related("patient", "run__institution").get(tps_path=path, category=category)


@pytest.fixture
def physicist(django_user_model):
    return django_user_model.objects.create_user("physicist", password="x" * 12)


def test_nobody_is_archived_before_a_curation_and_only_ready_patients_after(site):
    ready = site.add(1)
    flagged = site.add(2, plans=[PlanSpec(0, "CopyOf_1_A")])
    from inventory.services.tps_sync import sync_institution

    sync_institution(institution=site.inst, actor="t")
    assert candidates(site) == set()  # never curated: not even the clean patient
    curate(site)
    assert candidates(site) == {ready}
    assert flagged not in candidates(site)


def test_an_acknowledgement_lets_the_archiver_take_the_patient_until_it_changes(site, physicist):
    path = site.add(1, first_name="", plans=[PlanSpec(0, "CopyOf_1_A"), PlanSpec(1, "A")])
    run = curate(site)
    assert candidates(site) == set()

    ack = acknowledge_finding(finding=finding(run, path, "naming"), user=physicist, note="anonymised phantom")
    assert candidates(site) == set()  # the transitional finding still stands
    acknowledge_finding(finding=finding(run, path, "transitional"), user=physicist, note="kept on purpose")
    assert candidates(site) == {path}
    assert ack.username == "physicist" and ack.fingerprint == site.row(path).fingerprint
    event = AuditEvent.objects.filter(event="curation.acknowledge").latest("id")
    assert event.mrns == ["000001"] and event.actor == "physicist" and event.detail["note"] == "kept on purpose"

    # A repeat curation of the same files keeps the acknowledgement.
    run = curate(site)
    assert candidates(site) == {path} and run.counts["needs_person"] == 0

    # Any change to the patient's files voids it, even before curation runs again.
    edit_file(site.root / path / "Plan_1" / "plan.roi", append=b"\n")
    from inventory.services.tps_sync import sync_institution

    sync_institution(institution=site.inst, actor="t")
    assert candidates(site) == set()
    run = curate(site)
    assert candidates(site) == set() and run.counts["needs_person"] == 1
    assert Acknowledgement.objects.filter(patient__tps_path=path).count() == 2  # kept as history


@pytest.mark.parametrize("category", ["unreadable", "restored", "duplicate"])
def test_categories_the_archiver_never_takes_cannot_be_acknowledged(site, physicist, category):
    plans = [PlanSpec(0, "A"), PlanSpec(1, "GONE", directory=False)] if category == "unreadable" else None
    path = site.add(1, plans=plans)
    run = curate(site)
    row = site.row(path)
    if category == "restored":
        archive = site.verified_archive_of(path, name="R.tar.gz")
        TpsPatient.objects.filter(pk=row.pk).update(restored_from=archive, restored_fingerprint=row.fingerprint)
        run = curate(site)
    elif category == "duplicate":
        site.verified_archive_of(path, name="D.tar.gz", source_fingerprint=row.fingerprint)
        run = curate(site)
    with pytest.raises(ValidationError, match="cannot be acknowledged"):
        acknowledge_finding(finding=finding(run, path, category), user=physicist, note="please")
    assert not Acknowledgement.objects.exists() and candidates(site) == set()


def test_an_acknowledgement_needs_a_note_the_latest_run_and_unchanged_files(site, physicist):
    path = site.add(1, plans=[PlanSpec(0, "QA")])
    old = curate(site)
    with pytest.raises(ValidationError, match="note"):
        acknowledge_finding(finding=finding(old, path, "transitional"), user=physicist, note="  ")
    new = curate(site)
    with pytest.raises(ValidationError, match="older curation run"):
        acknowledge_finding(finding=finding(old, path, "transitional"), user=physicist, note="ok")
    edit_file(site.root / path / "Patient", append=b"\n")
    from inventory.services.tps_sync import sync_institution

    sync_institution(institution=site.inst, actor="t")
    with pytest.raises(ValidationError, match="changed since this curation"):
        acknowledge_finding(finding=finding(new, path, "transitional"), user=physicist, note="ok")
    assert not Acknowledgement.objects.exists()


def test_an_acknowledged_image_only_patient_is_archived(site, physicist, tmp_path, settings):
    settings.PDAS_ARCHIVE_WORKERS = 1  # archiver threads would not see this test's uncommitted rows
    path = site.add(1, plans=[], image_sets=[ImageSetSpec(0, "CT", z_dim=5)])
    (tmp_path / "array").mkdir()
    StorageTargetFactory(institution=site.inst, name="array", url=f"file://{tmp_path / 'array'}")
    run = curate(site)
    acknowledge_finding(finding=finding(run, path, "image_only"), user=physicist, note="simulation CT, no plan")

    archive_run = archiving.prepare_archive_run(institution=site.inst, actor="tester")
    archive_run = start_archive_run(archive_run)
    task = archive_run.tasks.get()
    assert task.result == "pass", task.reason
    assert task.archive.plans.count() == 0 and not (site.root / path).exists()


def test_prepare_archive_run_curates_after_the_sync(site, tmp_path):
    ready = site.add(1)
    site.add(2, last_name="")
    run = archiving.prepare_archive_run(institution=site.inst, actor="tester")
    assert [t.patient.tps_path for t in run.tasks.select_related("patient")] == [ready]
    curation = site.inst.curation_runs.get()
    assert curation.status == "done" and curation.counts["naming"] == 1 and curation.requested_by == "tester"
