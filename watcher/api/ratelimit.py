"""Request limits: token buckets of `per_minute` tokens, refilled continuously.

Three of them, in process memory (each API process limits on its own, so N processes allow
N times the rate; documented in docs/operations.md):
- per API key (`api.rate_limit_per_minute`), taken by every authenticated request;
- per client address for a missing or wrong API key (`api.auth_failures_per_minute`): each
  failure takes a token, and an address without tokens gets 429 before its key is looked up,
  unless the key authenticated lately (api.auth.RecentKeys);
- per client address for the public pages under /pay/ (`api.pay_rate_limit_per_minute`),
  generous, since payers behind one carrier NAT share an address and an open checkout page
  polls its status.

A client address is the connection's peer as uvicorn reports it (the X-Forwarded-For client
when the peer is one of `api.trusted_proxies`); an IPv6 client is counted by its /64, which
one subscriber usually holds whole.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from watcher.api.errors import error_response
from watcher.errors import RateLimited

MAX_KEYS = 100_000  # buckets kept before idle ones are dropped


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    def __init__(
        self,
        per_minute: int,
        monotonic: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_KEYS,
    ):
        self.per_minute = per_minute
        self._monotonic = monotonic
        self._max_keys = max_keys
        self._buckets: dict[Hashable, _Bucket] = {}

    def hit(self, key: Hashable) -> None:
        """Take one token for `key` or raise RateLimited with Retry-After."""
        self.check(key)
        self.charge(key)

    def check(self, key: Hashable) -> None:
        """Raise RateLimited if `key` has no token left; takes none."""
        bucket = self._refilled(key)
        if bucket is None or bucket.tokens >= 1:
            return
        rate = self.per_minute / 60.0
        retry_after = max(1, math.ceil((1 - bucket.tokens) / rate))
        raise RateLimited(
            f"more than {self.per_minute} requests a minute; retry after {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )

    def charge(self, key: Hashable) -> None:
        """Take one token for `key` if it has one (never raises)."""
        bucket = self._refilled(key)
        if bucket is not None and bucket.tokens >= 1:
            bucket.tokens -= 1

    def _refilled(self, key: Hashable) -> _Bucket | None:
        if self.per_minute <= 0:
            return None
        now = self._monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._forget_idle(now)
            bucket = self._buckets[key] = _Bucket(tokens=self.per_minute, at=now)
        bucket.tokens = min(
            self.per_minute, bucket.tokens + (now - bucket.at) * self.per_minute / 60
        )
        bucket.at = now
        return bucket

    def _forget_idle(self, now: float) -> None:
        """Drop buckets that have refilled (the same as no bucket); if that frees too little,
        the least recently used half."""
        full_after_s = 60.0
        self._buckets = {k: b for k, b in self._buckets.items() if now - b.at < full_after_s}
        if len(self._buckets) >= self._max_keys:
            recent = sorted(self._buckets.items(), key=lambda kv: kv[1].at)
            self._buckets = dict(recent[len(recent) // 2 :])


def client_key(host: str | None) -> str:
    """The address a client is counted by: its IP, or its /64 for IPv6."""
    if not host:
        return "unknown"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class PageLimit:
    """ASGI middleware: requests to paths under `prefixes` take a token from the client
    address's bucket; none left is 429 RATE_LIMITED with Retry-After."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter, prefixes: tuple[str, ...]):
        self.app = app
        self.limiter = limiter
        self.prefixes = prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefixes):
            client = scope.get("client")
            try:
                self.limiter.hit(client_key(client[0] if client else None))
            except RateLimited as exc:
                refusal = error_response(exc.status, exc.code, exc.message, exc.headers)
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)
