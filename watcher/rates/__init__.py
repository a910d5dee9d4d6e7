"""Rate sources: where TRY per USDT comes from (Binance through python-binance)."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watcher.clock import Clock, now_ms
from watcher.config import Settings
from watcher.rates.base import RateSource
from watcher.rates.binance import BinanceRateSource


def build_rate_source(
    settings: Settings,
    http: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock = now_ms,
) -> RateSource:
    """The configured rate source. `http` is unused: python-binance brings its own aiohttp
    client; it stays in the signature so a future httpx-based source needs no caller change."""
    del http
    return BinanceRateSource(settings.rates, sessions, clock)
