"""``manage.py archive`` per docs/contracts.md §7: JSON results, exit 0 / 1 / 2."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from demo_site import GroupSpec, PlanSpec, write_institution_file, write_patient
from tests.factories import InstitutionFactory, StorageTargetFactory

pytestmark = pytest.mark.django_db
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "Patients"
    a = write_patient(root, patient_id=1, mrn="0001", last_name="欧阳", first_name="娜娜", plans=[PlanSpec(0, "A")])
    b = write_patient(root, patient_id=2, mrn="0002", plans=[PlanSpec(0, "B")])
    write_institution_file(root, [GroupSpec(1, "ToArchive", [a, b])], form="bare")
    inst = InstitutionFactory(code="PUMCH", tps_url=f"file://{root}")
    (tmp_path / "array").mkdir()
    StorageTargetFactory(institution=inst, name="array", url=f"file://{tmp_path / 'array'}")
    return {"inst": inst, "root": root, "array": tmp_path / "array"}


def _archive(*args):
    out = StringIO()
    try:
        call_command("archive", *args, stdout=out)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue()


def test_json_results_per_spec(site):
    code, out = _archive("--institution", "PUMCH", "--json")
    assert code == 0
    results = json.loads(out)["results"]
    assert sorted(r["mrn"] for r in results) == ["0001", "0002"]
    for r in results:
        assert set(r) >= {"mrn", "archive", "status", "reason"} and r["status"] == "pass"
    names = {r["mrn"]: r["archive"] for r in results}
    assert names["0001"] == "OUYANG-NANA_0001_20190301100000.tar.gz"
    assert (site["array"] / names["0001"]).is_file()


def test_any_error_exits_1(site):
    site["inst"].storage_targets.update(url=f"file://{site['array']}/missing-mount")
    code, out = _archive("--institution", "PUMCH", "--json")
    assert code == 1
    results = json.loads(out)["results"]
    assert {r["status"] for r in results} == {"error"}
    assert all("originals kept" in r["reason"] for r in results)
    assert (site["root"] / "Institution_1/Mount_0/Patient_1/Patient").is_file()


def test_unknown_institution_is_exit_2_with_one_line():
    with pytest.raises(CommandError) as err:
        call_command("archive", "--institution", "NOPE", "--json")
    assert err.value.returncode == 2 and "NOPE" in str(err.value)


def test_no_traceback_reaches_the_user(tmp_path):
    done = subprocess.run([sys.executable, "manage.py", "archive", "--institution", "NOPE"], cwd=REPO,
                          capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PDAS_DATA_DIR": str(tmp_path),
                               "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"})
    assert done.returncode in (1, 2)  # an empty database: no institution table or no such institution
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.django_db(transaction=True)
def test_without_a_broker_the_work_runs_in_this_process_and_the_command_waits(site, settings):
    settings.PDAS_DISPATCH_INLINE = False  # the embedded pool's threads, as in production
    settings.PDAS_ARCHIVE_WORKERS = 2
    code, out = _archive("--institution", "PUMCH", "--json")
    assert code == 0, out
    assert {r["status"] for r in json.loads(out)["results"]} == {"pass"}


@pytest.mark.servers
def test_with_a_broker_the_same_tasks_are_queued_and_the_command_waits(site, celery_worker):
    from archiver.models import ArchiveRun

    code, out = _archive("--institution", "PUMCH", "--json")
    assert code == 0, celery_worker.log_tail()
    assert {r["status"] for r in json.loads(out)["results"]} == {"pass"}
    run = ArchiveRun.objects.get()
    assert run.status == "done"  # closed by the worker's last patient task
    claimants = set(run.tasks.values_list("claimed_by", flat=True))  # host:pid:task of the worker
    assert all(name.split(":")[1] != str(os.getpid()) for name in claimants), claimants
