"""Merchant authentication by x-api-key, then the per-key rate limit."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from watcher.errors import Unauthorized
from watcher.merchants import AuthedKey, authenticate
from watcher.services import Services


def services_of(request: Request) -> Services:
    services = request.app.state.services
    assert isinstance(services, Services)
    return services


ServicesDep = Annotated[Services, Depends(services_of)]


async def current_merchant(request: Request, services: ServicesDep) -> AuthedKey:
    key = request.headers.get("x-api-key", "").strip()
    if not key:
        raise Unauthorized("missing x-api-key header")
    async with services.sessions() as session:
        authed = await authenticate(session, key)
    if authed is None:
        raise Unauthorized("invalid API key")
    request.app.state.rate_limiter.hit(authed.key_id)
    return authed


CurrentMerchant = Annotated[AuthedKey, Depends(current_merchant)]
