"""``manage.py import_mrn_aliases FILE --json`` (docs/contracts.md §7): added, unchanged, errors; exit 0/1/2."""
from __future__ import annotations

import json

import pytest

from audit.models import AuditEvent
from lossdetect.models import MrnAlias
from tests.commands import run_command
from tests.factories import InstitutionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def institution(db):
    return InstitutionFactory(code="PUMCH")


def write(tmp_path, text: str, *, bom: bool = False, name: str = "aliases.csv"):
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def run(*args):
    code, out, err = run_command("import_mrn_aliases", *args)
    return code, (json.loads(out) if out.strip().startswith("{") else out), err


@pytest.mark.parametrize("bom", [False, True])
def test_good_rows_a_duplicate_a_self_alias_a_cycle_and_a_malformed_row(institution, tmp_path, bom):
    MrnAlias.objects.create(institution=institution, old_mrn="000900", mrn="000901", reason="known before")
    path = write(tmp_path, "\r\n".join([
        "old_mrn,new_mrn,reason",
        "000100,000200,renumbered 2023",      # row 2: added
        "000200,000300,merged duplicate",     # row 3: added, a chain
        "000900,000901,",                     # row 4: already recorded: unchanged
        "000100,000200,again",                # row 5: repeats row 2: unchanged
        "000555,000555,typo",                 # row 6: an MRN to itself
        "000300,000100,loop",                 # row 7: would close 100 -> 200 -> 300 -> 100
        "000700",                             # row 8: malformed
        "000100,000999,second target",        # row 9: 000100 already goes by 000200
        ",000123,",                           # row 10: no old MRN
        " 000400 , 000500 ,李四 合并",          # row 11: added, spaces trimmed
    ]) + "\r\n", bom=bom)
    code, data, err = run(str(path), "--json")
    assert code == 1
    assert data["added"] == [{"old_mrn": "000100", "mrn": "000200"}, {"old_mrn": "000200", "mrn": "000300"},
                             {"old_mrn": "000400", "mrn": "000500"}]
    assert data["unchanged"] == [{"old_mrn": "000900", "mrn": "000901"}, {"old_mrn": "000100", "mrn": "000200"}]
    assert data["errors"] == [
        {"row": 6, "error": "an MRN cannot be an alias of itself ('000555')"},
        {"row": 7, "error": "'000300' -> '000100' would make a cycle (000300 -> 000100 -> 000200 -> 000300)"},
        {"row": 8, "error": "has 1 fields, the header has 3 (old_mrn,new_mrn,reason)"},
        {"row": 9, "error": "'000100' is already an alias of '000200'; an MRN goes by one MRN only "
                            "(change or delete that alias first)"},
        {"row": 10, "error": "old_mrn is empty"},
    ]
    assert f"{path}: row 7: '000300' -> '000100' would make a cycle" in err
    stored = {(a.old_mrn, a.mrn): a for a in MrnAlias.objects.all()}
    assert set(stored) == {("000900", "000901"), ("000100", "000200"), ("000200", "000300"), ("000400", "000500")}
    added = stored["000400", "000500"]
    assert (added.reason, added.source) == ("李四 合并", "import") and added.recorded_by.endswith("(command line)")
    assert stored["000900", "000901"].reason == "known before"  # unchanged rows are not touched

    changes = AuditEvent.objects.filter(event="mrnalias.change").order_by("id")
    assert [(e.mrns, e.detail["action"], e.detail["source"]) for e in changes] == [
        (["000100", "000200"], "add", "import"), (["000200", "000300"], "add", "import"),
        (["000400", "000500"], "add", "import")]
    summary = AuditEvent.objects.get(event="mrnalias.import")
    assert (summary.institution, summary.detail["added"], summary.detail["unchanged"]) == ("PUMCH", 3, 2)
    assert [e["row"] for e in summary.detail["refused"]] == [6, 7, 8, 9, 10]


def test_exit_0_when_every_row_is_added_or_known_and_a_second_run_changes_nothing(institution, tmp_path):
    path = write(tmp_path, "old_mrn,new_mrn,reason\n1,2,\n3,2,\n")
    code, data, _err = run(str(path), "--json")
    assert code == 0 and len(data["added"]) == 2 and data["errors"] == []
    code, data, _err = run(str(path), "--json")
    assert code == 0 and data["added"] == [] and len(data["unchanged"]) == 2
    assert MrnAlias.objects.count() == 2 and AuditEvent.objects.filter(event="mrnalias.change").count() == 2


def test_text_output_without_json(institution, tmp_path):
    path = write(tmp_path, "old_mrn,new_mrn\n1,2\n")  # the reason column may be left out
    code, out, _err = run(str(path))
    assert code == 0 and "added      1 -> 2" in out and "1 added, 0 unchanged, 0 refused (PUMCH)" in out


@pytest.mark.parametrize(("text", "message"), [
    ("mrn,new_mrn,reason\n1,2,\n", "row 1: the header must be old_mrn,new_mrn,reason (found mrn,new_mrn,reason)"),
    ("", "row 1: the header must be old_mrn,new_mrn,reason (found nothing)"),
])
def test_a_wrong_header_is_bad_input(institution, tmp_path, text, message):
    path = write(tmp_path, text)
    code, _out, err = run(str(path), "--json")
    assert code == 2 and message in err and "\n" not in err.strip()
    assert not MrnAlias.objects.exists() and not AuditEvent.objects.filter(event__startswith="mrnalias").exists()


def test_a_missing_or_undecodable_file_is_bad_input(institution, tmp_path):
    code, _out, err = run(str(tmp_path / "absent.csv"))
    assert code == 2 and "absent.csv: cannot read" in err
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"old_mrn,new_mrn,reason\n1,2,\x81\x20\xff\xfe\n")
    code, _out, err = run(str(path))
    assert code == 2 and "neither UTF-8 nor GB18030" in err


def test_the_institution_is_named_when_there_are_several(institution, tmp_path):
    other = InstitutionFactory(code="CAMS")
    path = write(tmp_path, "old_mrn,new_mrn,reason\n1,2,\n")
    code, _out, err = run(str(path))
    assert code == 2 and "several institutions: name the one the aliases belong to with --institution" in err
    code, _out, err = run(str(path), "--institution", "NOPE")
    assert code == 2 and "no institution with code 'NOPE'" in err
    code, data, _err = run(str(path), "--institution", "CAMS", "--json")
    assert code == 0 and data["institution"] == "CAMS"
    assert list(MrnAlias.objects.values_list("institution", flat=True)) == [other.pk]


def test_a_field_over_128_kib_refuses_its_row_and_the_next_rows_are_added(institution, tmp_path):
    path = write(tmp_path, "old_mrn,new_mrn,reason\n000100,000200,\n000300,000400," + "x" * 200_000
                 + "\n000500,000600,\n", bom=False)
    code, data, _err = run(str(path), "--json")
    assert code == 1
    assert data["added"] == [{"old_mrn": "000100", "mrn": "000200"}, {"old_mrn": "000500", "mrn": "000600"}]
    assert data["errors"] == [{"row": 3, "error": "not CSV (field larger than field limit (131072))"}]
