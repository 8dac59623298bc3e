"""Incremental TPS sync: parse what changed, keep what did not, never take a failed listing for "gone"."""
from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from inventory.models import TpsPatient, TpsPlan
from archiver.selectors import present_tps_patients, tps_patients_in_group
from inventory.services.tps_sync import sync_institution
from connectors.tps.base import TpsError
from connectors.tps.local import LocalTpsSource
from audit.models import AuditEvent
from demo_site import (
    GroupSpec, PatientRecord, PlanSpec, edit_file, truncate_file, write_institution_file, write_patient,
)
from tests.factories import InstitutionFactory

pytestmark = pytest.mark.django_db

UTC = dt.timezone.utc


@pytest.fixture
def root(tmp_path) -> Path:
    path = tmp_path / "Patients"
    path.mkdir()
    return path


def _tree(root: Path, *, pending: int = 3, clinical: int = 1) -> tuple[list[PatientRecord], list[PatientRecord]]:
    """``pending`` patients in ToArchive (Institution_1) and ``clinical`` in Clinical (Institution_2)."""
    pending_records = [write_patient(root, "Institution_1", i, mrn=f"{i:06d}", last_name="张",
                                     first_name=f"三{i}", encoding="gb18030",
                                     plans=[PlanSpec(0, "LT BREAST", trials=["sMLC", "IMRT"]), PlanSpec(1, "BOOST")])
                       for i in range(1, pending + 1)]
    clinical_records = [write_patient(root, "Institution_2", 100 + i, mrn=f"C{i}") for i in range(clinical)]
    write_institution_file(root, [GroupSpec(1, "ToArchive", pending_records),
                                  GroupSpec(2, "Clinical", clinical_records)])
    return pending_records, clinical_records


def _site(root: Path, *, pending: int = 3, clinical: int = 1):
    """A TPS made by ``_tree`` and its institution; returns the institution and the TPS paths of each group."""
    pending_records, clinical_records = _tree(root, pending=pending, clinical=clinical)
    inst = InstitutionFactory(tps_url=f"file://{root}", time_zone="Asia/Shanghai")
    return inst, [r.tps_path for r in pending_records], [r.tps_path for r in clinical_records]


def test_first_sync_reads_every_group(root):
    inst, pending, clinical = _site(root, pending=2, clinical=1)
    report = sync_institution(institution=inst, actor="tester")
    assert (report.patients_seen, report.patients_parsed, report.patients_unchanged) == (3, 3, 0)
    assert report.groups == {"ToArchive": 2, "Clinical": 1}
    assert (report.patients_vanished, report.unreadable) == (0, 0)
    assert sorted(report.parsed_mrns) == ["000001", "000002", "C0"]

    patient = TpsPatient.objects.get(institution=inst, tps_path=pending[0])
    assert (patient.group, patient.mrn, patient.last_name, patient.first_name) == ("ToArchive", "000001", "张", "三1")
    assert patient.tps_patient_id == 1 and patient.present and patient.is_readable
    assert patient.image_sets == [{"image_set_id": 0, "modality": "CT", "images": 3}]
    files = [p for p in (root / pending[0]).rglob("*") if p.is_file()]
    assert patient.file_count == len(files)
    assert patient.total_bytes == sum(p.stat().st_size for p in files)
    assert patient.latest_mtime == dt.datetime.fromtimestamp(max(p.stat().st_mtime for p in files), tz=UTC)
    plans = list(patient.plans.order_by("plan_id"))
    assert [(p.plan_id, p.name, p.trial_names, p.has_directory) for p in plans] == [
        (0, "LT BREAST", ["sMLC", "IMRT"], True), (1, "BOOST", ["Trial_1"], True)]
    # 2019-03-01 10:00:00 Shanghai time is 02:00 UTC.
    assert plans[0].created == dt.datetime(2019, 3, 1, 2, 0, tzinfo=UTC)
    assert TpsPatient.objects.get(tps_path=clinical[0]).group == "Clinical"

    event = AuditEvent.objects.get(event="tps.sync")
    assert event.institution == inst.code and event.actor == "tester" and event.outcome == "ok"
    assert event.mrns == ["000001", "000002", "C0"]
    assert event.detail["patients_parsed"] == 3 and event.detail["patients_seen"] == 3


def _queries_of_unchanged_sync(root: Path, pending: int) -> tuple[int, object]:
    inst, _, _ = _site(root, pending=pending)
    sync_institution(institution=inst)
    with CaptureQueriesContext(connection) as queries:
        report = sync_institution(institution=inst)
    return len(queries), report


def test_unchanged_tree_is_not_parsed_again_in_a_bounded_number_of_queries(tmp_path, monkeypatch):
    import inventory.services.tps_sync as tps_sync

    parsed = []
    real_read = tps_sync.read_patient
    monkeypatch.setattr(tps_sync, "read_patient", lambda *a, **k: parsed.append(a[1]) or real_read(*a, **k))
    few, report = _queries_of_unchanged_sync(tmp_path / "few", pending=2)
    assert (report.patients_seen, report.patients_parsed, report.patients_unchanged) == (3, 0, 3)
    assert report.parsed_mrns == []
    parsed.clear()
    many, report = _queries_of_unchanged_sync(tmp_path / "many", pending=12)
    assert report.patients_unchanged == 13 and report.patients_parsed == 0
    assert len(parsed) == 13  # only the first sync of that site parsed
    # Bounded and the same for 3 or 13 patients. (On PostgreSQL the sync's last writes and their audit row
    # share a transaction: the audit's own atomic block adds a SAVEPOINT and its RELEASE.)
    assert many == few <= 10


def test_first_sync_queries_do_not_grow_per_patient(tmp_path):
    counts = []
    for n in (2, 12):
        inst, _, _ = _site(tmp_path / str(n), pending=n)
        with CaptureQueriesContext(connection) as queries:
            sync_institution(institution=inst)
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_touching_one_file_reparses_only_that_patient(root):
    inst, pending, _ = _site(root)
    sync_institution(institution=inst)
    before = {p.tps_path: p.fingerprint for p in TpsPatient.objects.all()}
    plan_ids = set(TpsPlan.objects.values_list("pk", flat=True))
    edit_file(root / pending[1] / "Plan_0/plan.roi", append=b"// edited\n")
    report = sync_institution(institution=inst)
    assert (report.patients_parsed, report.patients_unchanged) == (1, 3)
    assert report.parsed_mrns == ["000002"]
    after = {p.tps_path: p.fingerprint for p in TpsPatient.objects.all()}
    assert [path for path in after if after[path] != before[path]] == [pending[1]]
    # Plans are updated in place: rows (and links to them from loss findings) survive a re-read.
    assert set(TpsPlan.objects.values_list("pk", flat=True)) == plan_ids
    assert AuditEvent.objects.filter(event="tps.sync").order_by("-id").first().mrns == ["000002"]


def test_changed_plans_are_added_updated_and_removed(root):
    inst, pending, _ = _site(root, pending=1, clinical=0)
    sync_institution(institution=inst)
    kept = TpsPlan.objects.get(plan_id=0)
    shutil.rmtree(root / pending[0])
    write_patient(root, "Institution_1", 1, mrn="000001",
                  plans=[PlanSpec(0, "LT BREAST v2", modified="2019-04-01 09:00:00"), PlanSpec(5, "NEW")])
    report = sync_institution(institution=inst)
    assert report.patients_parsed == 1
    plans = {p.plan_id: p for p in TpsPlan.objects.filter(patient__tps_path=pending[0])}
    assert sorted(plans) == [0, 5]
    assert plans[0].pk == kept.pk and plans[0].name == "LT BREAST v2"
    assert plans[0].edited == dt.datetime(2019, 4, 1, 1, 0, tzinfo=UTC)


def test_deleted_patient_is_marked_absent_and_can_come_back(root, tmp_path):
    inst, pending, _ = _site(root)
    sync_institution(institution=inst)
    shutil.move(root / pending[0], tmp_path / "away")
    report = sync_institution(institution=inst)
    assert report.patients_vanished == 1 and report.patients_seen == 3
    gone = TpsPatient.objects.get(tps_path=pending[0])
    assert not gone.present and gone.mrn == "000001" and gone.plans.count() == 2
    shutil.move(tmp_path / "away", root / pending[0])
    report = sync_institution(institution=inst)
    assert report.patients_vanished == 0 and report.patients_unchanged == 4
    assert TpsPatient.objects.get(tps_path=pending[0]).present


class BrokenListing(LocalTpsSource):
    """A local source whose listing of one folder fails: a share that drops out, a folder nobody may read."""

    def __init__(self, root, fail_on: str, reason: str, *, retryable: bool):
        super().__init__(root)
        self.fail_on, self.reason, self.retryable = fail_on, reason, retryable

    def list_dir(self, rel):
        if rel == self.fail_on:
            raise TpsError(f"{self.url}: cannot list {rel or '/'}: {self.reason}", retryable=self.retryable)
        return super().list_dir(rel)


@pytest.mark.parametrize("fail_on", ["", "Institution_1/Mount_0", "Institution_1/Mount_0/Patient_2"])
def test_failing_listing_marks_nobody_absent(root, fail_on):
    inst, _, _ = _site(root)
    sync_institution(institution=inst)
    with pytest.raises(TpsError, match="Stale file handle"):
        sync_institution(institution=inst, source=BrokenListing(root, fail_on, "Stale file handle", retryable=True),
                         actor="tester")
    assert TpsPatient.objects.filter(present=True).count() == 4
    failed = AuditEvent.objects.filter(event="tps.sync").order_by("-id").first()
    assert failed.outcome == "failed" and "Stale file handle" in failed.detail["error"]


def test_empty_root_after_patients_is_unknown_not_zero(root):
    inst, _, _ = _site(root)
    sync_institution(institution=inst)
    for child in root.iterdir():  # a share that is not mounted shows an empty folder
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    with pytest.raises(TpsError, match="lists no patient folders although 4 were present") as caught:
        sync_institution(institution=inst)
    assert caught.value.retryable
    assert TpsPatient.objects.filter(present=True).count() == 4


def test_unreachable_root_raises(root, tmp_path):
    inst = InstitutionFactory(tps_url=f"file://{tmp_path}/not-mounted")
    with pytest.raises(TpsError, match="not a reachable folder"):
        sync_institution(institution=inst)
    assert AuditEvent.objects.get(event="tps.sync").outcome == "failed"


def test_unreadable_patient_keeps_what_was_read_and_is_retried(root):
    inst, pending, _ = _site(root, pending=1, clinical=0)
    sync_institution(institution=inst)
    patient_file = root / pending[0] / "Patient"
    good = patient_file.read_bytes()
    truncate_file(patient_file, after="PlanList ={")
    report = sync_institution(institution=inst)
    assert (report.patients_parsed, report.unreadable) == (1, 1)
    patient = TpsPatient.objects.get(tps_path=pending[0])
    assert "Patient: line" in patient.read_error and "PlanList" in patient.read_error
    assert patient.mrn == "000001" and patient.plans.count() == 2  # what was last read stays
    again = sync_institution(institution=inst)
    assert again.patients_parsed == 1  # unreadable patients are read every time
    patient_file.write_bytes(good)
    edit_file(patient_file)
    fixed = sync_institution(institution=inst)
    assert (fixed.patients_parsed, fixed.unreadable) == (1, 0)
    assert TpsPatient.objects.get(tps_path=pending[0]).read_error == ""


def test_folder_that_cannot_be_walked_is_unreadable_not_gone(root):
    inst, pending, _ = _site(root)
    sync_institution(institution=inst)
    denied = BrokenListing(root, f"{pending[0]}/Plan_0", "Permission denied", retryable=False)
    report = sync_institution(institution=inst, source=denied)
    assert (report.patients_seen, report.unreadable, report.patients_vanished) == (4, 1, 0)
    patient = TpsPatient.objects.get(tps_path=pending[0])
    assert patient.present and "Permission denied" in patient.read_error and patient.fingerprint == ""


def test_group_renamed_in_the_institution_file_without_reparsing(root):
    pending, clinical = _tree(root)
    inst = InstitutionFactory(tps_url=f"file://{root}", time_zone="Asia/Shanghai")
    sync_institution(institution=inst)
    write_institution_file(root, [GroupSpec(1, "待归档", pending), GroupSpec(2, "Clinical", clinical)])
    report = sync_institution(institution=inst)
    assert report.patients_parsed == 0 and report.groups["待归档"] == 3
    paths = [r.tps_path for r in pending]
    assert set(TpsPatient.objects.filter(tps_path__in=paths).values_list("group", flat=True)) == {"待归档"}


def test_restore_markers_are_left_alone(root):
    inst, pending, _ = _site(root, pending=1, clinical=0)
    sync_institution(institution=inst)
    patient = TpsPatient.objects.get(tps_path=pending[0])
    TpsPatient.objects.filter(pk=patient.pk).update(restored_fingerprint=patient.fingerprint)
    edit_file(root / pending[0] / "Patient")
    sync_institution(institution=inst)
    patient.refresh_from_db()
    assert patient.restored_fingerprint and patient.restored_fingerprint != patient.fingerprint


def test_sample_tree(pinnacle_sample):
    inst = InstitutionFactory(tps_url=f"file://{pinnacle_sample}", pending_group="16.2 Smart Enterprise")
    report = sync_institution(institution=inst)
    assert report.groups == {"16.2 Smart Enterprise": 1} and report.unreadable == 1
    patient = TpsPatient.objects.get(institution=inst)
    assert patient.mrn == "000000" and patient.tps_path == "Institution_1/Mount_0/Patient_1"
    assert "plan Plan_1 'CopyOf_1_BRAIN' is in PlanList but has no Plan_1 directory" in patient.read_error
    assert [(p.name, p.has_directory) for p in patient.plans.order_by("plan_id")] == [
        ("BRAIN", True), ("CopyOf_1_BRAIN", False)]


def test_selectors_prefetch_plans(root, django_assert_num_queries):
    inst, pending, clinical = _site(root)
    sync_institution(institution=inst)
    shutil.rmtree(root / pending[2])
    sync_institution(institution=inst)
    with django_assert_num_queries(2):
        rows = [(p.tps_path, [pl.name for pl in p.plans.all()])
                for p in tps_patients_in_group(institution=inst, group="ToArchive")]
    assert rows == [(pending[0], ["LT BREAST", "BOOST"]), (pending[1], ["LT BREAST", "BOOST"])]
    assert [p.tps_path for p in present_tps_patients(institution=inst)] == [clinical[0], *pending[:2]]
