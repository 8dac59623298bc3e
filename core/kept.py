"""Figures counted over every archive, kept for a while in the process's cache.

Some figures are aggregates over every archive or copy an institution has: the home page's archives
without a verified copy, the storage page's copies by state, the Reports page's five years. At 100,000
archives each costs 100-500 ms of database time, on pages every user opens. ``kept`` counts such a
figure once and answers from Django's cache (per process unless a shared cache is configured) for
``seconds``; the page shows ``counted_at`` and offers to count again (``recount``). ``seconds`` of 0
counts every time.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

from django.core.cache import cache
from django.utils import timezone

T = TypeVar("T")


@dataclass(frozen=True)
class Kept(Generic[T]):
    value: T
    counted_at: dt.datetime


def kept(key: str, count: Callable[[], T], *, seconds: int, recount: bool = False) -> Kept[T]:
    """``count()`` as counted within the last ``seconds`` under ``key`` (``pdas:<what>:<its scope>``), or now."""
    found = None if recount or seconds <= 0 else cache.get(key)
    if found is None:
        found = Kept(count(), timezone.now())
        if seconds > 0:
            cache.set(key, found, seconds)
    return found
