"""Merchant authentication by x-api-key, then the per-key rate limit; missing and wrong keys
are counted per client address (api.ratelimit)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Annotated

from fastapi import Depends, Request

from watcher.api.ratelimit import client_key
from watcher.errors import Unauthorized
from watcher.merchants import AuthedKey, authenticate
from watcher.secrets import hash_api_key
from watcher.services import Services


def services_of(request: Request) -> Services:
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


async def current_merchant(request: Request, services: ServicesDep) -> AuthedKey:
    state = request.app.state
    client = client_key(request.client.host if request.client else None)
    key = request.headers.get("x-api-key", "").strip()
    digest = hash_api_key(key)
    if digest not in state.recent_keys:
        # An address that keeps sending wrong keys waits, without a database lookup.
        state.auth_failures.check(client)
    if not key:
        state.auth_failures.charge(client)
        raise Unauthorized("missing x-api-key header")
    async with services.sessions() as session:
        authed = await authenticate(session, key)
    if authed is None:
        state.auth_failures.charge(client)
        raise Unauthorized("invalid API key")
    state.recent_keys.add(digest)
    state.rate_limiter.hit(authed.key_id)
    return authed


CurrentMerchant = Annotated[AuthedKey, Depends(current_merchant)]
