"""The MOSAIQ R&V source (docs/contracts.md §2.2) on SQLite and on a real PostgreSQL."""
from __future__ import annotations

import datetime as dt
import itertools
import sqlite3
from zoneinfo import ZoneInfo

import pytest

from sites.models import Institution
from connectors.rv import RvError, open_rv_source
from sites.connections import open_institution_rv
from demo_site.rv import RvPlan, rv_plan, write_mosaiq_tables

ZONE = ZoneInfo("Asia/Shanghai")
_names = itertools.count()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.servers)])
def mosaiq(request, tmp_path):
    """(write, url): ``write(plans)`` fills the MOSAIQ tables in SQLite or in a fresh PostgreSQL database
    and returns the rows written."""
    if request.param == "sqlite":
        path = tmp_path / "mosaiq.sqlite3"
        connection = sqlite3.connect(path)
        url, placeholder = f"mosaiq+sqlite:///{path}", "?"
    else:
        server = request.getfixturevalue("postgres_server")
        name = f"mosaiq_{next(_names)}"
        url, placeholder = "mosaiq+" + server.create_database(name), "%s"
        connection = server.connect(name)

    def write(plans: list[RvPlan]) -> dict[str, list[tuple]]:
        return write_mosaiq_tables(connection, plans, placeholder=placeholder)

    yield write, url
    connection.close()


def read(url):
    with open_rv_source(url, zone=ZONE) as source:
        return source.read()


def test_one_record_per_plan_with_earliest_non_qa_delivery(mosaiq):
    write, url = mosaiq
    write([rv_plan("000123", "LT BREAST", dt.datetime(2024, 3, 4, 9, 30), course=1, uid="1.2.840.1",
                   last_name="张", first_name="三", qa_runs=[dt.datetime(2024, 3, 1, 15, 0)]),
           rv_plan("000123", "LT BOOST", dt.datetime(2024, 4, 1, 8, 0), course=1, uid="1.2.840.2",
                   last_name="张", first_name="三")])
    result = read(url)
    assert result.problems == []
    assert [(r.mrn, r.patient_name, r.plan_label, r.plan_uid, r.course, r.first_delivery) for r in result.records] == [
        ("000123", "张, 三", "LT BREAST", "1.2.840.1", 1, dt.datetime(2024, 3, 4, 9, 30, tzinfo=ZONE)),
        ("000123", "张, 三", "LT BOOST", "1.2.840.2", 1, dt.datetime(2024, 4, 1, 8, 0, tzinfo=ZONE)),
    ]


def test_qa_only_plan_is_not_a_delivery(mosaiq):
    write, url = mosaiq
    rows = write([rv_plan("1", "QA ONLY", None, course=1, uid="9.9", qa_runs=[dt.datetime(2024, 3, 4, 9)]),
                  rv_plan("2", "REAL", dt.datetime(2024, 3, 4, 9), course=1, uid="9.8")])
    assert any(row[-1] == 1 for row in rows["Dose_Hst"])  # the QA plan's beams are there, in QA mode
    assert [r.plan_uid for r in read(url).records] == ["9.8"]


def test_edited_prescription_course_comes_from_the_current_site_row(mosaiq):
    write, url = mosaiq
    # Both fractions sit on the old Site row (Version 32000), whose own course is 1.
    write([rv_plan("7", "PELVIS", dt.datetime(2024, 3, 4, 9), course=2, uid="5.5", old_site_course=1)])
    [record] = read(url).records
    assert (record.course, record.plan_label) == (2, "PELVIS")


def test_label_falls_back_to_the_site_name(mosaiq):
    write, url = mosaiq
    write([rv_plan("8", "SITE NAME", dt.datetime(2024, 3, 4, 9), course=1, uid="6.6", label_in_rtplan=False)])
    [record] = read(url).records
    assert record.plan_label == "SITE NAME"


def test_patient_without_mrn_is_reported_and_skipped(mosaiq):
    write, url = mosaiq
    rows = write([rv_plan("9", "A", dt.datetime(2024, 3, 4, 9), course=1, uid="7.7"),
                  rv_plan("", "B", dt.datetime(2024, 3, 4, 9), course=1, uid="7.8",
                          last_name="NO", first_name="MRN")])
    [pat] = [pat for pat, last_name, _ in rows["Patient"] if last_name == "NO"]
    assert pat not in {ident[0] for ident in rows["Ident"]}
    result = read(url)
    assert [r.plan_uid for r in result.records] == ["7.7"]
    assert [str(p) for p in result.problems] == [f"Plan 7.8 (Pat_ID1 {pat}): the patient has no MRN (Ident.IDA is empty)"]


def test_database_without_the_tables_is_an_error_not_zero(tmp_path):
    path = tmp_path / "empty.sqlite3"
    sqlite3.connect(path).close()
    with pytest.raises(RvError, match=r"the first-delivery query failed \(no such table"):
        read(f"mosaiq+sqlite:///{path}")


def test_unreachable_databases_are_errors(tmp_path):
    with pytest.raises(RvError, match="no database file"):
        read(f"mosaiq+sqlite:///{tmp_path}/absent.sqlite3")
    with pytest.raises(RvError, match="cannot connect") as err:
        read("mosaiq+postgresql://nobody@127.0.0.1:1/mosaiq")
    assert err.value.retryable and "\n" not in str(err.value)
    with pytest.raises(RvError, match="unsupported MOSAIQ database"):
        open_rv_source("mosaiq+oracle://x/y", zone=ZONE)


def test_sql_server_needs_pymssql():
    """pymssql is an optional extra: without it the error says how to install it."""
    try:
        import pymssql  # noqa: F401
    except ImportError:
        with pytest.raises(RvError, match=r"pymssql package \(pip install 'pdas\[mssql\]'\)"):
            open_rv_source("mosaiq+mssql://reader@mosaiq-host/MOSAIQ", zone=ZONE)
    else:
        with pytest.raises(RvError, match="needs mosaiq\\+mssql://user@host"):
            open_rv_source("mosaiq+mssql://reader@mosaiq-host", zone=ZONE)


def test_institution_password_comes_from_its_environment_variable(monkeypatch):
    institution = Institution(code="X", rv_url="mosaiq+postgresql://reader@127.0.0.1:1/m", rv_password_env="PDAS_RV_PW")
    monkeypatch.delenv("PDAS_RV_PW", raising=False)
    with pytest.raises(RvError, match="rv_password_env .*PDAS_RV_PW is not set"):
        open_institution_rv(institution)
    monkeypatch.setenv("PDAS_RV_PW", "secret")
    assert open_institution_rv(institution).url == institution.rv_url
    with pytest.raises(RvError, match="has no R&V source"):
        open_institution_rv(Institution(code="Y", rv_url=""))
