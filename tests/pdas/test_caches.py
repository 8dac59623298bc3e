"""pdas.caches: PDAS_CACHE_URL chooses one cache per process (unset) or a shared Redis; anything else stops
start-up with a line naming the variable and never its value (it holds Redis's password)."""
from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from pdas.caches import caches


@pytest.mark.parametrize("url", [None, ""])
def test_unset_is_one_cache_per_process(url):
    assert caches(url)["default"]["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"


@pytest.mark.parametrize("url", ["redis://:secret@127.0.0.1:6379/1", "rediss://h:6380/1", "unix:///run/redis.sock?db=1"])
def test_a_redis_url_is_the_shared_cache(url):
    default = caches(url)["default"]
    assert default["BACKEND"] == "django.core.cache.backends.redis.RedisCache" and default["LOCATION"] == url
    assert default["OPTIONS"]["socket_timeout"] <= 1  # a page does not hang on a cache that went away


@pytest.mark.parametrize("url", ["http://:hunter2@127.0.0.1/1", "127.0.0.1:6379", "memcached://x"])
def test_anything_else_is_refused_without_repeating_it(url):
    with pytest.raises(ImproperlyConfigured) as refused:
        caches(url)
    assert str(refused.value).startswith("PDAS_CACHE_URL must start with redis://") and url not in str(refused.value)
