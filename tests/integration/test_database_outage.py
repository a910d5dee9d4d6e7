"""The API while its PostgreSQL server is down: 503 with Retry-After, never 500, and back to
normal when the server is. A private cluster this module starts and stops."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from tests.integration.conftest import api_settings
from tests.support.pgcluster import PgCluster
from tests.support.servers import serve_asgi
from watcher.api.app import create_app
from watcher.clock import now_ms
from watcher.db.engine import create_engine
from watcher.db.migrate import upgrade
from watcher.db.models import ChainCursor
from watcher.devchain.binance import FakeBinance
from watcher.merchants import create_merchant
from watcher.services import build_services


@pytest.fixture
async def api(cluster: PgCluster) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    conn = await asyncpg.connect(host="127.0.0.1", port=cluster.port, user="postgres")
    await conn.execute("DROP DATABASE IF EXISTS outage")
    await conn.execute("CREATE DATABASE outage")
    await conn.close()
    url = cluster.url("outage")
    engine = create_engine(url)
    await upgrade(engine)
    await engine.dispose()
    binance = FakeBinance(price=Decimal("35.50"))
    async with serve_asgi(Starlette(routes=binance.routes())) as binance_url:
        settings = api_settings(url, binance_url, rates={"max_age_s": 3600})
        async with build_services(settings) as services:
            async with services.sessions() as s, s.begin():
                s.add(ChainCursor(name="seen", block_number=1, updated_ms=now_ms()))
                merchant = await create_merchant(s, services.box, "shop")
            async with (
                serve_asgi(create_app(services)) as base,
                httpx.AsyncClient(base_url=base, timeout=30) as http,
            ):
                http.headers["x-api-key"] = merchant.api_key
                yield http, merchant.api_key
            if not (cluster.data / "postmaster.pid").exists():
                cluster.start()


def _create(ref: str) -> dict[str, object]:
    return {"amount": 1000, "fullName": "Ahmet Yılmaz", "externalRef": ref, "provider": "crypto"}


async def test_api_answers_503_with_retry_after_while_the_database_is_down(
    cluster: PgCluster, api: tuple[httpx.AsyncClient, str]
) -> None:
    http, _ = api
    made = await http.post("/api/payment/create", json=_create("O-1"))
    assert made.status_code == 200, made.text
    txn = made.json()["transactionId"]

    cluster.stop()
    for method, path, kw in (
        ("POST", "/api/payment/create", {"json": _create("O-2")}),
        ("GET", "/api/payment/status", {"params": {"transactionId": txn}}),
        ("GET", "/api/events", {}),
        ("GET", f"/pay/{txn}/status.json", {}),
    ):
        down = await http.request(method, path, **kw)  # type: ignore[arg-type]
        assert down.status_code == 503, (path, down.status_code, down.text)
        error = down.json()["error"]
        assert error["code"] == "SYSTEM_DISABLED", path
        assert error["message"] == "The database cannot be reached right now; retry after the " + (
            "seconds in Retry-After."
        )
        assert int(down.headers["Retry-After"]) >= 1, path
    health = await http.get("/healthz")
    assert health.status_code == 503 and health.json()["checks"]["database"]["ok"] is False

    cluster.start()
    again = await http.post("/api/payment/create", json=_create("O-2"))
    assert again.status_code == 200, again.text
    status = await http.get("/api/payment/status", params={"transactionId": txn})
    assert status.status_code == 200
