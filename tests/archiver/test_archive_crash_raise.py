"""An unexpected error at each archiving step (``PDAS_FAULT_RAISE``, archiver/faults.py), then a rerun.

The first run is ``manage.py archive`` in a process of its own on the test database (no broker: the
command hosts the embedded pool, as an operator's run does), with ``PDAS_FAULT_RAISE=<step>``: every
patient meets an ``InjectedFault`` there, an error nobody planned for. That run must still end with each
patient decided, its originals kept (or its removal finished when the error came after the move), and the
error named. Then the same command without the fault must converge (tests/archiver/convergence.py: nothing
lost, every moved patient proven on every target by the attempt that moved it, no duplicate, no temporary
file, nothing left open), and one more run must find nothing to do.

Two targets: the SFTP array on the test sshd, and a folder.
"""
from __future__ import annotations

import json
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import call_command

from archiver.models import ArchiveRun, PatientArchiveTask
from inventory.models import Archive, ArchiveCopy, QuarantinedPatient
from tests.archiver import convergence
from tests.archiver.crash_tools import command_env
from tests.archiver.test_archive_crash import site  # noqa: F401 - a fixture
from tests.factories import StorageTargetFactory
from tests.servers.process import REPO_ROOT

pytestmark = pytest.mark.servers

STEPS = ["packed", "upload", "measure", "before_removal", "removal"]


@pytest.fixture
def targets(site, tmp_path):  # noqa: F811
    folder = tmp_path / "folder-target"
    folder.mkdir()
    StorageTargetFactory(institution=site["inst"], name="folder", url=f"file://{folder}")
    return {"array": site["array"], "folder": folder}


def _command_with_fault(site, step: str) -> tuple[int, dict]:
    """``manage.py archive --json`` in its own process, every patient meeting ``InjectedFault`` at ``step``."""
    done = subprocess.run([sys.executable, "manage.py", "archive", "--institution", site["inst"].code, "--json",
                           "--timeout", "300"], cwd=REPO_ROOT, capture_output=True, timeout=600,
                          env=command_env(PDAS_FAULT_RAISE=step))
    assert done.returncode in (0, 1), done.stderr.decode(errors="replace")[-3000:]
    return done.returncode, json.loads(done.stdout)


def _command(site) -> tuple[int, dict]:
    """The same command in this process, without the fault."""
    out = StringIO()
    try:
        call_command("archive", "--institution", site["inst"].code, "--json", stdout=out)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, json.loads(out.getvalue())


def _listing(site, targets) -> dict:
    return {"targets": {name: sorted(p.name for p in folder.iterdir()) for name, folder in targets.items()},
            "tps": sorted(p.relative_to(site["root"]).as_posix() for p in site["root"].rglob("*")),
            "archives": sorted(Archive.objects.values_list("name", "status")),
            "copies": sorted(ArchiveCopy.objects.values_list("archive__name", "target__name", "status")),
            "quarantine": sorted(QuarantinedPatient.objects.values_list("tps_path", "moved_at"))}


@pytest.mark.parametrize("step", STEPS)
def test_an_error_at_each_step_ends_the_run_and_a_rerun_converges(transactional_db, site, targets, step):  # noqa: F811
    code, first = _command_with_fault(site, step)

    # The faulty run ended by itself: every patient decided, the error named, the run closed.
    run = ArchiveRun.objects.get(pk=first["run"])
    assert run.finished_at is not None, "the run is left open"
    results = {r["mrn"]: (r["status"], r["reason"]) for r in first["results"]}
    assert len(results) == 2, first
    if step == "removal":  # the folder had moved: the error's handler recorded the move
        assert code == 0 and {status for status, _ in results.values()} == {"pass"}, results
    else:
        assert code == 1, results
        for status, reason in results.values():
            assert status == "error" and f"InjectedFault: fault injected at {step}" in reason, results
            assert "originals kept" in reason
    for path in site["paths"]:  # nothing lost by the error itself
        assert (site["root"] / path).is_dir() or QuarantinedPatient.objects.get(tps_path=path).moved_at
    assert convergence.lost(institution=site["inst"], root=site["root"], targets=targets,
                            patients=site["plans"]) == []

    code, rerun = _command(site)
    assert code == 0, rerun
    assert convergence.violations(institution=site["inst"], root=site["root"], targets=targets,
                                  patients=site["plans"]) == []
    for path in site["paths"]:  # every patient archived: a run that left them all in place would converge too
        assert not (site["root"] / path).exists(), path
    assert PatientArchiveTask.objects.filter(result="pass").count() == 2
    assert {len([n for n in folder.iterdir() if n.name.endswith(".tar.gz")]) for folder in targets.values()} == {2}

    before = _listing(site, targets)
    code, extra = _command(site)
    assert code == 0 and extra["results"] == [], extra
    assert _listing(site, targets) == before, "the extra run changed something"
