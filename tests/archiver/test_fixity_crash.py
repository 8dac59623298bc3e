"""A repair killed after the bad copy was removed, and in the middle of sending the new one.

The nightly ``check_archives_task`` runs on the real Celery worker, parked at the step
(archiver/faults.py) and SIGKILLed; the same steps are also hit by an exception. ``check_archives
--repair`` then runs again and must finish the repair: the copy re-made byte for byte and ``verified``
only by a check made after it was stored, no temporary ``.part`` file left on the target, and never
``verified`` in between. (A sweep killed between copies is tested in test_services_fixity.py.)
"""
from __future__ import annotations

import datetime as dt
import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from archiver.faults import InjectedFault
from archiver.services.fixity import check_archives
from archiver.tasks import check_archives_task
from audit.models import AuditEvent
from audit.services import verify_chain
from core.dispatch import dispatch
from inventory.models import Archive, ArchiveCopy, FixityCheck
from tests.archiver.crash_tools import park_task_and_kill
from tests.archiver.test_services_fixity import _archive_site, _copy_files

STEPS = ["repair_removed", "repair_upload", "repair_stored"]


@pytest.fixture
def site(tmp_path, transactional_db):
    """Two patients on two file targets; the copy of 001 on array-2 truncated (the presence check finds it)."""
    inst, folders = _archive_site(tmp_path)
    archive = Archive.objects.get(mrn="001")
    damaged = folders["array-2"] / archive.name
    damaged.write_bytes(damaged.read_bytes()[:-100])
    copy = ArchiveCopy.objects.get(archive=archive, target__name="array-2")
    # The others checked before it: the rolling cycle alone would not pick it for a full check tonight.
    ArchiveCopy.objects.exclude(pk=copy.pk).update(last_checked_at=timezone.now() - dt.timedelta(days=1))
    return {"inst": inst, "folders": folders, "archive": archive, "copy": copy,
            "good": _copy_files(folders["array-1"], archive)}


def _temporaries(site) -> list[str]:
    return [p.name for folder in site["folders"].values() for p in folder.iterdir() if p.name.startswith(".")]


def _assert_half_repaired(site, step: str, *, temporaries: bool = True) -> None:
    copy, archive, folder = site["copy"], site["archive"], site["folders"]["array-2"]
    copy.refresh_from_db()
    assert copy.status != ArchiveCopy.Status.VERIFIED, "not verified while it is not there"
    if step == "repair_stored":  # whole on the target, not measured: uploaded, never verified yet
        assert copy.status == ArchiveCopy.Status.UPLOADED
        assert _copy_files(folder, archive) == site["good"]
        return
    assert not (folder / archive.name).exists() and not (folder / f"{archive.name}.sha256").exists()
    if step == "repair_upload" and temporaries:  # the new copy half sent under its temporary name
        assert [name for name in _temporaries(site) if name.endswith(".part")], _temporaries(site)
    if not temporaries:
        assert _temporaries(site) == []


def _rerun(site) -> dict:
    out = StringIO()
    call_command("check_archives", "--institution", site["inst"].code, "--repair", "--json", stdout=out)
    return json.loads(out.getvalue())


def _assert_repaired(site, report: dict, *, since, step: str) -> None:
    copy, archive = site["copy"], site["archive"]
    copy.refresh_from_db()
    assert copy.status == ArchiveCopy.Status.VERIFIED
    assert _copy_files(site["folders"]["array-2"], archive) == site["good"]
    # Verified by a check made after the copy was stored again, which measured the archive's digest there.
    check = copy.fixity_checks.order_by("-checked_at", "-pk").first()
    assert check.outcome == FixityCheck.Outcome.PASS and check.checked_at >= since
    assert check.checksum == archive.checksum and check.method != FixityCheck.Method.LISTED
    assert copy.last_checked_at == check.checked_at
    assert _temporaries(site) == [], "temporary uploads swept"
    assert report["summary"]["verified"] == 4
    repairs = AuditEvent.objects.filter(event="copy.repair", outcome="ok", object_id=str(copy.pk))
    if step == "repair_stored":  # the rerun had only the measuring left to do: audited as the change of state
        assert report["summary"]["repaired"] == 0 and repairs.count() == 0
        assert AuditEvent.objects.filter(event="copy.state", object_id=str(copy.pk)).latest("id").detail[
            "to"] == "verified"
    else:
        assert report["summary"]["repaired"] == 1 and repairs.count() == 1
    assert verify_chain().broken_id is None


@pytest.mark.servers
@pytest.mark.parametrize("step", STEPS)
def test_a_repair_killed_half_way_is_finished_by_the_rerun(site, celery_worker, tmp_path, step):
    park_task_and_kill(celery_worker, tmp_path, step, lambda: dispatch(check_archives_task))
    _assert_half_repaired(site, step)

    killed_at = timezone.now()
    _assert_repaired(site, _rerun(site), since=killed_at, step=step)


@pytest.mark.parametrize("step", STEPS)
def test_an_exception_half_way_through_a_repair_then_a_rerun_finishes_it(site, monkeypatch, step):
    monkeypatch.setenv("PDAS_FAULT_RAISE", step)
    with pytest.raises(InjectedFault):
        check_archives(institution=site["inst"], actor="t", repair=True)
    monkeypatch.delenv("PDAS_FAULT_RAISE")
    _assert_half_repaired(site, step, temporaries=False)  # a failed upload removes its own temporary file

    failed_at = timezone.now()
    _assert_repaired(site, _rerun(site), since=failed_at, step=step)


@pytest.mark.servers
def test_a_sweep_sigkilled_after_one_check_resumes_without_rehashing_it(tmp_path, transactional_db):
    """``manage.py check_archives --all`` killed right after recording its first full check: that copy keeps
    its check and is the last one due; the next (nightly) run checks the others and leaves it alone."""
    import datetime as dt

    from django.db.models import Q
    from django.utils import timezone

    from archiver.services.fixity import check_archives, due_copies
    from inventory.models import ArchiveCopy, FixityCheck
    from tests.archiver.crash_tools import park_command_and_kill
    from tests.archiver.test_services_fixity import _archive_site

    inst, _folders = _archive_site(tmp_path, patients=(1, 2, 3), fixity_cycle_days=3)
    old = timezone.now() - dt.timedelta(days=10)
    ArchiveCopy.objects.update(last_checked_at=old)  # all six overdue
    full = ~Q(method="listed")  # the full checks (hashed or read back), not the presence listings
    before = FixityCheck.objects.filter(full).count()

    park_command_and_kill(["check_archives", "--institution", inst.code, "--all"], tmp_path, "fixity_checked")

    finished = [c for c in ArchiveCopy.objects.all() if c.last_checked_at > old]
    assert len(finished) == 1, "the check recorded before the kill is kept"
    done = finished[0]
    assert FixityCheck.objects.filter(full).count() == before + 1
    assert done.pk not in [c.pk for c in due_copies(institution=inst)[:5]], "the finished copy is due last"

    check_archives(institution=inst, actor="t")  # the next night: what is due
    assert FixityCheck.objects.filter(full, copy=done).count() == 2, "not re-hashed (its upload check + the one)"
    assert all(c.last_checked_at > old for c in ArchiveCopy.objects.all()), "the others were reached"
