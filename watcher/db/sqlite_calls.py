"""aiosqlite connections that cross to their thread once per statement, not four times.

aiosqlite runs each sqlite3 call on the connection's own thread, and SQLAlchemy's adapter makes
four of them per statement: open a cursor, execute, fetch the rows, close the cursor. Each
crossing hands the GIL to that thread and back and wakes the event loop through its pipe,
about 0.1 ms of the loop's time on a busy machine, more than SQLite takes to answer a lookup
by key. Here a statement is one call on that thread: execute, fetch every row, note the
description, row count and last row id, close. Rows are in memory afterwards, as SQLAlchemy's
adapter keeps them anyway (it fetches all rows after each execute).

A plain BEGIN (a read transaction: writers use BEGIN IMMEDIATE, sent at once so that waiting
for the write lock happens at begin()) is not a crossing of its own: it is run on the thread
just before the transaction's first statement, and a transaction that ran none ends without
crossing at all. A status request (BEGIN, two reads, ROLLBACK) crosses three times, not four.

Everything else, transactions included, is aiosqlite's.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import aiosqlite

_Done = tuple[list[Any], Any, int, int | None]
_BEGIN = "BEGIN"


class Connection(aiosqlite.Connection):
    # A BEGIN not sent yet: it goes with the next statement (see the module docstring).
    deferred_begin: str | None = None

    def cursor(self) -> Cursor:  # type: ignore[override]
        return Cursor(self)

    async def commit(self) -> None:
        if not self._ended_unsent():
            await super().commit()

    async def rollback(self) -> None:
        if not self._ended_unsent():
            await super().rollback()

    def _ended_unsent(self) -> bool:
        """A transaction whose BEGIN was never sent (nothing ran): ended here, no crossing."""
        unsent, self.deferred_begin = self.deferred_begin is not None, None
        return unsent


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
        if sql == _BEGIN and not parameters and self._conn.deferred_begin is None:
            self._conn.deferred_begin = sql
            self._rows, self.description, self.rowcount, self.lastrowid = [], None, -1, None
            return self
        return await self._run(
            lambda cur: cur.execute(sql, () if parameters is None else parameters)
        )

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> Cursor:
        return await self._run(lambda cur: cur.executemany(sql, parameters))

    async def _run(self, call: Callable[[sqlite3.Cursor], object]) -> Cursor:
        conn = self._conn
        begin, conn.deferred_begin = conn.deferred_begin, None

        def on_thread() -> _Done:
            cur = conn._conn.cursor()
            try:
                if begin is not None:
                    cur.execute(begin)
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
