"""Cancel against what the chain shows: the API and the follower on one database, over real
HTTP, with the devchain paying. A payment that holds funds cannot be cancelled, and no amount
is ever reported twice across its events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from starlette.applications import Starlette

from tests.integration.chainkit import LAG, Rig, rig
from tests.integration.conftest import ApiHarness, api_settings
from tests.support.servers import serve_asgi
from watcher import jsonio
from watcher.api.app import create_app
from watcher.db.models import PaymentEvent
from watcher.devchain.binance import FakeBinance
from watcher.devchain.server import DevChainServer
from watcher.merchants import create_merchant
from watcher.services import build_services

pytestmark = pytest.mark.asyncio
USDT_20 = 20_000_000


@pytest.fixture
async def chain_api(
    db_url: str, sessions: async_sessionmaker[AsyncSession], devchain: DevChainServer
) -> AsyncIterator[tuple[Rig, ApiHarness]]:
    """The follower rig and the merchant API on the same database and the same clock."""
    binance = FakeBinance(price=Decimal("35.50"))
    async with (
        rig(db_url, sessions, server=devchain) as r,
        serve_asgi(Starlette(routes=binance.routes())) as binance_url,
    ):
        await r.start()
        r.clock.now = r.block_ms(r.chain.head_number)
        settings = api_settings(
            db_url,
            binance_url,
            tron={"endpoints": [devchain.url]},
            rates={"quote_ttl_min": 1},  # 20 blocks to pay in
        )
        async with build_services(settings, clock=r.clock) as services:
            async with services.sessions() as s, s.begin():
                merchant = await create_merchant(s, services.box, "cancel shop")
            async with (
                serve_asgi(create_app(services)) as url,
                httpx.AsyncClient(timeout=30) as http,
            ):
                yield r, ApiHarness(url, services, merchant, binance, http)


async def cancel(api: ApiHarness, txn: str) -> httpx.Response:
    return await api.http.post(f"{api.url}/api/payment/{txn}/cancel", headers=api.headers())


async def test_cancel_is_refused_once_anything_was_received(
    chain_api: tuple[Rig, ApiHarness],
) -> None:
    r, api = chain_api
    created = (await api.create(externalRef="ORD-PART")).json()
    txn, address = created["transactionId"], created["data"]["walletAddress"]
    r.chain.transfer(address, USDT_20)  # a partial payment: the status stays pending
    r.chain.mine(1)
    await r.catch_up()
    p = await r.payment(txn)
    assert (p.status, p.confirming_micro) == ("pending", USDT_20)

    seen = await cancel(api, txn)
    assert seen.status_code == 409, seen.text
    assert seen.json()["error"]["code"] == "INVALID_STATE"
    assert "received" in seen.json()["error"]["message"]

    r.chain.mine(LAG)
    await r.catch_up()
    assert (await r.payment(txn)).received_micro == USDT_20
    final = await cancel(api, txn)
    assert final.status_code == 409 and final.json()["error"]["code"] == "INVALID_STATE"

    # Left to expire, the 20 USDT are reported once: in payment.expired, never again as late.
    r.clock.now = p.expires_ms + 1
    r.chain.mine(25)  # past the deadline on the chain too
    await r.catch_up()
    await r.expirer().step()
    async with r.sessions() as s:
        rows = await s.execute(
            select(PaymentEvent).where(col(PaymentEvent.payment_id) == txn).order_by("id")
        )
        events = [(e.type, jsonio.loads(e.data_json)["crypto"]) for e in rows.scalars()]
    assert [t for t, _ in events] == ["payment.expired"]
    assert events[0][1]["receivedUsdt"] == 20 and "lateUsdt" not in events[0][1]

    nothing = (await api.create(externalRef="ORD-NONE")).json()["transactionId"]
    assert (await cancel(api, nothing)).status_code == 200
