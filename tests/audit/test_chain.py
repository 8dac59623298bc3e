"""The audit chain: ``manage.py verify_audit`` names the first edited, deleted or inserted row.

Rows are tampered with by raw SQL, as someone with the database's owner account would. On PostgreSQL
the append-only and insert-check triggers are switched off for that inside the test's transaction (it
is rolled back). The keyed MACs, checkpoints and ``--expect`` are in test_tampering.py.
"""
from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import connection

from audit.models import AuditEvent
from audit.services import GENESIS_HASH, record_event, verify_chain

pytestmark = pytest.mark.django_db
TABLE = AuditEvent._meta.db_table


def _owner_may_tamper() -> None:
    """PostgreSQL: switch the audit table's triggers off, as its owner can (until the test's rollback)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER USER")


def _raw(sql: str, params=()) -> None:
    _owner_may_tamper()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _verify() -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_audit", stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def chain() -> list[AuditEvent]:
    return [record_event(actor="li", event="patient.view", institution="PUMCH", mrns=[mrn], detail={"page": "x"})
            for mrn in ("000001", "000002", "000003", "000004")]


def test_an_intact_chain_verifies_and_the_check_is_audited(chain):
    code, out, err = _verify()

    assert (code, err) == (0, "")
    assert out.splitlines() == [f"audit chain intact: 4 events, last event {chain[-1].id} hash {chain[-1].hash}",
                                f"MACs: 4 match (keys {chain[-1].mac_key}), 0 events written before MACs"]
    check = AuditEvent.objects.order_by("id").last()
    assert check.event == "audit.verify" and check.actor.endswith("(command line)") and check.outcome == "ok"
    assert check.prev_hash == chain[-1].hash and check.detail["checked"] == 4
    assert verify_chain().broken_id is None  # the check's own row links on


def test_an_edited_row_is_named(chain):
    _raw(f"UPDATE {TABLE} SET actor = %s WHERE id = %s", ["someone-else", chain[1].id])

    code, out, err = _verify()

    assert code == 1 and out == ""
    assert err.strip() == (f"audit chain broken at event {chain[1].id}: its hash does not match its content: "
                           "the row was edited")
    assert AuditEvent.objects.order_by("id").last().outcome == "failed"


def test_an_edited_mrn_list_is_named(chain):
    _raw(f"UPDATE {TABLE} SET mrns = %s WHERE id = %s", ['["999999"]', chain[2].id])

    assert verify_chain().broken_id == chain[2].id


def test_a_deleted_row_breaks_the_link_of_the_next(chain):
    _raw(f"DELETE FROM {TABLE} WHERE id = %s", [chain[1].id])

    report = verify_chain()

    assert report.broken_id == chain[2].id
    assert report.reason.startswith(f"it does not link to row {chain[0].id}: a row between was deleted")


def test_deleting_the_first_row_is_seen(chain):
    _raw(f"DELETE FROM {TABLE} WHERE id = %s", [chain[0].id])

    report = verify_chain()

    assert report.broken_id == chain[1].id and "the start of the log" in report.reason


def test_an_edit_that_recomputes_the_rows_hash_is_caught_by_its_mac_or_at_the_next_row(chain, settings):
    forged = AuditEvent.objects.get(pk=chain[1].pk)
    forged.actor = "someone-else"
    _raw(f"UPDATE {TABLE} SET actor = %s, hash = %s WHERE id = %s",
         [forged.actor, forged.compute_hash(), forged.pk])

    report = verify_chain()
    assert (report.broken_id, report.reason) == (chain[1].id, "its MAC does not match: the row was edited or forged")
    settings.PDAS_AUDIT_MAC_KEY = None  # without the key, the chain alone: the next row no longer links
    assert verify_chain().broken_id == chain[2].id


def test_an_inserted_row_with_a_valid_hash_and_link_is_named(settings):
    settings.PDAS_AUDIT_MAC_KEY = None  # the chain alone (test_tampering.py: such a row has no MAC)
    chain = [record_event(actor="li", event="patient.view", institution="PUMCH", mrns=[mrn])
             for mrn in ("000001", "000002", "000003", "000004")]
    # Leave a gap of ids after the last row, as rolled-back inserts do, then slip a row into it.
    gap_after = chain[-1].id
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{TABLE}', 'id'), %s)", [gap_after + 10])
        else:
            cursor.execute("UPDATE sqlite_sequence SET seq = %s WHERE name = %s", [gap_after + 10, TABLE])
    later = record_event(actor="li", event="patient.view", mrns=["000005"])
    forged = AuditEvent(id=gap_after + 5, at=chain[-1].at, actor="li", event="export", institution="PUMCH",
                        mrns=[], detail={}, prev_hash=chain[-1].hash)
    forged.hash = forged.compute_hash()
    _owner_may_tamper()
    AuditEvent.objects.bulk_create([forged])  # bypasses record_event and the model's save()

    code, _out, err = _verify()

    assert later.id > forged.id > chain[-1].id
    assert code == 1
    assert err.strip() == (f"audit chain broken at event {forged.id}: it was inserted: row {later.id} after it "
                           "links to the row before it")


def test_the_model_refuses_updates_and_deletes(chain):
    row = AuditEvent.objects.get(pk=chain[0].pk)
    row.actor = "x"
    with pytest.raises(PermissionError):
        row.save()
    with pytest.raises(PermissionError):
        row.delete()


def test_an_empty_log_verifies():
    report = verify_chain()
    assert (report.broken_id, report.checked, report.head_hash) == (None, 0, GENESIS_HASH)


def test_json_output(chain):
    out = io.StringIO()
    call_command("verify_audit", "--json", stdout=out)
    assert '"intact": true' in out.getvalue() and f'"head_id": {chain[-1].id}' in out.getvalue()
