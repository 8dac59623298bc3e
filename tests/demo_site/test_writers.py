"""demo_site's writers as the test suite and the benches use them: small trees, later edits, R&V data.

The contract and reader tests elsewhere stand on these functions, so their defaults and options
are pinned here: what a default patient holds, the byte-level options (unquoted MRN, incompressible
images), the edits (truncation, a later save) and the R&V writers' traps and determinism.
"""
from __future__ import annotations

import datetime as dt
import gzip
import sqlite3

import pydicom
import pytest

from demo_site import (
    GroupSpec, ImageSetSpec, PlanSpec, edit_file, truncate_file, write_institution_file, write_patient,
)
from demo_site.rv import (
    MOSAIQ_TABLES, OLD_SITE_VERSION, UID_PADDING, mosaiq_rows, rt_record_dataset, rv_plan, save_dicom, write_csv,
    write_mosaiq, write_mosaiq_tables, write_rt_plan, write_rt_record,
)
from pinnacle.syntax import decode, parse


def _node(path):
    return parse(decode(path.read_bytes())[0])


# --- Pinnacle trees ------------------------------------------------------------------------------


def test_a_default_patient_is_small_readable_and_dated(tmp_path):
    record = write_patient(tmp_path)
    assert record.tps_path == "Institution_1/Mount_0/Patient_1"
    patient = _node(record.path / "Patient")
    assert (patient.get_str("LastName"), patient.get_str("FirstName"), patient.get_str("MedicalRecordNumber")) == (
        "LAST", "FIRST", "000123")
    [plan] = patient.get_node("PlanList").get_all("Plan")
    assert plan.get_str("PlanName") == "PLAN A"
    assert plan.get_node("ObjectVersion").get_str("CreateTimeStamp") == "2019-03-01 10:00:00"
    assert [t.get_str("Name") for t in _node(record.path / "Plan_0" / "plan.Trial").get_all("Trial")] == ["Trial_1"]
    assert (record.path / "ImageSet_0.img").stat().st_size == 4 * 4 * 3 * 2 == record.image_bytes
    assert '\tz_dim = 3;' in (record.path / "ImageSet_0.header").read_text()


def test_empty_lists_mean_none(tmp_path):
    record = write_patient(tmp_path, plans=[], image_sets=[])
    patient = _node(record.path / "Patient")
    assert patient.get_node("PlanList").get_all("Plan") == [] and record.image_bytes == 0
    assert sorted(p.name for p in record.path.iterdir()) == ["Patient"]


def test_mrn_unquoted_keeps_its_leading_zeros_on_disk(tmp_path):
    quoted = write_patient(tmp_path, patient_id=1, mrn="000123")
    bare = write_patient(tmp_path, patient_id=2, mrn="000123", mrn_unquoted=True)
    assert 'MedicalRecordNumber = "000123";' in (quoted.path / "Patient").read_text()
    assert "MedicalRecordNumber = 000123;" in (bare.path / "Patient").read_text()


def test_noise_only_images_cannot_be_compressed_and_are_reproducible(tmp_path):
    spec = ImageSetSpec(0, x_dim=64, y_dim=64, z_dim=4, noise_only=True)
    first = write_patient(tmp_path / "a", image_sets=[spec], seed=3).path / "ImageSet_0.img"
    again = write_patient(tmp_path / "b", image_sets=[spec], seed=3).path / "ImageSet_0.img"
    ct = write_patient(tmp_path / "c", image_sets=[ImageSetSpec(0, x_dim=64, y_dim=64, z_dim=4)]).path
    data = first.read_bytes()
    assert len(data) == 64 * 64 * 4 * 2 and data == again.read_bytes()
    assert len(gzip.compress(data)) > 0.99 * len(data)
    ct_data = (ct / "ImageSet_0.img").read_bytes()
    assert len(gzip.compress(ct_data)) < 0.8 * len(ct_data)


def test_both_institution_file_forms(tmp_path):
    one, two = write_patient(tmp_path, "Institution_1", 1), write_patient(tmp_path, "Institution_2", 2)
    blocks = _node(write_institution_file(tmp_path, [GroupSpec(1, "A", [one]), GroupSpec(2, "B", [two])]))
    assert [b.get_str("Name") for b in blocks.get_all("Institution")] == ["A", "B"]
    bare = _node(write_institution_file(tmp_path, [GroupSpec(1, "A", [one])], form="bare"))
    assert bare.get_str("Name") == "A" and "Institution" not in bare


# --- edits ---------------------------------------------------------------------------------------


def test_truncate_file_after_a_marker_or_to_a_length(tmp_path):
    path = write_patient(tmp_path, plans=[PlanSpec(0, "A"), PlanSpec(1, "B")]).path / "Patient"
    truncate_file(path, after='PlanName = "B";')
    assert path.read_text().endswith('PlanName = "B";')
    truncate_file(path, keep=60)
    assert path.stat().st_size == 60
    with pytest.raises(ValueError, match="is not in"):
        truncate_file(path, after="no such text")
    with pytest.raises(ValueError, match="exactly one"):
        truncate_file(path, keep=1, after="x")


def test_edit_file_appends_and_moves_the_mtime_on_from_its_own(tmp_path):
    path = write_patient(tmp_path).path / "Plan_0" / "plan.roi"
    before = path.stat()
    edit_file(path, append=b"// edited\n")
    after = path.stat()
    assert path.read_bytes().endswith(b"// edited\n") and after.st_size == before.st_size + 10
    assert after.st_mtime_ns - before.st_mtime_ns == 10_000_000_000
    edit_file(path, seconds_later=1)
    assert path.stat().st_size == after.st_size and path.stat().st_mtime_ns - after.st_mtime_ns == 1_000_000_000


# --- R&V data ------------------------------------------------------------------------------------


def test_rv_plan_defaults_and_its_derived_uid():
    first = dt.datetime(2024, 3, 4, 9)
    plan = rv_plan("000123", "LT BREAST", first, course=1)
    assert plan.fractions == [first, first + dt.timedelta(days=1)] and plan.first_delivery == first
    assert (plan.patient_name, plan.site_name) == ("LAST, FIRST", "LT BREAST")
    assert plan.created == first - dt.timedelta(days=7)
    assert plan.uid == rv_plan("000123", "LT BREAST", first, course=1).uid
    assert plan.uid != rv_plan("000123", "LT BREAST", first, course=2).uid
    assert len(plan.uid) < UID_PADDING  # so MOSAIQ's fixed-width column pads it with spaces
    never = rv_plan("1", "QA ONLY", None, qa_runs=[first])
    assert never.fractions == [] and never.first_delivery is None and never.created == first - dt.timedelta(days=7)
    with pytest.raises(ValueError, match="created="):
        rv_plan("1", "NOTHING", None)


def test_csv_writes_first_deliveries_only_in_their_order(tmp_path):
    plans = [rv_plan("2", "LATER", dt.datetime(2024, 3, 5, 9)), rv_plan("1", "EARLIER", dt.datetime(2024, 3, 4, 9)),
             rv_plan("3", "NEVER", None, qa_runs=[dt.datetime(2024, 3, 1, 9)])]
    text = write_csv(tmp_path / "rv.csv", plans, encoding="utf-8").read_text(encoding="utf-8")
    assert text.splitlines() == [
        "mrn,patient_name,plan_label,course,first_delivery,plan_uid,machine,tps",
        f"1,\"LAST, FIRST\",EARLIER,,2024-03-04T09:00:00,{plans[1].uid},TrueBeam1,Pinnacle3",
        f"2,\"LAST, FIRST\",LATER,,2024-03-05T09:00:00,{plans[0].uid},TrueBeam1,Pinnacle3",
    ]


def test_mosaiq_rows_hold_the_traps_and_match_the_database(tmp_path):
    first = dt.datetime(2024, 3, 4, 9)
    plans = [rv_plan("7", "PELVIS", first, course=2, old_site_course=1, qa_runs=[first - dt.timedelta(days=2)]),
             rv_plan("", "NO MRN", first, last_name="NO", first_name="MRN"),
             rv_plan("8", "SITE ONLY", first, label_in_rtplan=False)]
    rows = mosaiq_rows(plans)
    assert {p for p, _ in rows["Ident"]} == {p for p, last, _ in rows["Patient"] if last != "NO"}
    assert sorted(ida for _, ida in rows["Ident"]) == ["7", "8"]  # the patient without an MRN has no Ident row
    old = [row for row in rows["Site"] if row[2] == OLD_SITE_VERSION]
    assert len(old) == 1
    under_old = [row for row in rows["Dose_Hst"] if row[3] == old[0][0]]
    assert len(under_old) == 2 * plans[0].beams and all(row[5] == 0 for row in under_old)
    assert sum(row[5] for row in rows["Dose_Hst"]) == plans[0].beams  # one QA run, every beam
    assert all(row[4].endswith(" ") and len(row[4]) == UID_PADDING for row in rows["TxField"])
    assert "SITE ONLY" in {row[5] for row in rows["Site"]} and len(rows["RtPlan"]) == 2

    path = write_mosaiq(tmp_path / "m.sqlite", plans)
    connection = sqlite3.connect(path)
    try:
        for table in MOSAIQ_TABLES:
            assert connection.execute(f"SELECT * FROM {table}").fetchall() == rows[table], table
        again = sqlite3.connect(":memory:")
        assert write_mosaiq_tables(again, plans) == rows
        again.close()
    finally:
        connection.close()


def test_single_dicom_files(tmp_path):
    plan = rv_plan("000123", "LT BREAST", dt.datetime(2024, 3, 4, 9, 30))
    rp = write_rt_plan(tmp_path / "new", plan)
    rt = write_rt_record(tmp_path / "new", plan, 2, plan.fractions[1])
    assert (rp.name, rt.name) == (f"RP.{plan.uid}.dcm", f"RT.{plan.uid}.2.dcm")
    assert pydicom.dcmread(rp).RTPlanLabel == "LT BREAST"
    record = pydicom.dcmread(rt)
    assert (record.SOPInstanceUID, record.TreatmentDate, record.TreatmentTime) == (
        f"{plan.uid}.9.2", "20240305", "093000")
    assert record.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID == plan.uid
    edited = rt_record_dataset(plan, 1, plan.fractions[0])
    edited.TimezoneOffsetFromUTC = "+0100"
    assert pydicom.dcmread(save_dicom(edited, tmp_path / "a" / "b" / "x.dcm")).TimezoneOffsetFromUTC == "+0100"
