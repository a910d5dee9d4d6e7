"""SQLite connections that cross to aiosqlite's thread once per statement: what SQLAlchemy
reads of a cursor is all there (rows, row counts, last row ids, errors as its own types)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from watcher.db import sqlite_calls
from watcher.db.engine import create_engine, session_factory, transaction


async def test_statements_answer_as_through_aiosqlite(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'calls.db'}")
    try:
        async with engine.begin() as conn:
            raw = await conn.get_raw_connection()
            assert isinstance(raw.driver_connection, sqlite_calls.Connection)
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)"))
            made = await conn.execute(text("INSERT INTO t (v) VALUES ('a'), ('b') RETURNING id"))
            assert made.scalars().all() == [1, 2]
            one = await conn.execute(text("INSERT INTO t (v) VALUES ('c')"))
            assert (one.rowcount, one.lastrowid) == (1, 3)
            many = await conn.execute(
                text("INSERT INTO t (v) VALUES (:v)"), [{"v": "d"}, {"v": "e"}, {"v": "f"}]
            )
            assert many.rowcount == 3
            changed = await conn.execute(text("UPDATE t SET v = v || '!' WHERE id > 4"))
            assert changed.rowcount == 2
            rows = await conn.execute(text("SELECT id, v FROM t ORDER BY id"))
            assert rows.first() == (1, "a")
            rest = await conn.execute(text("SELECT v FROM t ORDER BY id"))
            assert rest.fetchmany(2) == [("a",), ("b",)] and len(rest.fetchall()) == 4
            none = await conn.execute(text("SELECT v FROM t WHERE id = 99"))
            assert none.first() is None
        async with engine.begin() as conn:
            with pytest.raises(IntegrityError):
                await conn.execute(text("INSERT INTO t (v) VALUES ('a')"))
        async with engine.connect() as conn:
            count = await conn.execute(text("SELECT count(*) FROM t"))
            assert count.scalar_one() == 6
    finally:
        await engine.dispose()


async def test_a_read_transaction_sees_one_snapshot_and_its_begin_runs_first(
    tmp_path: Path,
) -> None:
    """BEGIN is sent with the read's first statement: the reads still share one snapshot,
    and statements run in the order they were given."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'snap.db'}")
    sessions = session_factory(engine)
    try:
        async with transaction(sessions) as s:
            await s.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
            await s.execute(text("INSERT INTO t VALUES (1)"))
        seen: list[str] = []
        async with sessions() as reader:
            conn = await reader.connection()
            raw = (await conn.get_raw_connection()).driver_connection
            await raw._execute(raw._conn.set_trace_callback, seen.append)
            first = (await reader.execute(text("SELECT count(*) FROM t"))).scalar_one()
            async with transaction(sessions) as writer:  # another connection commits meanwhile
                await writer.execute(text("INSERT INTO t VALUES (2)"))
            again = (await reader.execute(text("SELECT count(*) FROM t"))).scalar_one()
            await reader.rollback()
            await raw._execute(raw._conn.set_trace_callback, None)
        assert (first, again) == (1, 1)  # one snapshot: the insert is not seen inside
        assert seen == ["BEGIN", "SELECT count(*) FROM t", "SELECT count(*) FROM t", "ROLLBACK"]
        async with sessions() as after:
            assert (await after.execute(text("SELECT count(*) FROM t"))).scalar_one() == 2
    finally:
        await engine.dispose()
