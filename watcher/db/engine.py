"""Async engine and sessions for SQLite (default) and PostgreSQL.

SQLite runs in WAL mode with a busy timeout, and every transaction starts with
BEGIN IMMEDIATE: a read that later writes would otherwise fail with "database is locked"
instead of waiting. One writer at a time is SQLite's model; we follow it rather than fight it.

A connection that cannot be opened (server down, unknown database or role, a file that is
not SQLite or cannot be created) raises DatabaseUnavailable naming database.url, whoever
asked for it: a command, a request, a loop.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

from watcher.db.errors import cannot_connect, unavailable

SQLITE_BUSY_TIMEOUT_MS = 30_000
PG_CONNECT_TIMEOUT_S = 10  # asyncpg waits 60 s by default for a host that does not answer


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path | None:
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database).resolve()


def sqlite_dir_made(url: str) -> Path | None:
    """The SQLite file's path, its directory created if need be (DatabaseUnavailable if it
    cannot be); None for PostgreSQL or in-memory SQLite."""
    path = sqlite_path(url)
    if path is None:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = exc.strerror or str(exc)
        if isinstance(exc, FileExistsError):
            why = "a file of that name is in the way"
        raise unavailable(url, f"cannot create the directory {path.parent}: {why}", exc) from None
    return path


def create_engine(url: str, **kw: Any) -> AsyncEngine:
    if is_sqlite(url):
        path = sqlite_dir_made(url)
        engine = create_async_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kw
        )
        _sqlite_pragmas(engine, url)
        _connecting(engine, url, path)
        return engine
    if "poolclass" not in kw:
        kw.setdefault("pool_size", 10)
        kw.setdefault("max_overflow", 20)
        kw.setdefault("pool_pre_ping", True)
    kw.setdefault("connect_args", {"timeout": PG_CONNECT_TIMEOUT_S})
    engine = create_async_engine(url, **kw)
    _connecting(engine, url, None)
    return engine


def _connecting(engine: AsyncEngine, url: str, sqlite_file: Path | None) -> None:
    """Open connections ourselves, to say in one line why one could not be opened."""

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        try:
            if sqlite_file is not None:
                _create_private(sqlite_file)
            return dialect.connect(*cargs, **cparams)
        except Exception as exc:
            raise cannot_connect(url, exc) from exc


def _create_private(path: Path) -> None:
    """Create the database file 0600 before SQLite does (it would use 0644 minus the umask):
    it holds merchants' data and key hashes. SQLite gives the -wal and -shm files the mode
    of the database file."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def _sqlite_pragmas(engine: AsyncEngine, url: str) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        try:
            cur.execute("PRAGMA journal_mode=WAL")  # the first read of the file
        except Exception as exc:
            cur.close()
            dbapi_conn.close()
            if "not a database" in str(exc):
                raise unavailable(url, f"{sqlite_path(url)} is not a SQLite database", exc) from exc
            raise cannot_connect(url, exc) from exc
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


TransactionEnded = Callable[[Session, bool], None]


def session_factory(
    engine: AsyncEngine, *, on_end: TransactionEnded | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions on `engine`; `on_end(session, committed)` is told when each of their
    transactions ends (after the commit or the rollback)."""
    if on_end is None:
        return async_sessionmaker(engine, expire_on_commit=False)

    class Watched(Session):
        pass

    event.listen(Watched, "after_commit", lambda s: on_end(s, True))
    event.listen(Watched, "after_rollback", lambda s: on_end(s, False))
    return async_sessionmaker(engine, expire_on_commit=False, sync_session_class=Watched)


@asynccontextmanager
async def transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A session inside one transaction: committed on success, rolled back on error."""
    async with sessions() as session, session.begin():
        yield session
