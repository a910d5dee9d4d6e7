"""Merchant authentication by x-api-key, then the per-key rate limit; missing and wrong keys
are counted per client address (api.ratelimit)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from watcher.api.ratelimit import client_key
from watcher.errors import Unauthorized
from watcher.merchants import AuthedKey, authenticate
from watcher.services import Services


def services_of(request: Request) -> Services:
    services = request.app.state.services
    assert isinstance(services, Services)
    return services


ServicesDep = Annotated[Services, Depends(services_of)]


async def current_merchant(request: Request, services: ServicesDep) -> AuthedKey:
    failures = request.app.state.auth_failures
    client = client_key(request.client.host if request.client else None)
    failures.check(client)  # an address that keeps sending wrong keys waits, unanswered
    key = request.headers.get("x-api-key", "").strip()
    if not key:
        failures.charge(client)
        raise Unauthorized("missing x-api-key header")
    async with services.sessions() as session:
        authed = await authenticate(session, key)
    if authed is None:
        failures.charge(client)
        raise Unauthorized("invalid API key")
    request.app.state.rate_limiter.hit(authed.key_id)
    return authed


CurrentMerchant = Annotated[AuthedKey, Depends(current_merchant)]
