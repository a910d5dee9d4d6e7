"""`watcher run` when what it needs is not there: a node that does not answer at the first
start, a port another process holds. Real processes, real sockets, a devchain on loopback."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_processes import (
    WATCHER,
    _config,
    _env,
    _free_port,
    _port,
    _wait_http,
    _watcher,
    devchain,
)
from watcher.devchain.binance import FakeBinance
from watcher.devchain.chain import DevChain
from watcher.devchain.server import DevChainServer

__all__ = ["devchain"]  # the fixture, shared with test_processes

CREATE = {"amount": 1000, "fullName": "Ahmet Yılmaz", "externalRef": "S-1", "provider": "crypto"}


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[socket.socket]:
    """A stand-in for systemd's notify socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "notify.sock"))
        sock.settimeout(0.1)
        yield sock


def _messages(sock: socket.socket) -> list[str]:
    got = []
    while True:
        try:
            got.append(sock.recv(4096).decode())
        except TimeoutError:
            return got


def _spawn(cfg: Path, log: Path, notify: socket.socket) -> subprocess.Popen[bytes]:
    env = {**_env(), "NOTIFY_SOCKET": notify.getsockname()}
    with log.open("wb") as stderr:
        return subprocess.Popen(
            [WATCHER, "--config", str(cfg), "run"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


async def _stop_timed(daemon: subprocess.Popen[bytes]) -> tuple[int, float]:
    daemon.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    while daemon.poll() is None and time.monotonic() - sent < 30:
        await asyncio.sleep(0.01)
    return daemon.wait(timeout=1), time.monotonic() - sent


async def test_node_unreachable_at_first_start_opens_the_api_and_stops_at_once(
    tmp_path: Path, notify: socket.socket
) -> None:
    node_port = _free_port()  # nothing listens there yet
    node = f"http://127.0.0.1:{node_port}"
    cfg = _config(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'w.db'}", node)
    init = _watcher(cfg, "init", "--name", "shop", "--json")
    assert init.returncode == 0, init.stderr
    key = json.loads(init.stdout)["api_key"]
    base = f"http://127.0.0.1:{_port(cfg)}"
    log = tmp_path / "run.log"

    daemon = _spawn(cfg, log, notify)
    try:
        await _wait_http(f"{base}/healthz", timeout=15)
        async with httpx.AsyncClient(timeout=10) as http:
            health = await http.get(f"{base}/healthz")
            assert health.status_code == 503 and health.json()["status"] == "starting"
            created = await http.post(
                f"{base}/api/payment/create", json=CREATE, headers={"x-api-key": key}
            )
        assert created.status_code == 502
        assert created.json()["error"]["code"] == "PROVIDER_ERROR"
        assert any(m.startswith("READY=1") for m in _messages(notify))
        await asyncio.sleep(1)  # into the retry back-off
    finally:
        code, took = await _stop_timed(daemon)
    assert code == 0, log.read_text()[-2000:]
    assert took < 1.0, f"stopped {took:.2f} s after SIGTERM"

    # Started again, still without a node; the node comes up and the daemon takes payments.
    daemon = _spawn(cfg, log, notify)
    chain = DevChain(solidify_lag=3, block_interval_ms=200)
    chain.mine(5)
    server = DevChainServer(
        chain, port=node_port, block_time_ms=200, binance=FakeBinance(price=Decimal("35.50"))
    )
    try:
        await _wait_http(f"{base}/healthz", timeout=15)
        server.start_in_thread()
        async with httpx.AsyncClient(timeout=10) as http:
            for _ in range(400):
                health = await http.get(f"{base}/healthz")
                if health.json()["status"] != "starting":
                    break
                await asyncio.sleep(0.1)
            assert health.json()["status"] == "ok", health.json()
            created = await http.post(
                f"{base}/api/payment/create", json=CREATE, headers={"x-api-key": key}
            )
        assert created.status_code == 200, created.text
    finally:
        code, _ = await _stop_timed(daemon)
        server.stop_in_thread()
    assert code == 0


def test_port_in_use_is_one_error_line(tmp_path: Path, devchain: DevChainServer) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        db = f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"
        cfg = _config(tmp_path, db, devchain.url, port=port)
        started = time.monotonic()
        assert _watcher(cfg, "--version").returncode == 0
        baseline = time.monotonic() - started  # the interpreter and imports, on this machine now
        started = time.monotonic()
        done = _watcher(cfg, "run")
        took = time.monotonic() - started
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and f"127.0.0.1:{port}" in lines[0]
    assert "in use" in lines[0] and "api.port" in lines[0]
    # It fails before anything is opened: about as fast as printing the version. (A fixed
    # 10 s failed under load, when the imports alone took 7 s.)
    assert took < 2 * baseline + 5, (took, baseline)
