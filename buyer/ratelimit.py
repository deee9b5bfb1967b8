"""Per-key rate limits for the REST API and the MCP endpoint: a fixed one-minute window per bucket.

Counters live in Django's cache: Redis when REDIS_URL is set (shared by every web process), otherwise each
process's memory (the embedded default runs one web process)."""

from __future__ import annotations

import hashlib
import time

from django.conf import settings
from django.core.cache import caches

WINDOW_SECONDS = 60
COUNTER_TIMEOUT = WINDOW_SECONDS + 5


class RateLimited(Exception):
    """Too many requests for one key in the current window (API: 429 with Retry-After)."""

    def __init__(self, retry_after: int):
        super().__init__(f"Rate limit of {settings.API_RATE_LIMIT_PER_MINUTE} requests per minute exceeded")
        self.retry_after = retry_after


def rate_limit_window(bucket: str) -> tuple[str, int]:
    """The counter for ``bucket`` in this window (a key of the ``ratelimit`` cache) and the seconds until the
    window resets."""
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    retry_after = max(1, int((window + 1) * WINDOW_SECONDS - now + 0.999))
    # Hashed: bucket names are free text (key names, principals) and cache keys must stay plain.
    return f"rl:{hashlib.sha256(bucket.encode()).hexdigest()[:32]}:{window}", retry_after


def rate_limit_check(bucket: str) -> tuple[bool, int]:
    """Count one request against ``bucket``: (allowed, seconds until the window resets)."""
    limit = settings.API_RATE_LIMIT_PER_MINUTE
    if limit <= 0:
        return True, 0
    key, retry_after = rate_limit_window(bucket)
    cache = caches["ratelimit"]
    cache.add(key, 0, timeout=COUNTER_TIMEOUT)
    try:
        count = cache.incr(key)
    except ValueError:  # the counter expired between add and incr
        cache.add(key, 1, timeout=COUNTER_TIMEOUT)
        count = 1
    return count <= limit, retry_after


def rate_limit_enforce(bucket: str) -> None:
    allowed, retry_after = rate_limit_check(bucket)
    if not allowed:
        raise RateLimited(retry_after)
