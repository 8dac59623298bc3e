"""core.dispatch: one retry policy for Celery workers and the embedded pool; work sent to the broker only
after commit, on the queue asked for; the embedded pool runs work in threads of its own."""
from __future__ import annotations

import threading

import pytest
from celery import shared_task

from core.dispatch import BackgroundTask, dispatch, retry_delay, wait_for_embedded_work


class Flaky(Exception):
    def __init__(self, retryable: bool):
        super().__init__("flaky")
        self.retryable = retryable


CALLS: list[tuple[str, int]] = []
FAILURES = {"left": 0}


class _GivingUp(BackgroundTask):
    max_retries = 2

    def give_up(self, exc, job_id):
        CALLS.append(("gave up", job_id))
        return "gave up"


@shared_task(base=_GivingUp, name="tests.core.flaky")
def flaky(job_id: int) -> str:
    CALLS.append((threading.current_thread().name, job_id))
    if FAILURES["left"]:
        FAILURES["left"] -= 1
        raise Flaky(retryable=True)
    return "done"


@shared_task(base=BackgroundTask, name="tests.core.broken")
def broken(job_id: int) -> str:
    CALLS.append(("broken", job_id))
    raise Flaky(retryable=False)


@pytest.fixture(autouse=True)
def _fresh(settings, monkeypatch):
    settings.PDAS_RETRY_BACKOFF_SECONDS = 0
    # Celery's apply() then runs a retry at once and returns a failure instead of raising it, as a worker would.
    monkeypatch.setitem(flaky.app.conf, "task_eager_propagates", False)
    CALLS.clear()
    FAILURES["left"] = 0


def test_retry_delay_doubles_up_to_the_maximum(settings):
    settings.PDAS_RETRY_BACKOFF_SECONDS, settings.PDAS_RETRY_BACKOFF_MAX_SECONDS = 30, 100
    assert [retry_delay(n) for n in (1, 2, 3, 4)] == [30, 60, 100, 100]


@pytest.mark.parametrize("failures, outcome, calls", [(0, "done", 1), (2, "done", 3), (3, "gave up", 3)])
def test_inline_and_celery_apply_the_same_retries(failures, outcome, calls):
    FAILURES["left"] = failures
    dispatch(flaky, 7)  # PDAS_DISPATCH_INLINE (tests): at once, here
    inline = list(CALLS)
    CALLS.clear()
    FAILURES["left"] = failures
    assert flaky.apply(args=[7]).get() == outcome  # Celery's own execution path (eager: retries at once)
    assert CALLS == inline
    assert len([c for c in inline if c[0] != "gave up"]) == calls
    assert (inline[-1] == ("gave up", 7)) == (outcome == "gave up")


def test_an_error_that_is_not_retryable_is_not_retried():
    with pytest.raises(Flaky):
        dispatch(broken, 1)
    assert CALLS == [("broken", 1)]
    assert broken.apply(args=[1]).failed()  # Celery's way: the task fails at once
    assert CALLS == [("broken", 1)] * 2


@pytest.mark.django_db
def test_with_a_broker_the_task_is_sent_after_commit_on_its_queue(settings, monkeypatch,
                                                                  django_capture_on_commit_callbacks):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:9/0"  # never reached: apply_async is replaced
    sent = []
    monkeypatch.setattr(flaky, "apply_async", lambda args, queue=None: sent.append((args, queue)))
    with django_capture_on_commit_callbacks(execute=True):
        dispatch(flaky, 3, queue="tps-host")
        dispatch(flaky, 4)
        assert sent == []  # nothing leaves before the caller's rows are committed
    assert sent == [([3], "tps-host"), ([4], None)] and CALLS == []


@pytest.mark.django_db(transaction=True)
def test_the_embedded_pool_runs_work_in_its_own_threads_with_the_retries(settings):
    settings.PDAS_DISPATCH_INLINE = False
    FAILURES["left"] = 1
    dispatch(flaky, 5)
    dispatch(broken, 6)  # a failure is logged; the pool goes on
    assert wait_for_embedded_work(30)
    assert sorted(CALLS) == [("broken", 6)] + [("pdas-flaky_0", 5)] * 2
