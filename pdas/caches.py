"""Django's cache: where ``core.kept`` keeps its counts over every archive (docs/keeping.md, "Pages").

Without ``PDAS_CACHE_URL`` each process keeps its own (Django's local-memory cache), which suits the
demo's single process. An installation runs several gunicorn processes (deploy/gunicorn.conf.py): each
would count the same figures over every archive, a few hundred milliseconds of database time per
process per minute, and its users would meet those counts as slow pages under load. ``deploy/install``
therefore points ``PDAS_CACHE_URL`` at the local Redis (database 1; the Celery broker uses 0), and the
processes count once between them. A cache that does not answer does not fail a page: ``core.kept``
counts for the request instead, and logs it. Django's Redis cache stores pickles, which the web processes
load: the Redis must be one only PDAS can write to (deploy/install's: loopback only, with a password).
"""
from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

SCHEMES = ("redis://", "rediss://", "unix://")


def caches(url: str | None) -> dict:
    """The ``CACHES`` setting for ``PDAS_CACHE_URL`` (None or empty: one cache per process)."""
    if not url:
        return {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "pdas"}}
    if not url.startswith(SCHEMES):  # the URL holds Redis's password: not repeated in the message
        raise ImproperlyConfigured(f"PDAS_CACHE_URL must start with {', '.join(SCHEMES)} (a Redis server)")
    return {"default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": url,
        "KEY_PREFIX": "pdas",
        # A page waits at most this long for a cache that has gone away, then counts for itself.
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }}
