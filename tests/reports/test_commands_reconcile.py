"""``manage.py reconcile``: exit 0 all agree, 1 findings, 2 bad input; JSON on stdout."""
from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from reports.models import ReconciliationImport
from tests.factories import ArchiveCopyFactory, ArchiveFactory, InstitutionFactory, StorageTargetFactory

pytestmark = pytest.mark.django_db
NAME = "ZHANG-SAN_000123_20240101000000.tar.gz"


@pytest.fixture
def inst(tmp_path):
    inst = InstitutionFactory(code="PUMCH")
    target = StorageTargetFactory(institution=inst, name="array", url=f"file://{tmp_path / 'array'}")
    ArchiveCopyFactory(archive=ArchiveFactory(institution=inst, name=NAME, mrn="000123", size=4), target=target)
    return inst


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("reconcile", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    except CommandError as exc:
        code, err = exc.returncode, io.StringIO(str(exc))
    return code, out.getvalue(), err.getvalue()


def test_a_listing_that_agrees_exits_0_with_json(inst, tmp_path):
    listing = tmp_path / "listing.csv"
    listing.write_text(f"name,size\n{NAME},4\n")
    code, out, err = run("--institution", "PUMCH", "--listing", str(listing), "--json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert data["status"] == "done" and data["counts"]["matched"] == 1
    assert data["entries"] == [{"line": 2, "path": NAME, "file_name": NAME, "size": 4, "sha256": "", "mrn": "000123",
                                "archive": NAME, "outcome": "matched",
                                "detail": "size compared; the listing has no checksum"}]


def test_findings_exit_1_and_are_summed_up_on_stderr(inst, tmp_path):
    listing = tmp_path / "listing.tsv"
    listing.write_text("name\tsize\nOTHER_000123_20200101000000.tar.gz\t9\n")
    code, out, err = run("--institution", "PUMCH", "--listing", str(listing))
    assert code == 1
    assert "only_in_listing" in out and "only_in_pdas" in out
    assert err.strip() == f"reconciliation {ReconciliationImport.objects.get().pk}: 1 only_in_listing, 1 only_in_pdas"


def test_listing_a_target_directly(inst, tmp_path):
    (tmp_path / "array").mkdir()
    (tmp_path / "array" / NAME).write_bytes(b"abcd")
    code, out, _ = run("--institution", "PUMCH", "--target", "array", "--json")
    assert code == 0 and json.loads(out)["source"] == "target"


@pytest.mark.parametrize(("args", "error"), [
    (["--institution", "NOPE", "--target", "array"], "--institution: no institution with code 'NOPE'"),
    (["--institution", "PUMCH"], "give --listing FILE, --target NAME, or both"),
    (["--institution", "PUMCH", "--target", "x"], "--target: PUMCH has no storage target named 'x'"),
    (["--institution", "PUMCH", "--listing", "/nonexistent/l.csv"], "--listing /nonexistent/l.csv: No such file or "
                                                                    "directory"),
])
def test_bad_input_exits_2_in_one_line(inst, args, error):
    code, _, err = run(*args)
    assert (code, err) == (2, error)


def test_an_unreadable_listing_exits_2_and_is_stored_as_failed(inst, tmp_path):
    listing = tmp_path / "l.csv"
    listing.write_bytes(b"size,sha256\n1,2\n")
    code, _, err = run("--institution", "PUMCH", "--listing", str(listing))
    failed = ReconciliationImport.objects.get()
    assert code == 2 and err == (f"reconciliation {failed.pk} failed: l.csv: line 1: the header has no name column "
                                 "(one of name, file_name, filename, file, path)")
    assert failed.status == ReconciliationImport.Status.FAILED
