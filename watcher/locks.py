"""Who may run: one daemon per SQLite file, one active scanner per PostgreSQL database.

SQLite: an exclusive `flock` on `<db>.lock`. The kernel drops it when the process dies however
it dies, so a restart after SIGKILL or a power cut never finds a stale lock (a PID file would).

PostgreSQL: a session advisory lock, held on a connection of its own. Not a pooled one: a pool
would hand the connection (and the lock with it) to other work, or close it while idle, and the
lock would silently move or vanish. The server drops the lock when that connection ends, so a
killed scanner frees it at once and a standby polling `pg_try_advisory_lock` takes over. The
holder checks its connection every few seconds and gives up leadership as soon as it cannot
show it still holds the lock; TCP keepalives make the server end a silent holder's session
(and free the lock) only after that, so two scanners never run at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import asyncpg
import structlog
from sqlalchemy.engine import make_url

from watcher.db.engine import sqlite_path

log = structlog.get_logger("watcher.locks")

# Advisory lock keys are per database; these name what is locked ("kasa" + "scan").
SCANNER_LOCK_KEY = 0x6B617361_7363616E

_PG_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class InstanceLocked(Exception):
    """Another watcher daemon is already running on this database."""


class SqliteInstanceLock:
    """An exclusive OS file lock beside a SQLite database, held for the process's life."""

    def __init__(self, db_path: str | Path):
        self.db_path = Path(db_path)
        self.path = self.db_path.with_name(self.db_path.name + ".lock")
        self._fd: int | None = None

    @classmethod
    def for_url(cls, url: str) -> SqliteInstanceLock | None:
        """The lock for a file-backed SQLite URL; None for PostgreSQL or in-memory SQLite."""
        path = sqlite_path(url)
        return cls(path) if path is not None else None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock at once or raise InstanceLocked naming the holder's pid."""
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise InstanceLocked(
                f"another watcher daemon (pid {holder}) is already running on {self.db_path}; "
                f"stop it first, or give this one another database (lock file {self.path})"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        log.debug("lock.sqlite_acquired", path=str(self.path))

    def release(self) -> None:
        # The file stays: unlinking a lock file lets two processes lock two different inodes.
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> SqliteInstanceLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def asyncpg_dsn(url: str) -> str:
    """A SQLAlchemy `postgresql+asyncpg://…` URL as a plain libpq-style DSN for asyncpg."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


Connect = Callable[..., Awaitable[Any]]


class PgLeaderLock:
    """A PostgreSQL session advisory lock on a dedicated connection: leader election.

    `acquire(stop)` polls every `poll_s` until this process holds the lock (True) or `stop`
    is set (False). `watch(stop)` then checks the connection every `check_s` and returns when
    `stop` is set or leadership is lost, setting `lost` in the latter case.
    """

    def __init__(
        self,
        url: str,
        key: int = SCANNER_LOCK_KEY,
        *,
        poll_s: float = 1.0,
        check_s: float = 2.0,
        timeout_s: float = 5.0,
        connect: Connect = asyncpg.connect,
    ):
        self._dsn = asyncpg_dsn(url)
        self.key = key
        self.poll_s = poll_s
        self.check_s = check_s
        self.timeout_s = timeout_s
        self._connect = connect
        self._conn: Any = None
        self._leading = False
        self._unreachable = False  # the last attempt could not reach the database
        self.lost = asyncio.Event()

    @property
    def held(self) -> bool:
        return self._leading and not self.lost.is_set()

    async def acquire(self, stop: asyncio.Event) -> bool:
        announced = False
        while not stop.is_set():
            if await self._try_lock():
                self.lost.clear()
                self._leading = True
                log.info("leader.acquired", key=self.key)
                return True
            if not announced:
                log.info("leader.standby", key=self.key, poll_s=self.poll_s)
                announced = True
            await _wait(stop, self.poll_s)
        return False

    async def _try_lock(self) -> bool:
        try:
            if self._conn is None:
                self._conn = await self._open()
            got = await self._conn.fetchval(
                "SELECT pg_try_advisory_lock($1)", self.key, timeout=self.timeout_s
            )
        except _PG_ERRORS as exc:
            # Once per outage; the standby keeps polling quietly until the database is back.
            level = log.debug if self._unreachable else log.warning
            level("leader.database_unreachable", error=str(exc) or type(exc).__name__)
            self._unreachable = True
            self._drop()
            return False
        self._unreachable = False
        return bool(got)

    async def _open(self) -> Any:
        conn = await self._connect(
            self._dsn,
            timeout=self.timeout_s,
            server_settings={
                "application_name": "watcher-leader",
                "tcp_keepalives_idle": "10",
                "tcp_keepalives_interval": "5",
                "tcp_keepalives_count": "3",
            },
        )
        conn.add_termination_listener(self._on_terminated)
        return conn

    def _on_terminated(self, conn: Any) -> None:
        if conn is self._conn:
            self._mark_lost("connection closed")

    def _mark_lost(self, reason: str) -> None:
        if not self.lost.is_set():
            log.error("leader.lost", key=self.key, reason=reason)
            self.lost.set()

    async def still_held(self) -> bool:
        """Ask the server whether this connection still holds the lock."""
        if self._conn is None or self.lost.is_set():
            return False
        try:
            n = await self._conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND pid = pg_backend_pid() AND objsubid = 1"
                " AND classid::bigint = $1 AND objid::bigint = $2",
                (self.key >> 32) & 0xFFFF_FFFF,  # a bigint key is shown as two oids
                self.key & 0xFFFF_FFFF,
                timeout=self.timeout_s,
            )
        except _PG_ERRORS as exc:
            self._mark_lost(str(exc) or type(exc).__name__)
            return False
        if not n:
            self._mark_lost("lock no longer held")
        return bool(n)

    async def watch(self, stop: asyncio.Event) -> None:
        """Return when `stop` is set, or (with `lost` set) as soon as leadership is lost."""
        while not stop.is_set() and await self.still_held():
            await _wait_any((stop, self.lost), self.check_s)
        if self.lost.is_set():
            self._drop()

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        leading, self._leading = self._leading, False
        if conn is None:
            return
        try:
            await conn.execute("SELECT pg_advisory_unlock_all()", timeout=self.timeout_s)
            await conn.close(timeout=self.timeout_s)
        except _PG_ERRORS:
            conn.terminate()
        if leading:
            log.info("leader.released", key=self.key)

    def _drop(self) -> None:
        # Ending the session is what frees the lock server-side; no round trip needed.
        conn, self._conn = self._conn, None
        self._leading = False
        if conn is not None:
            conn.terminate()


class Component(Protocol):
    name: str

    async def run(self, stop: asyncio.Event) -> None: ...


class LeaderElected:
    """Runs a fresh component from `make()` only while `lock` is held.

    Standby until elected; when leadership is lost the component is asked to stop (its stop
    event is set) and this goes back to standby. The component resumes from its persisted
    state (the follower from its cursors) whenever it is elected again.
    """

    def __init__(self, lock: PgLeaderLock, make: Callable[[], Component], name: str):
        self.lock = lock
        self.make = make
        self.name = name

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while await self.lock.acquire(stop):
                await self._lead(stop)
                if stop.is_set() or not self.lock.lost.is_set():
                    break  # asked to stop, or the component ended by itself
                log.warning("leader.standby_again", component=self.name)
        finally:
            await self.lock.release()

    async def _lead(self, stop: asyncio.Event) -> None:
        inner = asyncio.Event()
        component = self.make()

        async def relay() -> None:
            await self.lock.watch(stop)
            inner.set()

        watcher = asyncio.create_task(relay(), name=f"{self.name}.leader_watch")
        try:
            await component.run(inner)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


async def _wait(event: asyncio.Event, timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)


async def _wait_any(events: tuple[asyncio.Event, ...], timeout: float) -> None:
    tasks = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
