"""The CSV R&V source (docs/contracts.md §2.4): encodings, columns, bad rows with their numbers."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from connectors.rv import RvError, open_rv_source

ZONE = ZoneInfo("Asia/Shanghai")
HEADER = "mrn,patient_name,plan_label,course,first_delivery,plan_uid,machine\n"


def read(path, zone=ZONE):
    with open_rv_source(f"csv:{path}", zone=zone) as source:
        return source.read()


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_reads_utf8_with_and_without_bom_and_gb18030(tmp_path, encoding):
    path = tmp_path / "rv.csv"
    path.write_bytes((HEADER + "000123,张三,左乳 IMRT,1,2024-03-04T09:30:00,1.2.3,TrueBeam1\n").encode(encoding))
    result = read(path)
    assert result.problems == []
    [record] = result.records
    assert (record.mrn, record.patient_name, record.plan_label, record.course, record.plan_uid, record.machine) == (
        "000123", "张三", "左乳 IMRT", 1, "1.2.3", "TrueBeam1")
    assert record.first_delivery == dt.datetime(2024, 3, 4, 9, 30, tzinfo=ZONE)


def test_naive_times_are_site_time_and_offsets_are_kept(tmp_path):
    path = tmp_path / "rv.csv"
    path.write_text(HEADER + "1,A,P,,2024-03-04 09:30,,\n2,B,P,,2024-03-04T01:30:00Z,,\n"
                             "3,C,P,,2024-03-04T09:30:00+08:00,,\n", encoding="utf-8")
    records = read(path).records
    assert [r.first_delivery.astimezone(dt.timezone.utc).hour for r in records] == [1, 1, 1]
    assert [r.course for r in records] == [None, None, None]


def test_columns_in_any_order_and_optional_columns_absent(tmp_path):
    path = tmp_path / "rv.csv"
    path.write_text(" First_Delivery ,course,PLAN_LABEL,mrn,patient_name\n2024-03-04T09:00:00,2.0,P,7,X\n")
    [record] = read(path).records
    assert (record.mrn, record.plan_label, record.course, record.plan_uid, record.machine) == ("7", "P", 2, "", "")


def test_bad_rows_are_reported_with_their_row_number_and_skipped(tmp_path):
    path = tmp_path / "rv.csv"
    path.write_text(HEADER + "\n".join([
        "1,A,P,1,2024-03-04T09:00:00,,",      # row 2: good
        ",A,P,1,2024-03-04T09:00:00,,",       # row 3: no MRN
        "3,A,,1,2024-03-04T09:00:00,,",       # row 4: no label
        "4,A,P,first,2024-03-04T09:00:00,,",  # row 5: course not a number
        "5,A,P,0,2024-03-04T09:00:00,,",      # row 6: course 0
        "6,A,P,1,04/03/2024 09:00,,",         # row 7: day or month first: ambiguous
        "7,A,P,1,2024/2/30 9:00,,",           # row 8: no such day
        "",                                   # row 9: blank, ignored
        "8,A,P",                              # row 10: too few fields
        '9,"Li, Si",P,2,2024-03-05T10:00:00,,',  # row 11: good (quoted comma)
    ]) + "\n")
    result = read(path)
    assert [r.mrn for r in result.records] == ["1", "9"]
    assert [(p.where, p.reason) for p in result.problems] == [
        ("rv.csv row 3", "mrn is empty"),
        ("rv.csv row 4", "plan_label is empty"),
        ("rv.csv row 5", "course 'first' is not a whole number"),
        ("rv.csv row 6", "course '0' is not 1 or more"),
        ("rv.csv row 7", "first_delivery '04/03/2024 09:00' is not a date and time (ISO 8601 such as "
                         "2024-03-19T08:05:00, or year first as spreadsheets write it: 2024/3/19 8:05)"),
        ("rv.csv row 8", "first_delivery '2024/2/30 9:00' is not a date and time (day is out of range for month)"),
        ("rv.csv row 10", "has 3 fields, the header needs 7"),
    ]
    assert all("\n" not in str(p) for p in result.problems)


def test_missing_column_names_it(tmp_path):
    path = tmp_path / "rv.csv"
    path.write_text("mrn,patient_name,plan_label,first_delivery\n1,A,P,2024-03-04T09:00:00\n")
    with pytest.raises(RvError, match=r"rv.csv: header lacks column\(s\) course"):
        read(path)


def test_duplicated_column_is_refused(tmp_path):
    path = tmp_path / "rv.csv"
    path.write_text("mrn,patient_name,plan_label,course,first_delivery,MRN\n")
    with pytest.raises(RvError, match="names column.*mrn twice"):
        read(path)


def test_undecodable_file_is_refused_not_guessed(tmp_path):
    path = tmp_path / "rv.csv"
    path.write_bytes(HEADER.encode() + b"1,\x81\x20\xff\xfe,P,1,2024-03-04T09:00:00,,\n")
    with pytest.raises(RvError, match=r"neither UTF-8 nor GB18030 \(undecodable byte at offset \d+\)"):
        read(path)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(RvError, match="cannot read"):
        read(tmp_path / "absent.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(RvError, match="empty file, no header row"):
        read(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text(HEADER)
    result = read(tmp_path / "header.csv")
    assert result.records == [] and result.problems == []


def test_url_forms(tmp_path):
    path = tmp_path / "dir with space" / "rv.csv"
    path.parent.mkdir()
    path.write_text(HEADER + "1,A,P,1,2024-03-04T09:00:00,,\n")
    for url in [f"csv:{path}", f"csv://{path.as_uri()[7:]}"]:
        with open_rv_source(url, zone=ZONE) as source:
            assert len(source.read().records) == 1
    with pytest.raises(RvError, match="unsupported"):
        open_rv_source(f"xls:{path}", zone=ZONE)


# --- what spreadsheets write, the planning system, byte-order marks ------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-03-19T08:05:00", dt.datetime(2024, 3, 19, 8, 5)),
    ("2024-03-19 08:05:00", dt.datetime(2024, 3, 19, 8, 5)),
    ("2024-03-19 08:05", dt.datetime(2024, 3, 19, 8, 5)),
    ("2024/3/19 8:05", dt.datetime(2024, 3, 19, 8, 5)),
    ("2024/03/19 08:05:00", dt.datetime(2024, 3, 19, 8, 5)),
    ("2024/3/19 8:05:07", dt.datetime(2024, 3, 19, 8, 5, 7)),
    ("2024-3-9 8:05", dt.datetime(2024, 3, 9, 8, 5)),
    ("2024.3.19 18:05", dt.datetime(2024, 3, 19, 18, 5)),
    ("2024/3/19 8:05:07.25", dt.datetime(2024, 3, 19, 8, 5, 7, 250000)),
    ("2024/3/19 8:05 PM", dt.datetime(2024, 3, 19, 20, 5)),
    ("2024/3/19 12:05 am", dt.datetime(2024, 3, 19, 0, 5)),
    ("2024/3/19", dt.datetime(2024, 3, 19)),  # a date cell: the start of that day
    ("2024-03-19", dt.datetime(2024, 3, 19)),
])
def test_spreadsheet_date_forms_are_read_as_site_time(tmp_path, text, expected):
    path = tmp_path / "rv.csv"
    path.write_text(HEADER + f"000123,A,P,1,{text},,\n", encoding="utf-8")
    result = read(path)
    assert result.problems == []
    assert [r.first_delivery for r in result.records] == [expected.replace(tzinfo=ZONE)]


def test_a_bad_date_skips_its_row_only_and_names_file_row_and_field(tmp_path):
    path = tmp_path / "deliveries.csv"
    path.write_text(HEADER + "1,A,P,1,2024/3/19 8:05,,\n2,B,P,1,19/3/2024 8:05,,\n3,C,P,1,2024/3/20 13:05 PM,,\n"
                             "4,D,P,1,2024/03/21 08:05:00,,\n", encoding="utf-8")
    result = read(path)
    assert [r.mrn for r in result.records] == ["1", "4"]
    assert [str(p) for p in result.problems] == [
        "deliveries.csv row 3: first_delivery '19/3/2024 8:05' is not a date and time (ISO 8601 such as "
        "2024-03-19T08:05:00, or year first as spreadsheets write it: 2024/3/19 8:05)",
        "deliveries.csv row 4: first_delivery '2024/3/20 13:05 PM': hour 13 with AM/PM",
    ]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gb18030"])
def test_bom_files_and_the_tps_column(tmp_path, encoding):
    path = tmp_path / "rv.csv"
    data = ("mrn,patient_name,plan_label,course,first_delivery,tps\n"
            "000123,张三,左乳 IMRT,1,2024/3/19 8:05,Monaco\n000124,李四,PELVIS,,2024/3/19 9:05,\n").encode(encoding)
    if encoding == "gb18030":
        data = "\ufeff".encode("gb18030") + data  # GB18030's own byte-order mark
    path.write_bytes(data)
    result = read(path)
    assert result.problems == []
    assert [(r.mrn, r.patient_name, r.planning_system) for r in result.records] == [
        ("000123", "张三", "Monaco"), ("000124", "李四", "")]


def test_a_field_over_128_kib_skips_its_row_only(tmp_path):
    """The csv module refuses a field over 131072 characters; that row is reported and the next rows read."""
    path = tmp_path / "deliveries.csv"
    path.write_text(HEADER + "1,A,P,1,2024-03-19 08:05,,\n" + f"2,{'B' * 200_000},P,1,2024-03-19 08:05,,\n"
                    + "3,C,P,1,2024-03-20 08:05,,\n", encoding="utf-8")
    result = read(path)
    assert [r.mrn for r in result.records] == ["1", "3"]
    assert [str(p) for p in result.problems] == [
        "deliveries.csv row 3: not CSV (field larger than field limit (131072))"]


def test_a_header_over_the_field_limit_names_the_file(tmp_path):
    path = tmp_path / "deliveries.csv"
    path.write_text("mrn," + "x" * 200_000 + "\n", encoding="utf-8")
    with pytest.raises(RvError, match=r"deliveries.csv: row 1: the header is not CSV \(field larger than"):
        read(path)
