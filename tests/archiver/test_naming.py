import datetime as dt

import pytest

from archiver.naming import archive_name, mrn_part, name_part, parse_archive_name

EDITED = dt.datetime(2019, 3, 4, 9, 12, 0)


@pytest.mark.parametrize(
    ("last", "first", "expected"),
    [
        ("张", "三", "ZHANG-SAN"),
        ("欧阳", "娜娜", "OUYANG-NANA"),
        ("单", "田芳", "SHAN-TIANFANG"),
        ("曾", "明", "ZENG-MING"),
        ("Müller", "Jürgen", "MULLER-JURGEN"),
        ("O'Brien", "Mary Ann", "O-BRIEN-MARY-ANN"),
        ("smith", "", "SMITH"),
        ("", "", "UNKNOWN"),
        ("ＡＢＣ", "ｄｅｆ", "ABC-DEF"),  # full-width folds by NFKC
        ("a/b*c", "d", "A-B-C-D"),
    ],
)
def test_name_part(last, first, expected):
    assert name_part(last, first) == expected


def test_name_part_is_at_most_64_characters():
    assert len(name_part("X" * 50, "Y" * 50)) == 64


@pytest.mark.parametrize(("mrn", "expected"), [("000123", "000123"), (" 12/34 ", "12-34"), ("AB 12", "AB-12"), ("", "NO-MRN")])
def test_mrn_part_keeps_leading_zeros_and_replaces_runs(mrn, expected):
    assert mrn_part(mrn) == expected


def test_archive_name_per_spec():
    assert archive_name(last_name="张", first_name="三", mrn="000123", edited=EDITED) == (
        "ZHANG-SAN_000123_20190304091200.tar.gz"
    )
    assert archive_name(last_name="张", first_name="三", mrn="000123", edited=EDITED, codec="zstd", clash=2) == (
        "ZHANG-SAN_000123_20190304091200_2.tar.zst"
    )


def test_parse_archive_name_round_trips_and_rejects_bad_names():
    name = archive_name(last_name="欧阳", first_name="娜娜", mrn="A-1", edited=EDITED, clash=3)
    parts = parse_archive_name(name)
    assert parts == {"name": "OUYANG-NANA", "mrn": "A-1", "edited": EDITED, "clash": 3, "codec": "gzip"}
    for bad in ["zhang_1_20190304091200.tar.gz", "ZHANG_1_2019030409120.tar.gz", "ZHANG_1_20191304091200.tar.gz",
                "ZHANG_1_20190304091200.zip", "ZHANG_1_20190304091200_1.tar.gz"]:
        assert parse_archive_name(bad) is None, bad
