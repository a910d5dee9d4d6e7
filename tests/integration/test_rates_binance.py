"""The Binance rate source against a local Binance speaking its real JSON over loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watcher.config import RatesSettings, Settings
from watcher.db.models import RateQuote
from watcher.devchain.binance import FakeBinance, serve
from watcher.errors import ProviderError
from watcher.money import usdt_for_try
from watcher.rates import build_rate_source
from watcher.rates.binance import BinanceRateSource

T0 = 1_790_000_000_000

# Storage is incidental to most of these tests; those about stored rates run on both databases.
sqlite_only = pytest.mark.parametrize("db_kind", ["sqlite"])


@dataclass
class FakeClock:
    now: int = T0

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)


@pytest.fixture
async def binance() -> AsyncIterator[tuple[FakeBinance, str]]:
    fake = FakeBinance(Decimal("35.50"))
    async with serve(fake) as url:
        yield fake, url


def source(
    url: str,
    sessions: async_sessionmaker[AsyncSession],
    clock: FakeClock,
    **rates: object,
) -> BinanceRateSource:
    settings = RatesSettings.model_validate({"binance_base_url": url, **rates})
    return BinanceRateSource(settings, sessions, clock, timeout_s=0.5)


async def stored(sessions: async_sessionmaker[AsyncSession]) -> list[RateQuote]:
    async with sessions() as s:
        return list((await s.execute(select(RateQuote).order_by(RateQuote.id))).scalars())  # type: ignore[arg-type]


async def test_the_quote_is_binance_s_last_price_and_is_recorded(
    binance: tuple[FakeBinance, str], sessions: async_sessionmaker[AsyncSession]
) -> None:
    _, url = binance
    clock = FakeClock()
    quote = await source(url, sessions, clock).quote()
    assert quote.price == Decimal("35.5")
    assert quote.fetched_ms == T0
    assert url in quote.source and "USDTTRY" in quote.source
    assert usdt_for_try(Decimal("10000"), quote.price) == Decimal("281.69")
    [row] = await stored(sessions)
    assert (row.symbol, row.price, row.fetched_ms) == ("USDTTRY", "35.5", T0)


@sqlite_only
async def test_the_factory_builds_a_source_pointed_at_the_configured_url(
    binance: tuple[FakeBinance, str], sessions: async_sessionmaker[AsyncSession]
) -> None:
    fake, url = binance
    settings = Settings.model_validate({"rates": {"binance_base_url": url + "/"}})
    quote = await build_rate_source(settings, sessions).quote()
    assert quote.price == Decimal("35.5")
    assert fake.ticker_calls == 1


@pytest.mark.parametrize("cache_s", [0, 10])
async def test_a_burst_of_50_concurrent_quotes_makes_one_upstream_call(
    binance: tuple[FakeBinance, str], sessions: async_sessionmaker[AsyncSession], cache_s: int
) -> None:
    fake, url = binance
    fake.mode = "slow"  # hold the first request until the whole burst is waiting
    fake.delay_s = 0.3
    rates = source(url, sessions, FakeClock(), cache_s=cache_s)
    quotes = await asyncio.gather(*(rates.quote() for _ in range(50)))
    assert {q.price for q in quotes} == {Decimal("35.5")}
    assert fake.ticker_calls == 1
    assert len(await stored(sessions)) == 1


@sqlite_only
async def test_a_cached_rate_is_reused_until_cache_s_then_refetched(
    binance: tuple[FakeBinance, str], sessions: async_sessionmaker[AsyncSession]
) -> None:
    fake, url = binance
    clock = FakeClock()
    rates = source(url, sessions, clock, cache_s=10)
    await rates.quote()
    fake.price = Decimal("36.10")
    clock.advance(9.9)
    assert (await rates.quote()).price == Decimal("35.5")
    clock.advance(0.1)
    assert (await rates.quote()).price == Decimal("36.1")
    assert fake.ticker_calls == 2


@sqlite_only
@pytest.mark.parametrize("mode", ["down", "error", "malformed", "slow", "refused"])
async def test_binance_failing_without_a_recent_rate_is_a_provider_error(
    binance: tuple[FakeBinance, str], sessions: async_sessionmaker[AsyncSession], mode: str
) -> None:
    fake, url = binance
    if mode == "refused":
        url = "http://127.0.0.1:9"  # discard port: nothing listens
    else:
        fake.mode = mode  # type: ignore[assignment]
    with pytest.raises(ProviderError) as caught:
        await source(url, sessions, FakeClock()).quote()
    assert caught.value.status == 502 and caught.value.code == "PROVIDER_ERROR"
    assert await stored(sessions) == []


@sqlite_only
@pytest.mark.parametrize(
    "body", ["<html>maintenance</html>", '{"symbol":"USDTTRY","price":"NaN"}', '{"code":0}', "[]"]
)
async def test_any_malformed_answer_is_a_provider_error(
    binance: tuple[FakeBinance, str], sessions: async_sessionmaker[AsyncSession], body: str
) -> None:
    fake, url = binance
    fake.mode, fake.malformed_body = "malformed", body
    with pytest.raises(ProviderError):
        await source(url, sessions, FakeClock()).quote()


@sqlite_only
async def test_while_binance_fails_the_last_rate_is_used_up_to_max_age(
    binance: tuple[FakeBinance, str], sessions: async_sessionmaker[AsyncSession]
) -> None:
    fake, url = binance
    clock = FakeClock()
    rates = source(url, sessions, clock, cache_s=0, max_age_s=300)
    await rates.quote()
    fake.mode, fake.price = "error", Decimal("99")
    clock.advance(300)
    quote = await rates.quote()
    assert (quote.price, quote.fetched_ms) == (Decimal("35.5"), T0)
    clock.advance(0.001)
    with pytest.raises(ProviderError):
        await rates.quote()
    fake.mode = "ok"
    assert (await rates.quote()).price == Decimal("99")


async def test_after_a_restart_the_stored_rate_bridges_a_binance_outage(
    binance: tuple[FakeBinance, str], sessions: async_sessionmaker[AsyncSession]
) -> None:
    fake, url = binance
    clock = FakeClock()
    await source(url, sessions, clock).quote()
    fake.mode = "down"
    clock.advance(60)
    restarted = source(url, sessions, clock, max_age_s=120)
    assert (await restarted.quote()).price == Decimal("35.5")
    assert (await restarted.last_stored()) == await restarted.quote()


@sqlite_only
async def test_max_age_zero_never_uses_a_stale_rate(
    binance: tuple[FakeBinance, str], sessions: async_sessionmaker[AsyncSession]
) -> None:
    fake, url = binance
    rates = source(url, sessions, FakeClock(), cache_s=0, max_age_s=0)
    await rates.quote()
    fake.mode = "down"
    with pytest.raises(ProviderError):
        await rates.quote()


@sqlite_only
async def test_during_an_outage_binance_is_asked_again_only_after_cache_s(
    binance: tuple[FakeBinance, str], sessions: async_sessionmaker[AsyncSession]
) -> None:
    fake, url = binance
    clock = FakeClock()
    rates = source(url, sessions, clock, cache_s=10, max_age_s=300)
    await rates.quote()
    fake.mode = "error"
    clock.advance(10)
    assert (await rates.quote()).price == Decimal("35.5")
    calls = fake.ticker_calls
    clock.advance(9)
    assert (await rates.quote()).price == Decimal("35.5")
    assert fake.ticker_calls == calls
    fake.mode, fake.price = "ok", Decimal("36")
    clock.advance(1)
    assert (await rates.quote()).price == Decimal("36")


async def test_an_implausible_rate_is_an_outage_never_a_price(
    binance: tuple[FakeBinance, str], sessions: async_sessionmaker[AsyncSession]
) -> None:
    fake, url = binance
    clock = FakeClock()
    rates = source(url, sessions, clock, cache_s=0, max_age_s=60, min_rate=20, max_rate=60)
    await rates.quote()
    fake.price = Decimal("0.0035")  # a ticker misread by a factor of 10 000
    clock.advance(30)
    assert (await rates.quote()).price == Decimal("35.5")  # the last sane rate bridges it
    clock.advance(31)
    with pytest.raises(ProviderError, match=r"outside the sane band 20\.\.60"):
        await rates.quote()
    assert [q.price for q in await stored(sessions)] == ["35.5"]
    fake.price = Decimal("60")
    assert (await rates.quote()).price == Decimal("60")


def test_the_band_must_be_a_band() -> None:
    with pytest.raises(ValueError, match="min_rate is above max_rate"):
        RatesSettings.model_validate({"min_rate": 50, "max_rate": 40})
