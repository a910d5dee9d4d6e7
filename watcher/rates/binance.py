"""TRY per USDT from Binance's `USDTTRY` last price, through python-binance's AsyncClient.

- Cached for `rates.cache_s`: a quote younger than that is reused without asking.
- Single-flight: callers arriving while a fetch is in flight wait for that fetch, so a burst
  of 50 concurrent creates makes one upstream call (even with `cache_s = 0`).
- Every fetched rate is stored in `rate_quote` (for `watcher rate show` and audits).
- A price outside `rates.min_rate`..`rates.max_rate` (TRY per USDT) is Binance failing: a
  broken or absurd ticker must never lock a payment at 0 USDT or at a fortune, so it is not
  stored and not used.
- When Binance fails, the last rate (in memory, else the last stored one) is used while it is
  at most `rates.max_age_s` old, without asking Binance again for `cache_s`; otherwise
  ProviderError (502 PROVIDER_ERROR).
- `health()` tells /healthz since when fetches fail and whether creates are refused for it.

python-binance runs on aiohttp and lets aiohttp's own errors (connection refused, timeouts,
content-type errors) escape unwrapped next to its BinanceAPIException and
BinanceRequestException, so every failure of the upstream call is caught here, at the
boundary. The client is pointed at `rates.binance_base_url` (the host root; the client adds
`/api/v3/…`) and only `get_symbol_ticker` is called: `AsyncClient.create()` would ping
api.binance.com, so it is never used. A client (and its aiohttp session) lives for one fetch:
fetches are rare (at most one per `cache_s` or per burst), and nothing is left open when the
process or the event loop ends.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp
import structlog
from binance import AsyncClient
from binance.exceptions import BinanceAPIException, BinanceRequestException
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from watcher.clock import Clock
from watcher.config import RatesSettings
from watcher.db.engine import transaction
from watcher.db.models import RateQuote
from watcher.errors import ProviderError
from watcher.money import canonical
from watcher.rates.base import Quote
from watcher.redact import redact_url

log = structlog.get_logger("watcher.rates")

DEFAULT_TIMEOUT_S = 5.0

# Everything the upstream call is known to raise; anything else is a bug and propagates.
_UPSTREAM_ERRORS: tuple[type[BaseException], ...] = (
    BinanceAPIException,
    BinanceRequestException,
    aiohttp.ClientError,
    TimeoutError,
    OSError,
    ValueError,
    KeyError,
    TypeError,
    InvalidOperation,
)


class UpstreamError(Exception):
    """Binance did not give a usable price."""


class InsaneRate(ValueError):
    """Binance answered a price outside the configured band."""


class BinanceRateSource:
    """The RateSource for `rates.*` settings; see the module docstring."""

    def __init__(
        self,
        settings: RatesSettings,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self._symbol = settings.symbol.upper()
        self._band = (settings.min_rate, settings.max_rate)
        self._api_url = settings.binance_base_url.rstrip("/") + "/api"
        self._cache_ms = int(settings.cache_s * 1000)
        self._max_age_ms = int(settings.max_age_s * 1000)
        self._sessions = sessions
        self._clock = clock
        self._timeout_s = timeout_s
        # Shown by `rate show` and stored with every rate: the host, never a proxy's password.
        self.source = f"binance {self._symbol} {redact_url(settings.binance_base_url.rstrip('/'))}"
        self._last: Quote | None = None
        self._inflight: asyncio.Future[Quote] | None = None
        # After a failed fetch the stale rate is served without asking again for cache_s,
        # so an outage does not make every create wait for a timeout.
        self._quiet_until_ms = 0
        # Since when fetches fail (None: the last one worked), why, and whether the last
        # create had to be refused for it (no rate young enough to fall back on).
        self._failing_since_ms: int | None = None
        self._failure = ""
        self._refused = False

    async def quote(self) -> Quote:
        last, now = self._last, self._clock()
        if last is not None and (
            now - last.fetched_ms < self._cache_ms
            or (now < self._quiet_until_ms and now - last.fetched_ms <= self._max_age_ms)
        ):
            return last
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._refresh())
            self._inflight.add_done_callback(self._landed)
        # shield: a caller that gives up (client disconnect) does not cancel the others' fetch
        return await asyncio.shield(self._inflight)

    async def fetch(self) -> Quote:
        """Ask Binance now (no cache, no fallback) and store the answer."""
        price = await self._ask()
        quote = Quote(price=price, fetched_ms=self._clock(), source=self.source)
        await self._store(quote)
        self._last = quote
        log.info("rate_fetched", symbol=self._symbol, price=canonical(price))
        return quote

    async def last_stored(self) -> Quote | None:
        """The newest rate in `rate_quote` for this symbol, from any process."""
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(RateQuote)
                    .where(col(RateQuote.symbol) == self._symbol)
                    .order_by(col(RateQuote.fetched_ms).desc(), col(RateQuote.id).desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
        if row is None:
            return None
        return Quote(price=Decimal(row.price), fetched_ms=row.fetched_ms, source=row.source)

    def _landed(self, fut: asyncio.Future[Quote]) -> None:
        self._inflight = None
        if not fut.cancelled():
            fut.exception()  # retrieved here too, in case every waiter was cancelled

    def health(self, now_ms: int) -> dict[str, Any]:
        if self._failing_since_ms is None:
            return {"ok": True}
        failing_s = max(0, now_ms - self._failing_since_ms) // 1000
        if self._refused:
            outcome = "creates answer 502 PROVIDER_ERROR"
        else:
            outcome = "creates use the last rate while it is at most rates.max_age_s old"
        return {
            "ok": not self._refused,
            "failingSeconds": failing_s,
            "reason": f"Binance has failed for {failing_s} s ({self._failure}): {outcome}",
        }

    async def _refresh(self) -> Quote:
        try:
            quote = await self.fetch()
        except UpstreamError as exc:
            if self._failing_since_ms is None:
                self._failing_since_ms = self._clock()
            self._failure = str(exc)
            return await self._fallback(exc)
        self._failing_since_ms, self._refused = None, False
        return quote

    async def _fallback(self, exc: UpstreamError) -> Quote:
        last = self._last or await self.last_stored()
        now = self._clock()
        if (
            last is not None
            and self._max_age_ms > 0
            and now - last.fetched_ms <= self._max_age_ms
            and self._sane(last.price)
        ):
            log.warning(
                "rate_stale_used",
                symbol=self._symbol,
                error=str(exc),
                age_ms=now - last.fetched_ms,
            )
            self._last, self._quiet_until_ms = last, now + self._cache_ms
            self._refused = False
            return last
        self._refused = True
        log.error("rate_unavailable", symbol=self._symbol, error=str(exc))
        raise ProviderError(f"the exchange rate is unavailable: {exc}") from exc

    async def _ask(self) -> Decimal:
        client = AsyncClient(requests_params={"timeout": self._timeout_s})
        client.API_URL = self._api_url
        try:
            async with asyncio.timeout(self._timeout_s):
                answer = await client.get_symbol_ticker(symbol=self._symbol)
            return self._price(answer)
        except _UPSTREAM_ERRORS as exc:
            log.warning("rate_fetch_failed", symbol=self._symbol, detail=repr(exc)[:300])
            raise UpstreamError(_describe(exc)) from exc
        finally:
            await client.close_connection()

    def _price(self, answer: Any) -> Decimal:
        if not isinstance(answer, dict) or answer.get("symbol") != self._symbol:
            raise ValueError(f"unexpected answer {str(answer)[:200]!r}")
        price = Decimal(str(answer["price"]))
        if not price.is_finite() or price <= 0:
            raise ValueError(f"price {answer['price']!r} is not a positive number")
        if not self._sane(price):
            raise InsaneRate(
                f"rate {canonical(price)} TRY per USDT is outside the sane band "
                f"{canonical(self._band[0])}..{canonical(self._band[1])} (rates.min_rate, "
                "rates.max_rate)"
            )
        return price

    def _sane(self, price: Decimal) -> bool:
        low, high = self._band
        return low <= price <= high

    async def _store(self, quote: Quote) -> None:
        async with transaction(self._sessions) as session:
            session.add(
                RateQuote(
                    symbol=self._symbol,
                    price=canonical(quote.price),
                    source=quote.source,
                    fetched_ms=quote.fetched_ms,
                )
            )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BinanceAPIException):
        return f"Binance answered HTTP {exc.status_code}"
    if isinstance(exc, TimeoutError):
        return "Binance did not answer in time"
    if isinstance(exc, aiohttp.ClientConnectionError | OSError):
        return "Binance is unreachable"
    if isinstance(exc, InsaneRate):
        return f"Binance answered an implausible rate: {exc}"
    return "Binance answered malformed data"
