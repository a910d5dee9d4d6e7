"""An API server on loopback with a real database, the fake Binance and HD addresses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from tests.integration.chainkit import Rig, rig, shared_devchain
from tests.support.servers import serve_asgi
from watcher.api.app import create_app
from watcher.clock import now_ms
from watcher.config import Settings
from watcher.db.models import ChainCursor
from watcher.devchain.binance import FakeBinance
from watcher.devchain.server import DevChainServer
from watcher.merchants import Credentials, create_merchant
from watcher.services import Services, build_services
from watcher.wallets.hd import DEMO_XPUB

START_BLOCK = 1_000_000


@dataclass
class ApiHarness:
    url: str
    services: Services
    merchant: Credentials
    binance: FakeBinance
    http: httpx.AsyncClient

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"x-api-key": key or self.merchant.api_key}

    async def create(self, key: str | None = None, **fields: object) -> httpx.Response:
        body: dict[str, object] = {
            "amount": 10000,
            "fullName": "Ahmet Yılmaz",
            "externalRef": "ORD-1",
            "provider": "crypto",
        }
        body.update(fields)
        return await self.http.post(
            f"{self.url}/api/payment/create", json=body, headers=self.headers(key)
        )


def api_settings(db_url: str, binance_url: str, **sections: dict[str, object]) -> Settings:
    data: dict[str, dict[str, object]] = {
        "database": {"url": db_url},
        "rates": {"binance_base_url": binance_url, "cache_s": 5},
        "wallet": {"mode": "hd", "xpub": DEMO_XPUB},
        "api": {"rate_limit_per_minute": 1000},
        "callbacks": {"allow_private_urls": True},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return Settings(**data)  # type: ignore[arg-type]


@pytest.fixture
def api_sections() -> dict[str, dict[str, object]]:
    """Override in a test module to change settings of the `api` fixture."""
    return {}


@pytest.fixture
async def api(db_url: str, api_sections: dict[str, dict[str, object]]) -> AsyncIterator[ApiHarness]:
    async with serve_api(db_url, **api_sections) as harness:
        yield harness


@asynccontextmanager
async def serve_api(db_url: str, **sections: dict[str, object]) -> AsyncIterator[ApiHarness]:
    """The API on loopback with these settings, the fake Binance, a merchant "shop"."""
    binance = FakeBinance(price=Decimal("35.50"))
    async with serve_asgi(_binance_app(binance)) as binance_url:
        settings = api_settings(db_url, binance_url, **sections)
        async with build_services(settings) as services:
            async with services.sessions() as s, s.begin():
                s.add(ChainCursor(name="seen", block_number=START_BLOCK, updated_ms=now_ms()))
                merchant = await create_merchant(s, services.box, "shop")
            async with (
                serve_asgi(create_app(services)) as url,
                httpx.AsyncClient(timeout=30) as http,
            ):
                yield ApiHarness(url, services, merchant, binance, http)


def _binance_app(binance: FakeBinance) -> Starlette:
    return Starlette(routes=binance.routes())


@pytest.fixture(scope="module")
def devchain() -> Iterator[DevChainServer]:
    """One devchain per test module: starting one per test would dominate the run time."""
    with shared_devchain() as server:
        yield server


@pytest.fixture
async def r(
    db_url: str, sessions: async_sessionmaker[AsyncSession], devchain: DevChainServer
) -> AsyncIterator[Rig]:
    """A started follower rig on the module's devchain and this test's database."""
    async with rig(db_url, sessions, server=devchain) as made:
        await made.start()
        yield made
