"""A database that cannot be used, as operators meet it: commands that say so in one line, and
a daemon that rides through a PostgreSQL restart (a private cluster this module starts and
stops, never the shared server)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import PG_ADMIN_DB, PG_HOST, PG_PORT, pg_reachable
from tests.e2e.test_processes import _config, _free_port, _port, _spawn, _wait_http, _watcher
from tests.e2e.test_processes import devchain as devchain  # the fixture
from tests.support.pgcluster import PgCluster
from watcher.devchain.server import DevChainServer
from watcher.money import to_micro

PASSWORD = "hunter2"


def _unusable(tmp_path: Path, case: str) -> tuple[str, str]:
    """(database.url, what the error line must say) for each way a database can be wrong."""
    shared = f"{PG_HOST}:{PG_PORT}"
    if case == "unknown database":
        return f"postgresql+asyncpg://postgres@{shared}/no_such_db_14", '"no_such_db_14" does not'
    if case == "unknown role":
        return f"postgresql+asyncpg://no_such_role_14@{shared}/{PG_ADMIN_DB}", '"no_such_role_14"'
    if case == "refused port":
        port = _free_port()
        return f"postgresql+asyncpg://postgres:{PASSWORD}@127.0.0.1:{port}/w", "refused"
    if case == "unknown host":
        return "postgresql+asyncpg://postgres@no-such-host.invalid/w", "no-such-host.invalid"
    if case == "sqlite path that cannot be created":
        return "sqlite+aiosqlite:////proc/watcher-14/w.db", "/proc/watcher-14"
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a SQLite file, whatever its name says " * 40)
    return f"sqlite+aiosqlite:///{garbage}", "not a SQLite database"


@pytest.mark.parametrize(
    "case",
    [
        "unknown database",
        "unknown role",
        "refused port",
        "unknown host",
        "sqlite path that cannot be created",
        "not a database",
    ],
)
def test_a_database_that_cannot_be_used_is_one_error_line(tmp_path: Path, case: str) -> None:
    if case.startswith("unknown") and not pg_reachable():
        pytest.skip("no PostgreSQL to refuse the database or role")
    url, says = _unusable(tmp_path, case)
    cfg = _config(tmp_path, url, f"http://127.0.0.1:{_free_port()}")
    for command in (("db", "upgrade"), ("payments", "list"), ("run",)):
        done = _watcher(cfg, *command)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1, (command, done.stderr[-3000:])
        assert len(lines) == 1, (command, done.stderr[-3000:])
        assert lines[0].startswith("error: ") and "database.url" in lines[0], (command, lines)
        assert says in lines[0], (command, lines)
        assert PASSWORD not in done.stderr


async def _pg_exec(cluster: PgCluster, sql: str) -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=cluster.port, user="postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _seen(cluster: PgCluster, db: str) -> int:
    conn = await asyncpg.connect(host="127.0.0.1", port=cluster.port, user="postgres", database=db)
    try:
        return int(await conn.fetchval("SELECT block_number FROM chain_cursor WHERE name='seen'"))
    finally:
        await conn.close()


async def _until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what} within {timeout} s")


async def test_watcher_run_rides_through_a_postgresql_restart(
    tmp_path: Path, devchain: DevChainServer, cluster: PgCluster
) -> None:
    await _pg_exec(cluster, "CREATE DATABASE ride")
    cfg = _config(tmp_path, cluster.url("ride"), devchain.url)
    init = _watcher(cfg, "init", "--name", "shop", "--json")
    assert init.returncode == 0, init.stderr
    headers = {"x-api-key": json.loads(init.stdout)["api_key"]}
    base = f"http://127.0.0.1:{_port(cfg)}"
    log = tmp_path / "run.log"
    daemon = _spawn(cfg, "run", log=log)
    body = {"amount": 1000, "fullName": "Ahmet Yılmaz", "provider": "crypto"}
    try:
        await _wait_http(f"{base}/healthz")
        async with httpx.AsyncClient(timeout=10) as http:

            async def healthy() -> bool:
                return (await http.get(f"{base}/healthz")).status_code == 200

            await _until(healthy, 30, "healthy before the restart")
            cluster.stop()
            await asyncio.sleep(3)  # the leader lock's connection is gone, loops retry
            down = await http.post(
                f"{base}/api/payment/create", json={**body, "externalRef": "R-1"}, headers=headers
            )
            assert down.status_code == 503, down.text
            assert down.json()["error"]["code"] == "SYSTEM_DISABLED"
            assert int(down.headers["Retry-After"]) >= 1
            assert (await http.get(f"{base}/healthz")).status_code == 503
            assert daemon.poll() is None, log.read_text()[-3000:]

            cluster.start()
            await _until(healthy, 60, "healthy again after the restart")
            before = await _seen(cluster, "ride")

            async def follows() -> bool:
                return await _seen(cluster, "ride") > before + 3

            await _until(follows, 60, "the scanner following the chain again")
            made = await http.post(
                f"{base}/api/payment/create", json={**body, "externalRef": "R-2"}, headers=headers
            )
            assert made.status_code == 200, made.text
            data = made.json()["data"]
            devchain.chain.transfer(data["walletAddress"], to_micro(Decimal(str(data["amount"]))))

            async def completed() -> bool:
                status = await http.get(
                    f"{base}/api/payment/status",
                    params={"transactionId": made.json()["transactionId"]},
                    headers=headers,
                )
                return bool(status.json()["transaction"]["status"] == "completed")

            await _until(completed, 60, "the payment made after the restart completed")
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=30)
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert "component_died" not in text
    assert text.count("leader.acquired") >= 2
