"""``manage.py backup`` and ``restore_backup``: backup -> changes -> restore gives the data of the backup, the
audit chain intact and the restore audited after it; a damaged backup or a missing --yes changes nothing.
Runs on SQLite and, in the suite's PostgreSQL pass, with pg_dump and pg_restore."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from audit.events import Event
from audit.models import AuditEvent
from audit.services import record_event, verify_chain
from inventory.models import Archive
from sites.models import Institution
from tests.commands import run_command
from tests.factories import ArchiveFactory, InstitutionFactory

pytestmark = pytest.mark.django_db(transaction=True)  # pg_dump and pg_restore see committed rows only


def _state() -> tuple:
    return (sorted(Institution.objects.values_list("code", flat=True)),
            sorted(Archive.objects.values_list("mrn", flat=True)),
            list(AuditEvent.objects.order_by("id").values_list("id", "hash")))


def test_backup_changes_restore(tmp_path):
    inst = InstitutionFactory(code="PUMCH")
    ArchiveFactory(institution=inst, mrn="000123")
    record_event(actor="t", event=Event.PATIENT_VIEW, institution="PUMCH", mrns=["000123"])
    code, out, err = run_command("backup", "--output", str(tmp_path / "backups"), "--json")
    assert code == 0, err
    info = json.loads(out)
    path = Path(info["file"])
    assert path.is_file() and info["size"] == path.stat().st_size > 0
    assert Path(f"{path}.sha256").read_text().split()[0] == info["sha256"]
    assert AuditEvent.objects.latest("id").event == "database.backup"
    backed_up = _state()
    copied_events = backed_up[2][:-1]  # the backup's own audit row is written after the copy was taken

    InstitutionFactory(code="LATER")
    ArchiveFactory(institution=inst, mrn="000999")
    record_event(actor="t", event=Event.PATIENT_VIEW, institution="PUMCH", mrns=["000999"])

    code, _out, err = run_command("restore_backup", str(path))
    assert code == 2 and "add --yes" in err and "LATER" in _state()[0]  # nothing changed without --yes

    code, out, err = run_command("restore_backup", str(path), "--yes")
    assert code == 0, err
    codes, mrns, events = _state()
    assert (codes, mrns) == (backed_up[0], backed_up[1]) and events[:-1] == copied_events
    assert AuditEvent.objects.latest("id").event == "database.restore"
    assert verify_chain().broken_id is None


def test_a_damaged_backup_is_refused_and_changes_nothing(tmp_path):
    InstitutionFactory(code="PUMCH")
    code, out, _err = run_command("backup", "--output", str(tmp_path), "--json")
    path = Path(json.loads(out)["file"])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    InstitutionFactory(code="LATER")
    code, _out, err = run_command("restore_backup", str(path), "--yes")
    assert code == 2 and "damaged; nothing restored" in err and "\n" not in err.strip()
    assert sorted(Institution.objects.values_list("code", flat=True)) == ["LATER", "PUMCH"]
    code, _out, err = run_command("restore_backup", str(tmp_path / "missing.dump"), "--yes")
    assert code == 2 and "missing.dump.sha256: missing or empty" in err
