"""Reading patients, plans and groups from a Pinnacle tree: the real sample and generated trees."""
from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import pytest

from pinnacle.reader import (
    InstitutionFileError, fingerprint_files, is_junk, list_groups, parse_timestamp, read_institution_headers,
    read_patient, scan_patient_files,
)
from connectors.tps.local import LocalTpsSource
from demo_site import GroupSpec, PlanSpec, edit_file, truncate_file, write_institution_file, write_patient

SAMPLE_PATIENT = "Institution_1/Mount_0/Patient_1"

LINKS = "holds links or special files that PDAS does not follow and would leave out of the archive: "


class SpySource(LocalTpsSource):
    """A local source that remembers every path it was asked about."""

    def __init__(self, root: Path):
        super().__init__(root)
        self.touched: list[str] = []

    def list_dir(self, rel):
        self.touched.append(rel)
        return super().list_dir(rel)

    def stat(self, rel):
        self.touched.append(rel)
        return super().stat(rel)

    def open_read(self, rel):
        self.touched.append(rel)
        return super().open_read(rel)


@pytest.fixture
def root(tmp_path) -> Path:
    path = tmp_path / "Patients"
    path.mkdir()
    return path


def _read(root: Path, tps_path: str, group: str = "G"):
    return read_patient(LocalTpsSource(root), tps_path, group=group)


# --- the real sample ------------------------------------------------------------------------------


def test_sample_patient(pinnacle_sample):
    info = _read(pinnacle_sample, SAMPLE_PATIENT, "16.2 Smart Enterprise")
    assert (info.mrn, info.last_name, info.first_name, info.middle_name) == ("000000", "LAST", "FIRST", "M")
    assert info.tps_patient_id == 10000
    assert info.institution_dir == "Institution_1"
    assert [(p.plan_id, p.name, p.has_directory) for p in info.plans] == [
        (0, "BRAIN", True), (1, "CopyOf_1_BRAIN", False)]
    assert info.plans[0].trial_names == ["Trial_1", "Trial_2"]
    assert info.plans[0].created == dt.datetime(2020, 1, 1, 10, 0, 0)
    assert info.plans[0].edited == dt.datetime(2020, 1, 1, 10, 0, 0)
    assert [(s.image_set_id, s.modality, s.images) for s in info.image_sets] == [(0, "CT", 101)]
    assert info.errors == ["plan Plan_1 'CopyOf_1_BRAIN' is in PlanList but has no Plan_1 directory"]
    assert not info.is_readable
    assert info.encoding == "utf-8"
    # The header's LastModifiedTimeStamp is "": its WriteTimeStamp stands in.
    assert info.header_time == dt.datetime(2020, 1, 1, 10, 0, 0)
    assert info.latest_edit == dt.datetime(2020, 1, 1, 10, 0, 0)
    paths = [f.path for f in info.files]
    assert f"{SAMPLE_PATIENT}/Patient" in paths and f"{SAMPLE_PATIENT}/Plan_0/plan.Trial.binary.026" in paths
    assert len(paths) == 14 and paths == sorted(paths)
    assert info.total_bytes == sum(p.stat().st_size for p in (pinnacle_sample / SAMPLE_PATIENT).rglob("*")
                                   if p.is_file())
    assert info.fingerprint == fingerprint_files(info.files)


def test_sample_institution_header_and_groups(pinnacle_sample):
    source = LocalTpsSource(pinnacle_sample)
    headers = read_institution_headers(source)
    assert list(headers) == ["Institution_1"]
    header = headers["Institution_1"]
    assert (header.institution_id, header.name) == (1, "16.2 Smart Enterprise")
    assert [(lite.patient_id, lite.patient_path) for lite in header.patient_lites] == [(1, SAMPLE_PATIENT)]
    assert header.patient_lites[0].formatted_description.startswith("LAST&&FIRST&&M&&000000&&")
    groups = list_groups(source)
    assert [(g.dir_name, g.name, g.patient_paths) for g in groups] == [
        ("Institution_1", "16.2 Smart Enterprise", [SAMPLE_PATIENT])]


# --- names and encodings --------------------------------------------------------------------------


@pytest.mark.parametrize("last, first, encoding", [
    ("张", "三", "gb18030"),
    ("欧阳", "娜娜", "utf-8"),
    ("Müller", "Zoë", "utf-8"),
    ("Peña", "José", "latin-1"),
])
def test_names_in_each_encoding(root, last, first, encoding):
    path = write_patient(root, last_name=last, first_name=first, encoding=encoding).tps_path
    info = _read(root, path)
    assert (info.last_name, info.first_name) == (last, first)
    assert info.encoding == encoding
    assert info.is_readable, info.errors


def test_mrn_is_a_trimmed_string_with_leading_zeros(root):
    bare = write_patient(root, patient_id=1, mrn="000123", mrn_unquoted=True).tps_path
    spaced = write_patient(root, patient_id=2, mrn="  0042 ").tps_path
    assert _read(root, bare).mrn == "000123"
    assert _read(root, spaced).mrn == "0042"


def test_patient_id_from_the_file(root):
    path = write_patient(root, patient_id=7).tps_path
    assert _read(root, path).tps_patient_id == 7


# --- times ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("2019-03-01 10:00:00", dt.datetime(2019, 3, 1, 10, 0, 0)),
    ("2019-03-01.10:00:00", dt.datetime(2019, 3, 1, 10, 0, 0)),
    (" 2019-03-01 10:00:00 ", dt.datetime(2019, 3, 1, 10, 0, 0)),
    ("", None),
    ("yesterday", None),
    ("2019-13-45 10:00:00", None),
    ("2019-03-01T10:00:00", None),
])
def test_parse_timestamp(text, expected):
    assert parse_timestamp(text) == expected


def test_plan_creation_and_edit_time_fallbacks(root):
    path = write_patient(root, plans=[
        PlanSpec(0, "ALL", created="2019-01-01 08:00:00", written="2019-01-02.09:00:00",
                 modified="2019-01-03 10:00:00"),
        PlanSpec(1, "NO CREATE", created="", written="2019-02-02 09:00:00", modified=""),
        PlanSpec(2, "ONLY CREATE", created="2019-03-01 08:00:00", written="", modified=""),
        PlanSpec(3, "NONE", created="", written="", modified=""),
        PlanSpec(4, "GARBAGE", created="soon", written="2019-05-02 09:00:00", modified="later"),
    ]).tps_path
    info = _read(root, path)
    times = {p.name: (p.created, p.edited) for p in info.plans}
    d = dt.datetime
    assert times["ALL"] == (d(2019, 1, 1, 8), d(2019, 1, 3, 10))
    assert times["NO CREATE"] == (d(2019, 2, 2, 9), d(2019, 2, 2, 9))
    assert times["ONLY CREATE"] == (d(2019, 3, 1, 8), d(2019, 3, 1, 8))
    assert times["NONE"] == (None, None)
    assert times["GARBAGE"] == (d(2019, 5, 2, 9), d(2019, 5, 2, 9))
    assert any("Plan_4 CreateTimeStamp 'soon' is not a timestamp" in w for w in info.warnings)
    assert info.latest_edit == d(2019, 5, 2, 9)
    assert info.is_readable, info.errors


def test_latest_edit_falls_back_to_the_header_time(root):
    path = write_patient(root, plans=[], header_times=("2018-01-01 08:00:00", "2018-02-01 08:00:00", "")).tps_path
    info = _read(root, path)
    assert info.plans == [] and info.latest_edit == dt.datetime(2018, 2, 1, 8)


# --- the Institution file -------------------------------------------------------------------------


def test_bare_institution_file(root):
    record = write_patient(root, "Institution_3")
    path = record.tps_path
    write_institution_file(root, [GroupSpec(3, "ToArchive", [record])], form="bare")
    headers = read_institution_headers(LocalTpsSource(root))
    assert headers["Institution_3"].name == "ToArchive"
    assert headers["Institution_3"].institution_id == 3
    assert [lite.patient_path for lite in headers["Institution_3"].patient_lites] == [path]
    assert [(g.name, g.patient_paths) for g in list_groups(LocalTpsSource(root))] == [("ToArchive", [path])]


def test_block_institution_file_with_chinese_names(root):
    a = write_patient(root, "Institution_1", 1)
    b = write_patient(root, "Institution_2", 2)
    write_institution_file(root, [GroupSpec(1, "待归档", [a]), GroupSpec(2, "Clinical", [b])],
                           form="blocks", encoding="gb18030")
    groups = list_groups(LocalTpsSource(root))
    assert [(g.dir_name, g.name, g.patient_paths) for g in groups] == [
        ("Institution_1", "待归档", [a.tps_path]), ("Institution_2", "Clinical", [b.tps_path])]


def test_directories_win_over_a_stale_institution_file(root):
    listed = write_patient(root, "Institution_1", 1)
    unlisted = write_patient(root, "Institution_1", 2, mount="Mount_1")
    new_group = write_patient(root, "Institution_4", 3)
    gone = write_patient(root, "Institution_1", 99)
    write_institution_file(root, [GroupSpec(1, "Clinical", [listed, gone]), GroupSpec(9, "Old", [])])
    shutil.rmtree(gone.path)  # deleted after the Institution file was last written
    groups = {g.dir_name: g for g in list_groups(LocalTpsSource(root))}
    assert sorted(groups) == ["Institution_1", "Institution_4"]
    assert groups["Institution_1"].name == "Clinical"
    assert groups["Institution_1"].patient_paths == [listed.tps_path, unlisted.tps_path]
    assert (groups["Institution_4"].name, groups["Institution_4"].patient_paths) == (
        "Institution_4", [new_group.tps_path])


def test_missing_institution_file_names_groups_by_folder(root):
    path = write_patient(root, "Institution_2").tps_path
    assert read_institution_headers(LocalTpsSource(root)) == {}
    assert [(g.name, g.patient_paths) for g in list_groups(LocalTpsSource(root))] == [("Institution_2", [path])]


def test_unparsable_institution_file_is_an_error_not_a_regrouping(root):
    file = write_institution_file(root, [GroupSpec(1, "Clinical", [write_patient(root)])], form="bare")
    truncate_file(file, after="PatientLiteList ={")
    with pytest.raises(InstitutionFileError, match=r"^Institution: line \d+: file ends inside block 'PatientLiteList'"):
        list_groups(LocalTpsSource(root))


def test_only_pinnacle_folders_are_groups_mounts_and_patients(root):
    path = write_patient(root).tps_path
    (root / "Physics").mkdir()
    (root / ".pdas-quarantine" / "Institution_1").mkdir(parents=True)
    (root / "Institution_1" / "Mount_0" / "Patient_2.tmp").mkdir()
    (root / "Institution_1" / "Mount_0" / "Patient_3").write_text("a file, not a folder")
    (root / "Institution_1" / "Scripts").mkdir()
    assert [(g.dir_name, g.patient_paths) for g in list_groups(LocalTpsSource(root))] == [("Institution_1", [path])]


def test_linked_patient_and_mount_folders_are_reported_not_entered(root, tmp_path):
    write_patient(root, patient_id=1)
    elsewhere = tmp_path / "elsewhere"
    write_patient(elsewhere, patient_id=5)
    os.symlink(elsewhere / "Institution_1/Mount_0/Patient_5", root / "Institution_1/Mount_0/Patient_5")
    os.symlink(elsewhere / "Institution_1/Mount_0", root / "Institution_1/Mount_1")
    source = SpySource(root)
    [group] = list_groups(source)
    assert group.patient_paths == ["Institution_1/Mount_0/Patient_1"]
    assert group.skipped_links == ["Institution_1/Mount_0/Patient_5", "Institution_1/Mount_1"]
    assert "Institution_1/Mount_1" not in source.touched


# --- broken patients --------------------------------------------------------------------------------


def test_truncated_patient_file_is_unreadable_with_file_and_line(root):
    path = write_patient(root, plans=[PlanSpec(0, "A"), PlanSpec(1, "B")]).tps_path
    patient_file = root / path / "Patient"
    text = patient_file.read_text()
    truncate_file(patient_file, after='PlanName = "B";')
    info = _read(root, path)
    line = text[: text.index("PlanList ={")].count("\n") + 1
    assert info.errors == [f"Patient: line {line}: file ends inside block 'PlanList' (truncated file?)"]
    assert not info.is_readable and not info.header_read
    assert info.plans == [] and info.mrn == ""
    assert info.fingerprint == fingerprint_files(info.files)  # the files are still listed


def test_garbage_patient_file(root):
    path = write_patient(root).tps_path
    (root / path / "Patient").write_bytes(bytes(range(256)) * 4)
    info = _read(root, path)
    assert len(info.errors) == 1 and info.errors[0].startswith("Patient: line ")
    assert info.encoding == "latin-1"


def test_missing_patient_file(root):
    path = write_patient(root).tps_path
    (root / path / "Patient").unlink()
    assert _read(root, path).errors == ["Patient: file is missing"]


def test_empty_patient_file(root):
    path = write_patient(root).tps_path
    truncate_file(root / path / "Patient", keep=0)
    info = _read(root, path)
    # An empty file parses to nothing: no MRN and no plans, but the folder's Plan_0 is not in a PlanList.
    assert info.mrn == "" and info.plans == []
    assert info.errors == ["Plan_0/ is a plan directory but PlanList has no PlanID 0"]


def test_truncated_trial_file_names_the_plan_file(root):
    path = write_patient(root, plans=[PlanSpec(0, "A", trials=["T1", "T2"])]).tps_path
    trial_file = root / path / "Plan_0/plan.Trial"
    second = trial_file.read_text().split("\n").index("Trial ={", 1) + 1
    truncate_file(trial_file, after='Name = "T2";')
    info = _read(root, path)
    assert info.errors == [f"Plan_0/plan.Trial: line {second}: file ends inside block 'Trial' (truncated file?)"]
    assert info.plans[0].trial_names == [] and info.mrn == "000123"


def test_plan_directory_not_in_plan_list(root):
    path = write_patient(root, plans=[PlanSpec(0, "A"), PlanSpec(2, "STRAY", in_plan_list=False)]).tps_path
    info = _read(root, path)
    assert [p.plan_id for p in info.plans] == [0]
    assert info.errors == ["Plan_2/ is a plan directory but PlanList has no PlanID 2"]


def test_plan_without_trial_file(root):
    path = write_patient(root, plans=[PlanSpec(0, "A")]).tps_path
    (root / path / "Plan_0/plan.Trial").unlink()
    assert _read(root, path).errors == ["Plan_0/plan.Trial: file is missing"]


def test_several_trials_and_plans(root):
    path = write_patient(root, plans=[PlanSpec(0, "LT BREAST", trials=["sMLC", "IMRT 2"]),
                                      PlanSpec(3, "BOOST")]).tps_path
    info = _read(root, path)
    assert [(p.plan_id, p.name, p.trial_names) for p in info.plans] == [
        (0, "LT BREAST", ["sMLC", "IMRT 2"]), (3, "BOOST", ["Trial_1"])]
    assert info.is_readable


# --- files: junk and links ----------------------------------------------------------------------------


@pytest.mark.parametrize("name, junk", [
    (".auto.plan.Trial.binary.003", True), ("Patient.ErrorLog", True), ("launch.Transcript", True),
    ("plan.Trial.binary.003", False), ("plan.Trial", False), ("ErrorLog.txt", False),
])
def test_is_junk(name, junk):
    assert is_junk(name) is junk


def test_junk_files_are_listed_apart(root):
    path = write_patient(root).tps_path
    for name in ("Plan_0/.auto.plan.Trial.binary.001", "Patient.ErrorLog", "Plan_0/pinnacle.Transcript"):
        (root / path / name).write_bytes(b"autosave")
    info = _read(root, path)
    assert info.junk_files == [f"{path}/Patient.ErrorLog", f"{path}/Plan_0/.auto.plan.Trial.binary.001",
                               f"{path}/Plan_0/pinnacle.Transcript"]
    assert not any(is_junk(f.path.rsplit("/", 1)[-1]) for f in info.files)
    assert info.is_readable


def test_links_out_of_the_patient_are_never_followed(root, tmp_path):
    path = write_patient(root).tps_path
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("not patient data")
    os.symlink(secret, root / path / "ImageSet_1.img")
    os.symlink(secret.parent, root / path / "Plan_9")
    os.symlink(secret.parent, root / path / "Plan_0" / "more")
    source = SpySource(root)
    info = read_patient(source, path, group="G")
    assert info.skipped_links == [f"{path}/ImageSet_1.img", f"{path}/Plan_0/more", f"{path}/Plan_9"]
    assert not any(f.path.endswith(("ImageSet_1.img", "more", "secret.txt")) for f in info.files)
    assert not any(t.startswith((f"{path}/ImageSet_1.img", f"{path}/Plan_0/more", f"{path}/Plan_9"))
                   for t in source.touched)
    # A linked Plan_N is not in PlanList, and is reported as a plan directory PDAS does not enter.
    assert info.errors == ["Plan_9/ is a plan directory but PlanList has no PlanID 9",
                           LINKS + "ImageSet_1.img, Plan_0/more, Plan_9 (replace each by the files it points to)"]


def test_linked_plan_directory_of_a_listed_plan(root, tmp_path):
    path = write_patient(root, plans=[PlanSpec(0, "A"), PlanSpec(1, "B", directory=False)]).tps_path
    os.symlink(root / path / "Plan_0", root / path / "Plan_1")
    info = _read(root, path)
    assert info.errors == ["plan Plan_1 'B': Plan_1 is a symbolic link (not followed)",
                           LINKS + "Plan_1 (replace each by the files it points to)"]
    assert info.plans[1].has_directory is False


def test_linked_patient_file_is_not_read(root, tmp_path):
    path = write_patient(root).tps_path
    real = root / path / "Patient"
    moved = tmp_path / "Patient.real"
    real.rename(moved)
    os.symlink(moved, real)
    info = _read(root, path)
    assert info.errors == ["Patient: is a symlink, not a file (not followed)",
                           LINKS + "Patient (replace each by the files it points to)"]


def test_scan_patient_files_and_the_fingerprint(root):
    path = write_patient(root).tps_path
    source = LocalTpsSource(root)
    files, junk, links = scan_patient_files(source, path)
    assert junk == [] and links == []
    before = fingerprint_files(files)
    assert before == fingerprint_files(list(reversed(files)))  # order does not matter
    assert before == _read(root, path).fingerprint
    edit_file(root / path / "Plan_0/plan.roi")
    after = fingerprint_files(scan_patient_files(source, path)[0])
    assert after != before
    (root / path / "Plan_0/.auto.plan.Trial.binary.002").write_bytes(b"x")
    assert fingerprint_files(scan_patient_files(source, path)[0]) == after  # autosaves do not count
