"""core.kept: a figure is counted once and answered from the cache for its seconds, with the time it was
counted; recount and 0 seconds count now; keys keep figures apart."""
from __future__ import annotations

from core.kept import kept


def counter():
    calls = []

    def count():
        calls.append(1)
        return len(calls)

    return count, calls


def test_counted_once_within_its_seconds_and_again_on_request():
    count, calls = counter()
    first = kept("pdas:test:a", count, seconds=60)
    again = kept("pdas:test:a", count, seconds=60)
    assert (first.value, again.value, again.counted_at) == (1, 1, first.counted_at) and len(calls) == 1
    recounted = kept("pdas:test:a", count, seconds=60, recount=True)
    assert recounted.value == 2 and recounted.counted_at >= first.counted_at
    assert kept("pdas:test:a", count, seconds=60).value == 2  # the recount is what is kept now


def test_zero_seconds_counts_every_time_and_keys_are_apart():
    count, calls = counter()
    assert [kept("pdas:test:b", count, seconds=0).value for _ in range(3)] == [1, 2, 3]
    assert kept("pdas:test:c", count, seconds=60).value == 4
    assert kept("pdas:test:d", count, seconds=60).value == 5


def test_a_shared_cache_keeps_a_figure_for_every_process(redis_cache):
    """With PDAS_CACHE_URL (an installation's Redis) the figure is in Redis: another process's cache client,
    made afresh here, finds it counted."""
    from django.core.cache import caches

    count, calls = counter()
    first = kept("pdas:test:shared", count, seconds=60)
    elsewhere = caches.create_connection("default")  # a client of its own, as another web process has
    assert elsewhere.get("pdas:test:shared") == first and len(calls) == 1
    assert kept("pdas:test:shared", count, seconds=60) == first and len(calls) == 1


def test_a_cache_that_does_not_answer_costs_a_count_not_the_page(caplog):
    from django.test import override_settings

    from pdas.caches import caches
    from tests.servers.ports import free_port

    count, calls = counter()
    with override_settings(CACHES=caches(f"redis://127.0.0.1:{free_port()}/1")):  # nothing listens there
        assert [kept("pdas:test:gone", count, seconds=60).value for _ in range(2)] == [1, 2]
    assert "PDAS_CACHE_URL: the cache did not answer (ConnectionError)" in caplog.text
