"""aiosqlite connections that cross to their thread once per statement, not four times.

aiosqlite runs each sqlite3 call on the connection's own thread, and SQLAlchemy's adapter makes
four of them per statement: open a cursor, execute, fetch the rows, close the cursor. Each
crossing hands the GIL to that thread and back and wakes the event loop through its pipe,
about 0.1 ms of the loop's time on a busy machine, more than SQLite takes to answer a lookup
by key. Here a statement is one call on that thread: execute, fetch every row, note the
description, row count and last row id, close. Rows are in memory afterwards, as SQLAlchemy's
adapter keeps them anyway (it fetches all rows after each execute).

Everything else, transactions included, is aiosqlite's.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import aiosqlite

_Done = tuple[list[Any], Any, int, int | None]


class Connection(aiosqlite.Connection):
    def cursor(self) -> Cursor:  # type: ignore[override]
        return Cursor(self)


class Cursor:
    """What SQLAlchemy's aiosqlite adapter uses of aiosqlite's cursor."""

    arraysize = 1

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._rows: list[Any] = []
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> Cursor:
        return await self._run(
            lambda cur: cur.execute(sql, () if parameters is None else parameters)
        )

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> Cursor:
        return await self._run(lambda cur: cur.executemany(sql, parameters))

    async def _run(self, call: Callable[[sqlite3.Cursor], object]) -> Cursor:
        conn = self._conn

        def on_thread() -> _Done:
            cur = conn._conn.cursor()
            try:
                call(cur)
                rows = cur.fetchall() if cur.description else []
                return rows, cur.description, cur.rowcount, cur.lastrowid
            finally:
                cur.close()

        done: _Done = await conn._execute(on_thread)  # type: ignore[no-untyped-call]
        self._rows, self.description, self.rowcount, self.lastrowid = done
        return self

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        n = self.arraysize if size is None else size
        taken, self._rows = self._rows[:n], self._rows[n:]
        return taken

    async def fetchall(self) -> list[Any]:
        taken, self._rows = self._rows, []
        return taken

    async def close(self) -> None:
        self._rows = []


def connect(database: str, **kwargs: Any) -> Connection:
    """Like aiosqlite.connect: await it for the open connection (its thread a daemon)."""

    def connector() -> sqlite3.Connection:
        made: sqlite3.Connection = sqlite3.connect(database, **kwargs)
        return made

    conn = Connection(connector, iter_chunk_size=64)
    conn._thread.daemon = True
    return conn
