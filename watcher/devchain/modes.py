"""What the AcidPanel and Kazawallet stand-ins share: their failure modes, and delivering a
webhook to the daemon the way the provider does.

ok       normal answers
down     503 with an HTML body (a proxy in front of a dead service)
error    500 with the provider's error JSON
refuse   the provider's own refusal (each stand-in words it)
slow     answers only after `delay_s` (or when `unblock()` is called)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal, Protocol

import httpx
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from watcher.api.serving import serve_asgi

Mode = Literal["ok", "down", "error", "refuse", "slow"]
DOWN_HTML = "<html><body>503 Service Unavailable</body></html>"


class FailureModes:
    def __init__(self, mode: Mode, delay_s: float) -> None:
        self.mode: Mode = mode
        self.delay_s = delay_s
        self._unblocked = asyncio.Event()

    def unblock(self) -> None:
        self._unblocked.set()

    async def failure(self, error_body: dict[str, Any]) -> Response | None:
        """The answer the mode gives instead of the real one (None: answer normally)."""
        if self.mode == "down":
            return Response(DOWN_HTML, 503, media_type="text/html")
        if self.mode == "error":
            return JSONResponse(error_body, 500)
        if self.mode == "slow":
            try:
                await asyncio.wait_for(self._unblocked.wait(), self.delay_s)
            except TimeoutError:
                pass
        return None


async def deliver(url: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """POST a signed webhook to `url`, once; what the receiver answered."""
    async with httpx.AsyncClient(timeout=10) as client:
        resp = await client.post(url, content=body, headers=headers)
    return {"status": resp.status_code, "body": resp.text[:500]}


class StandIn(Protocol):
    base_url: str

    def routes(self) -> list[BaseRoute]: ...

    def unblock(self) -> None: ...


@asynccontextmanager
async def serve_alone(fake: StandIn, prefix: str, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Run `fake` alone on a free loopback port; yields its base URL (the host and `prefix`)."""
    async with serve_asgi(Starlette(routes=fake.routes()), host) as url:
        if not fake.base_url:
            fake.base_url = url
        try:
            yield url + prefix
        finally:
            fake.unblock()
