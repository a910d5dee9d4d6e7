"""/healthz and /metrics as an operator's probe and Prometheus see them, over real HTTP."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import SimpleNamespace
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tests.integration.conftest import serve_api
from tests.support.servers import serve_asgi
from watcher.api import health
from watcher.api.app import create_app
from watcher.clock import now_ms
from watcher.config import Settings
from watcher.db.engine import create_engine, session_factory
from watcher.db.models import (
    Callback,
    CallbackAttempt,
    ChainBlock,
    ChainCursor,
    Payment,
    PaymentEvent,
    RateQuote,
)
from watcher.merchants import create_merchant
from watcher.metrics import Metrics
from watcher.services import Services, build_services
from watcher.wallets.hd import DEMO_XPUB

MAX_LAG = 30
HEAD = 5_000_000
MINUTE_MS = 60_000


@dataclass
class Probe:
    services: Services
    metrics: Metrics
    http: httpx.AsyncClient

    async def cursors(
        self, seen: int, final: int | None, seen_updated_ms: int, seen_block_ms: int = 0
    ) -> None:
        async with self.services.sessions() as s, s.begin():
            s.add(
                ChainCursor(
                    name="seen",
                    block_number=seen,
                    block_ms=seen_block_ms or seen_updated_ms,
                    updated_ms=seen_updated_ms,
                )
            )
            if final is not None:
                s.add(ChainCursor(name="final", block_number=final, updated_ms=now_ms()))

    async def payments(self, *statuses: str, callback_due_ms: int | None = None) -> None:
        """Payments in `statuses`; each enqueues one callback due at `callback_due_ms`."""
        now = now_ms()
        async with self.services.sessions() as s, s.begin():
            merchant = await create_merchant(s, self.services.box, f"shop-{now}")
            for i, status in enumerate(statuses):
                p = Payment(
                    id=f"txn_{now}_{i}",
                    merchant_id=merchant.id,
                    external_ref=f"ORD-{i}",
                    provider="crypto",
                    amount_kurus=1_000_000,
                    full_name="Ahmet Yılmaz",
                    status=status,
                    callback_url="https://shop.example/cb" if callback_due_ms else None,
                    created_ms=now,
                    updated_ms=now,
                    expires_ms=now + 30 * MINUTE_MS,
                )
                s.add(p)
                await s.flush()
                if callback_due_ms is not None:
                    await _enqueue_callback(s, p, callback_due_ms)


async def _enqueue_callback(s: AsyncSession, p: Payment, due_ms: int) -> None:
    """An event and its outbox row, as a state change leaves them."""
    event = PaymentEvent(
        event_id=f"evt_{uuid4().hex}",
        payment_id=p.id,
        merchant_id=p.merchant_id,
        type="payment.completed",
        sequence=1,
        status=p.status,
        created_ms=due_ms,
    )
    s.add(event)
    await s.flush()
    s.add(
        Callback(
            event_id=event.event_id,
            payment_id=p.id,
            merchant_id=p.merchant_id,
            url="https://shop.example/cb",
            next_attempt_ms=due_ms,
            created_ms=due_ms,
        )
    )
    await s.flush()


@pytest.fixture
async def probe(db_url: str) -> AsyncIterator[Probe]:
    settings = Settings(
        database={"url": db_url},  # type: ignore[arg-type]
        wallet={"mode": "hd", "xpub": DEMO_XPUB},  # type: ignore[arg-type]
        tron={"max_lag_blocks": MAX_LAG},  # type: ignore[arg-type]
    )
    async with build_services(settings) as services:
        metrics = Metrics(clock=services.clock)
        app = create_app(services, metrics)
        async with serve_asgi(app) as url, httpx.AsyncClient(base_url=url) as http:
            yield Probe(services, metrics, http)


async def test_ok_while_the_follower_moves_and_callbacks_flow(probe: Probe) -> None:
    await probe.cursors(HEAD, HEAD - 19, now_ms())
    r = await probe.http.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == {"ok": True}
    follower = body["checks"]["follower"]
    assert (follower["seen"], follower["final"], follower["finalityGapBlocks"]) == (
        HEAD,
        HEAD - 19,
        19,
    )
    assert body["checks"]["delivery"]["due"] == 0


async def test_starting_until_the_scanner_has_written_a_cursor(probe: Probe) -> None:
    r = await probe.http.get("/healthz")
    assert r.status_code == 503
    assert r.json()["status"] == "starting"
    assert "not resolved the start block" in r.json()["checks"]["follower"]["reason"]


async def test_degraded_when_finality_lags_past_the_threshold(probe: Probe) -> None:
    await probe.cursors(HEAD, HEAD - MAX_LAG - 1, now_ms())
    r = await probe.http.get("/healthz")
    assert r.status_code == 503
    follower = r.json()["checks"]["follower"]
    assert follower["ok"] is False and follower["finalityGapBlocks"] == MAX_LAG + 1
    assert "final is 31 blocks behind seen" in follower["reason"]


async def test_degraded_when_the_seen_cursor_stops_moving(probe: Probe) -> None:
    await probe.cursors(HEAD, HEAD - 19, now_ms() - 10 * MINUTE_MS)
    r = await probe.http.get("/healthz")
    assert r.status_code == 503
    follower = r.json()["checks"]["follower"]
    assert follower["seenAgeSeconds"] >= 600
    assert "has not moved" in follower["reason"]


@pytest.mark.parametrize("node_moves", [False, True])
async def test_a_stopped_follower_is_told_apart_from_a_node_showing_no_new_block(
    probe: Probe, node_moves: bool
) -> None:
    # Found by bench/faults.py: through three minutes of a node answering 500s and timeouts
    # /healthz said only that the seen cursor had not moved, the same words as for a
    # follower stuck on a healthy node.
    now = now_ms()
    await probe.cursors(HEAD, HEAD - 19, now - 10 * MINUTE_MS)
    node_ms = now - 2_000 if node_moves else now - 10 * MINUTE_MS
    async with probe.services.sessions() as s, s.begin():
        s.add(
            ChainCursor(name="node", block_number=HEAD + 40, block_ms=node_ms, updated_ms=node_ms)
        )
    follower = (await probe.http.get("/healthz")).json()["checks"]["follower"]
    assert follower["ok"] is False and "has not moved" in follower["reason"]
    if node_moves:
        assert follower["nodeAgeSeconds"] < 60
        assert "while the TRON node's head moves" in follower["reason"]
    else:
        assert follower["nodeAgeSeconds"] >= 600
        # 600 s, or 601 when a second ticked between the row's write and the probe
        assert re.search(r"the TRON node has shown no new block for 60[01] s", follower["reason"])


async def test_degraded_when_due_callbacks_are_not_delivered(probe: Probe) -> None:
    await probe.cursors(HEAD, HEAD - 19, now_ms())
    await probe.payments("completed", "completed", callback_due_ms=now_ms() - 10 * MINUTE_MS)
    r = await probe.http.get("/healthz")
    assert r.status_code == 503
    delivery = r.json()["checks"]["delivery"]
    assert delivery["due"] == 2 and delivery["oldestDueSeconds"] >= 600
    assert delivery["lastAttemptSeconds"] is None and "no attempt" in delivery["reason"]
    assert r.json()["checks"]["follower"]["ok"] is True


async def test_one_merchants_stuck_callback_does_not_degrade_while_others_are_delivered(
    probe: Probe,
) -> None:
    # One test-key payment whose endpoint never takes a callback used to turn /healthz 503
    # for good, taking the whole API out of its load balancer.
    now = now_ms()
    await probe.cursors(HEAD, HEAD - 19, now)
    await probe.payments("completed", callback_due_ms=now - 10 * MINUTE_MS)
    await probe.payments("completed", callback_due_ms=now - 30_000)
    async with probe.services.sessions() as s, s.begin():
        fresh = max((await s.execute(select(col(Callback.id)))).scalars())
        s.add(CallbackAttempt(callback_id=fresh, attempt=1, started_ms=now - 5_000))
    r = await probe.http.get("/healthz")
    assert r.status_code == 200, r.text
    delivery = r.json()["checks"]["delivery"]
    assert delivery["ok"] is True and delivery["due"] == 2 and delivery["overdue"] == 1
    assert delivery["oldestDueSeconds"] >= 600 and delivery["lastAttemptSeconds"] < 60


async def test_lag_means_the_same_in_healthz_and_metrics(probe: Probe) -> None:
    """Lag: how far the `seen` cursor is behind the chain; in seconds, now minus the
    timestamp of the seen block (in blocks, head - seen, where the head is known)."""
    now = now_ms()
    await probe.cursors(HEAD, HEAD - 19, now, seen_block_ms=now - 30_000)
    async with probe.services.sessions() as s, s.begin():
        s.add(ChainCursor(name="node", block_number=HEAD + 10, updated_ms=now))
    probe.metrics.follower_position(head=HEAD + 10)
    follower = (await probe.http.get("/healthz")).json()["checks"]["follower"]
    assert 30 <= follower["lagSeconds"] < 35 and follower["lagBlocks"] == 10
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families((await probe.http.get("/metrics")).text)
        for s in family.samples
    }
    assert 30 <= samples[("watcher_follower_lag_seconds", ())] < 35
    assert samples[("watcher_follower_lag_blocks", ())] == 10


async def test_metrics_scrape_shows_payments_callbacks_follower_and_rate(probe: Probe) -> None:
    now = now_ms()
    await probe.cursors(HEAD, HEAD - 19, now, seen_block_ms=now - 6_000)
    await probe.payments("pending", "pending", "completed", callback_due_ms=now - MINUTE_MS)
    async with probe.services.sessions() as s, s.begin():
        s.add(
            ChainBlock(
                number=HEAD, block_id="00" * 32, parent_hash="11" * 32, timestamp_ms=now - 6_000
            )
        )
        s.add(RateQuote(symbol="USDTTRY", price="35.5", source="test", fetched_ms=now - 30_000))
    probe.metrics.callback_attempt("delivered")
    probe.metrics.callback_attempt("rejected")
    probe.metrics.follower_position(head=HEAD + 4)
    with probe.metrics.time_node_request("/wallet/getblock"):
        pass
    await probe.http.get("/healthz")
    await probe.http.get("/wp-admin/setup-config.php")  # probes do not become labels

    r = await probe.http.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }
    assert samples[("watcher_payments", (("state", "pending"),))] == 2
    assert samples[("watcher_payments", (("state", "completed"),))] == 1
    assert samples[("watcher_payments", (("state", "expired"),))] == 0
    assert samples[("watcher_callback_attempts_total", (("outcome", "delivered"),))] == 1
    assert samples[("watcher_callback_attempts_total", (("outcome", "dead"),))] == 0
    assert samples[("watcher_callbacks_due", ())] == 3
    assert samples[("watcher_callbacks_oldest_due_seconds", ())] >= 60
    assert samples[("watcher_follower_seen_block", ())] == HEAD
    assert samples[("watcher_follower_final_block", ())] == HEAD - 19
    assert samples[("watcher_follower_lag_blocks", ())] == 4
    assert samples[("watcher_follower_lag_seconds", ())] >= 6
    assert samples[("watcher_rate_age_seconds", ())] >= 30
    assert samples[("watcher_database_up", ())] == 1
    endpoint = (("endpoint", "/wallet/getblock"),)
    assert samples[("watcher_node_request_seconds_count", endpoint)] == 1
    healthz = (("method", "GET"), ("route", "/healthz"), ("status", "200"))
    assert samples[("watcher_http_requests_total", healthz)] == 1
    unmatched = (("method", "GET"), ("route", "unmatched"), ("status", "404"))
    assert samples[("watcher_http_requests_total", unmatched)] == 1


async def test_an_unreachable_database_is_reported_without_its_address() -> None:
    engine = create_engine("postgresql+asyncpg://watcher:hunter2@127.0.0.1:1/nowhere")
    services = SimpleNamespace(sessions=session_factory(engine), settings=Settings(), clock=now_ms)
    metrics = Metrics()
    app = FastAPI()
    app.state.services = services
    app.state.metrics = metrics
    app.include_router(health.router)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            r = await http.get("/healthz")
            assert r.status_code == 503
            checks = r.json()["checks"]
            assert checks["database"]["ok"] is False
            assert checks["follower"]["ok"] is False and checks["delivery"]["ok"] is False
            assert "hunter2" not in r.text and "127.0.0.1" not in r.text

            r = await http.get("/metrics")  # still answers, saying the figures are stale
            assert r.status_code == 200
            assert "watcher_database_up 0.0" in r.text
    finally:
        await engine.dispose()


async def test_says_while_binance_fails_that_creates_answer_502(db_url: str) -> None:
    # Found by bench/faults.py: with Binance down and no last rate young enough to use,
    # every create answered 502 while /healthz said "ok" and nothing about the rate.
    async with serve_api(db_url, rates={"max_age_s": 0, "cache_s": 0}) as api:
        api.binance.mode = "down"
        assert (await api.create(externalRef="R-1")).status_code == 502
        r = await api.http.get(f"{api.url}/healthz")
        assert r.status_code == 200, r.text  # reported, not judged: every API shares Binance
        rates = r.json()["checks"]["rates"]
        assert rates["ok"] is False and rates["failingSeconds"] >= 0
        assert "Binance answered HTTP 503" in rates["reason"]
        assert "502 PROVIDER_ERROR" in rates["reason"]

        api.binance.mode = "ok"
        assert (await api.create(externalRef="R-2")).status_code == 200
        rates = (await api.http.get(f"{api.url}/healthz")).json()["checks"]["rates"]
        assert rates == {"ok": True}


async def test_says_while_binance_fails_that_creates_use_the_last_rate(db_url: str) -> None:
    async with serve_api(db_url, rates={"max_age_s": 3600, "cache_s": 0}) as api:
        assert (await api.create(externalRef="R-1")).status_code == 200
        api.binance.mode = "error"
        assert (await api.create(externalRef="R-2")).status_code == 200
        rates = (await api.http.get(f"{api.url}/healthz")).json()["checks"]["rates"]
        assert rates["ok"] is True and "the last rate" in rates["reason"], rates


async def test_says_which_callbacks_are_being_retried_without_degrading(probe: Probe) -> None:
    # Found by bench/faults.py: a merchant's endpoint answering 503 for "hours" left
    # /healthz saying nothing: callbacks waiting for their next attempt are not due.
    now = now_ms()
    await probe.cursors(HEAD, HEAD - 19, now)
    await probe.payments("completed", "completed", callback_due_ms=now + 10 * MINUTE_MS)
    async with probe.services.sessions() as s, s.begin():
        for row in (await s.execute(select(Callback))).scalars():
            row.attempts, row.last_status_code, row.last_error = 2, 503, "HTTP 503"
            s.add(CallbackAttempt(callback_id=row.id, attempt=2, started_ms=now - 1_000))
    r = await probe.http.get("/healthz")
    assert r.status_code == 200, r.text
    delivery = r.json()["checks"]["delivery"]
    assert delivery["ok"] is True and delivery["due"] == 0
    assert delivery["retrying"] == 2 and delivery["retryingHosts"] == 1
    assert "the latest got HTTP 503" in delivery["reason"]
    assert "shop.example" not in r.text  # /healthz is open to anyone: no merchant's host
