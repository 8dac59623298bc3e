"""``manage.py curate`` per docs/contracts.md §7: JSON on stdout, exit 0 / 1 / 2, one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from demo_site import PlanSpec

pytestmark = pytest.mark.django_db
REPO = Path(__file__).resolve().parents[2]


def curate(*args) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("curate", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


def test_all_ready_exits_0_with_the_spec_keys(site):
    site.add(1, mrn="000123", last_name="欧阳", first_name="娜娜", encoding="gb18030")
    code, out, _ = curate("--institution", "PUMCH", "--json")
    assert code == 0
    patients = json.loads(out)["patients"]
    assert patients == [{"mrn": "000123", "tps_path": "Institution_1/Mount_0/Patient_1", "category": "ready",
                         "reasons": [], "plan_ids": [], "name": "欧阳, 娜娜", "acknowledged": False,
                         "needs_person": False}]


def test_findings_exit_1_and_a_patient_is_listed_once_per_category(site):
    site.add(1, mrn="000123")
    site.add(2, mrn="", plans=[PlanSpec(0, "CopyOf_1_A")])
    site.add(3, mrn="000125", plans=[PlanSpec(0, "A"), PlanSpec(1, "B", directory=False)])
    code, out, _ = curate("--institution", "PUMCH", "--json")
    assert code == 1
    rows = [(p["tps_path"].rsplit("_", 1)[1], p["category"]) for p in json.loads(out)["patients"]]
    assert rows == [("1", "ready"), ("2", "naming"), ("2", "transitional"), ("3", "unreadable")]
    for p in json.loads(out)["patients"]:
        assert set(p) >= {"mrn", "tps_path", "category", "reasons"} and isinstance(p["reasons"], list)


def test_text_output_lists_every_reason(site):
    site.add(1, mrn="000123", first_name="")
    code, out, _ = curate("--institution", "PUMCH")
    assert code == 1
    assert "naming       000123         Institution_1/Mount_0/Patient_1" in out
    assert "first name is empty" in out and "1 patients, 0 ready, 1 need a decision" in out


def test_warnings_go_to_stderr_one_line_each(site, tmp_path):
    site.add(1)
    site.inst.rv_url = f"csv:{tmp_path / 'nope.csv'}"
    site.inst.save()
    code, out, err = curate("--institution", "PUMCH", "--json")
    assert code == 0 and json.loads(out)["warnings"]
    assert err.startswith("warning: R&V source cannot be read") and len(err.strip().splitlines()) == 1


def test_unknown_institution_is_exit_2():
    with pytest.raises(CommandError) as err:
        call_command("curate", "--institution", "NOPE", "--json")
    assert err.value.returncode == 2 and "'NOPE'" in str(err.value)


def test_an_unreadable_tps_is_exit_2_with_one_line(site):
    site.inst.tps_url = f"file://{site.root}/missing"
    site.inst.save()
    with pytest.raises(CommandError) as err:
        call_command("curate", "--institution", "PUMCH")
    assert err.value.returncode == 2 and str(err.value).startswith("TPS of PUMCH cannot be read: ")
    assert "\n" not in str(err.value)


def test_no_traceback_reaches_the_user(tmp_path):
    done = subprocess.run([sys.executable, "manage.py", "curate", "--institution", "NOPE", "--json"], cwd=REPO,
                          capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PDAS_DATA_DIR": str(tmp_path),
                               "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"})
    assert done.returncode == 2 and done.stdout == ""
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
