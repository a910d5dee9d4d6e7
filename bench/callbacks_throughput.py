"""Callbacks per second to a local receiver: 5000 callbacks, 1 and 4 delivery workers, PostgreSQL.

    .venv/bin/python bench/callbacks_throughput.py [--callbacks 5000] [--workers 1,4]

Creates a scratch PostgreSQL database (127.0.0.1:5432, dropped at the end), fills the outbox
with N callbacks, and times `watcher deliver`-style worker processes (one DeliveryWorker each)
until all are delivered. The receiver is a minimal HTTP/1.1 server in its own process that
answers {"received": true}, so the figure is the worker's, not the receiver's: once at once
(CPU-bound: what a worker costs) and once after 50 ms (latency-bound, like a merchant endpoint
across the internet: what more workers buy).

The baseline, measured in the same run against the same receiver: raw HTTP POSTs of a
callback-sized body with httpx from one process at the same concurrency. Figures are printed
as ratios to it and 4-workers / 1-worker. Absolute numbers depend on the machine (cores shared
by the workers, PostgreSQL and the receiver); the ratios are the point.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.callbacks import bulk_events, new_merchant  # noqa: E402
from watcher.clock import now_ms  # noqa: E402
from watcher.db.engine import create_engine, session_factory  # noqa: E402
from watcher.db.migrate import upgrade  # noqa: E402
from watcher.secrets import SecretBox  # noqa: E402

HOST, PORT, USER = "127.0.0.1", 5432, "postgres"
ADMIN_DB = os.environ.get("WATCHER_TEST_PG_DB", "test")
KEY = "x4XHk6qf3W5sC3xK0v1h8c3W6mQ9Zb2LrT7yU1pN5aE="
CONCURRENCY = 16

RECEIVER = r"""
import asyncio, sys
ACK = (b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n'
       b'{"received":true}')
DELAY = float(sys.argv[1])

class Conn(asyncio.Protocol):
    def connection_made(self, transport):
        self.t, self.buf = transport, b""
    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in self.buf[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buf) < end + 4 + length:
                return
            self.buf = self.buf[end + 4 + length:]
            if DELAY:
                asyncio.get_running_loop().call_later(DELAY, self.t.write, ACK)
            else:
                self.t.write(ACK)

async def main():
    server = await asyncio.get_running_loop().create_server(Conn, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
"""

WORKER = r"""
import asyncio, sys
import httpx
from sqlalchemy import text
from watcher.callbacks.delivery import DeliveryWorker
from watcher.config import LogSettings, Settings
from watcher.db.engine import create_engine, session_factory
from watcher.logs import configure_logging
from watcher.secrets import load_box
try:
    from watcher.callbacks.sender import callback_session  # the daemon's session (aiohttp)
except ImportError:  # an older checkout: its worker took an httpx client
    callback_session = httpx.AsyncClient

async def main(url, name, concurrency):
    configure_logging(LogSettings(level="INFO"))  # as the daemon logs: a JSON line per attempt
    settings = Settings(database={"url": url}, callbacks={
        "allow_private_urls": True, "concurrency": concurrency,
        "per_host_concurrency": concurrency, "poll_interval_s": 0.05})
    engine = create_engine(url)
    sessions = session_factory(engine)
    stop = asyncio.Event()

    async def until_empty():
        while not stop.is_set():
            await asyncio.sleep(0.1)
            async with engine.connect() as conn:
                left = (await conn.execute(text(
                    "SELECT count(*) FROM callback WHERE status = 'pending'"))).scalar_one()
            if left == 0:
                stop.set()

    async with callback_session() as http:
        worker = DeliveryWorker(settings, sessions, load_box(url), http, worker_id=name)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        await asyncio.gather(worker.run(stop), until_empty())
    await engine.dispose()

run = asyncio.run
try:
    from watcher.eventloop import run  # the loop `watcher deliver` runs on (uvloop)
except ImportError:  # an older checkout
    pass
run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


def pg_url(db: str) -> str:
    return f"postgresql+asyncpg://{USER}@{HOST}:{PORT}/{db}"


async def admin(sql: str) -> None:
    conn = await asyncpg.connect(database=ADMIN_DB, host=HOST, port=PORT, user=USER)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def fill(url: str, receiver_url: str, count: int) -> None:
    engine = create_engine(url)
    sessions = session_factory(engine)
    async with engine.begin() as conn:
        await conn.exec_driver_sql(
            "TRUNCATE callback_attempt, callback, payment_event, payment, api_key, merchant"
            " RESTART IDENTITY CASCADE"
        )
    merchant = await new_merchant(sessions, SecretBox(KEY.encode()), "bench")
    await bulk_events(sessions, merchant.id, receiver_url, now_ms(), count)
    await engine.dispose()


async def delivered(url: str) -> int:
    conn = await asyncpg.connect(dsn=url.replace("+asyncpg", ""))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM callback WHERE status='delivered'"))
    finally:
        await conn.close()


async def run_workers(url: str, workers: int, count: int) -> tuple[float, float]:
    """(callbacks per second, worker CPU milliseconds per callback)."""
    env = {**os.environ, "WATCHER_SECRET_KEY": KEY, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, f"bench-{i}", str(CONCURRENCY)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
        )
        for i in range(workers)
    ]
    for p in procs:  # every process imported, connected and waiting: start them together
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        await asyncio.to_thread(p.wait)
    elapsed = time.perf_counter() - t0
    cpu_ms = (_children_cpu() - cpu0) * 1000 / count
    done = await delivered(url)
    assert done == count, f"only {done} of {count} delivered"
    return count / elapsed, cpu_ms


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def raw_posts(receiver_url: str, count: int) -> float:
    body = b'{"event":"payment.completed","amount":1000,"fullName":"Ahmet Y\xc4\xb1lmaz"}' * 6
    left = iter(range(count))

    async def one_lane(http: httpx.AsyncClient) -> None:
        for _ in left:
            r = await http.post(receiver_url, content=body, headers={"X-Signature": "0" * 64})
            assert r.status_code == 200 and r.json() == {"received": True}

    async with httpx.AsyncClient() as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(one_lane(http) for _ in range(CONCURRENCY)))
        return count / (time.perf_counter() - t0)


async def scenario(url: str, delay_ms: int, count: int, counts: list[int]) -> None:
    receiver = subprocess.Popen(
        [sys.executable, "-c", RECEIVER, str(delay_ms / 1000)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert receiver.stdout is not None
        receiver_url = f"http://127.0.0.1:{int(receiver.stdout.readline())}/kasa"
        print(f"\nreceiver answering after {delay_ms} ms:")
        baseline = await raw_posts(receiver_url, count)
        print(f"  baseline: raw httpx POSTs, {CONCURRENCY} concurrent    {baseline:7.0f} /s")
        rates: dict[int, float] = {}
        for n in counts:
            await fill(url, receiver_url, count)
            rates[n], cpu_ms = await run_workers(url, n, count)
            label = f"{n} worker{'s' if n > 1 else ''} x {CONCURRENCY} slots"
            print(
                f"  {label:<32}{rates[n]:10.0f} /s = {rates[n] / baseline:.2f} x baseline"
                f"   cpu {cpu_ms:.1f} ms"
            )
        for n in counts:
            if n != 1 and 1 in rates:
                print(f"  ratio {n} workers / 1 worker: {rates[n] / rates[1]:.2f}")
    finally:
        receiver.terminate()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callbacks", type=int, default=5000)
    parser.add_argument("--workers", default="1,4")
    parser.add_argument("--delays-ms", default="0,50", help="receiver answer delays to run")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    db = f"watcher_bench_cb_{uuid.uuid4().hex[:8]}"
    await admin(f'CREATE DATABASE "{db}"')
    url = pg_url(db)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{args.callbacks} callbacks on PostgreSQL; {os.cpu_count()} CPUs (load average {load})")
    print("shared by the receiver, PostgreSQL and the workers: CPU-bound runs cannot scale past")
    print("them; `cpu` is worker user+system time per callback, summed over the workers")
    try:
        engine = create_engine(url)
        await upgrade(engine)
        await engine.dispose()
        for delay in (int(d) for d in args.delays_ms.split(",")):
            await scenario(url, delay, args.callbacks, counts)
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


if __name__ == "__main__":
    socket.setdefaulttimeout(30)
    asyncio.run(main())
