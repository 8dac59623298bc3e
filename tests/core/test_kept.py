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
