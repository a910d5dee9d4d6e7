"""Instance and leader locks between real processes.

SQLite: a second daemon on one file is refused; after SIGKILL a new one starts.
PostgreSQL: one scanner leads, another stands by and takes over when the leader is killed.
"""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from watcher.locks import (
    SCANNER_LOCK_KEY,
    InstanceLocked,
    LeaderElected,
    PgLeaderLock,
    SqliteInstanceLock,
    asyncpg_dsn,
)

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 20.0  # generous: a failure, not a slow machine, should trip it

SQLITE_DAEMON = textwrap.dedent(
    """
    import sys, time
    from watcher.locks import InstanceLocked, SqliteInstanceLock
    try:
        SqliteInstanceLock(sys.argv[1]).acquire()
    except InstanceLocked as exc:
        print("REFUSED", exc, flush=True)
        sys.exit(3)
    print("LOCKED", flush=True)
    time.sleep(600)
    """
)

SCANNER = textwrap.dedent(
    """
    import asyncio, os, sys
    from watcher.config import LogSettings
    from watcher.locks import LeaderElected, PgLeaderLock
    from watcher.logs import configure_logging

    class Scanner:
        name = "scanner"
        async def run(self, stop):
            print("LEADER", os.getpid(), flush=True)
            await stop.wait()
            print("STOPPED", flush=True)

    configure_logging(LogSettings(json_logs=True))
    lock = PgLeaderLock(sys.argv[1])
    asyncio.run(LeaderElected(lock, Scanner, "scanner").run(asyncio.Event()))
    """
)


class Proc:
    """A child python process whose output lines can be awaited."""

    def __init__(self, script: str, *args: str):
        self.popen = subprocess.Popen(
            [sys.executable, "-c", script, *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()

    def _pump(self) -> None:
        assert self.popen.stdout is not None
        with self.popen.stdout:  # closed at EOF, when the child is gone
            for line in self.popen.stdout:
                self.lines.put(line.rstrip("\n"))

    def expect(self, needle: str, timeout: float = DEADLINE_S) -> str:
        end = time.monotonic() + timeout
        seen = []
        while (left := end - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            seen.append(line)
            if needle in line:
                return line
        raise AssertionError(f"{needle!r} not printed; got: {seen}")

    def kill9(self) -> None:
        os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(10)
        self.pump.join(10)


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        p.stop()


def test_second_daemon_on_one_sqlite_file_is_refused_until_the_first_dies(
    tmp_path: Path, procs: list[Proc]
) -> None:
    db = str(tmp_path / "watcher.db")
    first = Proc(SQLITE_DAEMON, db)
    procs.append(first)
    first.expect("LOCKED")

    second = Proc(SQLITE_DAEMON, db)
    procs.append(second)
    refusal = second.expect("REFUSED")
    assert second.popen.wait(10) == 3
    assert f"pid {first.popen.pid}" in refusal
    assert "already running" in refusal and db in refusal

    first.kill9()  # no cleanup ran; the kernel dropped the lock
    third = Proc(SQLITE_DAEMON, db)
    procs.append(third)
    third.expect("LOCKED")


def test_sqlite_lock_in_process_release_and_urls(tmp_path: Path) -> None:
    db = tmp_path / "state" / "watcher.db"
    lock = SqliteInstanceLock.for_url(f"sqlite+aiosqlite:///{db}")
    assert lock is not None and lock.path == db.with_name("watcher.db.lock")
    with lock:
        # flock conflicts between open files even within one process
        with pytest.raises(InstanceLocked):
            SqliteInstanceLock(db).acquire()
    with SqliteInstanceLock(db) as again:
        assert again.held
    assert SqliteInstanceLock.for_url("sqlite+aiosqlite:///:memory:") is None
    assert SqliteInstanceLock.for_url("postgresql+asyncpg://u@127.0.0.1/x") is None


@pytest.mark.postgres
@pytest.mark.parametrize("db_kind", ["postgres"])
def test_standby_scanner_takes_over_when_the_leader_is_killed(
    db_url: str, procs: list[Proc]
) -> None:
    a = Proc(SCANNER, db_url)
    procs.append(a)
    a.expect("LEADER")
    b = Proc(SCANNER, db_url)
    procs.append(b)
    b.expect('"leader.standby"')

    a.kill9()
    killed = time.monotonic()
    line = b.expect("LEADER")
    took = time.monotonic() - killed
    assert line == f"LEADER {b.popen.pid}"
    print(f"failover after SIGKILL took {took:.2f} s")

    # And again: leadership keeps moving to whoever is still alive.
    c = Proc(SCANNER, db_url)
    procs.append(c)
    c.expect('"leader.standby"')
    b.kill9()
    c.expect("LEADER")


class _Scanner:
    name = "scanner"

    def __init__(self, log: list[str]):
        self.log = log

    async def run(self, stop: asyncio.Event) -> None:
        self.log.append("start")
        await stop.wait()
        self.log.append("stop")


async def _until(cond: Callable[[], bool], timeout: float = DEADLINE_S) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not reached"
        await asyncio.sleep(0.05)


@pytest.mark.postgres
@pytest.mark.parametrize("db_kind", ["postgres"])
async def test_leader_that_loses_its_connection_stops_and_stands_by(db_url: str) -> None:
    events: list[str] = []
    lock = PgLeaderLock(db_url, poll_s=0.2, check_s=0.2)
    stop = asyncio.Event()
    runner = asyncio.create_task(LeaderElected(lock, lambda: _Scanner(events), "scanner").run(stop))
    await _until(lambda: events == ["start"])

    admin = await asyncpg.connect(asyncpg_dsn(db_url))
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'watcher-leader' AND datname = current_database()"
        )
        # It notices, stops the scanner, reconnects and leads again (nobody else is waiting).
        await _until(lambda: events == ["start", "stop", "start"])
        stop.set()
        await asyncio.wait_for(runner, DEADLINE_S)
        assert events == ["start", "stop", "start", "stop"]
        # Released on stop: someone else can take it at once.
        assert await admin.fetchval("SELECT pg_try_advisory_lock($1)", SCANNER_LOCK_KEY)
    finally:
        await admin.close()


@pytest.mark.postgres
@pytest.mark.parametrize("db_kind", ["postgres"])
async def test_standby_gives_up_waiting_when_asked_to_stop(db_url: str) -> None:
    holder = await asyncpg.connect(asyncpg_dsn(db_url))
    try:
        assert await holder.fetchval("SELECT pg_try_advisory_lock($1)", SCANNER_LOCK_KEY)
        lock = PgLeaderLock(db_url, poll_s=0.1)
        stop = asyncio.Event()
        waiting = asyncio.create_task(lock.acquire(stop))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        stop.set()
        assert await asyncio.wait_for(waiting, DEADLINE_S) is False
        await lock.release()
    finally:
        await holder.close()
