"""The delivery worker against real receivers on 127.0.0.1, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tests.support.callbacks import (
    add_event,
    add_events,
    attempt_rows,
    callback_rows,
    callback_settings,
    new_merchant,
)
from tests.support.servers import serve_asgi
from watcher.callbacks.delivery import DeliveryWorker
from watcher.callbacks.doorbell import Doorbell
from watcher.callbacks.receiver import ACK, CallbackReceiver, Received
from watcher.callbacks.sender import callback_session
from watcher.clock import now_ms
from watcher.db.engine import session_factory
from watcher.merchants import Credentials
from watcher.secrets import SecretBox, load_box


class FakeClock:
    def __init__(self, start: int) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


@dataclass
class Rig:
    db_url: str
    sessions: async_sessionmaker[AsyncSession]
    box: SecretBox
    merchant: Credentials
    http: aiohttp.ClientSession
    clock: FakeClock

    def worker(self, name: str = "w1", **callbacks: Any) -> DeliveryWorker:
        settings = callback_settings(self.db_url, **callbacks)
        return DeliveryWorker(
            settings, self.sessions, self.box, self.http, self.clock, name, uniform=_upper
        )

    def receiver(self, respond: Any = None) -> CallbackReceiver:
        if respond is None:
            return CallbackReceiver(self.merchant.webhook_secret, now=self.clock)
        return CallbackReceiver(self.merchant.webhook_secret, respond, now=self.clock)


def _upper(_low: float, high: float) -> float:
    return high  # jitter pinned to the top of its range, so due times are exact


@pytest.fixture
async def rig(db_url: str, sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[Rig]:
    box = load_box(db_url)
    merchant = await new_merchant(sessions, box)
    async with callback_session() as http:
        yield Rig(db_url, sessions, box, merchant, http, FakeClock(now_ms()))


def failing_first(n: int, status: int = 500) -> Any:
    calls = 0

    async def respond(received: Received) -> tuple[int, bytes]:
        nonlocal calls
        calls += 1
        return (status, b'{"error":"busy"}') if calls <= n else ACK

    return respond


async def test_a_failing_endpoint_gets_retries_on_schedule_until_it_acknowledges(rig: Rig) -> None:
    receiver = rig.receiver(failing_first(2))
    async with serve_asgi(receiver) as url:
        [event] = await add_events(rig.sessions, rig.merchant.id, f"{url}/kasa", rig.clock(), 1)
        worker = rig.worker(backoff_s=[60, 600])

        assert await worker.run_once() == 1
        [row] = await callback_rows(rig.sessions)
        assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, 500)
        assert row.next_attempt_ms == rig.clock() + 60_000
        assert await worker.run_once() == 0  # not due yet

        rig.clock.advance(60_000)
        assert await worker.run_once() == 1
        [row] = await callback_rows(rig.sessions)
        assert row.next_attempt_ms == rig.clock() + 600_000

        rig.clock.advance(600_000)
        assert await worker.run_once() == 1
    [row] = await callback_rows(rig.sessions)
    assert (row.status, row.attempts, row.last_error) == ("delivered", 3, None)
    assert [(a.attempt, a.status_code) for a in await attempt_rows(rig.sessions)] == [
        (1, 500),
        (2, 500),
        (3, 200),
    ]
    assert [r.headers["x-attempt"] for r in receiver.received] == ["1", "2", "3"]
    assert {r.event_id for r in receiver.received} == {event.event_id}
    assert all(r.error is None for r in receiver.received)  # every attempt verifies
    assert len({r.headers["x-timestamp"] for r in receiver.received}) == 3  # signed per attempt


async def test_http_200_without_received_true_is_not_a_delivery(rig: Rig) -> None:
    async def wrong(_: Received) -> tuple[int, bytes]:
        return 200, b'{"ok": true}'

    async with serve_asgi(rig.receiver(wrong)) as url:
        await add_events(rig.sessions, rig.merchant.id, url, rig.clock(), 1)
        await rig.worker().run_once()
    [row] = await callback_rows(rig.sessions)
    assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, 200)
    assert row.last_error is not None and '{"received": true}' in row.last_error


async def test_an_endpoint_that_does_not_answer_times_out_and_is_retried_later(rig: Rig) -> None:
    release = asyncio.Event()

    async def hang(_: Received) -> tuple[int, bytes]:
        await release.wait()
        return ACK

    async with serve_asgi(rig.receiver(hang)) as url:
        await add_events(rig.sessions, rig.merchant.id, url, rig.clock(), 1)
        try:
            await rig.worker(timeout_s=0.3).run_once()
        finally:
            release.set()
    [row] = await callback_rows(rig.sessions)
    assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, None)
    assert row.last_error == "timed out after 0.3s"
    assert row.next_attempt_ms == rig.clock() + 60_000 and row.locked_by is None


async def test_after_the_last_attempt_the_callback_is_parked_dead(rig: Rig) -> None:
    receiver = rig.receiver(failing_first(99, status=503))
    async with serve_asgi(receiver) as url:
        await add_events(rig.sessions, rig.merchant.id, url, rig.clock(), 1)
        worker = rig.worker(max_attempts=3, backoff_s=[1])
        for _ in range(3):
            assert await worker.run_once() == 1
            rig.clock.advance(1000)
        assert await worker.run_once() == 0
    [row] = await callback_rows(rig.sessions)
    assert (row.status, row.attempts, row.last_error) == ("dead", 3, "HTTP 503")
    assert len(receiver.received) == 3


async def test_a_hanging_host_holds_only_its_own_slots(rig: Rig) -> None:
    release = asyncio.Event()

    async def hang(_: Received) -> tuple[int, bytes]:
        await release.wait()
        return ACK

    slow, fast = rig.receiver(hang), rig.receiver()
    async with serve_asgi(slow) as slow_url, serve_asgi(fast) as fast_url:
        async with rig.sessions() as s, s.begin():
            for i in range(6):  # the hanging host's callbacks are the oldest
                await add_event(s, rig.merchant.id, slow_url, rig.clock() - 1000, ref=f"S-{i}")
            for i in range(6):
                await add_event(s, rig.merchant.id, fast_url, rig.clock(), ref=f"F-{i}")
        worker = rig.worker(
            timeout_s=60, concurrency=8, per_host_concurrency=2, poll_interval_s=0.05
        )
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))
        await fast.wait_for(6)  # all of them, while the hanging host still holds its two
        assert len(slow.received) == 2 and sum(slow.in_flight.values()) == 2
        stop.set()
        release.set()
        await asyncio.wait_for(running, 30)
    rows = await callback_rows(rig.sessions)
    assert sorted(r.status for r in rows if r.url == fast_url) == ["delivered"] * 6
    assert sorted(r.attempts for r in rows if r.url == slow_url) == [0, 0, 0, 0, 1, 1]


async def test_loopback_is_refused_unless_private_urls_are_allowed(rig: Rig) -> None:
    receiver = rig.receiver()
    async with serve_asgi(receiver) as url:
        await add_events(rig.sessions, rig.merchant.id, url, rig.clock(), 1)
        await rig.worker(allow_private_urls=False).run_once()
        [row] = await callback_rows(rig.sessions)
        assert receiver.received == []
        assert row.status == "pending" and row.last_error is not None
        assert row.last_error.startswith("refused:") and "127.0.0.1" in row.last_error

        rig.clock.advance(60_000)
        await rig.worker(allow_private_urls=True).run_once()
    assert [r.status for r in await callback_rows(rig.sessions)] == ["delivered"]


async def test_an_unresolvable_host_counts_every_attempt_and_goes_dead(rig: Rig) -> None:
    # Stored before create refused such hosts: getaddrinfo raised UnicodeError, outside the
    # handled errors, so no attempt was recorded and the lease expired into a loop forever.
    url = "http://" + "a" * 64 + ".example/hook"
    await add_events(rig.sessions, rig.merchant.id, url, rig.clock(), 1)
    worker = rig.worker(max_attempts=3, backoff_s=[60])
    for attempt in (1, 2, 3):
        assert await worker.run_once() == 1
        [row] = await callback_rows(rig.sessions)
        assert row.attempts == attempt, row.last_error
        assert row.last_error is not None and "aaaa" in row.last_error
        rig.clock.advance(60_000)
    assert row.status == "dead"
    assert [a.attempt for a in await attempt_rows(rig.sessions)] == [1, 2, 3]
    assert await worker.run_once() == 0


@pytest.mark.parametrize(
    "host", ["[64:ff9b::7f00:1]", "[64:ff9b:1::7f00:1]", "[::127.0.0.1]", "224.0.0.1"]
)
async def test_send_time_refuses_nat64_ipv4_compatible_and_multicast(rig: Rig, host: str) -> None:
    await add_events(rig.sessions, rig.merchant.id, f"http://{host}:9/hook", rig.clock(), 1)
    await rig.worker(allow_private_urls=False, timeout_s=2).run_once()
    [row] = await callback_rows(rig.sessions)
    assert row.attempts == 1 and row.last_error is not None
    assert row.last_error.startswith("refused:"), row.last_error


async def test_payload_and_headers_follow_the_contract(rig: Rig) -> None:
    receiver = rig.receiver()
    async with serve_asgi(receiver) as url:
        async with rig.sessions() as s, s.begin():
            event = await add_event(
                s,
                rig.merchant.id,
                f"{url}/hook?token=abc",
                rig.clock(),
                ref="SİPARİŞ-Ğ-1",
                amount=Decimal("281.60"),
                full_name="Çağrı Öztürk",
                metadata={"userId": "11420076", "siteId": "fenomenbet.com"},
            )
        await rig.worker().run_once()
    [got] = receiver.received
    assert got.error is None
    body = got.body.decode()
    assert '"amount":281.6,' in body and '"amountUsdt":7.93,' in body and '"rate":35.5,' in body
    assert "Çağrı Öztürk" in body  # UTF-8, not \u escapes
    payload = json.loads(got.body)
    assert list(payload)[:12] == [
        "event",
        "eventId",
        "sequence",
        "transactionId",
        "externalRef",
        "status",
        "amount",
        "currency",
        "fullName",
        "timestamp",
        "signature",
        "occurredAt",
    ]
    assert payload["event"] == "payment.completed" and payload["eventId"] == event.event_id
    assert (payload["externalRef"], payload["status"], payload["currency"]) == (
        "SİPARİŞ-Ğ-1",
        "completed",
        "TRY",
    )
    assert payload["sequence"] == 1 and payload["metadata"]["siteId"] == "fenomenbet.com"
    assert set(payload["crypto"]) >= {"txids", "amountUsdt", "receivedUsdt", "rate", "network"}
    assert payload["crypto"]["network"] == "TRC20" and payload["crypto"]["receivedUsdt"] == 7.93
    assert got.headers["x-timestamp"] == payload["timestamp"]
    assert got.headers["x-signature"] == payload["signature"]
    assert got.headers["x-attempt"] == "1" and got.headers["x-event-id"] == event.event_id
    assert got.headers["content-type"].startswith("application/json")


async def test_the_loop_delivers_what_arrives_and_stops_when_told(rig: Rig) -> None:
    receiver = rig.receiver()
    async with serve_asgi(receiver) as url:
        worker = rig.worker(poll_interval_s=0.05, concurrency=4)
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))
        await add_events(rig.sessions, rig.merchant.id, url, rig.clock(), 10, prefix="A")
        await receiver.wait_for(10)
        await add_events(rig.sessions, rig.merchant.id, url, rig.clock(), 10, prefix="B")
        await receiver.wait_for(20)
        stop.set()
        await asyncio.wait_for(running, 30)
    assert [r.status for r in await callback_rows(rig.sessions)] == ["delivered"] * 20
    assert sorted(receiver.event_ids().values()) == [1] * 20


async def test_a_callback_queued_in_this_process_is_sent_at_once_not_at_the_next_poll(
    rig: Rig, engine: AsyncEngine
) -> None:
    """A commit that queues a callback rings the doorbell: the worker, idle with a poll
    interval of a minute, sends it at once; a rolled-back one rings nothing."""
    bell = Doorbell()
    sessions = session_factory(engine, on_end=bell.transaction_ended)
    settings = callback_settings(rig.db_url, poll_interval_s=60)
    receiver = rig.receiver()
    async with serve_asgi(receiver) as url:
        worker = DeliveryWorker(
            settings, sessions, rig.box, rig.http, rig.clock, "w1", doorbell=bell
        )
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))
        try:
            await asyncio.sleep(0.2)  # claimed nothing, now waiting out its minute
            with pytest.raises(RuntimeError):
                async with sessions() as s, s.begin():
                    await add_event(s, rig.merchant.id, url, rig.clock(), ref="ROLLED-BACK")
                    raise RuntimeError("the transaction fails")
            assert not bell.rung.is_set()
            async with sessions() as s, s.begin():
                event = await add_event(s, rig.merchant.id, url, rig.clock(), ref="ORD-1")
            for _ in range(200):
                if receiver.received:
                    break
                await asyncio.sleep(0.01)
            assert [r.event_id for r in receiver.received] == [event.event_id]
        finally:
            stop.set()
            await running
