"""Prometheus metrics, in a registry of our own (no global state): built once, passed down.

Two kinds of figures:
- recorded in-process by the parts that see them: callback attempts, node request latency,
  the follower's head/seen/final, the last rate fetch, HTTP requests;
- read from the database on each scrape (`refresh`): payments by state, the callback backlog,
  the chain cursors. In a split deployment the API process serving /metrics is not the
  scanner, so these are what it can tell; the database is the truth they share.

Ages (follower lag in seconds, rate age) are computed at scrape time from the clock, and are
absent until known rather than a misleading 0.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from watcher.clock import Clock, now_ms
from watcher.db.models import Callback, ChainCursor, Payment, RateQuote
from watcher.payments.states import ALL_STATES

CALLBACK_OUTCOMES = ("delivered", "rejected", "error", "dead")


def lag_seconds(seen_block_ms: int, now_ms: int) -> float:
    """Follower lag in seconds, the one meaning used by /metrics, /healthz and `watcher chain
    status`: now minus the timestamp of the last block seen (0 for a block stamped ahead of
    this clock). In blocks, lag is the node's head minus the `seen` cursor."""
    return round(max(0, now_ms - seen_block_ms) / 1000, 1)


@dataclass
class _Known:
    """Values whose age is rendered at scrape time."""

    head: int | None = None
    seen: int | None = None
    seen_block_ms: int | None = None
    rate_fetched_ms: int | None = None


class _Ages(Collector):
    def __init__(self, known: _Known, clock: Clock):
        self._known = known
        self._clock = clock

    def collect(self) -> Iterable[Metric]:
        now = self._clock()
        if self._known.seen_block_ms is not None:
            yield GaugeMetricFamily(
                "watcher_follower_lag_seconds",
                "Seconds between now and the timestamp of the last block seen",
                value=lag_seconds(self._known.seen_block_ms, now),
            )
        if self._known.rate_fetched_ms is not None:
            yield GaugeMetricFamily(
                "watcher_rate_age_seconds",
                "Seconds since the TRY/USDT rate in use was fetched",
                value=max(0, now - self._known.rate_fetched_ms) / 1000,
            )


class Metrics:
    def __init__(self, clock: Clock = now_ms):
        self.clock = clock
        self.registry = CollectorRegistry(auto_describe=True)
        self._known = _Known()
        r = self.registry
        self.payments = Gauge("watcher_payments", "Payments by state", ["state"], registry=r)
        self.callback_attempts = Counter(
            "watcher_callback_attempts", "Callback attempts by outcome", ["outcome"], registry=r
        )
        self.callbacks_due = Gauge(
            "watcher_callbacks_due", "Pending callbacks whose next attempt is due", registry=r
        )
        self.callbacks_oldest_due = Gauge(
            "watcher_callbacks_oldest_due_seconds",
            "How long the oldest due callback has waited",
            registry=r,
        )
        self.callbacks_dead = Gauge(
            "watcher_callbacks_dead", "Callbacks parked after their last attempt", registry=r
        )
        self.head_block = Gauge("watcher_follower_head_block", "Node head block", registry=r)
        self.seen_block = Gauge("watcher_follower_seen_block", "`seen` cursor", registry=r)
        self.final_block = Gauge("watcher_follower_final_block", "`final` cursor", registry=r)
        self.lag_blocks = Gauge(
            "watcher_follower_lag_blocks", "Node head minus the `seen` cursor", registry=r
        )
        self.node_latency = Histogram(
            "watcher_node_request_seconds",
            "TRON node request latency by endpoint",
            ["endpoint"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.node_errors = Counter(
            "watcher_node_errors", "Failed TRON node requests by endpoint", ["endpoint"], registry=r
        )
        self.http_requests = Counter(
            "watcher_http_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "watcher_http_request_seconds", "HTTP request latency by route", ["route"], registry=r
        )
        self.database_up = Gauge(
            "watcher_database_up", "1 if the last refresh reached the database", registry=r
        )
        r.register(_Ages(self._known, clock))
        for state in sorted(ALL_STATES):
            self.payments.labels(state)
        for outcome in CALLBACK_OUTCOMES:
            self.callback_attempts.labels(outcome)

    # Recorded by the parts that see them.

    def callback_attempt(self, outcome: str) -> None:
        """One delivery attempt: delivered, rejected (answered, not accepted), error, dead."""
        if outcome not in CALLBACK_OUTCOMES:
            raise ValueError(f"unknown callback outcome {outcome!r}")
        self.callback_attempts.labels(outcome).inc()

    def follower_position(
        self,
        *,
        head: int | None = None,
        seen: int | None = None,
        final: int | None = None,
        seen_block_ms: int | None = None,
    ) -> None:
        known = self._known
        if head is not None:
            known.head = head
            self.head_block.set(head)
        if seen is not None:
            known.seen = seen
            self.seen_block.set(seen)
        if final is not None:
            self.final_block.set(final)
        if seen_block_ms is not None:
            known.seen_block_ms = seen_block_ms
        if known.head is not None and known.seen is not None:
            self.lag_blocks.set(max(0, known.head - known.seen))

    def node_request(self, endpoint: str, seconds: float, *, ok: bool = True) -> None:
        self.node_latency.labels(endpoint).observe(seconds)
        if not ok:
            self.node_errors.labels(endpoint).inc()

    @contextmanager
    def time_node_request(self, endpoint: str) -> Iterator[None]:
        """Time a node request; an exception counts it as an error and propagates."""
        start = time.perf_counter()
        ok = False
        try:
            yield
            ok = True
        finally:
            self.node_request(endpoint, time.perf_counter() - start, ok=ok)

    def rate_fetched(self, fetched_ms: int) -> None:
        self._known.rate_fetched_ms = max(fetched_ms, self._known.rate_fetched_ms or 0)

    def http_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.http_requests.labels(route, method, str(status)).inc()
        self.http_latency.labels(route).observe(seconds)

    # Read from the database on scrape.

    async def refresh(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        """Reload the database-backed figures; sets watcher_database_up and re-raises on error."""
        try:
            async with sessions() as session:
                await self._refresh(session, self.clock())
        except BaseException:  # timeouts cancel; the figure must still say "stale"
            self.database_up.set(0)
            raise
        self.database_up.set(1)

    async def _refresh(self, session: AsyncSession, now: int) -> None:
        rows = await session.execute(
            select(col(Payment.status), func.count()).group_by(col(Payment.status))
        )
        by_state: dict[str, int] = {status: n for status, n in rows}
        for state in ALL_STATES | set(by_state):
            self.payments.labels(state).set(by_state.get(state, 0))
        count, oldest = (
            await session.execute(
                select(func.count(), func.min(col(Callback.next_attempt_ms))).where(
                    col(Callback.status) == "pending", col(Callback.next_attempt_ms) <= now
                )
            )
        ).one()
        self.callbacks_due.set(count)
        self.callbacks_oldest_due.set(max(0, now - oldest) / 1000 if oldest is not None else 0)
        dead = await session.scalar(
            select(func.count()).select_from(Callback).where(col(Callback.status) == "dead")
        )
        self.callbacks_dead.set(dead or 0)
        await self._refresh_chain(session)
        fetched = await session.scalar(select(func.max(col(RateQuote.fetched_ms))))
        if fetched is not None:
            self.rate_fetched(fetched)

    async def _refresh_chain(self, session: AsyncSession) -> None:
        cursors = {c.name: c for c in (await session.execute(select(ChainCursor))).scalars()}
        final = cursors.get("final")
        if final is not None:
            self.final_block.set(final.block_number)
        seen = cursors.get("seen")
        if seen is None:
            return
        self.seen_block.set(seen.block_number)
        self._known.seen = seen.block_number
        if self._known.head is not None:
            self.lag_blocks.set(max(0, self._known.head - seen.block_number))
        if seen.block_ms:
            self._known.seen_block_ms = max(seen.block_ms, self._known.seen_block_ms or 0)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class HttpMetrics:
    """ASGI middleware counting requests by route template (`/pay/{payment_id}`), never by
    raw path, so a scanner probing random URLs cannot blow up the label set."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.http_request(route, scope["method"], status, time.perf_counter() - start)
