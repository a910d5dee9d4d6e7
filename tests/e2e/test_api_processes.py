"""`api.processes = N`: the API served by N processes on one port (PostgreSQL).

Real `watcher` processes on loopback: the merchant gets answers from any of them, an operator's
SIGTERM stops all of them, a process that dies takes the daemon down (so systemd restarts
the set), and a parent killed outright leaves no process behind. On SQLite it is refused.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_processes import _config, _port, _spawn, _watcher, devchain

__all__ = ["devchain"]  # the fixture, shared with test_processes


def _with_processes(cfg: Path, n: int) -> Path:
    text = cfg.read_text().replace("[api]\n", f"[api]\nprocesses = {n}\n", 1)
    cfg.write_text(text)
    return cfg


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


async def _all_ready(log: Path, processes: int = 3) -> None:
    await _until(lambda: log.read_bytes().count(b"daemon_ready") == processes)


async def _until(check: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise AssertionError("never happened")


@pytest.fixture
def api_processes(
    tmp_path: Path, devchain: object, pg_database: str
) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    cfg = _with_processes(_config(tmp_path, pg_database, devchain.url), 3)  # type: ignore[attr-defined]
    log = tmp_path / "api.log"
    proc = _spawn(cfg, "api", log=log)
    try:
        yield proc, f"http://127.0.0.1:{_port(cfg)}", log
    finally:
        for pid in [proc.pid, *_children(proc.pid)]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=30)


async def test_every_process_answers_and_sigterm_stops_them_all(
    api_processes: tuple[subprocess.Popen[bytes], str, Path],
) -> None:
    proc, url, log = api_processes
    await _all_ready(log)
    children = _children(proc.pid)
    assert len(children) == 2
    # With the parent and one child stopped, the other child alone takes every new connection.
    stopped = [proc.pid, children[0]]
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    try:
        for _ in range(10):
            async with httpx.AsyncClient(timeout=5) as http:  # a new connection each time
                r = await http.get(url + "/api/payment/status?transactionId=txn_1")
                assert (r.status_code, r.json()["error"]["code"]) == (401, "UNAUTHORIZED")
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=40) == 0
    assert not [pid for pid in children if _alive(pid)]
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/healthz", timeout=2)


async def test_a_process_that_dies_stops_the_daemon_with_exit_1(
    api_processes: tuple[subprocess.Popen[bytes], str, Path],
) -> None:
    proc, _url, log = api_processes
    await _all_ready(log)
    children = _children(proc.pid)
    os.kill(children[0], signal.SIGKILL)
    assert proc.wait(timeout=40) == 1
    text = log.read_text()
    assert f"API process {children[0]} exited (killed by SIGKILL)" in text
    assert not _alive(children[1])
    # The survivor stopped as on SIGTERM (its requests in flight finished), not killed.
    assert [
        line
        for line in text.splitlines()
        if "daemon_stopped" in line and f'"pid": {children[1]}' in line
    ]


async def test_a_parent_killed_outright_leaves_no_api_process(
    api_processes: tuple[subprocess.Popen[bytes], str, Path],
) -> None:
    proc, _url, log = api_processes
    await _all_ready(log)
    children = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    await _until(lambda: not any(_alive(pid) for pid in children))


def test_more_than_one_process_on_sqlite_is_refused(tmp_path: Path) -> None:
    cfg = _with_processes(_config(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/w.db", "http://x"), 2)
    out = _watcher(cfg, "run")
    assert out.returncode == 1
    assert out.stderr.startswith("error: invalid configuration: api.processes = 2 needs PostgreSQL")
    assert "Traceback" not in out.stderr
