"""Whoever can write the database tries to rewrite the audit log; the keyed MACs, ``--expect`` and the
checkpoints kept on the storage targets show each attempt (docs/audit.md, docs/security.md).

The attacks run as raw SQL with the owner's rights: on PostgreSQL the table's triggers (append-only,
insert check) are switched off first, as only the owner can, inside the test's transaction. That the
app's own role cannot do even that is shown in test_postgresql_roles.py.
"""
from __future__ import annotations

import datetime as dt
import io
import json
import re
import os
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from audit import mac
from audit.checkpoints import MATCH, UNKNOWN, Checkpoint, is_checkpoint_name
from audit.models import AuditEvent
from audit.services import GENESIS_HASH, record_event, verify_chain
from tests.factories import InstitutionFactory, StorageTargetFactory

pytestmark = pytest.mark.django_db
TABLE = AuditEvent._meta.db_table
KEY = "k" * 40
OLD_KEY = "o" * 40


def _as_owner(sql: str, params=()) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER USER")
        cursor.execute(sql, params)


def _verify(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_audit", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(autouse=True)
def _key(settings):
    settings.PDAS_AUDIT_MAC_KEY, settings.PDAS_AUDIT_MAC_OLD_KEYS = KEY, []


@pytest.fixture
def chain() -> list[AuditEvent]:
    return [record_event(actor="li", event="patient.view", institution="PUMCH", mrns=[f"00000{n}"],
                         detail={"page": "x", "n": n}) for n in range(1, 7)]


@pytest.fixture
def targets(tmp_path) -> dict[str, Path]:
    """Two institutions, each with a first enabled target (folder) and a second one; a third institution's
    first target is the first one's folder (written once)."""
    folders = {name: tmp_path / name for name in ("a1", "a2", "b1", "b0-disabled")}
    for folder in folders.values():
        folder.mkdir()
    a, b, c = (InstitutionFactory(code=code) for code in ("AAA", "BBB", "CCC"))
    StorageTargetFactory(institution=a, name="first", url=f"file://{folders['a1']}", priority=0)
    StorageTargetFactory(institution=a, name="second", url=f"file://{folders['a2']}", priority=1)
    StorageTargetFactory(institution=b, name="off", url=f"file://{folders['b0-disabled']}", priority=0, enabled=False)
    StorageTargetFactory(institution=b, name="first", url=f"file://{folders['b1']}", priority=1)
    StorageTargetFactory(institution=c, name="shared", url=f"file://{folders['a1']}")
    return folders


def _checkpoint(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("audit_checkpoint", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


def _checkpoint_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if is_checkpoint_name(path.name))


# --- the MACs -------------------------------------------------------------------------------------------


def test_every_row_carries_a_mac_linked_to_the_one_before(chain):
    key = mac.current_key()
    previous = ""
    for row in AuditEvent.objects.order_by("id"):
        assert row.mac_key == key.id and row.mac == mac.row_mac(key, row.hash, previous)
        previous = row.mac
    report = verify_chain()
    assert (report.broken_id, report.macs_checked, report.before_macs) == (None, 6, 0)


def test_rows_of_any_json_content_go_in_and_verify():
    """On PostgreSQL the insert check recomputes each row's hash in SQL: any content record_event takes
    hashes alike there (numbers of every size, control characters, keys in any script)."""
    from tests.audit.test_postgresql_roles import TRICKY_VALUES

    for value in TRICKY_VALUES:
        record_event(actor="li", event="export", detail={"value": value, (1, 2)[0]: "int key"},
                     mrns=["中文", "000001"])
    record_event(actor="li", event="export", detail={"all": TRICKY_VALUES, "tuple": (1, 2.5)})

    report = verify_chain()
    assert (report.broken_id, report.reason, report.macs_checked) == (None, "", len(TRICKY_VALUES) + 1)


def test_an_old_row_edited_and_every_later_hash_recomputed_is_named_by_its_mac(chain):
    """The attack the chain alone cannot see: edit a row, then re-hash and re-link every row after it."""
    rows = list(AuditEvent.objects.order_by("id"))
    rows[1].actor = "someone-else"
    previous = rows[0].hash
    for row in rows[1:]:
        row.prev_hash = previous
        row.hash = row.compute_hash()
        _as_owner(f"UPDATE {TABLE} SET actor = %s, prev_hash = %s, hash = %s WHERE id = %s",
                  [row.actor, row.prev_hash, row.hash, row.id])
        previous = row.hash

    code, _out, err = _verify()

    assert verify_chain().broken_id == rows[1].id
    assert code == 1
    assert err.splitlines()[0] == (f"audit chain broken at event {rows[1].id}: its MAC does not match: the row was "
                                   "edited or forged")


def test_a_back_dated_row_with_a_correct_hash_is_caught_by_its_mac(chain):
    """Appended by raw SQL with a correct hash and link, dated last week: no key, so no MAC (or a wrong one)."""
    head = chain[-1]
    forged = AuditEvent(at=chain[0].at - dt.timedelta(days=7), actor="li", event="export", institution="PUMCH",
                        mrns=["000009"], detail={}, prev_hash=head.hash)
    forged.hash = forged.compute_hash()
    _as_owner(f"INSERT INTO {TABLE} (at, actor, event, institution, mrns, object_type, object_id, outcome, detail, "
              "prev_hash, hash, mac, mac_key) VALUES (%s, %s, %s, %s, %s, '', '', 'ok', '{}', %s, %s, '', '')",
              [forged.at, forged.actor, forged.event, forged.institution, json.dumps(forged.mrns), forged.prev_hash,
               forged.hash])
    forged_id = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()

    report = verify_chain()

    assert report.broken_id == forged_id
    assert report.reason.startswith("it has no MAC, though rows before it have one: it was written without PDAS's key")

    # The same row with a made-up MAC, under the current key's id or an invented one.
    for key_id, expected in ((mac.current_key().id, "its MAC does not match: the row was edited or forged"),
                             ("deadbeef", "its MAC was made with key deadbeef, which is not configured here")):
        _as_owner(f"UPDATE {TABLE} SET mac = %s, mac_key = %s WHERE id = %s", ["ab" * 32, key_id, forged_id])
        assert verify_chain().broken_id == forged_id and verify_chain().reason.startswith(expected)


def test_rows_from_before_macs_are_reported_not_failed_but_none_may_follow_a_macd_row(settings):
    settings.PDAS_AUDIT_MAC_KEY = None  # rows written before the migration that brought MACs
    old = [record_event(actor="li", event="patient.view", mrns=[str(n)]) for n in range(3)]
    settings.PDAS_AUDIT_MAC_KEY = KEY
    new = [record_event(actor="li", event="patient.view", mrns=[str(n)]) for n in range(2)]

    assert [row.mac for row in old] == ["", "", ""] and all(row.mac for row in new)
    report = verify_chain()
    assert (report.broken_id, report.before_macs, report.macs_checked) == (None, 3, 2)
    code, out, _err = _verify()
    assert code == 0 and f"MACs: 2 match (keys {new[0].mac_key}), 3 events written before MACs" in out

    settings.PDAS_AUDIT_MAC_KEY = None  # a worker started without the key
    stray = record_event(actor="li", event="export")
    settings.PDAS_AUDIT_MAC_KEY = KEY
    report = verify_chain()
    assert report.broken_id == stray.id and "not given PDAS_AUDIT_MAC_KEY" in report.reason


def test_rotation_the_old_key_still_checks_the_rows_it_signed(settings):
    settings.PDAS_AUDIT_MAC_KEY = OLD_KEY
    before = record_event(actor="li", event="patient.view")
    settings.PDAS_AUDIT_MAC_KEY = KEY
    after = record_event(actor="li", event="patient.view")
    assert before.mac_key != after.mac_key

    report = verify_chain()
    assert report.broken_id == before.id and report.reason.startswith(
        f"its MAC was made with key {before.mac_key}, which is not configured here: add that key to "
        "PDAS_AUDIT_MAC_OLD_KEYS")
    settings.PDAS_AUDIT_MAC_OLD_KEYS = [OLD_KEY]
    report = verify_chain()
    assert (report.broken_id, report.macs_checked) == (None, 2)


def test_without_any_key_macs_are_counted_unchecked_and_said_so(chain, settings):
    settings.PDAS_AUDIT_MAC_KEY = None

    code, out, _err = _verify()

    assert code == 0
    assert "MACs not checked: PDAS_AUDIT_MAC_KEY is not set (6 events carry one, 0 written before MACs)" in out


# --- rows cut off the end: --expect and checkpoints -----------------------------------------------------


def test_the_tail_cut_off_passes_the_chain_but_not_expect(chain):
    head = chain[-1]
    _as_owner(f"DELETE FROM {TABLE} WHERE id >= %s", [chain[-2].id])

    assert verify_chain().broken_id is None  # what is left is a consistent chain
    code, out, err = _verify("--expect", f"{chain[0].id}:{chain[0].hash}", "--expect", f"{head.id}:{head.hash}")

    assert code == 1
    assert f"expected event {chain[0].id}: present with hash {chain[0].hash}" in out
    assert err.strip() == (f"audit log does not hold what was noted: event {head.id} is missing: rows were cut off "
                           f"the end of the log or deleted (expected hash {head.hash})")


def test_expect_names_a_row_with_another_hash(chain):
    code, _out, err = _verify("--expect", f"{chain[2].id}:{'0' * 64}")
    assert code == 1 and f"event {chain[2].id} has hash {chain[2].hash}, not {'0' * 64}: the log was rewritten" in err


def test_a_malformed_expect_is_bad_input():
    with pytest.raises(Exception, match=r"--expect '12': write ID:HASH") as caught:
        call_command("verify_audit", "--expect", "12", stdout=io.StringIO(), stderr=io.StringIO())
    assert getattr(caught.value, "returncode", None) == 2


def test_checkpoints_go_to_each_institutions_first_enabled_target_once(chain, targets):
    code, out, err = _checkpoint()

    assert (code, err) == (0, "")
    written = {name: _checkpoint_files(folder) for name, folder in targets.items()}
    assert [len(written[name]) for name in ("a1", "a2", "b1", "b0-disabled")] == [1, 0, 1, 0]
    stored = Checkpoint.parse(written["a1"][0].read_bytes())
    assert (stored.head_id, stored.head_hash, stored.head_mac, stored.rows) == (chain[-1].id, chain[-1].hash,
                                                                                chain[-1].mac, 6)
    assert stored.key_id == mac.current_key().id and stored.signature
    assert written["b1"][0].read_bytes() == written["a1"][0].read_bytes()
    assert out.strip() == (f"audit checkpoint {written['a1'][0].name} (event {chain[-1].id} hash {chain[-1].hash}) "
                           "written to AAA/first, BBB/first")
    event = AuditEvent.objects.order_by("-id").first()
    assert (event.event, event.outcome, event.detail["written"]) == ("audit.checkpoint", "ok",
                                                                      ["AAA/first", "BBB/first"])

    # A second checkpoint is a new file; none is ever replaced.
    assert _checkpoint()[0] == 0
    assert len(_checkpoint_files(targets["a1"])) == 2


def test_checkpoints_read_back_match(chain, targets):
    _checkpoint()
    record_event(actor="li", event="export")  # the log goes on after a checkpoint

    code, out, err = _verify("--checkpoints")

    assert (code, err) == (0, "")
    assert sum("event %d and the 6 events up to it match" % chain[-1].id in line for line in out.splitlines()) == 2


def test_the_tail_cut_off_is_caught_by_the_checkpoints(chain, targets):
    _checkpoint()
    _as_owner(f"DELETE FROM {TABLE} WHERE id >= %s", [chain[-1].id])

    code, _out, err = _verify("--checkpoints")

    assert code == 1
    lines = err.splitlines()
    assert len(lines) == 2 and all(f"event {chain[-1].id} is gone from the log: rows were cut off its end" in line
                                   for line in lines)
    assert lines[0].startswith("checkpoint AAA/first: pdas-audit-checkpoint-")
    check = AuditEvent.objects.order_by("-id").first()
    assert (check.event, check.outcome, check.detail["status"]) == ("audit.verify", "failed", "tampered")


def test_a_rewritten_log_is_caught_by_the_checkpoints_even_with_the_key(chain, targets):
    """A thief of the key re-signs a rewritten log; the checkpoints kept off the host still differ."""
    _checkpoint()
    key = mac.current_key()
    rows = list(AuditEvent.objects.order_by("id"))
    rows[0].actor = "someone-else"
    previous_hash, previous_mac = GENESIS_HASH, ""
    for row in rows:
        row.prev_hash = previous_hash
        row.hash = row.compute_hash()
        row.mac = mac.row_mac(key, row.hash, previous_mac)
        _as_owner(f"UPDATE {TABLE} SET actor = %s, prev_hash = %s, hash = %s, mac = %s WHERE id = %s",
                  [row.actor, row.prev_hash, row.hash, row.mac, row.id])
        previous_hash, previous_mac = row.hash, row.mac

    code, _out, err = _verify("--checkpoints")

    assert verify_chain().broken_id is None
    assert code == 1 and "the log was rewritten" in err


def test_macs_stripped_and_a_row_deleted_and_the_rest_re_linked_is_caught_by_the_checkpoints(chain, targets):
    """With every MAC stripped (the rows then pass for rows written before MACs), a middle row deleted and the
    rest re-linked passes the chain, not the checkpoints."""
    _checkpoint()
    _as_owner(f"UPDATE {TABLE} SET mac = '', mac_key = ''")  # every MAC stripped: "all written before MACs"
    _as_owner(f"DELETE FROM {TABLE} WHERE id = %s", [chain[1].id])
    previous = chain[0].hash
    for row in AuditEvent.objects.filter(id__gt=chain[1].id).order_by("id"):
        row.prev_hash = previous
        row.hash = row.compute_hash()
        _as_owner(f"UPDATE {TABLE} SET prev_hash = %s, hash = %s WHERE id = %s",
                  [row.prev_hash, row.hash, row.id])
        previous = row.hash

    code, _out, err = _verify("--checkpoints")

    assert verify_chain().broken_id is None  # without its MACs the re-linked chain checks out
    assert code == 1 and f"event {chain[-1].id} has hash" in err and "the log was rewritten" in err


def test_a_checkpoint_altered_on_the_target_is_tampering(chain, targets):
    _checkpoint()
    [path] = _checkpoint_files(targets["a1"])
    data = json.loads(path.read_text())
    data["head_id"] = chain[2].id  # "the log ended earlier": made to hide the rows after it
    data["head_hash"], data["head_mac"], data["rows"] = chain[2].hash, chain[2].mac, 3
    path.write_text(json.dumps(data))
    [other] = _checkpoint_files(targets["b1"])
    other.write_text("not json")

    code, _out, err = _verify("--checkpoints")

    assert code == 1
    assert f"checkpoint AAA/first: {path.name}: its signature does not match: the file was altered or forged" in err
    assert f"checkpoint BBB/first: {other.name}: not JSON: the file was altered" in err


def test_an_unreachable_target_is_unknown_never_a_pass(chain, targets):
    _checkpoint()
    targets["b1"].rename(targets["b1"].with_name("moved"))

    code, out, err = _verify("--checkpoints", "--json")

    assert code == 1
    result = json.loads(out)
    assert result["status"] == "unknown" and result["intact"] is True
    by_target = {item["target"]: item for item in result["checkpoints"]}
    assert by_target["AAA/first"]["status"] == MATCH
    assert by_target["BBB/first"]["status"] == UNKNOWN
    assert by_target["BBB/first"]["message"].startswith("cannot be read (unknown): ")
    assert err.strip().startswith("checkpoint BBB/first: cannot be read (unknown): ")


def test_a_target_without_checkpoints_is_unknown(chain, targets):
    code, _out, err = _verify("--checkpoints")
    assert code == 1 and "checkpoint AAA/first: holds no audit checkpoint yet (unknown)" in err


def test_no_target_to_read_checkpoints_from_is_unknown(chain):
    code, out, err = _verify("--checkpoints", "--json")
    assert code == 1 and json.loads(out)["status"] == "unknown"
    assert err.strip() == "checkpoints: no institution has an enabled storage target to read them from (unknown)"


def test_a_checkpoint_that_cannot_be_written_is_a_failed_event(chain, targets):
    targets["b1"].rmdir()

    code, out, err = _checkpoint()

    assert code == 1 and "written to AAA/first" in out
    assert err.startswith("audit checkpoint not written to BBB/first: ")
    event = AuditEvent.objects.order_by("-id").first()
    assert (event.event, event.outcome, list(event.detail["failed"])) == ("audit.checkpoint", "failed", ["BBB/first"])


def test_no_target_no_checkpoint(chain):
    code, _out, err = _checkpoint()
    assert code == 1 and "no institution has an enabled storage target" in err
    assert AuditEvent.objects.order_by("-id").first().outcome == "failed"


def test_the_beat_entry_writes_a_checkpoint(chain, targets):
    from audit.tasks import write_audit_checkpoint_task
    from pdas.schedules import DEFAULT_SCHEDULES

    assert "audit.tasks.write_audit_checkpoint_task" in {entry.task for entry in DEFAULT_SCHEDULES}
    result = write_audit_checkpoint_task()
    assert result["written"] == ["AAA/first", "BBB/first"] and result["failed"] == []
    assert AuditEvent.objects.order_by("-id").first().actor == "scheduler"


def test_reconciliation_does_not_take_a_checkpoint_for_an_archive():
    from reports.services.reconcile import is_sidecar

    assert is_sidecar("pdas-audit-checkpoint-20261126T010203123456Z-42.json")
    assert not is_sidecar("pdas-audit-checkpoint-x.json.tar.gz")


# --- the key's configuration ----------------------------------------------------------------------------


def _private(path: Path, text: str, mode: int = 0o600) -> str:
    path.write_text(text)
    path.chmod(mode)
    return str(path)


def test_the_key_comes_from_the_environment_or_a_private_file(tmp_path):
    from django.core.exceptions import ImproperlyConfigured

    assert mac.keys_from_environment({"PDAS_AUDIT_MAC_KEY": KEY}, development_dir=None) == (KEY, [])
    key_file = _private(tmp_path / "key", KEY + "\n")
    old_file = _private(tmp_path / "old", f"{OLD_KEY}\n{'p' * 32}\n")
    assert mac.keys_from_environment({"PDAS_AUDIT_MAC_KEY_FILE": key_file, "PDAS_AUDIT_MAC_OLD_KEYS_FILE": old_file},
                                     development_dir=None) == (KEY, [OLD_KEY, "p" * 32])
    assert mac.keys_from_environment({}, development_dir=None) == (None, [])  # production: check --deploy says so

    problems = {
        "readable or writable by group or others (mode 0640): chmod 600 it":
            {"PDAS_AUDIT_MAC_KEY_FILE": _private(tmp_path / "open", KEY, 0o640)},
        "is shorter than 32 characters": {"PDAS_AUDIT_MAC_KEY": "short"},
        "PDAS_AUDIT_MAC_KEY and PDAS_AUDIT_MAC_KEY_FILE are both set": {"PDAS_AUDIT_MAC_KEY": KEY,
                                                                       "PDAS_AUDIT_MAC_KEY_FILE": key_file},
        "No such file or directory": {"PDAS_AUDIT_MAC_KEY_FILE": str(tmp_path / "absent")},
        "a key of PDAS_AUDIT_MAC_OLD_KEYS is shorter": {"PDAS_AUDIT_MAC_KEY": KEY, "PDAS_AUDIT_MAC_OLD_KEYS": "x,y"},
    }
    for message, environ in problems.items():
        with pytest.raises(ImproperlyConfigured, match=re.escape(message)):
            mac.keys_from_environment(environ, development_dir=None)


def test_development_makes_a_private_key_once(tmp_path):
    first, _ = mac.keys_from_environment({}, development_dir=tmp_path)
    again, _ = mac.keys_from_environment({}, development_dir=tmp_path)

    assert first == again and len(first) >= 32
    assert os.stat(tmp_path / "audit_mac_key").st_mode & 0o777 == 0o600


def test_check_deploy_errors_without_a_key_in_production(settings):
    from audit.checks import audit_mac_key_set

    assert audit_mac_key_set() == []
    settings.PDAS_AUDIT_MAC_KEY = None
    [error] = audit_mac_key_set()
    assert error.id == "audit.E001" and error.is_serious()
    assert error.msg.startswith("PDAS_AUDIT_MAC_KEY is not set: audit rows are written without a MAC")


def test_check_deploy_runs_the_key_check(settings):
    from django.core.management.base import SystemCheckError

    settings.PDAS_AUDIT_MAC_KEY = None
    with pytest.raises(SystemCheckError, match="audit.E001"):
        call_command("check", "--deploy", "--fail-level", "ERROR", stdout=io.StringIO(), stderr=io.StringIO())


def test_a_checkpoint_is_parsed_strictly():
    good = Checkpoint(3, "a" * 64, "b" * 64, 3, "2026-11-26T01:02:03+00:00").signed(mac.current_key())
    assert Checkpoint.parse(good.to_bytes()) == good
    assert good.file_name == "pdas-audit-checkpoint-20261126T010203000000Z-3.json"
    assert is_checkpoint_name(good.file_name)
    for broken, reason in ((b"\xff", "not JSON"), (b"[]", "not a checkpoint"),
                           (json.dumps({"format": "pdas-audit-checkpoint/1"}).encode(), "lacks head_id"),
                           (good.to_bytes().replace(b'"rows": 3', b'"rows": "3"'), "wrong type")):
        with pytest.raises(ValueError, match=reason):
            Checkpoint.parse(broken)
