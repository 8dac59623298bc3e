"""``csv:<path>``: first deliveries exported to a CSV file (docs/contracts.md §2.4).

UTF-8 (with or without BOM) or GB18030; a header row naming at least
``mrn,patient_name,plan_label,course,first_delivery`` (optional ``plan_uid``, ``machine``, ``tps``),
in any order. ``first_delivery`` is ISO 8601 or what a spreadsheet writes when it saves a date cell
(year first: ``2024/3/19 8:05``, ``2024/03/19 08:05:00``, ``2024-3-19 8:05``, ``2024/3/19 8:05 PM``);
a date alone is the start of that day. Naive times are site-local. A day-first or month-first date
(``19/03/2024``) is ambiguous and refused. ``tps`` names the planning system the plan was made in.
A row that cannot be used is reported with its file, line number and field, and skipped.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

from connectors.rv.base import FirstDelivery, RowProblem, RvError, RvReadResult, RvSource, clean_text, parse_course

REQUIRED = ("mrn", "patient_name", "plan_label", "course", "first_delivery")
OPTIONAL = ("plan_uid", "machine", "tps")


def decode_text(data: bytes, *, name: str) -> str:
    """UTF-8 first (BOM or not), then GB18030; anything else is refused, never guessed."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030").lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        raise RvError(f"{name}: neither UTF-8 nor GB18030 (undecodable byte at offset {exc.start})") from None


def csv_rows(reader) -> Iterator[tuple[int, list[str] | None, str]]:
    """(line, cells, "") for each row of a ``csv.reader``, or (line, None, problem) for a row the csv module
    refuses (a field over its 128 KiB limit, a quote in an unquoted field): that row is reported and the
    next one is read, so one hostile or broken row never stops the file. ``line`` is where the row ends."""
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # the reader has consumed the bad row; it goes on with the next line
            yield reader.line_num, None, f"not CSV ({exc})"
            continue
        yield reader.line_num, cells, ""


# What spreadsheets write when they save a date cell as text: year first, the same separator
# between the date's parts, month, day and hour without leading zeros, seconds and AM/PM optional.
_SPREADSHEET_TIME = re.compile(
    r"(?P<year>\d{4})(?P<sep>[-/.])(?P<month>\d{1,2})(?P=sep)(?P<day>\d{1,2})"
    r"(?:(?:\s+|T)(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d{1,6}))?)?"
    r"\s*(?P<half>[AaPp]\.?[Mm]\.?)?)?\Z")
_FORMS = "ISO 8601 such as 2024-03-19T08:05:00, or year first as spreadsheets write it: 2024/3/19 8:05"


def parse_timestamp(text: str) -> dt.datetime:
    """An ISO 8601 date and time, or a spreadsheet's year-first form; ``ValueError`` with a reason naming
    the field otherwise. A date alone is the start of that day (naive: the caller adds the site's zone)."""
    if not text:
        raise ValueError("first_delivery is empty")
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        pass
    found = _SPREADSHEET_TIME.match(text)
    if found is None:
        raise ValueError(f"first_delivery {text!r} is not a date and time ({_FORMS})")
    hour = int(found["hour"] or 0)
    if found["half"]:
        if not 1 <= hour <= 12:
            raise ValueError(f"first_delivery {text!r}: hour {hour} with AM/PM")
        hour = hour % 12 + (12 if found["half"][0] in "Pp" else 0)
    try:
        return dt.datetime(int(found["year"]), int(found["month"]), int(found["day"]), hour,
                           int(found["minute"] or 0), int(found["second"] or 0),
                           int((found["fraction"] or "0").ljust(6, "0")))
    except ValueError as exc:  # 2024/2/30, 25:00 ...
        raise ValueError(f"first_delivery {text!r} is not a date and time ({exc})") from None


class CsvSource(RvSource):
    def __init__(self, path: Path, *, url: str, zone: ZoneInfo):
        super().__init__(url=url, zone=zone)
        self.path = path

    def read(self) -> RvReadResult:
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise RvError(f"{self.path}: cannot read ({exc.strerror})", retryable=True) from None
        rows = csv_rows(csv.reader(io.StringIO(decode_text(data, name=str(self.path)), newline="")))
        line, header, problem = next(rows, (1, None, ""))
        if problem:
            raise RvError(f"{self.path}: row {line}: the header is {problem}")
        columns = self._columns(header)
        result = RvReadResult()
        for line, row, problem in rows:
            where = f"{self.path.name} row {line}"
            if row is None:
                result.problems.append(RowProblem(where, problem))
                continue
            if not any(cell.strip() for cell in row):
                continue  # blank line
            try:
                result.records.append(self._record(row, columns))
            except ValueError as exc:
                result.problems.append(RowProblem(where, str(exc)))
        return result

    def _columns(self, header: list[str] | None) -> dict[str, int]:
        if not header:
            raise RvError(f"{self.path}: empty file, no header row")
        names = [cell.strip().lower() for cell in header]
        duplicated = sorted({n for n in names if n and names.count(n) > 1})
        if duplicated:
            raise RvError(f"{self.path}: header names column(s) {', '.join(duplicated)} twice")
        missing = [n for n in REQUIRED if n not in names]
        if missing:
            raise RvError(f"{self.path}: header lacks column(s) {', '.join(missing)} "
                          f"(needs {','.join(REQUIRED)}[,{','.join(OPTIONAL)}])")
        return {n: names.index(n) for n in (*REQUIRED, *OPTIONAL) if n in names}

    def _record(self, row: list[str], columns: dict[str, int]) -> FirstDelivery:
        width = max(columns.values()) + 1
        if len(row) < width:
            raise ValueError(f"has {len(row)} fields, the header needs {width}")

        def cell(name: str) -> str:
            return clean_text(row[columns[name]]) if name in columns else ""

        mrn, label = cell("mrn"), cell("plan_label")
        if not mrn:
            raise ValueError("mrn is empty")
        if not label:
            raise ValueError("plan_label is empty")
        return FirstDelivery(
            mrn=mrn,
            patient_name=cell("patient_name"),
            plan_label=label,
            plan_uid=cell("plan_uid"),
            course=parse_course(cell("course")),
            first_delivery=self.aware(parse_timestamp(cell("first_delivery"))),
            machine=cell("machine"),
            planning_system=cell("tps"),
        )
