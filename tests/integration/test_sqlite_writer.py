"""SQLite's one writer, made true inside the process: writers queue on a lock, readers do not.

Before, every transaction (reads too) opened its own connection with BEGIN IMMEDIATE, so
concurrent requests met in SQLite's busy handler, which sleeps up to 100 ms between tries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from watcher.db.engine import create_engine, session_factory, transaction


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    made = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    async with made.begin() as conn:
        await conn.execute(text("CREATE TABLE t (n INTEGER)"))
    yield made
    await made.dispose()


async def test_writers_queue_in_the_process_and_never_wait_in_sqlite(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    slept: list[float] = []  # SQLite's busy handler, seen as a BEGIN IMMEDIATE that waited

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _start(conn, _cur, statement, *_a):  # type: ignore[no-untyped-def]
        conn.info["t0"] = time.perf_counter()

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def _end(conn, _cur, statement, *_a):  # type: ignore[no-untyped-def]
        if statement == "BEGIN IMMEDIATE":
            slept.append(time.perf_counter() - conn.info["t0"])

    async def write(n: int) -> None:
        async with transaction(sessions) as s:
            await s.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
            await asyncio.sleep(0.005)  # work inside the transaction: others must wait

    await asyncio.gather(*(write(n) for n in range(40)))
    async with sessions() as s:
        assert (await s.execute(text("SELECT count(*) FROM t"))).scalar_one() == 40
    assert len(slept) == 40 and max(slept) < 0.05


async def test_a_reader_is_not_held_up_by_a_writer_in_its_transaction(
    engine: AsyncEngine,
) -> None:
    sessions = session_factory(engine)
    inside, release = asyncio.Event(), asyncio.Event()

    async def writer() -> None:
        async with transaction(sessions) as s:
            await s.execute(text("INSERT INTO t VALUES (1)"))
            inside.set()
            await release.wait()

    task = asyncio.create_task(writer())
    await inside.wait()
    async with asyncio.timeout(2), sessions() as s:  # reads the last committed state at once
        assert (await s.execute(text("SELECT count(*) FROM t"))).scalar_one() == 0
    release.set()
    await task
    async with sessions() as s:
        assert (await s.execute(text("SELECT count(*) FROM t"))).scalar_one() == 1
