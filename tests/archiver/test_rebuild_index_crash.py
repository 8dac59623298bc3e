"""``manage.py rebuild_index --verify`` killed mid-way (a real process, SIGKILLed at archiver/faults.py's
``rebuild_indexed``), or hit by an exception there; then run again.

The rerun is idempotent: every archive once (no duplicate rows, one ``archive.index`` row each), the
index equal to what it was before the database was lost, and no archive ``verified`` but by reading a
copy back against its manifest, whatever was committed before the kill.
"""
from __future__ import annotations

import pytest
from django.core.management import CommandError

from archiver.faults import InjectedFault
from audit.models import AuditEvent
from audit.services import verify_chain
from inventory.models import Archive, ArchiveCopy, FixityCheck
from tests.archiver.crash_tools import park_command_and_kill
from tests.archiver.test_commands_rebuild_index import _rebuild, _snapshot, lost_database  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db(transaction=True)


def _assert_half_done() -> None:
    """What the dead run committed: one archive indexed, its copy not yet measured, nothing verified."""
    archive = Archive.objects.get()
    assert archive.status == Archive.Status.PACKED
    assert list(archive.copies.values_list("status", flat=True)) == [ArchiveCopy.Status.UPLOADED]
    assert not FixityCheck.objects.exists()
    assert AuditEvent.objects.filter(event="archive.index", object_type="Archive").count() == 1
    assert not AuditEvent.objects.filter(event="archive.index", object_type="Institution").exists()


def _assert_converged(lost) -> None:
    code, report = _rebuild("--verify")
    assert code == 0, report["problems"]
    assert _snapshot() == lost["before"]
    assert Archive.objects.count() == 3
    indexed = AuditEvent.objects.filter(event="archive.index", object_type="Archive")
    assert sorted(e.detail["archive"] for e in indexed) == sorted(Archive.objects.values_list("name", flat=True))
    for archive in Archive.objects.all():
        assert archive.status == Archive.Status.VERIFIED
        # Verified by reading a copy back whole against the manifest, never by its own sidecar's digest.
        assert FixityCheck.objects.filter(copy__archive=archive, method=FixityCheck.Method.READ_BACK,
                                          outcome=FixityCheck.Outcome.PASS).exists(), archive.name
        for copy in archive.copies.all():
            assert copy.status == ArchiveCopy.Status.VERIFIED
            assert copy.fixity_checks.filter(outcome=FixityCheck.Outcome.PASS).exists()
    code, again = _rebuild("--verify")
    assert code == 0 and again["counts"]["created"] == 0 and again["counts"]["copies_added"] == 0
    assert again["counts"]["verified"] == 0, "nothing left to verify"
    assert verify_chain().broken_id is None


@pytest.mark.servers
@pytest.mark.parametrize("rerun", ["--verify", "without --verify first"])
def test_killed_mid_way_the_rerun_indexes_each_archive_once_and_verifies_by_reading_back(lost_database, tmp_path,
                                                                                         rerun):  # noqa: F811
    park_command_and_kill(["rebuild_index", "--institution", "PUMCH", "--verify", "--json"], tmp_path,
                          "rebuild_indexed")
    _assert_half_done()
    if rerun == "without --verify first":
        code, report = _rebuild()
        assert code == 0 and report["counts"]["created"] == 2 and report["counts"]["known"] == 4
        assert set(Archive.objects.values_list("status", flat=True)) == {Archive.Status.PACKED}
        assert set(ArchiveCopy.objects.values_list("status", flat=True)) == {ArchiveCopy.Status.UPLOADED}
    _assert_converged(lost_database)


def test_an_exception_mid_way_then_a_rerun_converges(lost_database, monkeypatch):  # noqa: F811
    monkeypatch.setenv("PDAS_FAULT_RAISE", "rebuild_indexed")
    with pytest.raises(CommandError, match=InjectedFault.__name__):  # the command's one line for a bug
        _rebuild("--verify")
    monkeypatch.delenv("PDAS_FAULT_RAISE")
    _assert_half_done()
    _assert_converged(lost_database)
