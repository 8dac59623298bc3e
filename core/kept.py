"""Figures counted over every archive, kept for a while in the process's cache.

Some figures are aggregates over every archive or copy an institution has: the home page's archives
without a verified copy, the storage page's copies by state, the Reports page's five years. At 100,000
archives each costs 100-500 ms of database time, on pages every user opens. ``kept`` counts such a
figure once and answers from Django's cache (per process, or shared by all of them: pdas/caches.py)
for ``seconds``; the page shows ``counted_at`` and offers to count again (``recount``). ``seconds`` of 0
counts every time. A shared cache that does not answer costs a count, never the page.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

from django.core.cache import cache
from django.utils import timezone

T = TypeVar("T")
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Kept(Generic[T]):
    value: T
    counted_at: dt.datetime


def kept(key: str, count: Callable[[], T], *, seconds: int, recount: bool = False) -> Kept[T]:
    """``count()`` as counted within the last ``seconds`` under ``key`` (``pdas:<what>:<its scope>``), or now."""
    found = None if recount or seconds <= 0 else _cached(key)
    if found is None:
        found = Kept(count(), timezone.now())
        if seconds > 0:
            _keep(key, found, seconds)
    return found


def _cached(key: str):
    try:
        return cache.get(key)
    except Exception as exc:  # a shared cache (Redis) that went away: count for this request
        logger.warning("PDAS_CACHE_URL: the cache did not answer (%s); counted for this page", type(exc).__name__)
        return None


def _keep(key: str, value: Kept, seconds: int) -> None:
    try:
        cache.set(key, value, seconds)
    except Exception as exc:
        logger.warning("PDAS_CACHE_URL: the cache did not keep a count (%s)", type(exc).__name__)
