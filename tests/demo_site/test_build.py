"""manage.py make_demo_site and demo_site: the synthetic site other tests and the bench stand on.

The expectations in expected.json are checked against the files themselves with a small,
independent reading of the rules of docs/contracts.md written here (not PDAS code), so a cast that says one thing
and writes another fails.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
import tomllib
import unicodedata
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from demo_site import (
    DemoSiteError,
    GroupSpec,
    ImageSetSpec,
    PlanSpec,
    build_demo_site,
    parse_size,
    write_institution_file,
    write_patient,
)
from demo_site import rv as rv_files
from demo_site.scenario import make_scenario
from pinnacle.syntax import ParseError, decode, parse

REPO = Path(__file__).resolve().parents[2]
SPEC_COLUMNS = ["mrn", "patient_name", "plan_label", "course", "first_delivery", "plan_uid", "machine", "tps"]
NOT_PINNACLE_TEXT = re.compile(r"(\.img|\.binary\.\d+|\.ErrorLog|\.Transcript)$")
STAMP = re.compile(r"(\d{4})-(\d{2})-(\d{2})[ .](\d{2}):(\d{2}):(\d{2})")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return build_demo_site(tmp_path_factory.mktemp("demo") / "site", patients=30, seed=7, image_bytes=4_000_000)


@pytest.fixture(scope="module")
def expected(site):
    return json.loads(site.expected_path.read_text(encoding="utf-8"))


def _read_node(path: Path):
    return parse(decode(path.read_bytes())[0])


def _stamp(text: str) -> dt.datetime | None:
    match = STAMP.fullmatch(text.strip())
    return dt.datetime(*map(int, match.groups())) if match else None


def _snapshot(root: Path) -> dict[str, tuple]:
    """Every path below root with its content digest (or link target) and mtime in ns."""
    state = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            info = path.lstat()
            if path.is_symlink():
                content = "link:" + os.readlink(path)
            elif path.is_dir():
                content = "dir"
            else:
                content = hashlib.sha256(path.read_bytes()).hexdigest()
            state[str(path.relative_to(root))] = (content, info.st_mtime_ns)
    return state


# --- determinism and size ------------------------------------------------------------------------


def test_same_seed_gives_identical_files_and_mtimes_and_another_seed_differs(tmp_path):
    target = tmp_path / "site"
    build_demo_site(target, patients=24, seed=3, image_bytes=1_500_000)
    first = _snapshot(target)
    build_demo_site(target, patients=24, seed=3, image_bytes=1_500_000, force=True)
    assert _snapshot(target) == first
    build_demo_site(target, patients=24, seed=4, image_bytes=1_500_000, force=True)
    other = _snapshot(target)
    changed = [p for p in first if p in other and first[p] != other[p]]
    assert (tmp_path / "site" / "rv" / "first_deliveries.csv").exists()
    assert "rv/first_deliveries.csv" in changed and "rv/mosaiq.sqlite" in changed
    assert any(p.endswith(".img") for p in changed)


@pytest.mark.parametrize("requested", [4_000_000, 25_000_000])
def test_size_is_honoured_within_ten_percent(tmp_path, site, requested):
    root = site.root if requested == 4_000_000 else build_demo_site(
        tmp_path / "big", patients=20, seed=2, image_bytes=requested).root
    images = list((root / "tps").rglob("*.img"))
    total = sum(p.stat().st_size for p in images)
    assert abs(total - requested) <= requested * 0.10
    expected = json.loads((root / "expected.json").read_text(encoding="utf-8"))
    assert expected["image_bytes"] == total


def test_image_files_have_the_size_the_header_gives_and_look_like_ct(site, expected):
    for patient in expected["patients"][:10]:
        folder = site.tps_root / patient["tps_path"]
        for image_set in patient["image_sets"]:
            header = _read_node(folder / f"ImageSet_{image_set['image_set_id']}.header")
            x, y, z = (header.get_int(k) for k in ("x_dim", "y_dim", "z_dim"))
            assert [x, y, z] == image_set["dims"]
            data = (folder / f"ImageSet_{image_set['image_set_id']}.img").read_bytes()
            assert len(data) == x * y * z * 2
            voxels = np.frombuffer(data, dtype="<u2")
            assert voxels.min() == 0  # air outside the body
            body = voxels[voxels > 500]
            assert 0.15 < body.size / voxels.size < 0.8 and 900 < np.median(body) < 1150  # soft tissue


# --- the Pinnacle tree ---------------------------------------------------------------------------


def test_every_text_file_parses_except_the_deliberately_broken_ones(site, expected):
    broken = set(expected["broken_files"])
    assert broken, "the cast has a truncated Patient file"
    parsed = 0
    for path in sorted(site.tps_root.rglob("*")):
        rel = str(path.relative_to(site.tps_root))
        if path.is_symlink() or path.is_dir() or NOT_PINNACLE_TEXT.search(path.name) or path.name.startswith(".auto."):
            continue
        if rel in broken:
            with pytest.raises(ParseError, match="truncated"):
                _read_node(path)
        else:
            _read_node(path)
            parsed += 1
    kinds = {p.name.split(".")[-1] for p in site.tps_root.rglob("*") if p.is_file()}
    assert {"header", "ImageInfo", "ImageSet", "PlanInfo", "Trial", "roi", "Points"} <= kinds
    assert parsed > 10 * len(expected["patients"]) // 2


def test_patient_files_say_what_expected_json_says(site, expected):
    by_situation = defaultdict(list)
    for patient in expected["patients"]:
        by_situation[patient["situation"]].append(patient)
        if patient["truncated_patient_file"]:
            continue
        folder = site.tps_root / patient["tps_path"]
        node = _read_node(folder / "Patient")
        assert node.get_str("MedicalRecordNumber") == patient["mrn"]
        assert (node.get_str("LastName"), node.get_str("FirstName")) == (patient["last_name"], patient["first_name"])
        listed = node.get_node("PlanList").get_all("Plan")
        assert [p.get_str("PlanName") for p in listed] == [p["name"] for p in patient["plans"] if p["in_plan_list"]]
        for plan in patient["plans"]:
            assert (folder / f"Plan_{plan['plan_id']}").is_dir() == plan["has_directory"]
            if plan["has_directory"]:
                trials = _read_node(folder / f"Plan_{plan['plan_id']}" / "plan.Trial").get_all("Trial")
                assert [t.get_str("Name") for t in trials] == plan["trials"] and 1 <= len(trials) <= 3
                binaries = list((folder / f"Plan_{plan['plan_id']}").glob("plan.Trial.binary.*"))
                assert binaries and all(b.stat().st_size > 0 for b in binaries)
        assert len(node.get_node("ImageSetList").get_all("ImageSet")) == len(patient["image_sets"])
    assert any(p["mrn"].startswith("00") for p in expected["patients"]), "some MRNs keep leading zeros"
    assert len({p["patient_id"] for p in expected["patients"]}) == len(expected["patients"])
    assert by_situation["image_only"][0]["plans"] == [] and by_situation["image_only"][0]["image_sets"]


def test_chinese_names_in_gb18030_and_in_utf8(site, expected):
    chinese = [p for p in expected["patients"] if re.search(r"[\u4e00-\u9fff]", p["last_name"])
               and not p["truncated_patient_file"]]
    gb = [p for p in chinese if p["encoding"] == "gb18030"]
    utf8 = [p for p in chinese if p["encoding"] == "utf-8"]
    assert gb and utf8 and any(p["last_name"] == "欧阳" for p in utf8) and any(p["last_name"] == "张" for p in gb)
    for patient in gb:
        data = (site.tps_root / patient["tps_path"] / "Patient").read_bytes()
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")
        assert f'LastName = "{patient["last_name"]}";' in data.decode("gb18030")
        assert decode(data)[1] == "gb18030"
    for patient in utf8:
        data = (site.tps_root / patient["tps_path"] / "Patient").read_bytes()
        assert f'LastName = "{patient["last_name"]}";' in data.decode("utf-8")


def test_timestamps_come_in_both_forms_and_some_are_empty(site, expected):
    seen = set()
    for patient in expected["patients"]:
        if patient["truncated_patient_file"]:
            continue
        for plan in _read_node(site.tps_root / patient["tps_path"] / "Patient").get_node("PlanList").get_all("Plan"):
            for key in ("CreateTimeStamp", "WriteTimeStamp", "LastModifiedTimeStamp"):
                value = plan.get_node("ObjectVersion").get_str(key)
                seen.add("empty" if value == "" else value[10])
    assert seen == {" ", ".", "empty"}


def test_curation_cast_is_complete_and_real(site, expected):
    pending = [p for p in expected["patients"] if p["group"] == expected["pending_group"]]
    assert len(pending) == 30
    categories = {row["category"] for row in expected["curation"]}
    # ``duplicate`` (content already in a verified archive) cannot occur before anything is archived.
    assert categories == {"ready", "naming", "transitional", "image_only", "unreadable"}
    twins = [row for row in expected["curation"] if row["reason"] == "same_mrn_as_other_patient"]
    assert {t["category"] for t in twins} == {"naming"}
    assert len(twins) == 2 and len({t["mrn"] for t in twins}) == 1 and len({t["tps_path"] for t in twins}) == 2
    situations = {p["situation"]: p for p in pending}
    assert situations["naming_empty_first_name"]["first_name"] == ""
    assert situations["naming_mrn_missing"]["mrn"] == ""
    assert "/" in situations["naming_slash_in_name"]["last_name"]
    assert "*" in situations["naming_asterisk_in_name"]["first_name"]
    names = {p["name"] for s in ("transitional_copy", "transitional_test", "transitional_qa")
             for p in situations[s]["plans"]}
    assert {"CopyOf_1_LUNG", "TEST", "QA"} <= names
    missing_dir = situations["unreadable_plan_dir_missing"]
    assert [p["has_directory"] for p in missing_dir["plans"]] == [True, False]
    (link,) = expected["skipped_links"]
    link_path = site.tps_root / link
    assert link_path.is_symlink() and not link_path.resolve().is_relative_to(site.tps_root.resolve())
    assert link_path.resolve() == (site.root / "outside").resolve()
    assert expected["junk_files"] and all((site.tps_root / j).is_file() for j in expected["junk_files"])


def test_institution_file_lists_groups_and_is_stale_for_one_patient(site, expected):
    blocks = _read_node(site.institution_file).get_all("Institution")
    assert [(b.get_str("Name"), b.get_str("InstitutionPath")) for b in blocks] == [
        (g["name"], g["dir"]) for g in expected["groups"]]
    listed = {lite.get_str("PatientPath") for b in blocks
              for lite in b.get_node("PatientLiteList").get_all("PatientLite")}
    on_disk = {p["tps_path"] for p in expected["patients"]}
    assert on_disk - listed == set(expected["institution_file"]["missing_patient_lites"]) != set()
    assert listed <= on_disk
    lite = blocks[1].get_node("PatientLiteList").get_all("PatientLite")[0]
    assert len(lite.get_str("FormattedDescription").split("&&")) == 6


def test_write_patient_and_bare_institution_file_for_small_trees(tmp_path):
    record = write_patient(tmp_path, "Institution_9", 7, last_name="张", first_name="三", mrn="000123",
                           plans=[PlanSpec(0, "LT BREAST", trials=["sMLC", "Boost"])],
                           image_sets=[ImageSetSpec(0, x_dim=16, y_dim=16, z_dim=3)], encoding="gb18030")
    assert record.tps_path == "Institution_9/Mount_0/Patient_7"
    assert (record.path / "ImageSet_0.img").stat().st_size == 16 * 16 * 3 * 2 == record.image_bytes
    path = write_institution_file(tmp_path, [GroupSpec(9, "ToArchive", [record])], form="bare")
    root = _read_node(path)
    assert root.get_str("Name") == "ToArchive" and "Institution" not in root
    assert root.get_node("PatientLiteList").get_node("PatientLite").get_str("PatientPath") == record.tps_path
    with pytest.raises(ValueError, match="exactly one"):
        write_institution_file(tmp_path, [GroupSpec(1, "A"), GroupSpec(2, "B")], form="bare")


# --- the R&V sources -----------------------------------------------------------------------------


def _rows(expected):
    return {d["plan_uid"]: d for d in expected["deliveries"]}


def test_csv_has_the_spec_columns_and_the_expected_deliveries(site, expected):
    assert site.csv_path.read_bytes().startswith(b"\xef\xbb\xbf")
    frame = pd.read_csv(site.csv_path, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert list(frame.columns) == SPEC_COLUMNS
    rows = _rows(expected)
    assert set(frame["plan_uid"]) == set(rows) and len(frame) == len(rows)
    for record in frame.to_dict("records"):
        want = rows[record["plan_uid"]]
        assert (record["mrn"], record["plan_label"], record["first_delivery"]) == (
            want["mrn"], want["plan_label"], want["first_delivery"])
        assert record["course"] == ("" if want["course"] is None else str(want["course"]))
        dt.datetime.fromisoformat(record["first_delivery"])


def test_csv_in_gb18030(tmp_path):
    plans = make_scenario(seed=5, patients=0).rv_plans
    path = rv_files.write_csv(tmp_path / "fd.csv", plans, encoding="gb18030")
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")
    frame = pd.read_csv(path, encoding="gb18030", dtype=str, keep_default_na=False)
    assert list(frame.columns) == SPEC_COLUMNS and frame["patient_name"].str.contains("张").any()


# The MOSAIQ rules of docs/contracts.md §2.2, written out here independently of connectors/rv/mosaiq.py.
SPEC_MOSAIQ_QUERY = """
WITH firsts AS (
    SELECT TRIM(tf.OriginalPlanUID) AS uid, MIN(dh.Tx_DtTm) AS first
    FROM Dose_Hst dh JOIN TxField tf ON tf.FLD_ID = dh.FLD_ID
    WHERE dh.WasQAMode = 0
    GROUP BY TRIM(tf.OriginalPlanUID)
)
SELECT DISTINCT f.uid, i.IDA, COALESCE(rp.Label, cur.Site_Name), pc.Course, f.first
FROM firsts f
JOIN Dose_Hst dh ON dh.Tx_DtTm = f.first AND dh.WasQAMode = 0
JOIN TxField tf ON tf.FLD_ID = dh.FLD_ID AND TRIM(tf.OriginalPlanUID) = f.uid
JOIN Ident i ON i.Pat_Id1 = dh.Pat_ID1
JOIN Site s ON s.SIT_ID = dh.SIT_ID
JOIN Site cur ON cur.SIT_SET_ID = s.SIT_SET_ID AND cur.Version = 0
LEFT JOIN PatCPlan pc ON pc.PCP_ID = cur.PCP_ID
LEFT JOIN DCMInstance di ON TRIM(di.SOPInstanceUID) = f.uid
LEFT JOIN RtPlan rp ON rp.DCMInstance_ID = di.DCMInstance_ID
"""


def test_mosaiq_answers_the_spec_query_with_exactly_the_expected_first_deliveries(site, expected):
    connection = sqlite3.connect(f"{site.mosaiq_path.as_uri()}?mode=ro", uri=True)
    try:
        got = {uid: (mrn, label, course, first.replace(" ", "T"))
               for uid, mrn, label, course, first in connection.execute(SPEC_MOSAIQ_QUERY)}
        padded = connection.execute("SELECT COUNT(*) FROM TxField WHERE OriginalPlanUID LIKE '% '").fetchone()[0]
        # The traps are really there: QA beams before the first real one, an old Site row under
        # the first delivery whose own course is another one, a label only in Site_Name.
        qa_earlier = connection.execute("""
            SELECT COUNT(*) FROM (SELECT TRIM(tf.OriginalPlanUID) u, MIN(dh.Tx_DtTm) a,
                                         MIN(CASE WHEN dh.WasQAMode = 0 THEN dh.Tx_DtTm END) b
                                  FROM Dose_Hst dh JOIN TxField tf ON tf.FLD_ID = dh.FLD_ID GROUP BY u)
            WHERE a < b""").fetchone()[0]
        naive = dict(connection.execute("""
            SELECT TRIM(tf.OriginalPlanUID), pc.Course FROM Dose_Hst dh
            JOIN TxField tf ON tf.FLD_ID = dh.FLD_ID JOIN Site s ON s.SIT_ID = dh.SIT_ID
            LEFT JOIN PatCPlan pc ON pc.PCP_ID = s.PCP_ID WHERE s.Version = 32000""").fetchall())
        site_only = connection.execute("SELECT COUNT(*) FROM TxField tf WHERE TRIM(tf.OriginalPlanUID) NOT IN "
                                       "(SELECT TRIM(SOPInstanceUID) FROM DCMInstance)").fetchone()[0]
    finally:
        connection.close()
    rows = {uid: d for uid, d in _rows(expected).items() if d["in_mosaiq"]}  # other planning systems are left out
    assert len(rows) < len(_rows(expected))
    assert got == {uid: (d["mrn"], d["plan_label"], d["course"], d["first_delivery"]) for uid, d in rows.items()}
    assert padded > 0 and qa_earlier > 0 and site_only > 0
    assert naive and all(got[uid][2] != course for uid, course in naive.items())
    assert not set(got) & {p["plan_uid"] for p in expected["rv_never_delivered"]}


def test_dicom_files_read_back_and_reference_the_plans(site, expected):
    plans, firsts, syntaxes, made_by = {}, {}, set(), {}
    for path in sorted(site.dicom_dir.rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        syntaxes.add(ds.file_meta.TransferSyntaxUID)
        if ds.Modality == "RTPLAN":
            plans[ds.SOPInstanceUID] = (ds.PatientID, ds.RTPlanLabel, str(ds.PatientName))
            made_by[ds.SOPInstanceUID] = ds.ManufacturerModelName
        else:
            assert (ds.Manufacturer, ds.ManufacturerModelName) == ("Elekta", "MOSAIQ")  # the R&V system's
            when = dt.datetime.strptime(ds.TreatmentDate + ds.TreatmentTime, "%Y%m%d%H%M%S")
            (ref,) = ds.ReferencedRTPlanSequence
            assert ref.ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.481.5"
            uid = ref.ReferencedSOPInstanceUID
            firsts[uid] = min(firsts.get(uid, when), when)
    assert {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"} <= syntaxes
    rows = _rows(expected)
    assert set(firsts) == set(rows) and set(firsts) <= set(plans)
    for uid, when in firsts.items():
        assert (plans[uid][0], plans[uid][1], when.isoformat()) == (
            rows[uid]["mrn"], rows[uid]["plan_label"], rows[uid]["first_delivery"])
    assert {p["plan_uid"] for p in expected["rv_never_delivered"]} == set(plans) - set(firsts)
    assert any("张" in name for _, _, name in plans.values())
    assert {uid: made_by[uid] for uid in rows} == {uid: d["tps"] for uid, d in rows.items()}  # the TPS, not the R&V


# --- the expected categories follow from the files by the rules of docs/contracts.md §3 ----------


def _normalize(label: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", label).casefold().split())[:16].rstrip()


def _tps_plans(site, expected):
    """(mrn, normalized names, creation time, group, tps_path) of every readable plan in the tree."""
    plans = []
    group_of = {g["dir"]: g["name"] for g in expected["groups"]}
    for patient_file in site.tps_root.glob("Institution_*/Mount_*/Patient_*/Patient"):
        try:
            node = _read_node(patient_file)
        except ParseError:
            continue
        folder = patient_file.parent
        for plan in node.get_node("PlanList").get_all("Plan"):
            version = plan.get_node("ObjectVersion")
            created = _stamp(version.get_str("CreateTimeStamp")) or _stamp(version.get_str("WriteTimeStamp"))
            trial_file = folder / f"Plan_{plan.get_int('PlanID')}" / "plan.Trial"
            trials = [t.get_str("Name") for t in _read_node(trial_file).get_all("Trial")] if trial_file.exists() else []
            names = {_normalize(n) for n in [plan.get_str("PlanName"), *trials]}
            tps_path = str(folder.relative_to(site.tps_root))
            plans.append((node.get_str("MedicalRecordNumber").strip(), names, created,
                          group_of[tps_path.split("/")[0]], tps_path))
    return plans


def _other_tps(record) -> bool:
    # docs/contracts.md §2.6 with the default planning systems: named, and none of them is a part of the name.
    name = record["tps"].casefold()
    return bool(name) and not any(own in name for own in ("pinnacle", "adac", "philips"))


def _spec_categories(records, plans, expected, *, use_course: bool):
    by_mrn = defaultdict(list)
    for record in records:
        if not _other_tps(record):  # left out of the re-course rule
            by_mrn[record["mrn"]].append(record)
    recourse = {}
    for history in by_mrn.values():
        history.sort(key=lambda r: r["first"])
        course, latest = 1, None
        for record in history:
            if latest is not None and record["first"] - latest > dt.timedelta(days=expected["recourse_gap_days"]):
                course += 1
            latest = record["first"] if latest is None else max(latest, record["first"])
            given = record["course"] if use_course else None
            recourse[record["uid"]] = given >= 2 if given is not None else course >= 2
    active = {expected["pending_group"], *expected["clinical_groups"]}
    result = {}
    for record in records:
        if _other_tps(record):
            result[record["uid"]] = ("other_tps", "")
            continue
        first = record["first"]
        candidates = [p for p in plans if p[0] == record["mrn"] and _normalize(record["label"]) in p[1]
                      and p[2] is not None and first - dt.timedelta(days=365) <= p[2] <= first + dt.timedelta(days=1)]
        status, found_in = "lost", ""
        if candidates:
            best = max(candidates, key=lambda p: p[2])
            status, found_in = ("unarchived", "") if best[3] in active else ("lost", best[3])
        kind = "recourse" if recourse[record["uid"]] else "first_course"
        result[record["uid"]] = (f"{kind}_{status}", found_in)
    return result


def test_expected_categories_follow_from_the_tree_and_each_rv_source(site, expected):
    plans = _tps_plans(site, expected)
    want = {d["plan_uid"]: (d["category"], d["found_in"]) for d in expected["deliveries"]}
    frame = pd.read_csv(site.csv_path, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    csv_records = [{"uid": r["plan_uid"], "mrn": r["mrn"], "label": r["plan_label"],
                    "first": dt.datetime.fromisoformat(r["first_delivery"]),
                    "course": int(r["course"]) if r["course"] else None, "tps": r["tps"]}
                   for r in frame.to_dict("records")]
    assert _spec_categories(csv_records, plans, expected, use_course=True) == want
    # DICOM has no course: the 90-day gap rule must give the same answers.
    assert _spec_categories(csv_records, plans, expected, use_course=False) == want
    categories = {d["category"] for d in expected["deliveries"]}
    assert categories == {"first_course_unarchived", "first_course_lost", "recourse_unarchived", "recourse_lost",
                          "other_tps"}
    cases = {d["case"] for d in expected["deliveries"]}
    assert {"recourse_by_gap", "plan_created_after_delivery", "moved_to_non_clinical", "patient_deleted",
            "plan_deleted", "recourse_deleted", "label_is_trial_name", "clinical"} <= cases
    assert {d["found_in"] for d in expected["deliveries"]} == {"", "Research", "Practice"}
    gap_only = [d for d in expected["deliveries"] if d["case"] == "recourse_by_gap"]
    assert gap_only and gap_only[0]["course"] is None and gap_only[0]["in_window"]
    earlier = [d for d in expected["deliveries"] if d["mrn"] == gap_only[0]["mrn"] and d is not gap_only[0]]
    assert earlier and not earlier[0]["in_window"], "the first course lies before the scan window"
    in_window = [d for d in expected["deliveries"] if d["in_window"] and d["category"] != "other_tps"]
    assert expected["summary"]["total"] == len(in_window)
    assert expected["summary"]["other_tps"] == sum(d["in_window"] and d["category"] == "other_tps"
                                                   for d in expected["deliveries"])
    assert expected["summary"]["recourse_unarchived"] == sum(d["category"] == "recourse_unarchived" for d in in_window)
    window = expected["scan_window"]
    assert all(window["from"] <= d["first_delivery"][:10] <= window["to"] for d in in_window)


# --- site.toml -----------------------------------------------------------------------------------


def test_site_toml_follows_spec_section_5(site, expected):
    config = tomllib.loads(site.site_toml.read_text(encoding="utf-8"))
    (institution,) = config["institution"]
    assert institution["code"] == "DEMO"
    assert institution["tps"] == f"file://{site.tps_root}"
    assert institution["pending_group"] == "ToArchive"
    assert institution["clinical_groups"] == ["Clinical"]
    assert institution["non_clinical_groups"] == ["Research", "Practice", "Training"]
    assert institution["rv"] == f"csv:{site.csv_path}"
    assert institution["storage"] == [{"name": "local-array", "url": f"file://{site.storage_dir}"}]
    assert site.storage_dir.is_dir() and not any(site.storage_dir.iterdir())


@pytest.mark.django_db
def test_site_toml_loads_with_load_site_config(site):
    from sites.models import Institution, StorageTarget

    call_command("load_site_config", str(site.site_toml), stdout=io.StringIO())
    institution = Institution.objects.get(code="DEMO")
    assert institution.pending_group == "ToArchive" and institution.rv_url.startswith("csv:")
    assert StorageTarget.objects.filter(name="local-array").exists()


# --- the command ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [("200M", 200_000_000), ("2G", 2_000_000_000), ("1.5GiB", 1610612736),
                                             ("30mb", 30_000_000), ("12345", 12345)])
def test_parse_size(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["abc", "0", "-5M", "2X", "", "5P"])
def test_parse_size_refuses_bad_values(text):
    with pytest.raises(DemoSiteError, match="--size"):
        parse_size(text)


def test_command_prints_one_line_per_artefact_and_json(tmp_path):
    out = io.StringIO()
    call_command("make_demo_site", str(tmp_path / "a"), "--patients", "0", "--size", "1M", "--institution", "X1",
                 stdout=out)
    lines = out.getvalue().splitlines()
    assert [line.split()[0] for line in lines] == ["tps", "institution-file", "rv-csv", "rv-mosaiq", "rv-dicom",
                                                  "storage", "site-toml", "expected"]
    assert 'code = "X1"' in (tmp_path / "a" / "site.toml").read_text(encoding="utf-8")
    out = io.StringIO()
    call_command("make_demo_site", str(tmp_path / "a"), "--patients", "0", "--size", "1M", "--force",
                 "--rv-encoding", "gb18030", "--json", stdout=out)
    summary = json.loads(out.getvalue())
    assert summary["artefacts"]["rv-csv"] == str(tmp_path / "a" / "rv" / "first_deliveries.csv")
    assert summary["summary"]["total"] > 0 and summary["image_bytes"] > 0
    with pytest.raises(UnicodeDecodeError):
        (tmp_path / "a" / "rv" / "first_deliveries.csv").read_bytes().decode("utf-8")


@pytest.mark.parametrize(("args", "message"), [
    (["--size", "lots"], "--size 'lots'"),
    (["--size", "0"], "--size '0'"),
    (["--institution", "bad code!"], "--institution"),
    (["--patients", "-1"], "--patients"),
])
def test_command_refuses_bad_arguments_with_exit_2(tmp_path, args, message):
    with pytest.raises(CommandError) as caught:
        call_command("make_demo_site", str(tmp_path / "x"), *args, stdout=io.StringIO())
    assert caught.value.returncode == 2 and message in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "x").exists()


def test_command_refuses_a_non_empty_folder_without_force(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(CommandError) as caught:
        call_command("make_demo_site", str(tmp_path), stdout=io.StringIO())
    assert caught.value.returncode == 2 and "not empty" in str(caught.value) and "--force" in str(caught.value)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_command_line_exit_code_and_one_line_error(tmp_path):
    result = subprocess.run([sys.executable, "manage.py", "make_demo_site", str(tmp_path / "x"), "--size", "2X"],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--size '2X'" in result.stderr
    assert result.stdout == ""
