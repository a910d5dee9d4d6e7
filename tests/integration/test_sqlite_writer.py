"""SQLite's one writer, made true inside the process: writers queue on a lock, readers do not.

Before, every transaction (reads too) opened its own connection with BEGIN IMMEDIATE, so
concurrent requests met in SQLite's busy handler, which sleeps up to 100 ms between tries.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.conftest import serve_api
from watcher.db.engine import create_engine, session_factory, transaction
from watcher.db.migrate import upgrade


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


HOLD_WRITE_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("held", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


async def test_creates_answer_503_while_another_process_holds_the_write_lock(
    tmp_path: Path,
) -> None:
    # Found by bench/faults.py: with the file write-locked by another process (a sqlite3
    # shell, a script), each create waited SQLite's 30 s busy timeout in turn, holding the
    # process's writer lock meanwhile: the first answered 503 after 31 s, the third after
    # 92 s, long after any client had given up.
    path = tmp_path / "w.db"
    url = f"sqlite+aiosqlite:///{path}"
    migrating = create_engine(url)
    await upgrade(migrating)
    await migrating.dispose()
    async with serve_api(url) as api:
        assert (await api.create(externalRef="BEFORE")).status_code == 200
        holder = await asyncio.create_subprocess_exec(
            sys.executable, "-c", HOLD_WRITE_LOCK, str(path),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert holder.stdin is not None and holder.stdout is not None
        assert await holder.stdout.readline() == b"held\n"
        released = False
        answered: list[tuple[int, str, bool]] = []

        async def create(http: httpx.AsyncClient, ref: str) -> None:
            r = await http.post(
                f"{api.url}/api/payment/create",
                json={"amount": 1000, "fullName": "Ahmet Yılmaz", "externalRef": ref},
                headers=api.headers(),
            )
            code = r.json()["error"]["code"] if r.status_code != 200 else ""
            answered.append((r.status_code, code, not released and "retry-after" in r.headers))

        try:
            async with httpx.AsyncClient(timeout=180) as http:
                creates = asyncio.gather(*(create(http, f"LOCKED-{i}") for i in range(4)))
                try:  # the lock is held until all four have answered, or for 60 s at most
                    await asyncio.wait_for(asyncio.shield(creates), 60)
                except TimeoutError:
                    pass
                health = await http.get(f"{api.url}/healthz")
                holder.stdin.write(b"release\n")
                released = True
                await creates
        finally:
            if holder.returncode is None:
                holder.stdin.close()
            await holder.wait()
        assert answered == [(503, "SYSTEM_DISABLED", True)] * 4
        # …and /healthz said so, where it used to say "ok": reads still worked.
        assert health.status_code == 503, health.text
        database = health.json()["checks"]["database"]
        assert database["ok"] is False and "write lock is held" in database["reason"]
        assert (await api.create(externalRef="AFTER")).status_code == 200
        assert (await api.http.get(f"{api.url}/healthz")).json()["checks"]["database"]["ok"]
