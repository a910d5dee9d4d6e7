"""The collaborators every part of the daemon shares, built once from settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from watcher import rates, wallets
from watcher.callbacks.doorbell import Doorbell
from watcher.callbacks.sender import callback_session
from watcher.clock import Clock, now_ms
from watcher.config import Settings
from watcher.db.engine import create_engine, session_factory
from watcher.merchants import ensure_test_secrets
from watcher.methods import blocks, build_methods, build_providers
from watcher.payments.service import PaymentService
from watcher.providers.base import Provider
from watcher.rates.base import RateSource
from watcher.secrets import SecretBox, open_box
from watcher.wallets.base import AddressAllocator


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    box: SecretBox
    rates: RateSource
    addresses: AddressAllocator
    http: aiohttp.ClientSession  # callbacks to merchants (watcher.callbacks.sender)
    clock: Clock = now_ms
    providers: dict[str, Provider] = field(default_factory=dict)
    doorbell: Doorbell = field(default_factory=Doorbell)  # rung by commits that queue callbacks
    payments: PaymentService = field(init=False)

    def __post_init__(self) -> None:
        if not self.providers:
            self.providers = build_providers(self.settings)
        methods = build_methods(self.settings, self.rates, self.addresses, self.providers)
        self.payments = PaymentService(self.settings, self.sessions, methods, blocks, self.clock)

    async def close(self) -> None:
        await self.http.close()
        for provider in self.providers.values():
            await provider.close()
        closer = getattr(self.rates, "close", None)
        if closer is not None:
            await closer()
        await self.engine.dispose()


@asynccontextmanager
async def build_services(settings: Settings, clock: Clock = now_ms) -> AsyncIterator[Services]:
    # Settings that only fail when used (wallet.xpub, rates, providers) fail here, before
    # any resource.
    providers = build_providers(settings)
    engine = create_engine(settings.database.url)  # not connected until first used
    doorbell = Doorbell()
    try:
        addresses = wallets.build_allocator(settings, clock=clock, engine=engine)
        sessions = session_factory(engine, on_end=doorbell.transaction_ended)
        async with sessions() as session, session.begin():
            box = await open_box(session, settings.database.url)
            await ensure_test_secrets(session, box)
    except BaseException:
        await engine.dispose()
        raise
    services = Services(
        settings=settings,
        engine=engine,
        sessions=sessions,
        box=box,
        rates=rates.build_rate_source(settings, sessions, clock=clock),
        addresses=addresses,
        http=callback_session(),
        clock=clock,
        providers=providers,
        doorbell=doorbell,
    )
    try:
        yield services
    finally:
        await services.close()
