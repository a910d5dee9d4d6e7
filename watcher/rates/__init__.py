"""Rate sources: where TRY per USDT comes from (Binance through python-binance)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watcher.clock import Clock, now_ms
from watcher.config import Settings
from watcher.rates.base import RateSource
from watcher.rates.binance import BinanceRateSource


def build_rate_source(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], clock: Clock = now_ms
) -> RateSource:
    """The configured rate source (python-binance brings its own aiohttp client)."""
    return BinanceRateSource(settings.rates, sessions, clock, timeout_s=settings.rates.timeout_s)
