"""The R&V-source interface: first-delivery records from a record-and-verify system (docs/contracts.md §2.1).

A source returns ALL the history it holds, not only a scan window: first/re-course inference looks
at a patient's earlier plans. Rows it cannot use come back as ``RowProblem``s (file/row and reason);
they are skipped, never dropped silently. A source that cannot be read at all raises ``RvError``.
Naive times in a source are site-local and become aware in the institution's time zone.
"""
from __future__ import annotations

from connectors.errors import ConnectorError
from connectors.urls import redact_url

import datetime as dt
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo


class RvError(ConnectorError):
    """The source could not be read. ``retryable``: a later try may succeed (network, busy server)."""


@dataclass(frozen=True)
class FirstDelivery:
    """One delivered treatment plan and the time of its earliest non-QA delivered beam."""

    mrn: str
    patient_name: str
    plan_label: str
    plan_uid: str
    course: int | None
    first_delivery: dt.datetime  # timezone-aware
    machine: str = ""
    # The planning system the plan was made in, as the source names it ("Pinnacle3", "Philips
    # Pinnacle3", "Elekta Monaco"); "" when the source does not say (docs/contracts.md §2.6).
    planning_system: str = ""


@dataclass(frozen=True)
class RowProblem:
    """A row or file the source skipped. ``where``: "row 7", "Plan 1.2.3", "RT/rec1.dcm" ..."""

    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"

    def as_dict(self) -> dict[str, str]:
        return {"where": self.where, "reason": self.reason}


@dataclass
class RvReadResult:
    records: list[FirstDelivery] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)


class RvSource(ABC):
    """One R&V source. Use as a context manager; ``close()`` is idempotent."""

    url: str

    def __init__(self, *, url: str, zone: ZoneInfo):
        self.url = redact_url(url)  # for messages only: the source connects with what it was given
        self.zone = zone

    def __enter__(self) -> "RvSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @abstractmethod
    def read(self) -> RvReadResult:
        """Every first-delivery record the source holds, and the rows it had to skip."""

    def close(self) -> None:
        """Release connections; sources that hold none need not override it."""

    def aware(self, value: dt.datetime) -> dt.datetime:
        """A source time as an aware datetime: naive times are site-local."""
        return value.replace(tzinfo=self.zone) if value.tzinfo is None else value


def clean_text(value) -> str:
    """A database or file value as a trimmed string ("" for NULL)."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return str(value).strip()


def parse_course(value) -> int | None:
    """A course number (>= 1) or None when empty; ``ValueError`` with a reason otherwise."""
    text = clean_text(value)
    if not text:
        return None
    try:
        number = float(text)  # spreadsheets write "2.0"
    except ValueError:
        number = float("nan")
    if not number.is_integer():
        raise ValueError(f"course {text!r} is not a whole number")
    number = int(number)
    if number < 1:
        raise ValueError(f"course {text!r} is not 1 or more")
    return number
