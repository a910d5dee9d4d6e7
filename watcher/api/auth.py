"""Merchant authentication by x-api-key, then the per-key rate limit; missing and wrong keys
are counted per client address (api.ratelimit): every failure against one allowance (a
repeated wrong key is answered 429 once it is used up), keys not tried before against
another, looked up only while it lasts. A key that authenticated is remembered for
api.key_cache_s (watcher.api.keycache)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import State

from watcher.api.ratelimit import client_key
from watcher.errors import Unauthorized
from watcher.merchants import AuthedKey, authenticate
from watcher.secrets import hash_api_key
from watcher.services import Services


async def services_of(request: Request) -> Services:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per request.
    services = request.app.state.services
    assert isinstance(services, Services)
    return services


ServicesDep = Annotated[Services, Depends(services_of)]


class RecentKeys:
    """Hashes of API keys that authenticated lately (the newest `size`). A request carrying
    one is not held back by its address's wrong-key allowance, so a merchant that shares an
    address with something sending wrong keys (another tenant, its own stale cron job) keeps
    working. Its key is still looked up and checked as always."""

    def __init__(self, size: int = 4096):
        self._size = size
        self._hashes: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, digest: str) -> bool:
        return digest in self._hashes

    def add(self, digest: str) -> None:
        self._hashes[digest] = None
        self._hashes.move_to_end(digest)
        if len(self._hashes) > self._size:
            self._hashes.popitem(last=False)


class WrongKeys:
    """Hashes of keys that failed lately (the newest `size`, each for `ttl_s`). A repeat is
    refused without a lookup and counts against its address as a failure; it does not use
    up the allowance for keys not tried yet, so one stale server repeating a revoked key
    cannot lock its merchant's updated servers (same address, new key) out. Kept for
    seconds only: a merchant enabled again is let in at once, near enough."""

    def __init__(
        self, size: int = 4096, ttl_s: float = 10.0, monotonic: Callable[[], float] = time.monotonic
    ):
        self._size = size
        self._ttl_s = ttl_s
        self._monotonic = monotonic
        self._at: OrderedDict[str, float] = OrderedDict()

    def __contains__(self, digest: str) -> bool:
        at = self._at.get(digest)
        return at is not None and self._monotonic() - at < self._ttl_s

    def add(self, digest: str) -> None:
        self._at[digest] = self._monotonic()
        self._at.move_to_end(digest)
        if len(self._at) > self._size:
            self._at.popitem(last=False)


async def current_merchant(request: Request, services: ServicesDep) -> AuthedKey:
    state = request.app.state
    client = client_key(request.client.host if request.client else None)
    key = request.headers.get("x-api-key", "").strip()
    digest = hash_api_key(key)
    if not key or digest in state.wrong_keys:
        # A repeat of a failed key (or none at all): no lookup; the address's failures count.
        state.auth_failures.hit(client)
        raise Unauthorized("missing x-api-key header" if not key else "invalid API key")
    authed: AuthedKey | None = state.key_cache.get(digest)
    if authed is None:
        authed = await _looked_up(state, services, client, key, digest)
    state.rate_limiter.hit(authed.key_id)
    return authed


async def _looked_up(
    state: State, services: Services, client: str, key: str, digest: str
) -> AuthedKey:
    if digest not in state.recent_keys:
        # An address that keeps trying keys not seen before waits, without a database lookup.
        state.new_keys.check(client)
    mark = state.key_cache.mark()
    async with services.sessions() as session:
        authed = await authenticate(session, key)
    if authed is None:
        state.new_keys.charge(client)
        state.auth_failures.charge(client)
        state.wrong_keys.add(digest)
        raise Unauthorized("invalid API key")
    state.recent_keys.add(digest)
    state.key_cache.put(digest, authed, mark)
    return authed


CurrentMerchant = Annotated[AuthedKey, Depends(current_merchant)]
