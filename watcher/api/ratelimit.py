"""Per-API-key request limit: a token bucket of `rate_limit_per_minute` tokens, refilled
continuously. In process memory: each API process limits on its own, so N processes allow N
times the rate (documented in README)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from watcher.errors import RateLimited


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    def __init__(self, per_minute: int, monotonic: Callable[[], float] = time.monotonic):
        self.per_minute = per_minute
        self._monotonic = monotonic
        self._buckets: dict[int, _Bucket] = {}

    def hit(self, key_id: int) -> None:
        """Take one token for `key_id` or raise RateLimited with Retry-After."""
        if self.per_minute <= 0:
            return
        now = self._monotonic()
        rate = self.per_minute / 60.0
        bucket = self._buckets.get(key_id)
        if bucket is None:
            bucket = self._buckets[key_id] = _Bucket(tokens=self.per_minute, at=now)
        bucket.tokens = min(self.per_minute, bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return
        retry_after = max(1, math.ceil((1 - bucket.tokens) / rate))
        raise RateLimited(
            f"more than {self.per_minute} requests a minute; retry after {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
