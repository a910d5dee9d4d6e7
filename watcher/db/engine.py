"""Async engine and sessions for SQLite (default) and PostgreSQL.

SQLite runs in WAL mode, and one writer at a time is its model; we follow it inside the
process rather than let its busy handler sort writers out (it sleeps up to 100 ms between
tries while the event loop idles). A transaction opened with `session.begin()` (or
`transaction()`) is a writer: it takes the engine's writer lock, then BEGIN IMMEDIATE, and
holds both until it ends, so writers of one process queue in order and never meet SQLite's
lock. A session used without `begin()` only reads: a deferred BEGIN, no lock (WAL readers
never wait for the writer). Code that writes must therefore open its transaction with
`begin()` — which it does anyway, to commit. Connections used directly (migrations) keep
BEGIN IMMEDIATE. On PostgreSQL none of this applies: sessions are plain.

How long a writer waits: as long as it takes (up to SQLite's busy timeout, 30 s, for a lock
held by another process), unless `bounded_writes(seconds)` is in force, as it is for API
requests: then the wait for this process's writer lock and SQLite's busy wait together stay
within `seconds`, and past them the writer gets WriterBusy (503 with Retry-After). Without
the bound, every create queued behind a file another process had locked waited the whole
busy timeout in turn: the fourth answered after two minutes.

A connection that cannot be opened (server down, unknown database or role, a file that is
not SQLite or cannot be created) raises DatabaseUnavailable naming database.url, whoever
asked for it: a command, a request, a loop.
"""

from __future__ import annotations

import asyncio
import os
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, InvalidatePoolError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

from watcher.db import sqlite_calls
from watcher.db.errors import WriterBusy, cannot_connect, unavailable

SQLITE_BUSY_TIMEOUT_MS = 30_000
PG_CONNECT_TIMEOUT_S = 10  # asyncpg waits 60 s by default for a host that does not answer
PG_PING_IDLE_S = 1.0  # a pooled connection idle this long is pinged before it is used
_IDLE_SINCE = "watcher_idle_since"


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
    pooled = "poolclass" not in kw
    if pooled:
        kw.setdefault("pool_size", 10)
        kw.setdefault("max_overflow", 20)
        kw.setdefault("pool_use_lifo", True)  # the busy few stay warm, the rest sit idle
    kw.setdefault("connect_args", {"timeout": PG_CONNECT_TIMEOUT_S})
    engine = create_async_engine(url, **kw)
    _connecting(engine, url, None)
    if pooled and not kw.get("pool_pre_ping"):
        _ping_when_idle(engine, PG_PING_IDLE_S)
    return engine


def _ping_when_idle(engine: AsyncEngine, idle_s: float) -> None:
    """Ask a pooled connection whether it is still alive only when it has been idle for
    `idle_s`: a server restarted, or a proxy that dropped an idle connection, is met by a
    ping at checkout and a fresh connection, never by a request. SQLAlchemy's pre-ping does
    it at every checkout, three round trips each time (BEGIN, a query, ROLLBACK); a
    connection back from use moments ago has just shown that it works. One that dies while
    busy fails its request (503, Retry-After) and makes the pool drop every connection
    opened before it."""
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _checkin(_dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop(_IDLE_SINCE, None)
        if since is None or time.monotonic() - since < idle_s:
            return  # new, or back from use just now
        try:
            dialect.do_ping(dbapi_conn)
        except Exception as exc:
            # The pool opens a new connection instead, after dropping all older ones.
            raise InvalidatePoolError(f"an idle connection is gone: {exc}") from exc


def _connecting(engine: AsyncEngine, url: str, sqlite_file: Path | None) -> None:
    """Open connections ourselves, to say in one line why one could not be opened."""

    sqlite = engine.dialect.name == "sqlite"

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        try:
            if sqlite_file is not None:
                _create_private(sqlite_file)
            if sqlite:  # one crossing to aiosqlite's thread per statement
                return dialect.connect(*cargs, async_creator_fn=sqlite_calls.connect, **cparams)
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
    def _connect(dbapi_conn: Any, record: Any) -> None:
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
        record.info[_BUSY_MS] = SQLITE_BUSY_TIMEOUT_MS

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        options = conn.get_execution_options()
        if options.get(_MODE) == _READ:
            conn.exec_driver_sql("BEGIN")
            return
        busy_ms = int(options.get(_BUSY_MS, SQLITE_BUSY_TIMEOUT_MS))
        # The connection keeps its timeout: set only when this writer's differs from the last
        # one set on it, not a statement (a crossing to aiosqlite's thread) per write.
        info = conn.connection.info
        if info.get(_BUSY_MS) != busy_ms:
            conn.exec_driver_sql(f"PRAGMA busy_timeout={busy_ms}")
            info[_BUSY_MS] = busy_ms
        conn.exec_driver_sql("BEGIN IMMEDIATE")


# SQLite sessions carry this execution option: "read" by default, "write" once begin() took the
# writer lock; the `begin` listener above turns it into BEGIN or BEGIN IMMEDIATE. A writer
# also says how long BEGIN IMMEDIATE may wait for another process's lock (`_BUSY_MS`).
_MODE = "watcher_sqlite_mode"
_BUSY_MS = "watcher_sqlite_busy_ms"
_READ, _WRITE = "read", "write"
# Seconds a writer may wait in all (this process's writer lock, then SQLite's busy wait);
# None: as long as it takes. Set by bounded_writes().
_write_wait_s: ContextVar[float | None] = ContextVar("watcher_sqlite_write_wait_s", default=None)


@contextmanager
def bounded_writes(seconds: float) -> Iterator[None]:
    """Within this context, a SQLite writer that cannot begin within `seconds` raises
    WriterBusy instead of waiting on (see the module's docstring)."""
    token = _write_wait_s.set(seconds)
    try:
        yield
    finally:
        _write_wait_s.reset(token)


@dataclass
class _Writers:
    """This process's writers on one SQLite database: the lock they queue on, how many are
    waiting to begin, when one last began and when one last gave up (monotonic seconds)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: int = 0
    began_s: float = field(default_factory=time.monotonic)
    gave_up_s: float = 0.0


_writers: weakref.WeakKeyDictionary[Engine, _Writers] = weakref.WeakKeyDictionary()


def _writers_of(engine: AsyncEngine) -> _Writers:
    found = _writers.get(engine.sync_engine)
    if found is None:
        found = _writers[engine.sync_engine] = _Writers()
    return found


def writer_lock(engine: AsyncEngine) -> asyncio.Lock:
    """The one writer of this process on a SQLite database (an engine's, shared by all its
    session factories)."""
    return _writers_of(engine).lock


def write_stall_s(engine: AsyncEngine) -> float:
    """Seconds since a writer of this process last began writing, while writers wait or one
    has given up since (the file locked by another process); 0 when writes flow."""
    if engine.dialect.name != "sqlite":
        return 0.0
    w = _writers_of(engine)
    if not w.waiting and w.gave_up_s <= w.began_s:
        return 0.0
    return time.monotonic() - w.began_s


class _SqliteSession(AsyncSession):
    """begin() takes the engine's writer lock before BEGIN IMMEDIATE (see the module's
    docstring); a session that never calls it reads under a deferred BEGIN."""

    def begin(self) -> Any:
        return _Writing(self)


class _Writing:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        bind = session.bind
        assert isinstance(bind, AsyncEngine)
        self._writers = _writers_of(bind)
        self._lock = self._writers.lock
        self._tx: Any = None

    async def __aenter__(self) -> Any:
        writers = self._writers
        writers.waiting += 1
        try:
            await self._begin()
        except (DBAPIError, WriterBusy):
            writers.gave_up_s = time.monotonic()
            raise
        else:
            writers.began_s = time.monotonic()
        finally:
            writers.waiting -= 1
        return self._tx

    async def _begin(self) -> None:
        busy_ms = await self._acquire(_write_wait_s.get())
        try:
            self._tx = AsyncSession.begin(self._session)
            await self._tx.__aenter__()
            await self._session.connection(execution_options={_MODE: _WRITE, _BUSY_MS: busy_ms})
        except BaseException:
            if self._tx is not None:
                await self._tx.__aexit__(None, None, None)
            self._lock.release()
            raise

    async def __aexit__(self, *exc: Any) -> Any:
        try:
            return await self._tx.__aexit__(*exc)
        finally:
            self._lock.release()

    async def _acquire(self, wait_s: float | None) -> int:
        """Take the writer lock; how long BEGIN IMMEDIATE may then wait, in ms."""
        if wait_s is None:
            await self._lock.acquire()
            return SQLITE_BUSY_TIMEOUT_MS
        started = time.monotonic()
        try:
            async with asyncio.timeout(wait_s):
                await self._lock.acquire()
        except TimeoutError:
            raise WriterBusy(f"no turn to write within {wait_s:g} s") from None
        left_ms = int((wait_s - (time.monotonic() - started)) * 1000)
        # Whole steps of 100 ms, down: a writer that did not wait sets the same timeout as the
        # last one, so the connection's PRAGMA stays as it is (see the `begin` listener).
        return max(1, left_ms - left_ms % 100)


TransactionEnded = Callable[[Session, bool], None]


def session_factory(
    engine: AsyncEngine, *, on_end: TransactionEnded | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions on `engine` (on SQLite: readers, and a writer once `begin()` is called);
    `on_end(session, committed)` is told when each of their transactions ends (after the
    commit or the rollback)."""
    kw: dict[str, Any] = {"expire_on_commit": False}
    if engine.dialect.name == "sqlite":
        kw.update(class_=_SqliteSession, execution_options={_MODE: _READ})
    if on_end is not None:

        class Watched(Session):
            pass

        event.listen(Watched, "after_commit", lambda s: on_end(s, True))
        event.listen(Watched, "after_rollback", lambda s: on_end(s, False))
        kw["sync_session_class"] = Watched
    return async_sessionmaker(engine, **kw)


@asynccontextmanager
async def transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A session inside one transaction: committed on success, rolled back on error."""
    async with sessions() as session, session.begin():
        yield session
