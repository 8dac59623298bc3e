"""``manage.py restore`` per docs/contracts.md §7: JSON, exit 0 / 1 / 2, one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from archiver.models import RestoreRecord
from audit.models import AuditEvent
from tests.archiver.restore_site import archive_patients, build_site, tree

pytestmark = pytest.mark.django_db
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def site(tmp_path, settings):
    settings.DATA_DIR = tmp_path / "data"
    site = build_site(tmp_path)
    site["originals"] = {p: tree(site["root"] / p) for p in (site["zhang"], site["namesake"], site["smith"])}
    site["archives"] = archive_patients(site["inst"], [site["zhang"], site["namesake"], site["smith"]])
    return site


def _restore(*args):
    out = StringIO()
    try:
        call_command("restore", "--institution", "PUMCH", *args, stdout=out, stderr=StringIO())
        code = 0
    except CommandError as exc:
        return exc.returncode, out.getvalue(), str(exc)
    return code, out.getvalue(), ""


def test_json_per_spec_and_the_tree_is_back(site):
    code, out, _ = _restore("--mrn", "000124", "--json")
    assert code == 0
    restored = json.loads(out)["restored"]
    assert len(restored) == 1 and set(restored[0]) >= {"archive", "tps_path", "files"}
    assert restored[0] == {**restored[0], "archive": site["archives"][site["smith"]].name, "tps_path": site["smith"],
                           "files": len(site["originals"][site["smith"]])}
    assert tree(site["root"] / site["smith"]) == site["originals"][site["smith"]]
    event = AuditEvent.objects.get(event="restore")
    assert event.mrns == ["000124"] and "command line" in event.actor


def test_two_patients_sharing_the_mrn_need_archive(site):
    code, out, error = _restore("--mrn", "000123", "--json")
    assert code == 2 and "matches 2 different patients" in error and "--archive" in error and "\n" not in error
    assert json.loads(out) == {"restored": [], "error": error}
    assert not (site["root"] / site["zhang"]).exists() and not RestoreRecord.objects.exists()

    name = site["archives"][site["namesake"]].name
    code, out, _ = _restore("--mrn", "000123", "--archive", name, "--json")
    assert code == 0 and json.loads(out)["restored"][0]["archive"] == name
    assert tree(site["root"] / site["namesake"]) == site["originals"][site["namesake"]]
    assert not (site["root"] / site["zhang"]).exists()


def test_an_archive_of_another_mrn_is_refused(site):
    code, _, error = _restore("--mrn", "000124", "--archive", site["archives"][site["zhang"]].name)
    assert code == 2 and "is not an archive of MRN 000124" in error


def test_to_dir(site, tmp_path):
    code, out, _ = _restore("--mrn", "000124", "--to", str(tmp_path / "out"), "--json")
    assert code == 0 and json.loads(out)["restored"][0]["tps_path"] == site["smith"]
    assert tree(tmp_path / "out" / site["smith"]) == site["originals"][site["smith"]]


def test_an_existing_folder_is_exit_2_and_untouched(site):
    (site["root"] / site["smith"]).mkdir(parents=True)
    (site["root"] / site["smith"] / "note").write_text("mine")
    code, _, error = _restore("--mrn", "000124")
    assert code == 2 and "already exists" in error and "nothing was written" in error
    assert [p.name for p in (site["root"] / site["smith"]).iterdir()] == ["note"]


def test_a_damaged_archive_is_exit_1(site):
    archive = site["archives"][site["smith"]]
    for array in site["arrays"]:
        data = bytearray((array / archive.name).read_bytes())
        data[100] ^= 0x10
        (array / archive.name).write_bytes(bytes(data))
    code, _, error = _restore("--mrn", "000124")
    assert code == 1 and "SHA-256 differs" in error
    assert not (site["root"] / site["smith"]).exists()


@pytest.mark.parametrize("args, message", [
    (["--mrn", "424242"], "no archive of MRN 424242 was found"),
    (["--mrn", "  "], "--mrn is empty"),
    (["--mrn", "000124", "--archive", "../etc/passwd"], "is not an archive file name"),
])
def test_bad_input_is_exit_2(site, args, message):
    code, _, error = _restore(*args)
    assert code == 2 and message in error


def test_unknown_institution_is_exit_2():
    with pytest.raises(CommandError) as err:
        call_command("restore", "--institution", "NOPE", "--mrn", "1")
    assert err.value.returncode == 2 and "NOPE" in str(err.value)


def test_no_traceback_reaches_the_user(tmp_path):
    done = subprocess.run([sys.executable, "manage.py", "restore", "--institution", "NOPE", "--mrn", "1"], cwd=REPO,
                          capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PDAS_DATA_DIR": str(tmp_path),
                               "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"})
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
