"""sd_notify over a real AF_UNIX datagram socket, as systemd listens for it."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from watcher import systemd
from watcher.systemd import Notifier, Watchdog, watchdog_timeout_s


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    yield sock, path
    sock.close()


def received(sock: socket.socket) -> list[str]:
    """Every datagram waiting on the socket."""
    out = []
    sock.setblocking(False)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(2)
    return out


def test_ready_watchdog_stopping_and_status_reach_the_socket(
    listener: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert systemd.notify_ready("listening on 127.0.0.1:8080")
    assert sock.recv(4096) == b"READY=1\nSTATUS=listening on 127.0.0.1:8080"
    assert systemd.notify_watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert systemd.notify_status("following block 123\nsecond line")
    assert sock.recv(4096) == b"STATUS=following block 123 second line"
    assert systemd.notify_stopping()
    assert sock.recv(4096) == b"STOPPING=1"


def test_abstract_namespace_socket() -> None:
    name = f"watcher-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        assert Notifier("@" + name).ready()
        assert sock.recv(4096) == b"READY=1"
    finally:
        sock.close()


def test_without_systemd_nothing_is_sent_and_nothing_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not systemd.notify_ready()
    assert not systemd.notify_watchdog()


def test_a_vanished_socket_does_not_crash_the_daemon(tmp_path: Path) -> None:
    assert not Notifier(str(tmp_path / "gone.sock")).ready()


def test_watchdog_timeout_from_environment() -> None:
    assert watchdog_timeout_s({"WATCHDOG_USEC": "60000000"}) == 60.0
    assert watchdog_timeout_s({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"}) is None
    pid = str(os.getpid())
    assert watchdog_timeout_s({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": pid}) == 4.0
    assert watchdog_timeout_s({}) is None


def test_watchdog_pings_only_while_every_loop_progresses(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    now = [1000.0]
    dog = Watchdog(Notifier(path), 60.0, monotonic=lambda: now[0])
    dog.register("follower")
    dog.register("delivery")

    now[0] += 30
    assert dog.tick()
    now[0] += 31  # both silent for 61 s
    dog.progress("follower")
    assert not dog.tick()
    assert dog.stalled() == ["delivery"]
    dog.progress("delivery")
    assert dog.tick()
    assert received(sock) == ["WATCHDOG=1", "WATCHDOG=1"]


async def test_watchdog_component_pings_at_half_the_timeout_and_stops(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    dog = Watchdog.from_env({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
    assert dog.timeout_s == 0.4
    dog.register("follower")
    stop = asyncio.Event()
    task = asyncio.create_task(dog.run(stop))
    loop = asyncio.get_running_loop()
    for _ in range(3):
        dog.progress("follower")
        assert await loop.run_in_executor(None, sock.recv, 4096) == b"WATCHDOG=1"
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_disabled_watchdog_just_waits_for_stop() -> None:
    dog = Watchdog.from_env({})
    stop = asyncio.Event()
    task = asyncio.create_task(dog.run(stop))
    await asyncio.sleep(0)
    assert not task.done()
    stop.set()
    await asyncio.wait_for(task, 5)
