"""The API and the chain loops while their PostgreSQL server is down: 503 with Retry-After,
never 500; the follower and the expirer wait and carry on, never die. A private cluster this
module starts and stops."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from tests.integration.chainkit import LAG, USDT_10, rig
from tests.integration.conftest import api_settings
from tests.integration.test_banktransfer import JSON, TOKEN, bank_settings, deposit
from tests.support.pgcluster import PgCluster
from tests.support.providers import provider_harness
from tests.support.servers import serve_asgi
from watcher.api.app import create_app
from watcher.clock import now_ms
from watcher.config import LogSettings
from watcher.db.engine import create_engine, session_factory
from watcher.db.migrate import upgrade
from watcher.db.models import ChainCursor
from watcher.devchain.binance import FakeBinance
from watcher.logs import configure_logging
from watcher.merchants import create_merchant
from watcher.services import build_services


async def _fresh_database(cluster: PgCluster, name: str) -> str:
    conn = await asyncpg.connect(host="127.0.0.1", port=cluster.port, user="postgres")
    await conn.execute(f"DROP DATABASE IF EXISTS {name}")
    await conn.execute(f"CREATE DATABASE {name}")
    await conn.close()
    url = cluster.url(name)
    engine = create_engine(url)
    await upgrade(engine)
    await engine.dispose()
    return url


@pytest.fixture
async def api(cluster: PgCluster) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    url = await _fresh_database(cluster, "outage")
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


async def test_a_provider_webhook_is_never_acknowledged_while_the_database_is_down(
    cluster: PgCluster,
) -> None:
    """A webhook answered 200 is one the provider never sends again: while the database is
    down it gets 503 (the provider retries), and the log names the route, not the secret
    token in the path."""
    url = await _fresh_database(cluster, "webhooks")
    async with provider_harness(url, providers=bank_settings()) as bank:
        txn = (await bank.pay("bank")).json()["transactionId"]
        buf = io.StringIO()
        configure_logging(LogSettings(level="DEBUG", json_logs=True), stream=buf)
        cluster.stop()
        try:
            down = await bank.webhook("banktransfer", deposit(txn, "successful"), JSON, TOKEN)
            cancel = await bank.http.post(
                f"{bank.url}/api/payment/{txn}/cancel", headers=bank.headers()
            )
            page = await bank.http.get(f"{bank.url}/pay/{txn}")
        finally:
            configure_logging(LogSettings(level="WARNING", json_logs=False))
            cluster.start()
        for answer in (down, cancel, page):
            assert answer.status_code == 503, answer.text
            assert int(answer.headers["Retry-After"]) >= 1
        assert "api.database_unavailable" in buf.getvalue()
        assert TOKEN not in buf.getvalue(), buf.getvalue()

        again = await bank.webhook("banktransfer", deposit(txn, "successful"), JSON, TOKEN)
        assert (again.status_code, again.json()) == (200, {"received": True})
        assert (await bank.status(txn))["status"] == "completed"


async def test_follower_and_expirer_wait_out_a_database_outage(cluster: PgCluster) -> None:
    url = await _fresh_database(cluster, "loops")
    engine = create_engine(url)
    try:
        async with rig(url, session_factory(engine)) as r:
            await r.start()
            p = await r.pay(USDT_10)
            await r.catch_up()
            stop = asyncio.Event()
            loops = [
                asyncio.create_task(r.follower.run(stop), name="follower"),
                asyncio.create_task(r.expirer().run(stop), name="expirer"),
            ]
            try:
                cluster.stop()
                r.chain.transfer(p.address or "", USDT_10)
                r.chain.mine(LAG + 1)
                await asyncio.sleep(2)  # both loops meet the refused connections meanwhile
                died = {t.get_name(): t.exception() for t in loops if t.done()}
                assert died == {}, died
                cluster.start()
                for _ in range(200):
                    if (await r.payment(p.id)).status == "completed":
                        break
                    await asyncio.sleep(0.05)
                assert (await r.payment(p.id)).status == "completed"
            finally:
                stop.set()
                if not (cluster.data / "postmaster.pid").exists():
                    cluster.start()
                await asyncio.gather(*loops, return_exceptions=True)
    finally:
        await engine.dispose()


async def test_a_server_restarted_while_the_api_sat_idle_is_met_by_a_ping_not_a_request(
    cluster: PgCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pooled connections are not pinged at every checkout, only once idle for a while
    (db.engine.PG_PING_IDLE_S, 0 here so that this test need not wait): the first request
    after a restart the API slept through gets a fresh connection, not the dead one."""
    monkeypatch.setattr("watcher.db.engine.PG_PING_IDLE_S", 0.0)
    url = await _fresh_database(cluster, "idle")
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
                made = await http.post("/api/payment/create", json=_create("I-1"))
                assert made.status_code == 200, made.text
                txn = made.json()["transactionId"]
                cluster.stop()
                cluster.start()
                status = await http.get("/api/payment/status", params={"transactionId": txn})
                assert status.status_code == 200, status.text
                again = await http.post("/api/payment/create", json=_create("I-2"))
                assert again.status_code == 200, again.text
