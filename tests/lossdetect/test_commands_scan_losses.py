"""``manage.py scan_losses`` (docs/contracts.md §7): JSON, exit codes 0/1/2, one-line errors."""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from demo_site.rv import rv_plan, write_csv
from tests.commands import run_command
from tests.factories import InstitutionFactory, TpsPatientFactory, TpsPlanFactory

ZONE = ZoneInfo("Asia/Shanghai")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def institution(db, tmp_path):
    inst = InstitutionFactory(code="PUMCH", rv_url=f"csv:{tmp_path / 'rv.csv'}")
    patient = TpsPatientFactory(institution=inst, mrn="000123", group="Clinical")
    TpsPlanFactory(patient=patient, name="LT BREAST", created=dt.datetime(2024, 2, 1, tzinfo=ZONE))
    return inst


def run(*args):
    return run_command("scan_losses", *args)


ARGS = ["--institution", "PUMCH", "--from", "2024-03-04", "--to", "2024-03-10", "--no-refresh"]


def test_json_and_exit_0_when_nothing_is_lost(institution, tmp_path):
    write_csv(tmp_path / "rv.csv", [rv_plan("000123", "LT BREAST", dt.datetime(2024, 3, 4, 9, 30), course=1)])
    code, out, _err = run(*ARGS, "--json")
    assert code == 0
    data = json.loads(out)
    assert {"total", "pending", "first_course_lost", "recourse_lost", "first_course_unarchived",
            "first_course_archived", "recourse_unarchived", "recourse_archived"} <= data["summary"].keys()
    assert data["summary"]["total"] == 1 and data["summary"]["pending"] == 1
    [finding] = data["findings"]
    assert finding == {**finding, "mrn": "000123", "plan_label": "LT BREAST", "course": 1, "is_recourse": False,
                       "first_delivery": "2024-03-04T09:30:00+08:00", "category": "first_course_unarchived",
                       "found_in": ""}
    assert finding["match"].startswith("Institution_1/Mount_0/Patient_")


def test_exit_1_when_a_plan_is_lost(institution, tmp_path):
    write_csv(tmp_path / "rv.csv", [rv_plan("000999", "GONE", dt.datetime(2024, 3, 5, 9))])
    code, out, err = run(*ARGS, "--json")
    assert code == 1
    assert json.loads(out)["findings"][0]["course"] is None
    assert json.loads(out)["summary"]["first_course_lost"] == 1
    assert "1 lost plan(s)" in err


def test_exit_1_and_row_numbers_for_skipped_rows(institution, tmp_path):
    (tmp_path / "rv.csv").write_text("mrn,patient_name,plan_label,course,first_delivery\n"
                                     "000123,A,LT BREAST,1,2024-03-04T09:00\n000124,B,X,1,yesterday\n")
    code, out, err = run(*ARGS)
    assert code == 1
    assert "skipped R&V row: rv.csv row 3: first_delivery 'yesterday' is not a date and time (ISO 8601" in err
    assert "1 plans, 1 pending archive, 0 first-course lost, 0 re-course lost" in out


def test_json_counts_other_planning_systems_apart_and_names_other_mrns(institution, tmp_path):
    from lossdetect.models import MrnAlias

    MrnAlias.objects.create(institution=institution, old_mrn="000123", mrn="000777", reason="renumbered")
    write_csv(tmp_path / "rv.csv", [
        rv_plan("000777", "LT BREAST", dt.datetime(2024, 3, 4, 9, 30), course=1),  # the TPS knows it as 000123
        rv_plan("000888", "PROSTATE", dt.datetime(2024, 3, 5, 9), course=1, tps="Elekta Monaco"),
    ])
    code, out, _err = run(*ARGS, "--json")
    assert code == 0  # nothing lost: the Monaco plan is not Pinnacle's to keep
    data = json.loads(out)
    assert (data["summary"]["other_tps"], data["summary"]["total"], data["summary"]["first_course_lost"]) == (1, 1, 0)
    [finding] = data["findings"]
    assert (finding["mrn"], finding["category"], finding["also_known_as"]) == (
        "000777", "first_course_unarchived", ["000123"])
    [other] = data["other_tps"]
    assert (other["mrn"], other["planning_system"], other["first_delivery"]) == (
        "000888", "Elekta Monaco", "2024-03-05T09:00:00+08:00")
    code, out, _err = run(*ARGS)
    assert "other_tps                000888       PROSTATE" in out and "planned in Elekta Monaco" in out
    assert "1 of other planning systems" in out


@pytest.mark.parametrize("args, message", [
    (["--institution", "NOPE", "--from", "2024-03-04", "--to", "2024-03-10"],
     "--institution: no institution with code 'NOPE'"),
    (["--institution", "PUMCH", "--from", "2024-03-11", "--to", "2024-03-10"], "--from 2024-03-11 is after --to 2024-03-10"),
    (["--institution", "PUMCH", "--from", "4/3/2024", "--to", "2024-03-10"], "--from '4/3/2024' is not a date (YYYY-MM-DD)"),
])
def test_exit_2_on_bad_input(institution, args, message):
    assert run(*args) == (2, "", message)


def test_exit_2_when_the_scan_cannot_run(institution, tmp_path):
    code, out, err = run(*ARGS, "--json")
    assert code == 2
    assert json.loads(out)["status"] == "failed"
    assert err.startswith("scan ") and "failed, losses unknown: R&V source of PUMCH cannot be read:" in err
    assert "\n" not in err.strip()


def test_real_command_line_exit_code_and_one_line_error(tmp_path):
    """The exit code and stderr as a script sees them (a separate process, its own database)."""
    env = {"PATH": "/usr/bin:/bin", "PDAS_DATA_DIR": str(tmp_path), "HOME": str(tmp_path)}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=REPO, env=env, check=True)
    result = subprocess.run([sys.executable, "manage.py", "scan_losses", "--institution", "NONE", "--from",
                             "2024-03-04", "--to", "2024-03-10", "--json"], cwd=REPO, env=env, capture_output=True,
                            text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["CommandError: --institution: no institution with code 'NONE'"]
