"""``mosaiq+<db-url>``: first deliveries from a MOSAIQ-compatible SQL database (docs/contracts.md §2.2).

One portable query (CTE + ROW_NUMBER, LTRIM/RTRIM: SQL Server 2012+, PostgreSQL, SQLite 3.25+)
run through a plain DB-API connection, read-only:

- one record per trimmed ``TxField.OriginalPlanUID``; its first delivery is the earliest
  ``Dose_Hst.Tx_DtTm`` with ``WasQAMode = 0`` (QA-mode beams never count);
- the course is reached from that delivery's ``Dose_Hst.SIT_ID`` through ``Site.SIT_SET_ID`` to the
  *current* Site row (``Version = 0``) and its ``PCP_ID`` -> ``PatCPlan.Course``: a prescription
  edited after delivery leaves the delivery pointing at an old row (``Version = 32000``), which
  carries no course of its own;
- the label is ``RtPlan.Label`` of the ``DCMInstance`` whose ``SOPInstanceUID`` is the plan UID,
  else the current Site's ``Site_Name``; the MRN is ``Ident.IDA``;
- no planning system: the tables read here (docs/contracts.md §2.2) keep no ``Manufacturer`` of the
  plan, so ``planning_system`` stays empty and every record is classified as a Pinnacle one would be.

Naive ``Tx_DtTm`` values are site-local times.
"""
from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

from connectors.urls import redact_url
from connectors.rv.base import FirstDelivery, RowProblem, RvError, RvReadResult, RvSource, clean_text, parse_course

FIRST_DELIVERIES_SQL = """
WITH deliveries AS (
    SELECT dh.Pat_ID1 AS pat_id,
           RTRIM(LTRIM(tf.OriginalPlanUID)) AS plan_uid,
           dh.SIT_ID AS sit_id,
           dh.Tx_DtTm AS tx_time,
           ROW_NUMBER() OVER (
               PARTITION BY RTRIM(LTRIM(tf.OriginalPlanUID)) ORDER BY dh.Tx_DtTm, dh.DHS_ID
           ) AS nth
    FROM Dose_Hst dh
    JOIN TxField tf ON tf.FLD_ID = dh.FLD_ID
    WHERE dh.WasQAMode = 0
      AND dh.Tx_DtTm IS NOT NULL
      AND tf.OriginalPlanUID IS NOT NULL
      AND RTRIM(LTRIM(tf.OriginalPlanUID)) <> ''
),
labels AS (
    SELECT RTRIM(LTRIM(di.SOPInstanceUID)) AS plan_uid, MIN(rp.Label) AS label
    FROM DCMInstance di
    JOIN RtPlan rp ON rp.DCMInstance_ID = di.DCMInstance_ID
    WHERE rp.Label IS NOT NULL AND RTRIM(LTRIM(rp.Label)) <> ''
    GROUP BY RTRIM(LTRIM(di.SOPInstanceUID))
)
SELECT d.pat_id, d.plan_uid, d.tx_time, i.IDA, p.Last_Name, p.First_Name,
       l.label, cur.Site_Name, pc.Course, d.sit_id
FROM deliveries d
LEFT JOIN Ident i ON i.Pat_Id1 = d.pat_id
LEFT JOIN Patient p ON p.Pat_ID1 = d.pat_id
LEFT JOIN labels l ON l.plan_uid = d.plan_uid
LEFT JOIN Site s ON s.SIT_ID = d.sit_id
LEFT JOIN Site cur ON cur.SIT_SET_ID = s.SIT_SET_ID AND cur.Version = 0
LEFT JOIN PatCPlan pc ON pc.PCP_ID = cur.PCP_ID
WHERE d.nth = 1
ORDER BY d.plan_uid
"""


def parse_db_time(value: Any) -> dt.datetime:
    """``Tx_DtTm`` as the driver returns it: a datetime (SQL Server, PostgreSQL) or text (SQLite)."""
    if isinstance(value, dt.datetime):
        return value
    text = clean_text(value)
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"Tx_DtTm {text!r} is not a date and time") from None


def person_name(last: Any, first: Any) -> str:
    return ", ".join(part for part in (clean_text(last), clean_text(first)) if part)


class MosaiqSource(RvSource):
    """Reads through ``connect()``, a callable returning a new DB-API connection."""

    def __init__(self, connect: Callable[[], Any], *, url: str, zone: ZoneInfo):
        super().__init__(url=url, zone=zone)
        self._connect = connect

    def read(self) -> RvReadResult:
        try:
            connection = self._connect()
        except RvError:
            raise
        except Exception as exc:  # drivers raise their own types; all mean "cannot reach the database"
            raise RvError(f"{self.url}: cannot connect ({_one_line(exc)})", retryable=True) from None
        try:
            cursor = connection.cursor()
            cursor.execute(FIRST_DELIVERIES_SQL)
            rows = cursor.fetchall()
        except Exception as exc:
            raise RvError(f"{self.url}: the first-delivery query failed ({_one_line(exc)})") from None
        finally:
            connection.close()
        result = RvReadResult()
        for pat_id, plan_uid, tx_time, ida, last, first, label, site_name, course, sit_id in rows:
            where = f"Plan {plan_uid} (Pat_ID1 {pat_id})"
            try:
                mrn = clean_text(ida)
                if not mrn:
                    raise ValueError("the patient has no MRN (Ident.IDA is empty)")
                plan_label = clean_text(label) or clean_text(site_name)
                if not plan_label:
                    raise ValueError(f"no RtPlan.Label and no current Site row for SIT_ID {sit_id}")
                result.records.append(FirstDelivery(
                    mrn=mrn,
                    patient_name=person_name(last, first),
                    plan_label=plan_label,
                    plan_uid=clean_text(plan_uid),
                    course=parse_course(course),
                    first_delivery=self.aware(parse_db_time(tx_time)),
                ))
            except ValueError as exc:
                result.problems.append(RowProblem(where, str(exc)))
        return result


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def mosaiq_connector(url: str, *, password: str | None = None, timeout: float = 30) -> Callable[[], Any]:
    """A connect() for ``mosaiq+sqlite:///path``, ``mosaiq+postgresql://...`` or ``mosaiq+mssql://...``."""
    db_url = url.removeprefix("mosaiq+")
    parts = urlsplit(db_url)
    shown = redact_url(url)
    if parts.scheme == "sqlite":
        path = Path(unquote(parts.path))

        def connect_sqlite():
            if not path.is_file():
                raise RvError(f"{shown}: no database file {path}")
            # Read-only: PDAS never writes to the R&V database.
            return sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=timeout)

        return connect_sqlite
    if parts.scheme in ("postgresql", "postgres"):
        import psycopg

        def connect_postgresql():
            connection = psycopg.connect(db_url, password=password, connect_timeout=int(timeout))
            connection.read_only = True
            return connection

        return connect_postgresql
    if parts.scheme == "mssql":
        try:
            import pymssql
        except ImportError:
            raise RvError(f"{shown}: SQL Server needs the pymssql package (pip install 'pdas[mssql]')") from None
        if not parts.hostname or not parts.path.strip("/"):
            raise RvError(f"{shown}: needs mosaiq+mssql://user@host[:port]/database")

        def connect_mssql():
            return pymssql.connect(
                server=parts.hostname, port=str(parts.port or 1433), user=unquote(parts.username or ""),
                password=password if password is not None else unquote(parts.password or ""),
                database=unquote(parts.path.strip("/")), login_timeout=int(timeout), timeout=int(timeout * 10),
                as_dict=False,
            )

        return connect_mssql
    raise RvError(f"{shown}: unsupported MOSAIQ database (use mosaiq+mssql://, mosaiq+postgresql:// or mosaiq+sqlite:///)")
