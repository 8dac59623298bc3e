"""A patient task's row while it is worked on: progress for the run page, and its ✓ × ! result."""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from django.db.models import F
from django.utils import timezone

from archiver.models import PatientArchiveTask
from inventory.models import TpsPatient
from sites.models import Institution

Result = PatientArchiveTask.Result
Step = PatientArchiveTask.Step
WORK_DIR = ".pdas-work"


class TransientArchiveError(Exception):
    """A network or host problem: the task is retried with backoff (``core.dispatch``). Never raised
    for bad data."""

    retryable = True


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class ProgressCounter:
    """Counts bytes for the run page; writes them at most twice a second (a row update per 1 MiB
    chunk would cost more than the work it reports)."""

    def __init__(self, task_id: int, interval: float = 0.5):
        import time

        self._clock = time.monotonic
        self._task_id, self._interval = task_id, interval
        self._pending = 0
        self._last = self._clock()

    def __call__(self, n: int) -> None:
        self._pending += n
        if self._clock() - self._last >= self._interval:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            PatientArchiveTask.objects.filter(pk=self._task_id).update(bytes_done=F("bytes_done") + self._pending)
            self._pending = 0
        self._last = self._clock()


@dataclass
class PatientContext:
    task: PatientArchiveTask
    patient: TpsPatient
    institution: Institution
    worker: str


def set_task(task: PatientArchiveTask, **fields) -> None:
    for key, value in fields.items():
        setattr(task, key, value)
    task.save(update_fields=list(fields))


def finish_task(task: PatientArchiveTask, result: str, reason: str = "") -> PatientArchiveTask:
    fields = {"result": result, "reason": reason[:2000], "finished_at": timezone.now(),
              "step": Step.DONE if result == Result.PASS else task.step}
    if result == Result.PASS:
        fields["bytes_done"] = task.bytes_total  # the bar ends full; partial counts are a step's own
    set_task(task, **fields)
    return task
