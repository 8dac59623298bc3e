"""Parking real processes at a fault point (archiver/faults.py) and SIGKILLing them there.

Two kinds of process: a Celery task on the real worker (``park_task_and_kill``), and a management
command run as ``python manage.py ...`` on the test database, the way the worker fixture opens it
(``park_command_and_kill``). Either is killed with SIGKILL once it wrote its pid at the step, as a power
cut or an OOM kill would; nothing of its own runs after that.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from tests.servers.celery_worker import worker_database_url
from tests.servers.process import REPO_ROOT


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, log: Callable[[], str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}" + (f"\n{log()}" if log else ""))


def fault_env(step: str, marker: Path, **extra: str) -> dict[str, str]:
    return {"PDAS_FAULT_PAUSE": step, "PDAS_FAULT_MARKER": str(marker), **extra}


def park_task_and_kill(celery_worker, tmp_path: Path, step: str, send: Callable[[], object],
                       **extra_env: str) -> None:
    """Restart the worker told to park at ``step``, ``send()`` its task, wait until it is parked, SIGKILL it."""
    marker = tmp_path / f"parked-{step}"
    marker.unlink(missing_ok=True)
    celery_worker.restart(extra_env=fault_env(step, marker, **extra_env))
    send()
    wait_for(marker.exists, 60, f"the worker to park at {step}", celery_worker.log_tail)
    celery_worker.kill()


def command_env(**extra: str) -> dict[str, str]:
    """The environment of a ``manage.py`` process on this test session's database."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PDAS_FAULT_")}
    env.update(DJANGO_SETTINGS_MODULE="pdas.settings", DATABASE_URL=worker_database_url(),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    env.pop("CELERY_BROKER_URL", None)  # the command does its work itself, in its own process
    env.update(extra)
    return env


def park_command_and_kill(argv: list[str], tmp_path: Path, step: str, **extra_env: str) -> subprocess.Popen:
    """Run ``python manage.py *argv`` parked at ``step``, wait until it is parked, SIGKILL it."""
    marker = tmp_path / f"parked-{step}"
    marker.unlink(missing_ok=True)
    log = tmp_path / f"command-{step}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "manage.py", *argv], cwd=REPO_ROOT, stdout=out,
                                   stderr=subprocess.STDOUT, env=command_env(**fault_env(step, marker, **extra_env)))
    try:
        wait_for(lambda: marker.exists() or process.poll() is not None, 60, f"manage.py {argv[0]} to park at {step}")
        assert process.poll() is None, f"manage.py {argv[0]} ended before {step}:\n{log.read_text()[-3000:]}"
        assert int(marker.read_text()) == process.pid
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL
    return process
