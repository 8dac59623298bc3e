"""The one way PDAS starts background work: ``dispatch(task, *ids)``.

Views, management commands and beat jobs call it; services never start work (they create the job's
row and return it) and never import a ``tasks`` module (``tests/test_architecture_tasks.py``).
A task is a thin shell declared with ``@shared_task(base=BackgroundTask)``: it takes ids, loads the
rows and calls a service.

Where the work runs:

- **With a broker** (``CELERY_BROKER_URL``): ``apply_async`` once the caller's transaction commits
  (a worker must find the rows the caller just wrote), on ``queue`` when one is given (an
  institution's ``worker_queue``), else on Celery's default queue.
- **Embedded mode** (no broker): in a pool of threads of this process, also after the commit. Each
  task has its own pool (``BackgroundTask.embedded_workers``), so a long archive run does not hold
  up a curation; each thread closes its database connections when its work is done. Work still in
  the pool when the process dies is lost: its job row stays unfinished until the stale-job sweep
  closes it (``pdas.services.jobs``).
- **Inline** (``PDAS_DISPATCH_INLINE``, for tests only): the work runs at once, in the caller's
  thread and transaction, so a test reads the outcome as soon as ``dispatch`` returns.

One retry policy, the same in every mode: an error whose ``retryable`` attribute is true (the
connectors' errors say so, see ``connectors.errors``) is tried again up to ``max_retries`` times,
``retry_delay(n)`` seconds after the n-th failure; when the retries run out, ``give_up`` records
why the work stopped. Any other error is not retried: the job's service has stored it on its row.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from celery import Task
from django.conf import settings
from django.db import connections, transaction

log = logging.getLogger("core.dispatch")

MAX_RETRIES = 6


def is_retryable(exc: BaseException) -> bool:
    """The one answer to "may a later try succeed?": the error says so with ``retryable = True``."""
    return getattr(exc, "retryable", False) is True


def retry_delay(retry: int) -> float:
    """Seconds to wait before retry number ``retry`` (1, 2, ...): ``PDAS_RETRY_BACKOFF_SECONDS``,
    doubled for each retry, at most ``PDAS_RETRY_BACKOFF_MAX_SECONDS``."""
    return min(settings.PDAS_RETRY_BACKOFF_SECONDS * 2 ** (retry - 1), settings.PDAS_RETRY_BACKOFF_MAX_SECONDS)


class BackgroundTask(Task):
    """The base of every PDAS task: the retry policy above, applied by Celery workers and by the
    embedded pool alike. Subclasses override ``give_up`` to record a job that ran out of retries, and
    ``embedded_workers`` for the size of their embedded pool."""

    max_retries = MAX_RETRIES

    def embedded_workers(self) -> int:
        return 2

    def give_up(self, exc: Exception, *args: Any) -> Any:
        """The retries ran out on ``exc``; by default the task fails with it."""
        raise exc

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Celery's worker calls this with the delivery's request pushed (``self.request.retries``).
        try:
            return self.run(*args, **kwargs)
        except Exception as exc:
            if not is_retryable(exc):
                raise
            if self.request.retries >= self.max_retries:
                return self.give_up(exc, *args)
            log.warning("%s%r: %s; retry %d of %d", self.name, args, exc, self.request.retries + 1, self.max_retries)
            raise self.retry(exc=exc, countdown=retry_delay(self.request.retries + 1)) from None


def has_broker() -> bool:
    return bool(settings.CELERY_BROKER_URL)


def dispatch(task: BackgroundTask, *args: Any, queue: str = "") -> None:
    """Start ``task(*args)`` in the background, after the current transaction commits (see above)."""
    if has_broker():
        transaction.on_commit(lambda: task.apply_async(args=list(args), queue=queue or None))
    elif settings.PDAS_DISPATCH_INLINE:
        _run_with_retries(task, args)
    else:
        transaction.on_commit(lambda: _submit(task, args))


def _run_with_retries(task: BackgroundTask, args: tuple) -> Any:
    retries = 0
    while True:
        try:
            return task.run(*args)
        except Exception as exc:
            if not is_retryable(exc):
                raise
            if retries >= task.max_retries:
                return task.give_up(exc, *args)
            retries += 1
            log.warning("%s%r: %s; retry %d of %d", task.name, args, exc, retries, task.max_retries)
            time.sleep(retry_delay(retries))


# --- the embedded pool ---------------------------------------------------------------------------

_pools: dict[tuple[str, int], ThreadPoolExecutor] = {}
_running: set[Future] = set()
_lock = threading.Lock()


def _submit(task: BackgroundTask, args: tuple) -> None:
    size = max(1, task.embedded_workers())
    with _lock:
        pool = _pools.get((task.name, size))
        if pool is None:
            prefix = "pdas-" + task.name.rsplit(".", 1)[-1]
            pool = _pools[(task.name, size)] = ThreadPoolExecutor(max_workers=size, thread_name_prefix=prefix)
        future = pool.submit(_in_thread, task, args)
        _running.add(future)
    future.add_done_callback(_forget)


def _in_thread(task: BackgroundTask, args: tuple) -> None:
    try:
        _run_with_retries(task, args)
    except BaseException:  # nobody reads the future: say it here, then let the thread take the next job
        log.exception("background task %s%r failed", task.name, args)
    finally:
        connections.close_all()  # this thread's own connections


def _forget(future: Future) -> None:
    with _lock:
        _running.discard(future)


def wait_for_embedded_work(timeout: float | None = None) -> bool:
    """Wait until the embedded pools have nothing left to do (tests, and a command that must wait);
    False when ``timeout`` seconds passed first."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        with _lock:
            pending = set(_running)
        if not pending:
            return True
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return False
        wait(pending, timeout=left)
