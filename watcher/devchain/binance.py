"""A local stand-in for Binance's public spot API, speaking its real JSON.

It serves what python-binance's AsyncClient calls for a price: `GET /api/v3/ticker/price`
(`{"symbol": "USDTTRY", "price": "35.50000000"}`, prices as 8-decimal strings), plus
`/api/v3/ping` and `/api/v3/time`. Failure modes let tests and the demo see what the rate
source does when Binance misbehaves:

    ok         normal answers
    down       503 with an HTML body, as a CDN in front of a dead origin answers
    error      500 with Binance's error JSON (`{"code": -1000, "msg": …}`)
    slow       answers only after `delay_s` (or when `unblock()` is called)
    malformed  200 with `malformed_body` (by default truncated JSON)

`routes()` is mounted by the devchain HTTP server; `serve()` runs it alone on loopback.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from watcher.api.serving import serve_asgi

Mode = Literal["ok", "down", "error", "slow", "malformed"]

_DOWN_HTML = "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"


class FakeBinance:
    """Binance's price endpoints with a settable price and failure mode."""

    def __init__(
        self,
        price: Decimal = Decimal("35.50"),
        symbol: str = "USDTTRY",
        *,
        mode: Mode = "ok",
        delay_s: float = 30.0,
        malformed_body: str = '{"symbol":"USDTTRY","pri',
    ) -> None:
        self.price = price
        self.symbol = symbol
        self.mode: Mode = mode
        self.delay_s = delay_s
        self.malformed_body = malformed_body
        self.ticker_calls = 0
        self._unblocked = asyncio.Event()

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/api/v3/ticker/price", self._ticker, methods=["GET"]),
            Route("/api/v3/ping", self._ping, methods=["GET"]),
            Route("/api/v3/time", self._time, methods=["GET"]),
        ]

    def unblock(self) -> None:
        """Let requests held by `slow` mode answer now (used at shutdown)."""
        self._unblocked.set()

    async def _ticker(self, request: Request) -> Response:
        self.ticker_calls += 1
        failure = await self._failure()
        if failure is not None:
            return failure
        wanted = request.query_params.get("symbol")
        if wanted is None:
            return JSONResponse([self._price_json()])
        if wanted.upper() != self.symbol:
            return JSONResponse({"code": -1121, "msg": "Invalid symbol."}, status_code=400)
        return JSONResponse(self._price_json())

    async def _ping(self, request: Request) -> Response:
        return await self._failure() or JSONResponse({})

    async def _time(self, request: Request) -> Response:
        return await self._failure() or JSONResponse({"serverTime": time.time_ns() // 1_000_000})

    def _price_json(self) -> dict[str, str]:
        return {"symbol": self.symbol, "price": format(self.price, ".8f")}

    async def _failure(self) -> Response | None:
        if self.mode == "down":
            return Response(_DOWN_HTML, status_code=503, media_type="text/html")
        if self.mode == "error":
            body = {"code": -1000, "msg": "An unknown error occurred while processing the request."}
            return JSONResponse(body, status_code=500)
        if self.mode == "malformed":
            return Response(self.malformed_body, media_type="application/json")
        if self.mode == "slow":
            try:
                await asyncio.wait_for(self._unblocked.wait(), self.delay_s)
            except TimeoutError:
                pass
        return None


@asynccontextmanager
async def serve(fake: FakeBinance, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Run `fake` alone on a free loopback port; yields its base URL (the host root)."""
    async with serve_asgi(Starlette(routes=fake.routes()), host) as url:
        try:
            yield url
        finally:
            fake.unblock()  # let held `slow` requests finish so the server can stop
