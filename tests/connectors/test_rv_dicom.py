"""The DICOM folder R&V source (docs/contracts.md §2.3): RT Plans and RT Beams Treatment Records."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from connectors.rv import RvError, open_rv_source
from demo_site.rv import (
    rt_plan_dataset, rt_record_dataset, rv_plan, save_dicom, write_dicom, write_rt_plan, write_rt_record,
)

ZONE = ZoneInfo("Asia/Shanghai")


def read(folder):
    with open_rv_source(f"dicom-dir:{folder}", zone=ZONE) as source:
        return source.read()


def test_plan_first_delivery_is_its_earliest_treatment_record(tmp_path):
    plan = rv_plan("000123", "左乳 IMRT", dt.datetime(2024, 3, 4, 9, 30, 5), last_name="张", first_name="三",
                   machine="TrueBeam2")
    write_dicom(tmp_path / "rv", [plan])
    result = read(tmp_path / "rv")
    assert result.problems == []
    [record] = result.records
    assert (record.mrn, record.patient_name, record.plan_label, record.plan_uid, record.course, record.machine) == (
        "000123", "张, 三", "左乳 IMRT", plan.uid, None, "TrueBeam2")
    assert record.first_delivery == dt.datetime(2024, 3, 4, 9, 30, 5, tzinfo=ZONE)


def test_subfolders_undelivered_plans_and_timezone_offsets(tmp_path):
    root = tmp_path / "rv"
    delivered = rv_plan("1", "A", dt.datetime(2024, 3, 4, 9))
    write_rt_plan(root, delivered)
    record = rt_record_dataset(delivered, 1, delivered.first_delivery)
    record.TimezoneOffsetFromUTC = "+0100"
    save_dicom(record, root / "2024" / "03" / "RT.1.dcm")
    write_rt_plan(root, rv_plan("2", "NEVER TREATED", None, created=dt.datetime(2024, 3, 4, 9)))
    [only] = read(root).records
    assert only.plan_uid == delivered.uid
    assert only.first_delivery.astimezone(dt.timezone.utc) == dt.datetime(2024, 3, 4, 8, tzinfo=dt.timezone.utc)


def test_unusable_files_are_reported_and_the_rest_read(tmp_path):
    root = tmp_path / "rv"
    good = rv_plan("1", "A", dt.datetime(2024, 3, 4, 9))
    write_dicom(root, [good])
    write_rt_record(root, rv_plan("1", "A", dt.datetime(2024, 3, 4, 9), uid="1.2.3.404"), 1, dt.datetime(2024, 3, 4, 9))
    (root / "notes.txt").write_text("not dicom")
    (root / ".hidden").write_text("ignored")
    no_label = rv_plan("2", "", dt.datetime(2024, 3, 4, 9))
    write_dicom(root / "sub", [no_label])
    ct = rt_plan_dataset(rv_plan("3", "X", dt.datetime(2024, 3, 4, 9), uid="1.2.3.999"))
    ct.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"  # a CT image
    save_dicom(ct, root / "ct.dcm")
    broken = rt_record_dataset(good, 3, dt.datetime(2024, 3, 1, 9))
    with pytest.warns(UserWarning, match="Invalid value for VR DA"):
        broken.TreatmentDate = "2024-13-45"
    save_dicom(broken, root / "RT.broken.dcm")
    result = read(root)
    assert [r.plan_uid for r in result.records] == [good.uid]
    reasons = {p.where: p.reason for p in result.problems}
    assert reasons.pop("notes.txt") == "not a DICOM file"
    assert reasons.pop("ct.dcm").startswith("neither an RT Plan nor an RT Beams Treatment Record or RT Treatment "
                                            "Summary Record (SOP class 1.2.840")
    assert reasons.pop(f"sub/2/RP.{no_label.uid}.dcm") == "RT Plan without RTPlanLabel"
    assert reasons.pop("RT.broken.dcm").startswith("TreatmentDate/Time 2024-13-45")
    [(where, reason)] = reasons.items()
    assert where.startswith("RT.") and reason == "names RT Plan 1.2.3.404, which is not in the folder"


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(RvError, match="not a folder"):
        read(tmp_path / "absent")


def test_planning_system_is_the_rt_plans_never_the_treatment_records(tmp_path):
    root = tmp_path / "rv"
    pinnacle = rv_plan("1", "LT BREAST", dt.datetime(2024, 3, 4, 9))
    monaco = rv_plan("2", "PROSTATE", dt.datetime(2024, 3, 4, 10), tps="Monaco")
    unnamed = rv_plan("3", "LUNG", dt.datetime(2024, 3, 4, 11))
    write_dicom(root, [pinnacle, monaco])
    plan = rt_plan_dataset(unnamed)
    del plan.Manufacturer, plan.ManufacturerModelName  # an export that names no planning system
    save_dicom(plan, root / "3" / "RP.dcm")
    record = rt_record_dataset(unnamed, 1, unnamed.first_delivery)
    assert record.Manufacturer == "Elekta" and record.ManufacturerModelName == "MOSAIQ"  # the R&V system's
    save_dicom(record, root / "3" / "RT.dcm")
    result = read(root)
    assert result.problems == []
    assert {r.mrn: r.planning_system for r in result.records} == {
        "1": "Philips Pinnacle3", "2": "Elekta Monaco", "3": ""}
