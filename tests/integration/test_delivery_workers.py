"""Several workers at once, and a worker killed between sending and marking."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support.callbacks import (
    add_events,
    attempt_rows,
    bulk_events,
    callback_rows,
    callback_settings,
    new_merchant,
)
from tests.support.servers import serve_asgi
from watcher.callbacks.delivery import DeliveryWorker
from watcher.callbacks.receiver import ACK, CallbackReceiver, Received
from watcher.callbacks.sender import callback_session
from watcher.clock import now_ms
from watcher.db.engine import create_engine, session_factory
from watcher.merchants import Credentials
from watcher.secrets import load_box

WORKER_PROCESS = """
import asyncio, sys
from watcher.callbacks.delivery import DeliveryWorker
from watcher.callbacks.sender import callback_session
from watcher.config import Settings
from watcher.db.engine import create_engine, session_factory
from watcher.merchants import Credentials
from watcher.secrets import load_box

async def main() -> None:
    url = sys.argv[1]
    callbacks = {"allow_private_urls": True, "timeout_s": 60}
    settings = Settings(database={"url": url}, callbacks=callbacks)
    sessions = session_factory(create_engine(url))
    async with callback_session() as http:
        worker = DeliveryWorker(settings, sessions, load_box(url), http, worker_id="doomed")
        await worker.run(asyncio.Event())

asyncio.run(main())
"""


@pytest.fixture
async def merchant(db_url: str, sessions: async_sessionmaker[AsyncSession]) -> Credentials:
    return await new_merchant(sessions, load_box(db_url))


@pytest.mark.parametrize("db_kind", ["postgres"])
async def test_two_postgres_workers_deliver_1000_callbacks_each_once_never_concurrently(
    db_url: str, sessions: async_sessionmaker[AsyncSession], merchant: Credentials
) -> None:
    box = load_box(db_url)

    async def ack_after_a_pause(_: Received) -> tuple[int, bytes]:
        await asyncio.sleep(
            0.001
        )  # keep requests in flight long enough to overlap if claimed twice
        return ACK

    receiver = CallbackReceiver(merchant.webhook_secret, ack_after_a_pause)
    settings = callback_settings(
        db_url, concurrency=16, per_host_concurrency=16, poll_interval_s=0.05
    )
    engines = [create_engine(db_url), create_engine(db_url)]
    try:
        async with serve_asgi(receiver) as url, callback_session() as http:
            await bulk_events(sessions, merchant.id, url, now_ms(), 1000)
            workers = [
                DeliveryWorker(settings, session_factory(e), box, http, worker_id=f"pg-{i}")
                for i, e in enumerate(engines)
            ]
            stop = asyncio.Event()
            running = [asyncio.create_task(w.run(stop)) for w in workers]
            await asyncio.wait_for(receiver.wait_for(1000), 120)
            stop.set()
            await asyncio.gather(*running)
    finally:
        for e in engines:
            await e.dispose()
    assert receiver.overlaps == []  # no eventId was ever in flight twice at once
    assert len(receiver.event_ids()) == 1000 and set(receiver.event_ids().values()) == {1}
    assert all(r.error is None for r in receiver.received)
    assert {r.status for r in await callback_rows(sessions)} == {"delivered"}
    attempts = await attempt_rows(sessions)
    assert len(attempts) == 1000 and len({a.callback_id for a in attempts}) == 1000
    assert {a.worker for a in attempts} == {"pg-0", "pg-1"}  # both did real work


async def test_a_worker_killed_mid_send_leaves_the_callback_to_be_sent_again(
    db_url: str, sessions: async_sessionmaker[AsyncSession], merchant: Credentials
) -> None:
    release = asyncio.Event()
    calls = 0

    async def first_hangs(_: Received) -> tuple[int, bytes]:
        nonlocal calls
        calls += 1
        if calls == 1:
            await release.wait()  # the request has arrived; the worker dies before any answer
        return ACK

    receiver = CallbackReceiver(merchant.webhook_secret, first_hangs)
    async with serve_asgi(receiver) as url, callback_session() as http:
        [event] = await add_events(sessions, merchant.id, url, now_ms(), 1)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", WORKER_PROCESS, db_url, env=dict(os.environ)
        )
        try:
            await asyncio.wait_for(receiver.wait_for(1), 60)
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()

        [row] = await callback_rows(sessions)
        assert (row.status, row.attempts, row.locked_by) == ("pending", 0, "doomed")
        settings = callback_settings(db_url)
        live = DeliveryWorker(settings, sessions, load_box(db_url), http, now_ms, "live")
        assert await live.run_once() == 0  # leased: nobody else may send it meanwhile

        after_lease = row.locked_until_ms + 1
        rescuer = DeliveryWorker(settings, sessions, load_box(db_url), http, lambda: after_lease)
        try:
            assert await rescuer.run_once() == 1
        finally:
            release.set()
    assert [r.event_id for r in receiver.received] == [event.event_id, event.event_id]
    [row] = await callback_rows(sessions)
    assert (row.status, row.attempts) == ("delivered", 1)
